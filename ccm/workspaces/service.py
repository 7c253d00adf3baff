"""Workspaces: tenants that own every other row."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from ccm.errors import NotFound
from ccm.workspaces.models import Workspace
from ccm.workspaces.schemas import WorkspacePatch, WorkspacePolicy


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


_policies: dict[str, tuple[dict[str, Any], WorkspacePolicy]] = {}


def policy_of(settings: dict[str, Any], *, workspace_id: str | None = None) -> WorkspacePolicy:
    """The workspace's delivery policy; settings it does not name take their defaults. With a
    ``workspace_id`` the parsed policy is reused while the settings stay equal (every delivery
    reads it, and comparing two small dicts is far cheaper than validating one)."""
    if workspace_id is not None:
        cached = _policies.get(workspace_id)
        if cached is not None and cached[0] == settings:
            return cached[1]
    policy = WorkspacePolicy.model_validate(settings or {}, strict=False)  # stored JSON: lists for tuples
    if workspace_id is not None:
        _policies[workspace_id] = (settings, policy)
    return policy


def workspace_policy(*, session: Session, workspace_id: str) -> WorkspacePolicy:
    """The policy of a workspace, by id (parsed once while its settings stay the same)."""
    return policy_of(get_workspace(session=session, workspace_id=workspace_id).settings, workspace_id=workspace_id)


def update_workspace(*, session: Session, workspace_id: str, data: WorkspacePatch) -> Workspace:
    """Change the sender, default locale or policy (merged at the top level, validated whole).

    Raises:
      ValidationFailed: the merged policy is not valid (names ``policy.<field>``).
    """
    workspace = get_workspace(session=session, workspace_id=workspace_id)
    if data.mail_from is not None:
        workspace.mail_from = data.mail_from
    if data.default_locale is not None:
        workspace.default_locale = data.default_locale
    if data.policy is not None:
        given = data.policy.model_dump(mode="json", include=data.policy.model_fields_set)
        policy = WorkspacePolicy.model_validate({**(workspace.settings or {}), **given}, strict=False)
        workspace.settings = policy.model_dump(mode="json", exclude_defaults=True)
    session.flush()
    return workspace
