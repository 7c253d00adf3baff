from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from ccm.pagination import Cursor
from ccm.validation import INTEGRAL, SEMANTIC_HINT, QueryModel

_TIME = SEMANTIC_HINT + "an ISO 8601 time between 2000 and 2200, with an offset (UTC if none)"


class AuditQuery(QueryModel):
    action: str | None = Field(None, pattern=r"^[a-z_]+\.[a-z_.]+$", max_length=64, description="template.publish")
    actor: str | None = Field(
        None,
        pattern=r"^((api_key|user|cli):.+|system|provider)$",
        max_length=320,
        description="api_key:ccm_xxx, user:<email>, cli:<login name>, system or provider",
    )
    target_type: str | None = Field(None, pattern=r"^[a-z_]+$", max_length=64)
    target_id: str | None = Field(None, min_length=1, max_length=300)
    since: dt.datetime | None = Field(None, description=_TIME + "; entries at or after it")
    until: dt.datetime | None = Field(None, description=_TIME + "; entries before it")
    limit: Annotated[int, Field(ge=1, le=500), INTEGRAL] = 50
    cursor: Cursor | None = None

    @field_validator("since", "until")
    @classmethod
    def _in_range(cls, value: dt.datetime | None) -> dt.datetime | None:
        if value is None:
            return None
        value = value if value.tzinfo else value.replace(tzinfo=dt.UTC)
        if not 2000 <= value.astimezone(dt.UTC).year < 2200:
            raise ValueError("a time between 2000 and 2200")
        return value.astimezone(dt.UTC)


class AuditEntryOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    at: dt.datetime
    actor: str = Field(description="api_key:<prefix>, user:<email>, cli:<login name>, system or provider")
    action: str
    target_type: str
    target_id: str
    before: dict[str, Any] | None = Field(description="the target before the change (secrets masked)")
    after: dict[str, Any] | None = Field(description="the target after the change (secrets masked)")
    ip: str | None


class AuditPage(BaseModel):
    items: list[AuditEntryOut]
    next_cursor: str | None
