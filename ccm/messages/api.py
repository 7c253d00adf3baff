from __future__ import annotations

from typing import Annotated

from flask import Blueprint, current_app, request

from ccm.auth.api import current_workspace_id, require_api_key
from ccm.http import db_session, endpoint
from ccm.idempotency.http import HEADER as IDEMPOTENCY_HEADER
from ccm.idempotency.http import respond_idempotently
from ccm.ids import new_id
from ccm.messages import service
from ccm.messages.schemas import MessageList, MessageListQuery, MessageOut, MessageSummary, SendIn, SendOut
from ccm.validation import id_field

MessageId = Annotated[str, id_field("msg")]

bp = Blueprint("messages", __name__, url_prefix="/v1/messages")
bp.before_request(require_api_key)


@endpoint(
    bp,
    "",
    method="POST",
    body=SendIn,
    responses={202: SendOut},
    headers=IDEMPOTENCY_HEADER,
    errors=(404, 409),
    summary="Send a templated message to one profile",
)
def send_message(body: SendIn) -> tuple[SendOut, int, dict[str, str]]:
    session, runtime = db_session(), current_app.extensions["ccm"]
    key, message_id = request.headers.get("Idempotency-Key"), new_id("msg")

    def work() -> tuple[SendOut, int]:
        accepted = service.send_message(
            session=session,
            runtime=runtime,
            workspace_id=current_workspace_id(),
            request=body,
            idempotency_key=key,
            message_id=message_id,
        )
        return SendOut(id=accepted.id, status=accepted.status), 202

    return respond_idempotently(work, SendOut, expected=(SendOut(id=message_id, status="queued"), 202))


@endpoint(
    bp,
    "/<message_id>",
    method="GET",
    responses={200: MessageOut},
    summary="A message's status, reason, route and every delivery attempt",
)
def get_message(message_id: MessageId) -> MessageOut:
    message = service.get_message(session=db_session(), workspace_id=current_workspace_id(), message_id=message_id)
    return MessageOut.model_validate(message)


@endpoint(
    bp,
    "",
    method="GET",
    query=MessageListQuery,
    responses={200: MessageList},
    errors=(404,),
    summary="List messages, newest first",
)
def list_messages(query: MessageListQuery) -> MessageList:
    items, cursor = service.list_messages(
        session=db_session(),
        workspace_id=current_workspace_id(),
        page=query,
        status=query.status,
        external_id=query.profile,
    )
    return MessageList(items=[MessageSummary.model_validate(m) for m in items], next_cursor=cursor)
