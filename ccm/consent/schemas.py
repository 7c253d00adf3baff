from __future__ import annotations

import datetime as dt
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from ccm.validation import RequestModel, free_form


class ConsentIn(RequestModel):
    channel: Literal["email", "sms", "chat"]
    topic: str = Field("*", pattern=r"^(\*|[a-z0-9][a-z0-9_.-]{0,99})$", description="* means every topic")
    status: Literal["granted", "revoked"]
    source: str = Field(
        "api",
        min_length=1,
        max_length=50,
        pattern=r"^[^\x00-\x1f\x7f]+$",
        description="api, form, double_opt_in, import …",
    )
    proof: dict[str, Any] = free_form("e.g. the double-opt-in confirmation")
    ip: str | None = Field(None, max_length=64, description="default: the caller's address")
    user_agent: str | None = Field(None, max_length=500, description="default: the caller's User-Agent")


class ConsentRecordOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    channel: str
    topic: str
    status: str
    source: str
    actor: str | None
    ip: str | None
    user_agent: str | None
    proof: dict[str, Any]
    recorded_at: dt.datetime


class ConsentState(BaseModel):
    channel: str
    topic: str
    status: Literal["granted", "revoked"]
    since: dt.datetime
    source: str


class ConsentOut(BaseModel):
    current: list[ConsentState] = Field(description="the latest decision per channel and topic")
    history: list[ConsentRecordOut] = Field(description="every record, newest first")
