"""Choosing an A/B test's winner: the variant whose sample did best on the test's metric.

A simple first version: the highest rate of ``ab_test.metric`` (opened, clicked, replied,
converted; machine opens and clicks left out) among each variant's sample messages, ties to the
first variant. The results module may replace it with a confidence test; the pump only asks
:func:`pick_winner`.
"""

from __future__ import annotations

from sqlalchemy import and_, distinct, func, select
from sqlalchemy.orm import Session

from ccm.campaigns.models import Campaign
from ccm.engagement.models import EngagementEvent
from ccm.messages.models import Message

_m, _e = Message.__table__, EngagementEvent.__table__


def pick_winner(session: Session, campaign: Campaign) -> str | None:
    """The key of the best variant of the campaign's sample, or None when no sample was sent."""
    metric = (campaign.ab_test or {}).get("metric", "opened")
    hit = and_(_e.c.message_id == _m.c.id, _e.c.kind == metric, _e.c.machine.is_(False))
    rows = session.execute(
        select(_m.c.variant, func.count(distinct(_m.c.id)), func.count(distinct(_e.c.message_id)))
        .select_from(_m.outerjoin(_e, hit))
        .where(_m.c.campaign_id == campaign.id)
        .group_by(_m.c.variant)
        .order_by(_m.c.variant)
    ).all()
    rated = [(hits / total, key) for key, total, hits in rows if key is not None and total]
    if not rated:
        return None
    best = max(rate for rate, _ in rated)
    return next(key for rate, key in rated if rate == best)
