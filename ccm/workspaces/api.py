from __future__ import annotations

from flask import Blueprint

from ccm.access import Permission
from ccm.audit.api import audit
from ccm.audit.service import Target
from ccm.auth.api import current_workspace_id, require_api_key
from ccm.http import db_session, endpoint, permissions
from ccm.workspaces import service
from ccm.workspaces.models import Workspace
from ccm.workspaces.schemas import WorkspaceOut, WorkspacePatch

bp = Blueprint("workspace", __name__, url_prefix="/v1/workspace")
bp.before_request(require_api_key)
permissions(bp, writes=Permission.ADMIN, reads=Permission.VIEW)


def _out(workspace: Workspace) -> WorkspaceOut:
    return WorkspaceOut(
        id=workspace.id,
        name=workspace.name,
        mail_from=workspace.mail_from,
        default_locale=workspace.default_locale,
        policy=service.policy_of(workspace.settings),
    )


@endpoint(
    bp,
    "",
    method="GET",
    responses={200: WorkspaceOut},
    summary="The workspace and its delivery policy (quiet hours, caps, topics, consent defaults)",
)
def get_workspace() -> WorkspaceOut:
    return _out(service.get_workspace(session=db_session(), workspace_id=current_workspace_id()))


@endpoint(
    bp,
    "",
    method="PATCH",
    body=WorkspacePatch,
    responses={200: WorkspaceOut},
    summary="Change the sender, default locale or delivery policy",
)
def patch_workspace(body: WorkspacePatch) -> WorkspaceOut:
    before = get_workspace().model_dump(mode="json")
    workspace = service.update_workspace(session=db_session(), workspace_id=current_workspace_id(), data=body)
    out = _out(workspace)
    audit("workspace.update", Target("workspace", workspace.id), before=before, after=out.model_dump(mode="json"))
    return out
