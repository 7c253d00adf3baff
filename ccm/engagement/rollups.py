"""Engagement rolled up onto the profile: counters per channel and kind, the last engagement per
channel, an engagement score, and the channel the person engages with most.

The score is the sum, over the person's events of the last 180 days, of a weight per kind halved
every 30 days of age::

    score = Σ weight(kind) × 0.5 ** (age_days / 30)
    weights: clicked 3, replied 5, converted 8, opened 1, read 1,
             bounced −2, unsubscribed −5, complained −10   (sent, delivered, failed: 0)

Opens and clicks flagged as machine-made are left out, and at most the 2,000 latest events count.
The best channel is the one with the highest positive score computed the same way over that
channel's events; with none positive, there is none.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Iterable, Mapping
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from ccm.db import utcnow
from ccm.engagement.models import EngagementEvent
from ccm.profiles.models import Profile

WEIGHTS = {
    "clicked": 3.0,
    "replied": 5.0,
    "converted": 8.0,
    "opened": 1.0,
    "read": 1.0,
    "bounced": -2.0,
    "unsubscribed": -5.0,
    "complained": -10.0,
}
HALF_LIFE_DAYS = 30.0
WINDOW_DAYS = 180.0
ENGAGED = frozenset({"opened", "clicked", "replied", "converted", "read"})
SCORED_EVENTS = 2000
"""The score reads at most this many of a person's latest events (older ones weigh little anyway)."""

_events = EngagementEvent.__table__


def score(events: Iterable[tuple[str, bool, dt.datetime]], *, now: dt.datetime) -> float:
    """The score of (kind, machine, occurred_at) events (see the module docstring)."""
    total = 0.0
    for kind, machine, at in events:
        age = (now - at).total_seconds() / 86400
        if machine or age > WINDOW_DAYS:
            continue
        total += WEIGHTS.get(kind, 0.0) * 0.5 ** (max(age, 0.0) / HALF_LIFE_DAYS)
    return round(total, 4)


def apply(session: Session, events: Iterable[Mapping[str, Any]]) -> None:
    """Fold newly recorded events into their profiles' rollups."""
    by_profile: dict[str, list[Mapping[str, Any]]] = defaultdict(list)
    for event in events:
        if event.get("profile_id"):
            by_profile[event["profile_id"]].append(event)
    now = utcnow()
    for profile_id, new in by_profile.items():
        profile = session.get(Profile, profile_id, with_for_update=True)
        if profile is None:
            continue
        profile.engagement = _counted(profile.engagement or {}, new)
        profile.engagement_score, profile.best_channel = _scores(session, profile_id, now)


def _counted(current: dict[str, Any], new: list[Mapping[str, Any]]) -> dict[str, Any]:
    rollup = {channel: dict(counters) for channel, counters in current.items()}
    for event in new:
        counters = rollup.setdefault(event.get("channel") or "unknown", {})
        name = f"machine_{event['kind']}" if event.get("machine") else event["kind"]
        counters[name] = counters.get(name, 0) + 1
        if event["kind"] in ENGAGED and not event.get("machine"):
            at = event["occurred_at"].isoformat()
            counters["last_engaged_at"] = max(counters.get("last_engaged_at", ""), at)
    return rollup


def _scores(session: Session, profile_id: str, now: dt.datetime) -> tuple[float, str | None]:
    since = now - dt.timedelta(days=WINDOW_DAYS)
    rows = session.execute(
        select(_events.c.channel, _events.c.kind, _events.c.machine, _events.c.occurred_at)
        .where(_events.c.profile_id == profile_id, _events.c.occurred_at >= since)
        .order_by(_events.c.occurred_at.desc())
        .limit(SCORED_EVENTS)
    ).all()
    per_channel: dict[str, list[tuple[str, bool, dt.datetime]]] = defaultdict(list)
    for row in rows:
        per_channel[row.channel or "unknown"].append((row.kind, row.machine, row.occurred_at))
    total = score(((r.kind, r.machine, r.occurred_at) for r in rows), now=now)
    channel_scores = {c: score(es, now=now) for c, es in per_channel.items() if c in ("email", "sms", "chat")}
    best = max(channel_scores, key=channel_scores.__getitem__, default=None)
    return total, best if best is not None and channel_scores[best] > 0 else None


def combine(session: Session, profile: Profile, other: Mapping[str, Any]) -> None:
    """Add another profile's counters to ``profile``'s (an identity merge, once that profile's
    engagement events are the profile's own) and score it again from its events."""
    rollup = {channel: dict(counters) for channel, counters in (profile.engagement or {}).items()}
    for channel, counters in other.items():
        mine = rollup.setdefault(channel, {})
        for name, value in counters.items():
            if name == "last_engaged_at":
                mine[name] = max(mine.get(name, ""), value)
            else:
                mine[name] = mine.get(name, 0) + value
    profile.engagement = rollup
    profile.engagement_score, profile.best_channel = _scores(session, profile.id, utcnow())
