from __future__ import annotations

import datetime as dt
from typing import Any, Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field, field_validator

from ccm.idempotency.service import MAX_KEY_LENGTH
from ccm.message_templates.schemas import TemplateKey
from ccm.messages.models import MessageStatus
from ccm.pagination import PageQuery
from ccm.profiles.schemas import InlineProfile
from ccm.validation import SEMANTIC_HINT, Channel, ChannelRanking, Email, ExternalId, RequestModel, free_form


class SendIn(RequestModel):
    """A request to send one templated message to one profile."""

    to: InlineProfile = Field(description='{"external_id": ...} for a stored profile, or an inline profile')
    template: TemplateKey
    data: dict[str, Any] = free_form("the template's variables")
    channel: Channel | None = Field(
        None, description=SEMANTIC_HINT + "send on this channel only (no fallback); the template needs a variant for it"
    )
    channels: ChannelRanking | None = Field(
        None, description="the channels it may use, falling back among them on a permanent failure (default: any)"
    )
    category: Literal["transactional", "marketing"] | None = Field(
        None,
        description=SEMANTIC_HINT + "default: the template's; a marketing template cannot be sent as transactional",
    )
    topic: str | None = Field(None, pattern=r"^[a-z0-9][a-z0-9_.-]{0,99}$")
    reply_to: Email | None = None
    deadline: dt.datetime | None = Field(None, description="give up (failed: deadline_exceeded) after this time")
    track: bool = Field(True, description="false: no open pixel or tracked links in this message")

    @field_validator("deadline")
    @classmethod
    def _aware(cls, value: dt.datetime | None) -> dt.datetime | None:
        if value is not None and value.tzinfo is None:
            raise ValueError("give a time zone offset, e.g. 2026-01-01T12:00:00Z")
        return value


class SendFields(Protocol):
    """What a message row takes from the send that asks for it: a :class:`SendIn` from the API,
    or a send CCM makes itself (:class:`ccm.messages.queued.ProfileSend`)."""

    @property
    def template(self) -> str: ...
    @property
    def data(self) -> dict[str, Any]: ...
    @property
    def channel(self) -> Channel | None: ...
    @property
    def channels(self) -> list[Channel] | None: ...
    @property
    def category(self) -> Literal["transactional", "marketing"] | None: ...
    @property
    def topic(self) -> str | None: ...
    @property
    def reply_to(self) -> str | None: ...
    @property
    def deadline(self) -> dt.datetime | None: ...
    @property
    def track(self) -> bool: ...


class SendOut(BaseModel):
    id: str
    status: str


BATCH_LIMIT = 1000
"""The most messages one ``POST /v1/messages/batch`` takes."""


class BatchItemIn(SendIn):
    """One message of a batch: a send request with its own idempotency key."""

    idempotency_key: str | None = Field(
        None,
        min_length=1,
        max_length=MAX_KEY_LENGTH,
        pattern=r"^[\x20-\x7e]+$",
        description=SEMANTIC_HINT + "like the Idempotency-Key header of a single send: the same key and message "
        "replay the first answer, the same key with another message is a 422 for this item",
    )

    @field_validator("to")
    @classmethod
    def _addressable(cls, to: InlineProfile) -> InlineProfile:
        # The schema's rule for an inline recipient (see InlineProfile): a single send checks it
        # when it resolves the recipient; a batch refuses an item that breaks it before anything,
        # like every other rule of the schema.
        if to.external_id is None and to.email is None and to.phone is None and not to.chat:
            raise ValueError("an inline recipient needs an external_id, email, phone or chat handle")
        return to


class BatchIn(RequestModel):
    """Up to 1,000 messages, each validated by this schema; a batch with any item that breaks it
    is refused whole (422 naming ``messages.<index>.<field>``)."""

    messages: list[BatchItemIn] = Field(min_length=1, max_length=BATCH_LIMIT)


class BatchItemError(BaseModel):
    code: str
    message: str
    details: dict[str, Any]


class BatchAccepted(BaseModel):
    """An item accepted (``replayed``: its idempotency key's stored answer, nothing new made)."""

    index: int
    status: Literal[202]
    id: str
    replayed: bool


class BatchRefused(BaseModel):
    """An item refused with the error a single send of it would get; nothing of it was written."""

    index: int
    status: Literal[404, 409, 422]
    error: BatchItemError


class BatchOut(BaseModel):
    """One answer per item, in the order of the request."""

    items: list[BatchAccepted | BatchRefused]


class AttemptOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    number: int
    channel: str
    provider: str
    to_address: str | None
    outcome: str
    error: str | None
    provider_message_id: str | None
    hops: list[dict[str, Any]]
    started_at: dt.datetime
    finished_at: dt.datetime | None
    retry_at: dt.datetime | None


class MessageBase(BaseModel):
    """The fields every view of a message starts with; the list and the detail view add their own."""

    model_config = ConfigDict(from_attributes=True)

    id: str
    status: str
    reason: str | None
    channel: str | None
    template: str = Field(validation_alias="template_key")
    template_version: int
    campaign_id: str | None = Field(None, description="the campaign that sent it, if any")
    variant: str | None = Field(None, description="its campaign variant (A, B …)")


class TriggeredBy(BaseModel):
    """The trigger version and the ingested event that made a message."""

    trigger: str = Field(description="the trigger's key")
    version: int = Field(description="the trigger's version that fired")
    event: str = Field(description="the event's name")
    event_id: str = Field(description="the stored event (see the profile's timeline)")
    event_message_id: str = Field(description="the event's messageId, as its sender gave it")


class MessageOut(MessageBase):
    source: str = Field(description="what made it: api, trigger, keyword, agent …")
    locale: str | None
    category: str
    topic: str | None
    to_address: str | None
    segments: int | None
    profile_id: str | None
    route: list[dict[str, Any]]
    triggered_by: TriggeredBy | None = Field(description="set when a trigger sent this message")
    attempts: list[AttemptOut]
    deadline_at: dt.datetime
    next_attempt_at: dt.datetime | None
    created_at: dt.datetime
    updated_at: dt.datetime
    finished_at: dt.datetime | None


class MessageSummary(MessageBase):
    to_address: str | None
    created_at: dt.datetime


class MessageList(BaseModel):
    items: list[MessageSummary]
    next_cursor: str | None


class MessageListQuery(PageQuery):
    status: MessageStatus | None = None
    profile: ExternalId | None = Field(None, description="external id")
    campaign: str | None = Field(None, pattern=r"^cmp_[0-9A-Z]{26}$", description="a campaign id: its messages")
