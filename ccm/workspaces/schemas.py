"""A workspace's delivery policy: where numbers live, when people may be messaged, how often,
and what consent a topic needs. Stored as JSON on the workspace, validated here."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Literal

from pydantic import BaseModel, Field

from ccm.validation import INTEGRAL, Channel, ChannelRanking, Locale, LocalTime, Mailbox, RequestModel, TimeZone, Topic

Window = tuple[LocalTime, LocalTime]
TopicRule = Annotated[str, Field(pattern=r"^(\*|[a-z0-9][a-z0-9_.-]{0,99})$", description="a topic, or * for all")]


def _daytime_sms() -> dict[Channel, Window | None]:
    return {"sms": (dt.time(8), dt.time(21))}


def _email_first() -> list[Channel]:
    return ["email", "sms", "chat"]


class QuietHours(RequestModel):
    """The hours messages may be sent, in the recipient's local time, per channel and category.
    ``None`` means any time. Windows may wrap midnight (``["22:00", "06:00"]``)."""

    marketing: dict[Literal["email", "sms", "chat"], Window | None] = Field(default_factory=_daytime_sms)
    transactional: dict[Literal["email", "sms", "chat"], Window | None] = Field(default_factory=dict)
    transactional_bypass: bool = True
    """Transactional messages ignore quiet hours (a password reset at 3 am is wanted)."""


class FrequencyCap(RequestModel):
    channel: Literal["email", "sms", "chat", "*"] = "*"
    topic: TopicRule = "*"
    max: Annotated[int, Field(ge=0, le=10000), INTEGRAL]
    days: float = Field(gt=0, le=366)


class TopicPolicy(RequestModel):
    mode: Literal["opt_in", "opt_out"]
    description: str = Field("", max_length=500)


class TrackingPolicy(RequestModel):
    opens: bool = True
    clicks: bool = True


class WorkspacePolicy(RequestModel):
    """Every setting that decides whether, where and when a message may go. Every field has a
    default, so a PATCH may name any subset."""

    default_region: str = Field("US", pattern=r"^[A-Z]{2}$", description="for phone numbers without a country code")
    timezone: TimeZone = Field("UTC", description="the workspace's own time zone")
    audience_timezones: list[TimeZone] = Field(
        default_factory=list,
        max_length=50,
        description="where recipients live; a profile without a time zone may only be messaged when the "
        "quiet-hours window is open in all of them (default: the workspace's time zone)",
    )
    channel_order: ChannelRanking = Field(default_factory=_email_first)
    quiet_hours: QuietHours = Field(default_factory=QuietHours)
    frequency_caps: list[FrequencyCap] = Field(default_factory=list, max_length=50)
    topics: dict[Topic, TopicPolicy] = Field(default_factory=dict)
    consent_default: Literal["opt_in", "opt_out"] = Field(
        "opt_out", description="for marketing topics the workspace did not declare"
    )
    sms_segment_cap: Annotated[int, Field(ge=1, le=20), INTEGRAL] = Field(
        6, description="longer SMS bodies fail with sms_too_long"
    )
    tracking: TrackingPolicy = Field(default_factory=TrackingPolicy, description="open pixel and click links in email")
    webhooks_allow_private: bool = Field(
        False, description="let webhooks reach loopback and private addresses (refused by default: SSRF)"
    )
    help_text: str = Field("Reply STOP to opt out.", max_length=300, description="the answer to HELP by SMS or chat")
    postal_address: str | None = Field(
        None,
        min_length=10,
        max_length=300,
        description="the sender's physical postal address, printed in every marketing email (CAN-SPAM); "
        "marketing email is refused until it is set",
    )
    sms_opt_out_footer: str | None = Field(
        "Reply STOP to opt out", max_length=160, description="appended to marketing SMS; null to send none"
    )


class WorkspaceOut(BaseModel):
    id: str
    name: str
    mail_from: str | None
    default_locale: str
    policy: WorkspacePolicy


class WorkspacePatch(RequestModel):
    mail_from: Mailbox | None = None
    default_locale: Locale | None = None
    policy: WorkspacePolicy | None = Field(
        None, description="the fields given replace the current ones (top level); the rest stay"
    )
