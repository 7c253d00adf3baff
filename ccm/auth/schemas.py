from __future__ import annotations

import datetime as dt
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

from ccm.auth.models import ApiKeyRole
from ccm.validation import RequestModel, id_field

ApiKeyId = Annotated[str, id_field("key")]


class ApiKeyIn(RequestModel):
    name: str = Field("", max_length=200, pattern=r"^[^\x00-\x1f\x7f]*$", description="a label for the key")
    role: ApiKeyRole = Field(
        ApiKeyRole.STANDARD,
        description="admin: everything; standard: everything but admin things (keys, users, providers, "
        "webhooks, workspace settings, audit); marketer: templates, segments, imports, campaigns; agent: profiles, "
        "consent, follow-up sends, conversations; viewer: reads only; "
        "write: only the ingestion endpoints (/v1/track, /v1/identify, /v1/batch …)",
    )


class ApiKeyOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    prefix: str = Field(description="the key's first characters, to recognise it")
    name: str
    role: ApiKeyRole
    created_at: dt.datetime
    last_used_at: dt.datetime | None = Field(
        description="when the key last authenticated a request, to the minute; null if never"
    )


class ApiKeyCreated(ApiKeyOut):
    token: str = Field(description="the key itself: shown this once, never stored")


class ApiKeyList(BaseModel):
    items: list[ApiKeyOut]
