"""The shapes of a campaign's results, its engagement over time, and the winner override."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Literal

from pydantic import BaseModel, Field

from ccm.validation import QueryModel, RequestModel, id_field

CampaignId = Annotated[str, id_field("cmp")]
Metric = Literal["opened", "clicked", "replied", "converted"]
VariantKey = Annotated[str, Field(min_length=1, max_length=20, pattern=r"^[A-Za-z0-9_-]+$")]


class Counts(BaseModel):
    targeted: int
    pending: int = Field(description="queued, retrying or being sent")
    sent: int = Field(description="handed to a provider")
    delivered: int = Field(description="sent and not failed since (sent minus bounces)")
    delivery_confirmed: int = Field(description="reported delivered by the provider")
    failed: int
    skipped: int
    opened: int = Field(description="opened (or clicked) by a person; machine opens are apart")
    machine_opened: int = Field(description="opened by a machine (mail privacy proxies such as Apple's)")
    clicked: int = Field(description="clicked by a person")
    machine_clicked: int = Field(description="clicked by a machine (link scanners)")
    replied: int
    unsubscribed: int
    bounced: int
    complaints: int
    conversions: int = Field(description="recipients who did the goal event within its window, each once")


class Rates(BaseModel):
    delivery: float | None = Field(description="delivered / sent")
    open: float | None = Field(description="opened / delivered")
    click: float | None = Field(description="clicked / delivered")
    reply: float | None = Field(description="replied / delivered")
    bounce: float | None = Field(description="bounced / sent")
    unsubscribe: float | None = Field(description="unsubscribed / delivered")
    complaint: float | None = Field(description="complaints / delivered")
    conversion: float | None = Field(description="conversions / targeted")


class ComparisonOut(BaseModel):
    """One group's rate against another's, by a two-proportion z-test (two-sided)."""

    against: str
    metric: Metric
    rate: float | None
    other_rate: float | None
    lift: float | None = Field(description="rate / other_rate - 1 (0.12: 12 % better)")
    z: float
    p_value: float
    confidence: float = Field(description="1 - p_value")
    significant: bool = Field(description="p_value below 0.05 (divided among the comparisons for > 2 variants)")


class GroupOut(BaseModel):
    key: str
    counts: Counts
    skipped_by_reason: dict[str, int]
    rates: Rates


class VariantOut(GroupOut):
    template: str | None
    weight: float | None
    comparison: ComparisonOut | None = Field(description="against the best other variant, on the metric")
    vs_holdout: ComparisonOut | None = Field(description="conversions against the holdout group")


class Goal(BaseModel):
    event: str
    within_hours: float


class AbTestOut(BaseModel):
    metric: Metric
    sample_percent: float | None
    wait_hours: float | None
    winner: str | None
    decided_at: str | None
    decided_by: Literal["auto", "manual"] | None
    significant: bool | None = Field(description="whether the winner beat every other variant at 95 %")
    confidence: float | None
    leader: str | None = Field(description="the best variant on the metric now")
    leader_significant: bool
    leader_confidence: float
    test: str


class ResultsOut(BaseModel):
    campaign_id: str
    status: str
    launched_at: dt.datetime | None
    metric: Metric = Field(description="what the variants are compared on")
    goal: Goal | None
    ab_test: AbTestOut | None
    total: GroupOut
    variants: list[VariantOut]
    holdout: GroupOut | None
    computed_at: dt.datetime


class ResultsQuery(QueryModel):
    metric: Metric | None = Field(None, description="compare the variants on this (default: the A/B test's, or opened)")


class TimelineQuery(QueryModel):
    hours: int = Field(72, ge=1, le=2160, description="hours since the launch to cover (at most 90 days)")


class TimelinePoint(BaseModel):
    hour: int = Field(description="whole hours since the launch")
    starts_at: dt.datetime
    variant: str
    opened: int = Field(description="messages opened by a person in that hour")
    clicked: int
    machine_opened: int


class TimelineOut(BaseModel):
    campaign_id: str
    launched_at: dt.datetime | None
    items: list[TimelinePoint] = Field(description="every hour × variant from the launch, zeros included")


class WinnerIn(RequestModel):
    variant: VariantKey
