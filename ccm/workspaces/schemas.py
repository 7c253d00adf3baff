"""A workspace's delivery policy: where numbers live, when people may be messaged, how often,
and what consent a topic needs. Stored as JSON on the workspace, validated here."""

from __future__ import annotations

import datetime as dt
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from ccm.validation import ChannelRanking, Locale, Mailbox, TimeZone

Window = tuple[dt.time, dt.time]


class QuietHours(BaseModel):
    """The hours messages may be sent, in the recipient's local time, per channel and category.
    ``None`` means any time. Windows may wrap midnight (``["22:00", "06:00"]``)."""

    model_config = ConfigDict(extra="forbid")

    marketing: dict[Literal["email", "sms", "chat"], Window | None] = Field(
        default_factory=lambda: {"sms": (dt.time(8), dt.time(21))})
    transactional: dict[Literal["email", "sms", "chat"], Window | None] = Field(default_factory=dict)
    transactional_bypass: bool = True
    """Transactional messages ignore quiet hours (a password reset at 3 am is wanted)."""


class FrequencyCap(BaseModel):
    model_config = ConfigDict(extra="forbid")

    channel: Literal["email", "sms", "chat", "*"] = "*"
    topic: str = "*"
    max: int = Field(ge=0, le=10000)
    days: float = Field(gt=0, le=366)


class TopicPolicy(BaseModel):
    model_config = ConfigDict(extra="forbid")

    mode: Literal["opt_in", "opt_out"]
    description: str = ""


class TrackingPolicy(BaseModel):
    model_config = ConfigDict(extra="forbid")

    opens: bool = True
    clicks: bool = True


class WorkspacePolicy(BaseModel):
    """Every setting that decides whether, where and when a message may go."""

    model_config = ConfigDict(extra="forbid")

    default_region: str = Field("US", pattern=r"^[A-Z]{2}$", description="for phone numbers without a country code")
    timezone: TimeZone = Field("UTC", description="the workspace's own time zone")
    audience_timezones: list[TimeZone] = Field(
        default_factory=list, description="where recipients live; a profile without a time zone may only be "
        "messaged when the quiet-hours window is open in all of them (default: the workspace's time zone)")
    channel_order: ChannelRanking = Field(default_factory=lambda: ["email", "sms", "chat"])
    quiet_hours: QuietHours = Field(default_factory=QuietHours)
    frequency_caps: list[FrequencyCap] = Field(default_factory=list)
    topics: dict[str, TopicPolicy] = Field(default_factory=dict)
    consent_default: Literal["opt_in", "opt_out"] = Field(
        "opt_out", description="for marketing topics the workspace did not declare")
    sms_segment_cap: int = Field(6, ge=1, le=20, description="longer SMS bodies fail with sms_too_long")
    tracking: TrackingPolicy = Field(default_factory=TrackingPolicy, description="open pixel and click links in email")
    webhooks_allow_private: bool = Field(
        False, description="let webhooks reach loopback and private addresses (refused by default: SSRF)")
    help_text: str = Field("Reply STOP to opt out.", max_length=300, description="the answer to HELP by SMS or chat")
    sms_opt_out_footer: str | None = Field(
        "Reply STOP to opt out", description="appended to marketing SMS; null to send none")

    @field_validator("topics")
    @classmethod
    def _topic_keys(cls, value: dict[str, TopicPolicy]) -> dict[str, TopicPolicy]:
        for key in value:
            if not key or len(key) > 100 or not key.replace("_", "").replace("-", "").replace(".", "").isalnum():
                raise ValueError(f"topic key {key!r}: letters, digits, '_', '-', '.'")
        return value


class WorkspaceOut(BaseModel):
    id: str
    name: str
    mail_from: str | None
    default_locale: str
    policy: WorkspacePolicy


class WorkspacePatch(BaseModel):
    model_config = ConfigDict(extra="forbid")

    mail_from: Mailbox | None = None
    default_locale: Locale | None = None
    policy: dict | None = Field(None, description="merged into the current policy, then validated whole")
