from __future__ import annotations

import datetime as dt
import datetime as dt_time
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from ccm.pagination import PageQuery
from ccm.validation import ChannelRanking, Email, Locale, Phone, TimeZone


class Preferences(BaseModel):
    """A person's own delivery preferences."""

    model_config = ConfigDict(extra="forbid")

    quiet_hours: tuple[dt_time.time, dt_time.time] | None = Field(
        None, description='the hours they may be messaged, local time, e.g. ["09:00", "20:00"]')


class ProfileIn(BaseModel):
    """The whole profile, as written by ``PUT``: absent fields are cleared."""

    model_config = ConfigDict(extra="forbid")

    email: Email | None = None
    phone: Phone | None = None
    chat: dict[str, str] = Field(default_factory=dict, description="chat handles per provider")
    attributes: dict[str, Any] = Field(default_factory=dict)
    timezone: TimeZone | None = Field(None, description="IANA time zone, e.g. Europe/Paris")
    locale: Locale | None = Field(None, description="e.g. en, es-MX")
    channels: ChannelRanking = Field(default_factory=list, description="preferred channels, best first")
    preferences: Preferences = Field(default_factory=Preferences)


class ProfilePatch(BaseModel):
    """A partial update: only the fields given change; ``attributes`` are merged and a ``null``
    attribute value removes that attribute."""

    model_config = ConfigDict(extra="forbid")

    email: Email | None = None
    phone: Phone | None = None
    chat: dict[str, str | None] | None = None
    attributes: dict[str, Any] | None = None
    timezone: TimeZone | None = None
    locale: Locale | None = None
    channels: ChannelRanking | None = None
    preferences: Preferences | None = None


class InlineProfile(ProfileIn):
    """A recipient given inline in a send request: created or updated (by external id or email)."""

    external_id: str | None = Field(None, min_length=1, max_length=255)


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


class ProfileListQuery(PageQuery):
    """Filters: ``email``, ``phone``, and ``attributes.<name>=<value>`` where the value is read as
    JSON when it parses (``30``, ``true``, ``"30"``) and as a string otherwise."""

    model_config = ConfigDict(extra="allow")

    email: str | None = None
    phone: str | None = None
