from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

from flask import Blueprint, current_app
from pydantic import BaseModel, ConfigDict, Field, model_validator

from ccm.access import Permission
from ccm.auth.api import current_workspace_id, require_api_key
from ccm.conversations.follow_up import send_in_conversation
from ccm.conversations.inbox import get_conversation as get_conversation_in
from ccm.conversations.inbox import list_conversations as list_conversations_in
from ccm.conversations.inbox import thread
from ccm.conversations.models import Conversation
from ccm.conversations.service import receive_email
from ccm.errors import ValidationFailed
from ccm.http import db_session, endpoint, permissions, read_body
from ccm.idempotency.http import HEADER as IDEMPOTENCY_HEADER
from ccm.idempotency.http import respond_idempotently
from ccm.message_templates.schemas import TemplateKey
from ccm.pagination import PageQuery
from ccm.profiles.service import get_profile
from ccm.validation import ExternalId, RequestModel, free_form, id_field

ConversationId = Annotated[str, id_field("cnv")]

bp = Blueprint("conversations", __name__, url_prefix="/v1")
bp.before_request(require_api_key)
permissions(bp, writes=Permission.CONVERSATIONS)


class ConversationOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    profile_id: str | None
    channel: str
    subject: str | None
    status: str
    assignee_id: str | None = Field(description="the web app user (usr_…) who answers it; null if unassigned")
    created_at: dt.datetime
    last_message_at: dt.datetime


class ConversationList(BaseModel):
    items: list[ConversationOut]
    next_cursor: str | None


UNASSIGNED = "none"
Assignee = Annotated[
    str,
    Field(
        pattern=rf"^({UNASSIGNED}|usr_[0-9A-Z]{{26}})$",
        description=f"a user id (usr_…): the conversations assigned to that user; {UNASSIGNED}: those assigned "
        "to no one",
    ),
]


class ConversationQuery(PageQuery):
    profile: ExternalId | None = Field(None, description="external id")
    assignee: Assignee | None = None


class ThreadEntry(BaseModel):
    direction: str = Field(description="out (a message we sent) or in (their reply)")
    id: str
    at: dt.datetime
    channel: str | None
    body: str | None = None
    subject: str | None = None
    status: str | None = None
    automatic: bool = False
    keyword: str | None = None


class Thread(ConversationOut):
    entries: list[ThreadEntry]


class FollowUpIn(RequestModel):
    """Either ``text`` or ``template`` (with its ``data``)."""

    model_config = ConfigDict(json_schema_extra={"oneOf": [{"required": ["text"]}, {"required": ["template"]}]})

    # Not Optional: an explicit null is refused, and the schema offers none. The None default
    # only makes each one optional; _one requires exactly one of them.
    text: str = Field(None, min_length=1, max_length=10000, description="plain text, or")  # type: ignore[assignment]
    template: TemplateKey = Field(None, description="a published template key, with data")  # type: ignore[assignment]
    data: dict[str, Any] = free_form("the template's variables")

    @model_validator(mode="after")
    def _one(self) -> FollowUpIn:
        if (self.text is None) == (self.template is None):
            raise ValueError("give either text or template")
        return self


class FollowUpOut(BaseModel):
    id: str
    status: str = "queued"


class InboundOut(BaseModel):
    taken_as: str = Field(description="reply, bounce or unmatched")


@endpoint(
    bp,
    "/inbound/email",
    method="POST",
    responses={202: InboundOut},
    raw_body="message/rfc822",
    summary="Hand CCM an email someone sent you (raw RFC 5322 bytes): a reply is threaded, a bounce applied",
)
def inbound_email() -> tuple[InboundOut, int]:
    raw = read_body(current_app.config["MAX_CONTENT_LENGTH"], what="an email")
    if not raw:
        raise ValidationFailed("body: the raw email is missing", field="body")
    taken = receive_email(current_app.extensions["ccm"], db_session(), raw, workspace_id=current_workspace_id())
    if taken == "malformed":
        raise ValidationFailed("body: not an RFC 5322 email (no header fields, or NUL bytes)", field="body")
    return InboundOut(taken_as=taken), 202


@endpoint(
    bp,
    "/conversations",
    method="GET",
    query=ConversationQuery,
    responses={200: ConversationList},
    errors=(404,),
    summary="Conversations, newest first; only one person's (profile) or one assignee's (assignee) when asked",
)
def list_conversations(query: ConversationQuery) -> ConversationList:
    session, workspace_id = db_session(), current_workspace_id()
    profile = (
        get_profile(session=session, workspace_id=workspace_id, external_id=query.profile) if query.profile else None
    )
    items, cursor = list_conversations_in(
        session=session,
        workspace_id=workspace_id,
        page=query,
        profile_id=profile.id if profile else None,
        assignee_id=None if query.assignee in (None, UNASSIGNED) else query.assignee,
        unassigned=query.assignee == UNASSIGNED,
    )
    return ConversationList(items=[ConversationOut.model_validate(c) for c in items], next_cursor=cursor)


@endpoint(
    bp,
    "/conversations/<conversation_id>",
    method="GET",
    responses={200: Thread},
    summary="A conversation with everything sent and received in it, oldest first",
)
def get_conversation(conversation_id: ConversationId) -> Thread:
    conversation = _conversation(conversation_id)
    entries = thread(session=db_session(), conversation=conversation)
    items = [ThreadEntry.model_validate(entry, from_attributes=True) for entry in entries]
    return Thread(**ConversationOut.model_validate(conversation).model_dump(), entries=items)


@endpoint(
    bp,
    "/conversations/<conversation_id>/messages",
    method="POST",
    body=FollowUpIn,
    responses={202: FollowUpOut},
    headers=IDEMPOTENCY_HEADER,
    errors=(409,),
    summary="Reply in a conversation (a support agent's follow-up)",
)
def follow_up(conversation_id: ConversationId, body: FollowUpIn) -> tuple[FollowUpOut, int, dict[str, str]]:
    session, runtime = db_session(), current_app.extensions["ccm"]
    conversation = _conversation(conversation_id)

    def work() -> tuple[FollowUpOut, int]:
        message_id = send_in_conversation(
            session=session,
            runtime=runtime,
            conversation=conversation,
            template=body.template,
            data=body.data,
            text=body.text,
        )
        return FollowUpOut(id=message_id), 202

    return respond_idempotently(work, FollowUpOut)


def _conversation(conversation_id: str) -> Conversation:
    return get_conversation_in(
        session=db_session(), workspace_id=current_workspace_id(), conversation_id=conversation_id
    )
