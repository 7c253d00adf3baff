"""Workspaces: tenants that own every other row."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from ccm.errors import NotFound
from ccm.workspaces.models import Workspace


def get_or_create_workspace(*, session: Session, name: str) -> tuple[Workspace, bool]:
    """The workspace called ``name``, created if missing. Returns (workspace, created)."""
    workspace = session.scalar(select(Workspace).where(Workspace.name == name))
    if workspace is not None:
        return workspace, False
    workspace = Workspace(name=name)
    session.add(workspace)
    session.flush()
    return workspace, True


def get_workspace(*, session: Session, workspace_id: str) -> Workspace:
    workspace = session.get(Workspace, workspace_id)
    if workspace is None:
        raise NotFound("workspace not found")
    return workspace
