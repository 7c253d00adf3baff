"""Breakers: a campaign whose recent messages fail, bounce or draw complaints too often pauses,
saying which rate tripped and its figure — before a bad list burns the sender's reputation."""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from ccm.campaigns.models import Campaign
from ccm.config import Settings
from ccm.engagement.models import EngagementEvent, EventKind
from ccm.messages.models import TERMINAL_STATUSES, Message, MessageStatus

_m, _e = Message.__table__, EngagementEvent.__table__
WINDOW = 500
"""The campaign's most recently released messages the rates are read over."""


def tripped(session: Session, settings: Settings, campaign: Campaign) -> str | None:
    """Why the campaign must pause (``breaker: failed 25.0% of the last 400 messages (threshold
    20%)``), or None."""
    if campaign.release_cursor is None:
        return None
    recent = (
        select(_m.c.id, _m.c.status)
        .where(_m.c.campaign_id == campaign.id, _m.c.id <= campaign.release_cursor)
        .order_by(_m.c.id.desc())
        .limit(WINDOW)
        .subquery()
    )
    counted = select(recent.c.status, func.count()).group_by(recent.c.status)
    by_status: dict[str, int] = dict(session.execute(counted).all())
    ended = sum(count for status, count in by_status.items() if MessageStatus(status) in TERMINAL_STATUSES)
    if ended < settings.campaign_breaker_min:
        return None
    reports: dict[str, int] = dict(
        session.execute(
            select(_e.c.kind, func.count(func.distinct(_e.c.message_id)))
            .where(_e.c.message_id.in_(select(recent.c.id)), _e.c.kind.in_([EventKind.BOUNCED, EventKind.COMPLAINED]))
            .group_by(_e.c.kind)
        ).all()
    )
    rates = (
        ("failed", by_status.get(MessageStatus.FAILED, 0), settings.campaign_breaker_failed),
        ("bounced", reports.get(EventKind.BOUNCED, 0), settings.campaign_breaker_bounced),
        ("complaints", reports.get(EventKind.COMPLAINED, 0), settings.campaign_breaker_complaints),
    )
    for name, count, threshold in rates:
        if count / ended > threshold:
            return (
                f"breaker: {name} {100 * count / ended:.1f}% of the last {ended} messages "
                f"(threshold {100 * threshold:g}%)"
            )
    return None
