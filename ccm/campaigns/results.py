"""A campaign's results per variant and for its holdout group, computed in the database with one
``GROUP BY`` per question (counts, skip reasons, conversions, the holdout), never row by row.

What each count means (docs/campaign-results.md has the full table):

- ``targeted``: the campaign's messages (one per recipient); ``pending`` + ``delivered`` +
  ``failed`` + ``skipped`` = ``targeted``.
- ``sent``: handed to a provider (an attempt that got through); ``delivered``: sent and not
  failed since (the ESPs' "sent minus bounces"); ``delivery_confirmed``: a provider said delivered.
- ``opened``, ``clicked``: by a person (a click counts as an open); machine opens and clicks
  (privacy proxies, link scanners) are ``machine_opened`` / ``machine_clicked``, apart.
- ``conversions``: recipients who did the goal event within its window after their message was
  sent (the holdout: after the launch), each counted once.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import ColumnElement, Select, case, func, select
from sqlalchemy.orm import Session

from ccm.campaigns import facts
from ccm.campaigns.facts import m
from ccm.campaigns.models import Campaign, CampaignHoldout, CampaignVariant
from ccm.campaigns.stats import Proportion
from ccm.messages.models import MessageStatus

COUNTS = (
    "targeted",
    "pending",
    "sent",
    "delivered",
    "delivery_confirmed",
    "failed",
    "skipped",
    "opened",
    "machine_opened",
    "clicked",
    "machine_clicked",
    "replied",
    "unsubscribed",
    "bounced",
    "complaints",
    "conversions",
)
RATES = {
    "delivery": ("delivered", "sent"),
    "open": ("opened", "delivered"),
    "click": ("clicked", "delivered"),
    "reply": ("replied", "delivered"),
    "bounce": ("bounced", "sent"),
    "unsubscribe": ("unsubscribed", "delivered"),
    "complaint": ("complaints", "delivered"),
    "conversion": ("conversions", "targeted"),
}
"""Each rate as (numerator, denominator) counts."""
METRICS = {"opened": "open", "clicked": "click", "replied": "reply", "converted": "conversion"}
"""An A/B test's ``metric`` and the rate it is judged on."""
HOLDOUT = "holdout"
_h, _v = CampaignHoldout.__table__, CampaignVariant.__table__


@dataclass
class Group:
    """The counts of one variant, of the holdout, or of the whole campaign."""

    key: str
    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(COUNTS, 0))
    skipped_by_reason: dict[str, int] = field(default_factory=dict)

    def rates(self) -> dict[str, float | None]:
        """Every rate of :data:`RATES` (None when its denominator is 0)."""
        return {name: _ratio(self.counts[top], self.counts[bottom]) for name, (top, bottom) in RATES.items()}

    def proportion(self, metric: str) -> Proportion:
        """The successes and trials behind an A/B ``metric`` (opened, clicked, replied, converted)."""
        top, bottom = RATES[METRICS[metric]]
        return Proportion(self.counts[top], self.counts[bottom])


@dataclass
class Results:
    """Per variant (in the campaign's variant order), the holdout (None without one), the total."""

    variants: dict[str, Group]
    holdout: Group | None
    total: Group


def campaign_results(session: Session, campaign: Campaign) -> Results:
    """Count everything about ``campaign``'s messages, per variant and for the holdout."""
    variants = {key: Group(key) for key in variant_keys(session, campaign.id)}
    for row in session.execute(_counts(campaign)).mappings():
        group = variants.setdefault(_key(row["variant"]), Group(_key(row["variant"])))
        group.counts.update({name: int(row[name] or 0) for name in COUNTS if name in row})
    for variant, reason, count in session.execute(_skip_reasons(session, campaign)):
        variants.setdefault(_key(variant), Group(_key(variant))).skipped_by_reason[reason] = count
    if campaign.goal:
        for variant, count in session.execute(_conversions(session, campaign)):
            variants.setdefault(_key(variant), Group(_key(variant))).counts["conversions"] = count
    holdout = _holdout(session, campaign)
    return Results(variants, holdout, _total(variants.values()))


def variant_keys(session: Session, campaign_id: str) -> list[str]:
    """The campaign's variant keys, in order."""
    return list(session.scalars(select(_v.c.key).where(_v.c.campaign_id == campaign_id).order_by(_v.c.key)))


def _key(variant: str | None) -> str:
    return variant or "A"  # a campaign of one template: its messages may carry no variant


def _counts(campaign: Campaign) -> Select[Any]:
    ws, cid = campaign.workspace_id, campaign.id
    engaged, times = facts.engagement(ws, cid), facts.send_times(ws, cid)
    status = m.c.status

    def share(condition: ColumnElement[bool]) -> ColumnElement[Any]:
        return func.sum(case((condition, 1), else_=0))

    def flagged(name: str) -> ColumnElement[Any]:
        return func.coalesce(func.sum(engaged.c[name]), 0)

    return (
        select(
            m.c.variant,
            func.count().label("targeted"),
            share(status.in_(facts.PENDING)).label("pending"),
            func.count(facts.sent_at(times)).label("sent"),
            share(status.in_(facts.ACCEPTED)).label("delivered"),
            share(status == MessageStatus.DELIVERED).label("delivery_confirmed"),
            share(status == MessageStatus.FAILED).label("failed"),
            share(status == MessageStatus.SKIPPED).label("skipped"),
            *(flagged(name).label(name) for name in ("opened", "machine_opened", "clicked", "machine_clicked")),
            *(flagged(name).label(name) for name in ("replied", "unsubscribed", "bounced")),
            flagged("complained").label("complaints"),
        )
        .select_from(
            m.outerjoin(engaged, engaged.c.message_id == m.c.id).outerjoin(times, times.c.message_id == m.c.id)
        )
        .where(facts.of_campaign(ws, cid))
        .group_by(m.c.variant)
    )


def _skip_reasons(session: Session, campaign: Campaign) -> Select[Any]:
    code = facts.reason_code(session).label("code")
    return (
        select(m.c.variant, code, func.count())
        .where(facts.of_campaign(campaign.workspace_id, campaign.id), m.c.status == MessageStatus.SKIPPED)
        .group_by(m.c.variant, code)
    )


def _conversions(session: Session, campaign: Campaign) -> Select[Any]:
    ws, cid = campaign.workspace_id, campaign.id
    times = facts.send_times(ws, cid)
    did = facts.converted(
        session,
        workspace_id=ws,
        profile=m.c.profile_id,
        since=times.c.sent_at,
        goal=campaign.goal or {},
        until=campaign.launched_at,
    )
    return (
        select(m.c.variant, func.count(m.c.profile_id.distinct()))
        .select_from(m.join(times, times.c.message_id == m.c.id))
        .where(facts.of_campaign(ws, cid), did)
        .group_by(m.c.variant)
    )


def _holdout(session: Session, campaign: Campaign) -> Group | None:
    members = session.scalar(select(func.count()).where(_h.c.campaign_id == campaign.id)) or 0
    if not members:
        return None
    group = Group(HOLDOUT)
    group.counts["targeted"] = members
    if campaign.goal and campaign.launched_at is not None:
        did = facts.converted(
            session,
            workspace_id=campaign.workspace_id,
            profile=_h.c.profile_id,
            since=campaign.launched_at,
            goal=campaign.goal,
        )
        statement = select(func.count(_h.c.profile_id.distinct())).where(_h.c.campaign_id == campaign.id, did)
        group.counts["conversions"] = session.scalar(statement) or 0
    return group


def _total(groups: Any) -> Group:
    total = Group("all")
    for group in groups:
        for name in COUNTS:
            total.counts[name] += group.counts[name]
        for reason, count in group.skipped_by_reason.items():
            total.skipped_by_reason[reason] = total.skipped_by_reason.get(reason, 0) + count
    return total


def _ratio(top: int, bottom: int) -> float | None:
    return top / bottom if bottom else None


def hourly_engagement(session: Session, campaign: Campaign, *, hours: int) -> Mapping[tuple[int, str], dict[str, int]]:
    """Messages opened, clicked and machine-opened in each hour since the launch, per variant:
    ``{(hour, variant): {"opened", "clicked", "machine_opened"}}`` (hours with nothing are absent)."""
    if campaign.launched_at is None:
        return {}
    return _buckets(session, campaign, campaign.launched_at, hours)


def _buckets(
    session: Session, campaign: Campaign, start: dt.datetime, hours: int
) -> dict[tuple[int, str], dict[str, int]]:
    e = facts.EngagementEvent.__table__
    hour = facts.hours_since(session, e.c.occurred_at, start).label("hour")
    kind = case(((e.c.kind == "opened") & e.c.machine, "machine_opened"), else_=e.c.kind).label("what")
    statement = (
        select(hour, m.c.variant, kind, func.count(e.c.message_id.distinct()))
        .join(m, m.c.id == e.c.message_id)
        .where(
            facts.of_campaign(campaign.workspace_id, campaign.id),
            e.c.kind.in_(("opened", "clicked")),
            ~((e.c.kind == "clicked") & e.c.machine),
            e.c.occurred_at >= start,
            e.c.occurred_at < start + dt.timedelta(hours=hours),
        )
        .group_by(hour, m.c.variant, kind)
    )
    buckets: dict[tuple[int, str], dict[str, int]] = {}
    for at, variant, what, count in session.execute(statement):
        counts = buckets.setdefault((int(at), _key(variant)), {"opened": 0, "clicked": 0, "machine_opened": 0})
        counts[what] = count
    return buckets
