"""``GET /v1/audit`` for admins, and :func:`audit`, which the API layers of the domains call to
record what a request did, in its transaction, as the request's caller."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, current_app, request

from ccm.access import Permission
from ccm.audit import service
from ccm.audit.schemas import AuditEntryOut, AuditPage, AuditQuery
from ccm.audit.service import AuditFilter, Target
from ccm.auth.api import current_actor, current_workspace_id, require_api_key
from ccm.http import db_session, endpoint, permissions

bp = Blueprint("audit", __name__, url_prefix="/v1/audit")
bp.before_request(require_api_key)
permissions(bp, reads=Permission.ADMIN, writes=Permission.ADMIN)


def audit(action: str, target: Target, *, before: dict[str, Any] | None = None, after: Any = None) -> None:
    """Record ``action`` on ``target`` by the request's caller, from its address."""
    service.record(
        session=db_session(),
        workspace_id=current_workspace_id(),
        actor=current_actor(),
        action=action,
        target=target,
        before=before,
        after=after,
        ip=request.remote_addr,
    )


def audit_export(action: str, target: Target, *, after: dict[str, Any] | None = None) -> None:
    """Record a download (an export, a report) in a transaction of its own, committed before the data
    goes out: a GET's session is read-only, and what was handed out cannot be taken back anyway."""
    with current_app.extensions["ccm"].db.unit_of_work() as session:
        service.record(
            session=session,
            workspace_id=current_workspace_id(),
            actor=current_actor(),
            action=action,
            target=target,
            after=after,
            ip=request.remote_addr,
        )


@endpoint(
    bp,
    "",
    method="GET",
    query=AuditQuery,
    responses={200: AuditPage},
    errors=(403,),
    summary="The audit log, newest first, filtered by action, actor, target and time; admin keys only",
)
def list_audit(query: AuditQuery) -> AuditPage:
    where = AuditFilter(**query.model_dump())
    rows, cursor = service.list_entries(session=db_session(), workspace_id=current_workspace_id(), where=where)
    return AuditPage(items=[AuditEntryOut.model_validate(row) for row in rows], next_cursor=cursor)
