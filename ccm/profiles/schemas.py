from __future__ import annotations

import datetime as dt
import json
import re
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field

from ccm.consent.schemas import ConsentRecordOut
from ccm.errors import ValidationFailed
from ccm.pagination import PageQuery
from ccm.validation import (
    SEMANTIC_HINT,
    ChannelRanking,
    Email,
    ExternalId,
    Locale,
    LocalTime,
    Phone,
    RequestModel,
    TimeZone,
    check_input,
    free_form,
)

ChatKey = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_-]{0,49}$")]
ChatHandle = Annotated[str, Field(min_length=1, max_length=500)]
ChatHandles = Annotated[
    dict[ChatKey, ChatHandle], Field(description="chat handles per provider: telegram, slack, whatsapp, webhook …")
]
ChatHandlesPatch = Annotated[
    dict[ChatKey, ChatHandle | None], Field(description="merged into the handles; null removes one")
]
_ATTRIBUTE_NAME = re.compile(r"^[A-Za-z0-9_-]{1,100}$")
Attributes = Annotated[dict[str, Any], free_form("free-form data about the person")]


class Preferences(RequestModel):
    """A person's own delivery preferences."""

    quiet_hours: tuple[LocalTime, LocalTime] | None = Field(
        None, description='the hours they may be messaged, local time, e.g. ["09:00", "20:00"]'
    )


class ProfileIn(RequestModel):
    """The whole profile, as written by ``PUT``: absent fields are cleared."""

    email: Email | None = None
    phone: Phone | None = None
    chat: ChatHandles = Field(default_factory=dict)
    attributes: Attributes
    timezone: TimeZone | None = Field(None, description="IANA time zone, e.g. Europe/Paris")
    locale: Locale | None = Field(None, description="e.g. en, es-MX")
    channels: ChannelRanking = Field(default_factory=list, description="preferred channels, best first")
    preferences: Preferences = Field(default_factory=Preferences)


class ProfilePatch(RequestModel):
    """A partial update: only the fields given change; ``attributes`` are merged and a ``null``
    attribute value removes that attribute."""

    email: Email | None = None
    phone: Phone | None = None
    chat: ChatHandlesPatch | None = None
    attributes: (
        Annotated[
            dict[str, Any],
            Field(
                description=SEMANTIC_HINT
                + ("merged into the attributes, null removes one; numbers finite, integers 64-bit")
            ),
        ]
        | None
    ) = None
    timezone: TimeZone | None = None
    locale: Locale | None = None
    channels: ChannelRanking | None = None
    preferences: Preferences | None = None


def _addressable(schema: dict[str, Any]) -> None:
    schema["anyOf"] = [
        {"required": ["external_id"], "properties": {"external_id": {"type": "string"}}},
        {"required": ["email"], "properties": {"email": {"type": "string"}}},
        {"required": ["phone"], "properties": {"phone": {"type": "string"}}},
        {"required": ["chat"], "properties": {"chat": {"type": "object", "minProperties": 1}}},
    ]


class InlineProfile(ProfileIn):
    """A recipient given inline in a send request: created or updated (by external id or email).
    It needs at least one of external_id, email, phone or a chat handle."""

    model_config = ConfigDict(json_schema_extra=_addressable)

    external_id: ExternalId | None = None


class ProfileOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    external_id: str | None
    email: str | None
    phone: str | None
    chat: dict[str, str]
    attributes: dict[str, Any]
    timezone: str | None
    locale: str | None
    channels: list[str]
    preferences: dict[str, Any]
    engagement: dict[str, Any] = Field(description="per channel: counters by event kind and last engagement")
    engagement_score: float
    best_channel: str | None
    created_at: dt.datetime
    updated_at: dt.datetime


class ProfileList(BaseModel):
    items: list[ProfileOut]
    next_cursor: str | None


class ProfileExport(BaseModel):
    """Everything held about one person (GDPR access)."""

    profile: ProfileOut
    consent: list[ConsentRecordOut] = Field(description="the consent ledger, oldest first")
    messages: list[dict[str, Any]] = Field(description="every message with its data and attempts")
    suppressions: list[dict[str, Any]]
    conversations: list[dict[str, Any]] = Field(description="threads with their inbound replies")
    events: list[dict[str, Any]] = Field(description="engagement events")


class ProfileListQuery(PageQuery):
    """Filters: ``email``, ``phone``, and ``attributes.<name>=<value>`` where the value is read as
    JSON when it parses (``30``, ``true``, ``"30"``) and as a string otherwise."""

    model_config = ConfigDict(extra="allow")

    email: str | None = Field(None, max_length=320)
    phone: str | None = Field(None, max_length=32)

    def filters(self) -> dict[str, Any]:
        """The filters asked for, attribute values parsed, as ``{"email": …, "attributes.plan": …}``.

        Raises:
          ValidationFailed: an unknown parameter, a bad attribute name, or a value that is not a
            string, number or boolean (naming ``query.<parameter>``).
        """
        found: dict[str, Any] = {name: getattr(self, name) for name in ("email", "phone") if getattr(self, name)}
        for name, raw in (self.model_extra or {}).items():
            field = f"query.{name}"
            attribute = name.removeprefix("attributes.")
            if attribute == name:
                raise ValidationFailed(f"{field}: unknown filter; use attributes.<name>", field=field)
            if not _ATTRIBUTE_NAME.match(attribute):
                raise ValidationFailed(f"{field}: attribute names are letters, digits, _ and -", field=field)
            found[name] = _filter_value(raw, field)
        return found


def _filter_value(raw: str, field: str) -> Any:
    try:
        value = json.loads(raw)
    except (ValueError, RecursionError):
        value = raw
    if not isinstance(value, str | int | float | bool):
        raise ValidationFailed(f"{field}: filter on a string, number or boolean", field=field)
    check_input(value, field)
    return value
