from __future__ import annotations

import datetime as dt
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from ccm.pagination import PageQuery


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
    model_config = ConfigDict(extra="forbid")

    message_id: str | None = None
    to: str | None = None


class ProviderIn(BaseModel):
    """A provider account. ``config`` is checked against the kind's settings model; its secret
    fields are encrypted at rest and never returned."""

    model_config = ConfigDict(extra="forbid")

    kind: str = Field(description="smtp, mailgun, twilio, webhook, slack, telegram or local_outbox")
    channel: Literal["email", "sms", "chat"] | None = Field(None, description="default: the kind's")
    label: str = Field(min_length=1, max_length=100)
    priority: int = Field(100, ge=0, le=10000, description="lower goes first in failover order")
    enabled: bool = True
    config: dict[str, Any] = Field(default_factory=dict)


class ProviderPatch(BaseModel):
    model_config = ConfigDict(extra="forbid")

    label: str | None = Field(None, min_length=1, max_length=100)
    priority: int | None = Field(None, ge=0, le=10000)
    enabled: bool | None = None
    config: dict[str, Any] | None = Field(None, description="merged; secrets left out keep their value")


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
