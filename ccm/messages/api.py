"""The messages API: accept one message or a batch, read a message, list them."""

from __future__ import annotations

from typing import Annotated

from flask import Blueprint, current_app, request
from flask.blueprints import BlueprintSetupState
from werkzeug.routing import BaseConverter

from ccm.access import Permission
from ccm.auth.api import current_workspace_id, require_api_key
from ccm.http import db_session, endpoint, permissions
from ccm.idempotency.http import HEADER as IDEMPOTENCY_HEADER
from ccm.idempotency.service import check_key, fingerprint
from ccm.ids import new_id
from ccm.messages import accept, bulk, service
from ccm.messages.schemas import (
    BatchAccepted,
    BatchIn,
    BatchItemError,
    BatchOut,
    BatchRefused,
    MessageList,
    MessageListQuery,
    MessageOut,
    MessageSummary,
    SendIn,
    SendOut,
)
from ccm.validation import id_field

MessageId = Annotated[str, id_field("msg")]

bp = Blueprint("messages", __name__, url_prefix="/v1/messages")
bp.before_request(require_api_key)
permissions(bp, writes=Permission.SEND)


class _MessageIdConverter(BaseConverter):
    """A path segment other than ``batch``: ``/v1/messages/batch`` is the bulk endpoint (POST
    only), not a message id, so its ``Allow`` names POST alone. Any other segment reaches the
    view and its validation (a malformed id is a 422)."""

    regex = r"(?!batch(?:/|$))[^/]+"


def _register_converter(state: BlueprintSetupState) -> None:
    state.app.url_map.converters.setdefault("messageid", _MessageIdConverter)


bp.record_once(_register_converter)


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
    key = request.headers.get("Idempotency-Key")
    if key is not None:
        check_key(key)
    accepted = accept.accept_message(
        session=db_session(),
        runtime=current_app.extensions["ccm"],
        workspace_id=current_workspace_id(),
        request=body,
        keyed=accept.Keyed(key, fingerprint(request.method, request.path, request.get_data())) if key else None,
        message_id=new_id("msg"),
    )
    return (
        SendOut(id=accepted.id, status=accepted.status),
        202,
        {"Idempotent-Replayed": "true"} if accepted.replayed else {},
    )


@endpoint(
    bp,
    "/batch",
    method="POST",
    body=BatchIn,
    responses={200: BatchOut},
    summary="Send up to 1,000 templated messages in one request, each with its own idempotency key and answer",
)
def send_batch(body: BatchIn) -> BatchOut:
    items = [
        bulk.Item(
            item,
            accept.Keyed(item.idempotency_key, _item_hash(item), "idempotency_key") if item.idempotency_key else None,
        )
        for item in body.messages
    ]
    answers = bulk.accept_batch(
        session=db_session(), runtime=current_app.extensions["ccm"], workspace_id=current_workspace_id(), items=items
    )
    return BatchOut(items=[_item_answer(index, answer) for index, answer in enumerate(answers)])


def _item_hash(item: SendIn) -> str:
    """A batch item's fingerprint: its fields as given, whatever their order, without its key."""
    canonical = item.model_dump_json(exclude={"idempotency_key"}, exclude_unset=True)
    return fingerprint("POST", "/v1/messages/batch", canonical.encode())


def _item_answer(index: int, answer: bulk.Answer) -> BatchAccepted | BatchRefused:
    if isinstance(answer, accept.Accepted):
        return BatchAccepted(index=index, status=202, id=answer.id, replayed=answer.replayed)
    return BatchRefused(index=index, status=answer.status, error=BatchItemError(**answer.to_dict()["error"]))


@endpoint(
    bp,
    "/<messageid:message_id>",
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
        campaign_id=query.campaign,
    )
    return MessageList(items=[MessageSummary.model_validate(m) for m in items], next_cursor=cursor)
