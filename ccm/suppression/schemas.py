from __future__ import annotations

import datetime as dt
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from ccm.pagination import PageQuery
from ccm.validation import SEMANTIC_HINT, RequestModel

Reason = Literal["hard_bounce", "complaint", "stop", "manual", "erased", "invalid_address"]


class SuppressionIn(RequestModel):
    channel: Literal["email", "sms", "chat"]
    address: str = Field(min_length=1, max_length=320, description=SEMANTIC_HINT + "an address valid on the channel")
    reason: Reason = "manual"
    detail: str | None = Field(None, max_length=500)


class SuppressionOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    channel: str
    address: str | None = Field(description="null once the person was erased: only the hash is kept")
    reason: str
    detail: str | None
    created_at: dt.datetime


class SuppressionList(BaseModel):
    items: list[SuppressionOut]
    next_cursor: str | None


class SuppressionQuery(PageQuery):
    channel: Literal["email", "sms", "chat"] | None = None
    address: str | None = Field(None, max_length=320)
