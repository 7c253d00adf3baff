"""A workspace's messages of the last days at a glance (the dashboard): counts by day, status and
channel, skip reasons, and the messages opened and clicked, in two ``GROUP BY`` queries.

Both stay bounded on a large workspace: the messages are found through ``ix_message_workspace_id``
(``workspace_id, id``) from the first id of the window (ids sort by creation time), and the
engagement through ``ix_engagement_event_workspace_kind_time``; the answer is a few hundred rows.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import case, func, select
from sqlalchemy.orm import Session

from ccm.campaigns.facts import reason_code
from ccm.db import dialect_of
from ccm.engagement.models import EngagementEvent
from ccm.ids import first_id_at
from ccm.messages.models import Message, MessageStatus

_m, _e = Message.__table__, EngagementEvent.__table__
DELIVERED = (MessageStatus.SENT, MessageStatus.DELIVERED)


@dataclass
class Overview:
    """The window's days (``YYYY-MM-DD``, oldest first) and its counts."""

    days: list[str]
    by_day_status: dict[tuple[str, str], int] = field(default_factory=dict)
    by_channel_status: dict[tuple[str, str], int] = field(default_factory=dict)
    skipped_by_reason: dict[str, int] = field(default_factory=dict)
    opened: int = 0
    clicked: int = 0

    def total(self, *statuses: str) -> int:
        return sum(count for (_, status), count in self.by_day_status.items() if status in statuses)

    def rates(self) -> dict[str, float | None]:
        """Delivery (sent or delivered, of those that ended handed over or failed), open and click
        (people's opens and clicks in the window, of the messages delivered in it)."""
        delivered, failed = self.total(*DELIVERED), self.total(MessageStatus.FAILED)
        return {
            "delivery": delivered / (delivered + failed) if delivered + failed else None,
            "open": self.opened / delivered if delivered else None,
            "click": self.clicked / delivered if delivered else None,
        }


def message_overview(*, session: Session, workspace_id: str, days: int, now: dt.datetime) -> Overview:
    """The last ``days`` days (today, UTC, included) of the workspace's messages."""
    start = dt.datetime.combine(now.date() - dt.timedelta(days=days - 1), dt.time(), tzinfo=dt.UTC)
    overview = Overview([(start.date() + dt.timedelta(days=n)).isoformat() for n in range(days)])
    day = _day(session, _m.c.created_at).label("day")
    skip = case((_m.c.status == MessageStatus.SKIPPED, reason_code(session, _m.c.reason))).label("skip")
    rows = session.execute(
        select(day, _m.c.status, _m.c.channel, skip, func.count())
        .where(_m.c.workspace_id == workspace_id, _m.c.id >= first_id_at("msg", start), _m.c.created_at >= start)
        .group_by(day, _m.c.status, _m.c.channel, skip)
    )
    for at, status, channel, reason, count in rows:
        _add(overview.by_day_status, (str(at)[:10], status), count)
        _add(overview.by_channel_status, (channel or "none", status), count)
        if reason is not None:
            _add(overview.skipped_by_reason, reason, count)
    engaged = session.execute(
        select(_e.c.kind, func.count(_e.c.message_id.distinct()))
        .where(
            _e.c.workspace_id == workspace_id,
            _e.c.kind.in_(("opened", "clicked")),
            _e.c.occurred_at >= start,
            ~_e.c.machine,
        )
        .group_by(_e.c.kind)
    )
    for kind, count in engaged:
        setattr(overview, kind, count)
    return overview


def _add(counts: dict[Any, int], key: Any, count: int) -> None:
    counts[key] = counts.get(key, 0) + count


def _day(session: Session, moment: Any) -> Any:
    return func.date_trunc("day", moment) if dialect_of(session) == "postgresql" else func.date(moment)
