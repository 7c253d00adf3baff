from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from ccm.pagination import PageQuery
from ccm.validation import INTEGRAL, SEMANTIC_HINT, Name, RequestModel


class OutboxItemOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    message_id: str | None
    channel: str
    to: str = Field(validation_alias="to_address")
    raw: str = Field(description="the full RFC 5322 message for email, the body for other channels")
    created_at: dt.datetime


class OutboxList(BaseModel):
    items: list[OutboxItemOut]
    next_cursor: str | None


class OutboxQuery(PageQuery):
    message_id: str | None = Field(None, pattern=r"^msg_[0-9A-Z]{26}$")
    to: str | None = Field(None, max_length=320)


ProviderKind = Literal["smtp", "mailgun", "twilio", "webhook", "slack", "telegram", "local_outbox"]
"""Every kind in :data:`ccm.channels.registry.PROVIDERS` (a test keeps the two equal)."""


Priority = Annotated[int, Field(ge=0, le=10000, description="lower goes first in failover order"), INTEGRAL]


class ProviderIn(RequestModel):
    """A provider account. ``config`` is checked against the kind's settings model; its secret
    fields are encrypted at rest and never returned."""

    kind: ProviderKind
    channel: Literal["email", "sms", "chat"] | None = Field(
        None,
        description=SEMANTIC_HINT
        + ("the channel this kind serves with this config (twilio: sms, or chat with whatsapp); default: that one"),
    )
    label: Name
    priority: Priority = 100
    enabled: bool = True
    config: dict[str, Any] = Field(default_factory=dict, description=SEMANTIC_HINT + "the kind's settings (README)")


class ProviderPatch(RequestModel):
    label: Name | None = None
    priority: Priority | None = None
    enabled: bool | None = None
    config: dict[str, Any] | None = Field(
        None, description=SEMANTIC_HINT + "the kind's settings, merged; secrets left out keep their value"
    )


class ProviderOut(BaseModel):
    id: str
    kind: str
    channel: str
    label: str
    priority: int
    enabled: bool
    config: dict[str, Any] = Field(description="secrets appear as ********")
    created_at: dt.datetime
    updated_at: dt.datetime


class ProviderList(BaseModel):
    items: list[ProviderOut]


class ProviderCheckOut(BaseModel):
    ok: bool
    error: str | None = None
