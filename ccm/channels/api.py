from __future__ import annotations

from flask import Blueprint

from ccm.access import Permission
from ccm.auth.api import current_workspace_id, require_api_key
from ccm.channels.schemas import OutboxItemOut, OutboxList, OutboxQuery
from ccm.channels.service import list_outbox
from ccm.http import db_session, endpoint, permissions

bp = Blueprint("outbox", __name__, url_prefix="/v1/outbox")
bp.before_request(require_api_key)
permissions(bp, writes=Permission.SEND)


@endpoint(
    bp,
    "",
    method="GET",
    query=OutboxQuery,
    responses={200: OutboxList},
    summary="Messages delivered into the local outbox, newest first",
)
def get_outbox(query: OutboxQuery) -> OutboxList:
    items, cursor = list_outbox(
        session=db_session(), workspace_id=current_workspace_id(), page=query, message_id=query.message_id, to=query.to
    )
    return OutboxList(items=[OutboxItemOut.model_validate(item) for item in items], next_cursor=cursor)
