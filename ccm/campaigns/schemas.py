"""Request and response shapes of ``/v1/campaigns``."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field

from ccm.campaigns.models import CampaignStatus
from ccm.message_templates.schemas import TemplateKey
from ccm.pagination import PageQuery
from ccm.validation import INTEGRAL, SEMANTIC_HINT, Channel, ChannelRanking, RequestModel, Topic, free_form

SegmentId = Annotated[
    str, Field(min_length=1, max_length=200, pattern=r"^[^\x00-\x1f\x7f]+$", description="a segment's id or name")
]
HourMinute = Annotated[str, Field(pattern=r"^([01][0-9]|2[0-3]):[0-5][0-9]$", description="HH:MM")]
Percent = Annotated[float, Field(ge=0, le=100)]
Day = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
Metric = Literal["opened", "clicked", "replied", "converted"]
MAX_DEADLINE = 30 * 24 * 3600


class VariantIn(RequestModel):
    template: TemplateKey
    weight: float = Field(1.0, gt=0, le=1_000_000, description="its share of the audience, relative to the others")


class ScheduleIn(RequestModel):
    at: dt.datetime | None = Field(
        None,
        description=SEMANTIC_HINT + "when to start, between 2000 and 2200, not past by more than the deadline; "
        "with an offset (UTC if none); default: at launch",
    )
    local_time: HourMinute | None = Field(None, description="send at this time of day in each recipient's time zone")


class CalendarIn(RequestModel):
    days: list[Day] | None = Field(
        None, min_length=1, max_length=7, description=SEMANTIC_HINT + "weekdays allowed, each once (default: all)"
    )
    hours: list[HourMinute] | None = Field(
        None,
        min_length=2,
        max_length=2,
        description=SEMANTIC_HINT + "[from, to) in the recipient's zone, from before to",
    )


class ThrottleIn(RequestModel):
    per_second: float = Field(gt=0, le=100_000, description="messages released to delivery per second, at most")


class AbTestIn(RequestModel):
    sample_percent: float = Field(gt=0, le=100, description="share of the audience the variants are tested on")
    wait_hours: float = Field(ge=0, le=24 * 30, description="how long the sample runs before the winner is chosen")
    metric: Metric = "opened"


class GoalIn(RequestModel):
    event: str = Field(min_length=1, max_length=200, pattern=r"^[^\x00-\x1f\x7f]+$")
    within_hours: float = Field(72, gt=0, le=24 * 365)


class CampaignFields(RequestModel):
    """What a campaign is made of; every field may be changed while it is a draft or scheduled."""

    name: str | None = Field(None, min_length=1, max_length=200, pattern=r"^[^\x00-\x1f\x7f]+$")
    template: TemplateKey | None = Field(
        None, description=SEMANTIC_HINT + "one published template (or give variants, not both)"
    )
    variants: list[VariantIn] | None = Field(
        None, min_length=1, max_length=26, description=SEMANTIC_HINT + "A/B variants, A first; two or more with ab_test"
    )
    segment: SegmentId | None = None
    channels: ChannelRanking | None = Field(None, min_length=1, description="allowed channels (default: any)")
    topic: Topic | None = None
    category: Literal["marketing", "transactional"] | None = Field(
        None, description=SEMANTIC_HINT + "a marketing template cannot be sent as transactional"
    )
    schedule: ScheduleIn | None = None
    calendar: CalendarIn | None = None
    throttle: ThrottleIn | None = None
    deadline: Annotated[int, Field(ge=60, le=MAX_DEADLINE), INTEGRAL] | None = Field(
        None, description="seconds: a schedule missed by more never starts; each message's too"
    )
    holdout_percent: Percent | None = Field(None, le=50, description="share of the audience kept out (control group)")
    ab_test: AbTestIn | None = Field(None, description=SEMANTIC_HINT + "needs two variants or more")
    goal: GoalIn | None = None
    data: dict[str, Any] = free_form("template variables every message of the campaign carries (a headline, an offer)")


class CampaignIn(CampaignFields):
    name: str = Field(min_length=1, max_length=200, pattern=r"^[^\x00-\x1f\x7f]+$")
    segment: SegmentId
    category: Literal["marketing", "transactional"] = Field(
        "marketing", description=SEMANTIC_HINT + "a marketing template cannot be sent as transactional"
    )


class CampaignPatch(CampaignFields):
    """Fields to change; the others stay."""


class VariantOut(BaseModel):
    key: str
    template: str
    weight: float
    template_version: int | None = Field(description="pinned at launch")


class Counts(BaseModel):
    targeted: int = Field(description="messages made (the audience less the holdout)")
    queued: int
    sending: int
    retrying: int
    sent: int
    delivered: int
    failed: int
    skipped: int
    released: int = Field(description="handed to delivery so far")
    holdout: int


class CampaignSummary(BaseModel):
    id: str
    name: str
    status: CampaignStatus
    category: str
    topic: str | None
    channels: list[Channel] | None
    segment: str
    schedule: dict[str, Any]
    calendar: dict[str, Any] | None
    throttle: dict[str, float] | None
    deadline: int | None
    holdout_percent: float
    ab_test: dict[str, Any] | None
    goal: dict[str, Any] | None
    data: dict[str, Any]
    variants: list[VariantOut]
    paused_reason: str | None
    ended_reason: str | None
    created_at: dt.datetime
    launched_at: dt.datetime | None
    started_at: dt.datetime | None
    completed_at: dt.datetime | None
    cancelled_at: dt.datetime | None
    updated_at: dt.datetime


class CampaignOut(CampaignSummary):
    counts: Counts
    skipped_by_reason: dict[str, int]
    failed_by_reason: dict[str, int]
    rate: float = Field(description="messages ended per second over the last 10 seconds")
    eta_seconds: float | None = Field(description="time left at the current rate (None: unknown or done)")
    progress: float = Field(description="percent of the targeted messages ended")
    release_rate: float | None = Field(description="messages/s the pump releases now (lower under back-pressure)")
    throttled_by_provider: int = Field(description="ticks whose messages met provider back-pressure")
    fallback_timezone_count: int = Field(description="recipients without a valid time zone, given the workspace's")
    fanout_phase: str


class CampaignList(BaseModel):
    items: list[CampaignSummary]
    next_cursor: str | None


class CampaignListQuery(PageQuery):
    status: CampaignStatus | None = None
