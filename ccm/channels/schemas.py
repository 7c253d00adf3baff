from __future__ import annotations

import datetime as dt

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
