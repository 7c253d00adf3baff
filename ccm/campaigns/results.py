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

from sqlalchemy import Select, and_, case, exists, func, select
from sqlalchemy.orm import Session

from ccm.campaigns import facts
from ccm.campaigns.facts import m
from ccm.campaigns.models import Campaign, CampaignHoldout, CampaignVariant
from ccm.campaigns.stats import Proportion
from ccm.engagement.models import EngagementEvent
from ccm.messages.models import DeliveryAttempt, MessageStatus
from ccm.messages.reasons import reason_code

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
_h, _v, _a = CampaignHoldout.__table__, CampaignVariant.__table__, DeliveryAttempt.__table__
_e = EngagementEvent.__table__


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
    """Per variant (in the campaign's variant order), the holdout (None without one), the total,
    and per channel (``none``: skipped before one was chosen), largest first; conversions are
    counted per variant only."""

    variants: dict[str, Group]
    holdout: Group | None
    total: Group
    channels: dict[str, Group] = field(default_factory=dict)


def campaign_results(session: Session, campaign: Campaign, *, as_of: dt.datetime | None = None) -> Results:
    """Count everything about ``campaign``'s messages, per variant, per channel and for the holdout.

    The messages and their engagement are counted once, by (variant, channel); both groupings are
    sums of those cells, as a message has one variant and one channel.

    Parameters:
      as_of: count only the messages written before it and what happened to them by then (an
        A/B test's sample as its decision saw it: the rest is written after the decision).
    """
    facts.without_jit(session)
    variants = {key: Group(key) for key in variant_keys(session, campaign.id)}
    channels: dict[str, Group] = {}
    ids = facts.id_range(session, campaign.id)
    for (variant, channel), cell in _cells(session, campaign, as_of, ids).items():
        _add(variants.setdefault(_key(variant), Group(_key(variant))), cell)
        _add(channels.setdefault(channel or "none", Group(channel or "none")), cell)
    if campaign.goal and ids is not None:
        for variant, count in session.execute(_conversions(session, campaign, as_of, ids)):
            variants.setdefault(_key(variant), Group(_key(variant))).counts["conversions"] = count
    by_size = dict(sorted(channels.items(), key=lambda item: -item[1].counts["targeted"]))
    return Results(variants, _holdout(session, campaign, as_of), _total(variants.values()), by_size)


def _cells(
    session: Session, campaign: Campaign, as_of: dt.datetime | None, ids: tuple[str, str] | None
) -> dict[tuple[Any, Any], Group]:
    """The status and engagement counts of the campaign's messages (``ids``: the range of
    their ids, None when it has none) by (variant, channel)."""
    cells: dict[tuple[Any, Any], Group] = {}

    def cell(variant: str | None, channel: str | None) -> Group:
        return cells.setdefault((variant, channel), Group(""))

    for row in session.execute(_status_counts(session, campaign, as_of)).mappings():
        group, messages = cell(row["variant"], row["channel"]), int(row["messages"])
        for name in _status_names(row["status"]):
            group.counts[name] += messages
        group.counts["sent"] += int(row["sent_then_failed"])
        if row["skip_code"] is not None:
            group.skipped_by_reason[row["skip_code"]] = group.skipped_by_reason.get(row["skip_code"], 0) + messages
    if ids is None:
        return cells
    for row in session.execute(_engagement_counts(campaign, as_of, ids)).mappings():
        group = cell(row["variant"], row["channel"])
        for name in ENGAGEMENT_COUNTS:
            group.counts[name] = int(row[name] or 0)
    return cells


def variant_keys(session: Session, campaign_id: str) -> list[str]:
    """The campaign's variant keys, in order."""
    return list(session.scalars(select(_v.c.key).where(_v.c.campaign_id == campaign_id).order_by(_v.c.key)))


def _key(variant: str | None) -> str:
    return variant or "A"  # a campaign of one template: its messages may carry no variant


ENGAGEMENT_COUNTS = tuple(dict.fromkeys(counted for *_, counted in facts.ENGAGEMENT))


def _status_counts(session: Session, campaign: Campaign, as_of: dt.datetime | None) -> Select[Any]:
    """The campaign's messages by variant, channel, status and skip reason (a few rows a cell),
    and how many of each failed after an attempt got through (a bounce: they were sent; only
    the failed messages' attempts are looked up). Python adds the statuses up into the counts:
    one count per row costs PostgreSQL less than a sum per count."""
    status = m.c.status
    skip_code = case((status == MessageStatus.SKIPPED, reason_code(session, m.c.reason))).label("skip_code")
    handed_over = exists().where(_a.c.message_id == m.c.id, _a.c.outcome.in_(facts.HANDED_OVER))
    return (
        select(
            m.c.variant,
            m.c.channel,
            status,
            skip_code,
            func.count().label("messages"),
            func.count().filter(and_(status == MessageStatus.FAILED, handed_over)).label("sent_then_failed"),
        )
        .where(facts.of_campaign(campaign.workspace_id, campaign.id, as_of))
        .group_by(m.c.variant, m.c.channel, status, skip_code)
    )


def _status_names(status: str) -> tuple[str, ...]:
    """The counts a message of ``status`` adds to (a failed one is ``sent`` too when an attempt
    of it got through: :func:`_status_counts` says how many)."""
    names = ["targeted"]
    names += ["pending"] if status in facts.PENDING else []
    names += ["sent", "delivered"] if status in facts.ACCEPTED else []
    names += ["delivery_confirmed"] if status == MessageStatus.DELIVERED else []
    names += [status] if status in (MessageStatus.FAILED, MessageStatus.SKIPPED) else []
    return tuple(names)


def _engagement_counts(campaign: Campaign, as_of: dt.datetime | None, ids: tuple[str, str]) -> Select[Any]:
    """Messages with each kind of engagement (see :data:`ccm.campaigns.facts.ENGAGEMENT`) by
    variant and channel: ``(variant, channel, one column per count name)``.

    The events in the campaign's id range ``ids`` are folded into one row of 0/1 flags per
    message, which is joined to its message and summed. (Joining the kinds as a table to the
    events let PostgreSQL hash every message of the workspace; ``count(DISTINCT …)`` per kind
    sorted the events once per kind.)"""
    by_then = [] if as_of is None else [_e.c.occurred_at <= as_of]
    conditions = facts.engagement_conditions()
    flags = [func.max(case((condition, 1), else_=0)).label(name) for name, condition in conditions.items()]
    engaged = (
        select(_e.c.message_id, *flags)
        .where(_e.c.message_id.between(*ids), *by_then)
        .group_by(_e.c.message_id)
        .subquery("engaged")
    )
    return (
        select(m.c.variant, m.c.channel, *(func.sum(engaged.c[name]).label(name) for name in conditions))
        .select_from(m.join(engaged, engaged.c.message_id == m.c.id))
        .where(facts.of_campaign(campaign.workspace_id, campaign.id, as_of), m.c.id.between(*ids))
        .group_by(m.c.variant, m.c.channel)
    )


def _conversions(session: Session, campaign: Campaign, as_of: dt.datetime | None, ids: tuple[str, str]) -> Select[Any]:
    """Recipients who did the goal event within the window after an attempt of theirs got
    through (one does per message: at most one provider call per send), by variant; the
    messages and attempts are read in the campaign's id range ``ids``."""
    ws, cid = campaign.workspace_id, campaign.id
    did = facts.converted(
        session,
        workspace_id=ws,
        profile=m.c.profile_id,
        since=_a.c.finished_at,
        goal=campaign.goal or {},
        not_before=campaign.launched_at,
        as_of=as_of,
    )
    return (
        select(m.c.variant, func.count(m.c.profile_id.distinct()))
        .select_from(m.join(_a, _a.c.message_id == m.c.id))
        .where(facts.of_campaign(ws, cid, as_of), m.c.id.between(*ids), _a.c.message_id.between(*ids))
        .where(_a.c.outcome.in_(facts.HANDED_OVER), did)
        .group_by(m.c.variant)
    )


def _holdout(session: Session, campaign: Campaign, as_of: dt.datetime | None) -> Group | None:
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
            as_of=as_of,
        )
        statement = select(func.count(_h.c.profile_id.distinct())).where(_h.c.campaign_id == campaign.id, did)
        group.counts["conversions"] = session.scalar(statement) or 0
    return group


def _total(groups: Any) -> Group:
    total = Group("all")
    for group in groups:
        _add(total, group)
    return total


def _add(into: Group, group: Group) -> None:
    for name in COUNTS:
        into.counts[name] += group.counts[name]
    for reason, count in group.skipped_by_reason.items():
        into.skipped_by_reason[reason] = into.skipped_by_reason.get(reason, 0) + count


def _ratio(top: int, bottom: int) -> float | None:
    return top / bottom if bottom else None


def hourly_engagement(session: Session, campaign: Campaign, *, hours: int) -> Mapping[tuple[int, str], dict[str, int]]:
    """Messages opened, clicked and machine-opened in each hour since the launch, per variant:
    ``{(hour, variant): {"opened", "clicked", "machine_opened"}}`` (hours with nothing are absent)."""
    if campaign.launched_at is None:
        return {}
    ids = facts.id_range(session, campaign.id)
    if ids is None:
        return {}
    facts.without_jit(session)
    return _buckets(session, campaign, campaign.launched_at, hours, ids)


def _buckets(
    session: Session, campaign: Campaign, start: dt.datetime, hours: int, ids: tuple[str, str]
) -> dict[tuple[int, str], dict[str, int]]:
    e = EngagementEvent.__table__
    hour = facts.hours_since(session, e.c.occurred_at, start).label("hour")
    kind = case(((e.c.kind == "opened") & e.c.machine, "machine_opened"), else_=e.c.kind).label("what")
    statement = (
        select(hour, m.c.variant, kind, func.count(e.c.message_id.distinct()))
        .join(m, m.c.id == e.c.message_id)
        .where(
            facts.of_campaign(campaign.workspace_id, campaign.id),
            m.c.id.between(*ids),
            e.c.message_id.between(*ids),
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
