"""A workspace's messages of the last days at a glance (the dashboard): counts by day, status and
channel, skip reasons, and the messages opened and clicked.

The counts come from :mod:`ccm.messages.day_counts` (each day's cached until it is too old), the
opens and clicks of the window from one ``GROUP BY`` on ``ix_engagement_event_workspace_kind_time``,
cached beside today's count and taken again with it.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from ccm.db import Database
from ccm.engagement.models import EngagementEvent
from ccm.messages.day_counts import Cell, counted_workspaces, day_cells, save_day_counts
from ccm.messages.models import MessageStatus

_e = EngagementEvent.__table__
DELIVERED = (MessageStatus.SENT, MessageStatus.DELIVERED)


@dataclass
class Overview:
    """The window's days (``YYYY-MM-DD``, oldest first) and its counts; ``recounted`` and
    ``engagement`` hold what was counted afresh for it, for the caller to cache
    (:func:`ccm.messages.day_counts.save_day_counts`)."""

    days: list[str]
    by_day_status: dict[tuple[str, str], int] = field(default_factory=dict)
    by_channel_status: dict[tuple[str, str], int] = field(default_factory=dict)
    skipped_by_reason: dict[str, int] = field(default_factory=dict)
    opened: int = 0
    clicked: int = 0
    recounted: dict[str, list[Cell]] = field(default_factory=dict)
    engagement: dict[str, Any] | None = None

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


DAYS = 14
"""The days the dashboard shows (today included)."""


def message_overview(*, session: Session, workspace_id: str, days: int, now: dt.datetime, grace: float = 1) -> Overview:
    """The last ``days`` days (today, UTC, included) of the workspace's messages; the days whose
    cached count is older than ``grace`` times its age are counted again (:attr:`Overview.recounted`)."""
    window = [now.date() - dt.timedelta(days=days - 1 - n) for n in range(days)]
    counted = day_cells(session=session, workspace_id=workspace_id, days=window, now=now, grace=grace)
    overview = Overview([day.isoformat() for day in window], recounted=counted.recounted)
    for cell in counted.cells:
        _add(overview.by_day_status, (cell.day, cell.status), cell.messages)
        _add(overview.by_channel_status, (cell.channel or "none", cell.status), cell.messages)
        if cell.skip is not None:
            _add(overview.skipped_by_reason, cell.skip, cell.messages)
    engagement = counted.engagement
    if engagement is None or engagement.get("days") != days:
        engagement = {"days": days} | _engaged(session, workspace_id, window[0])
        overview.engagement = engagement
    overview.opened, overview.clicked = engagement.get("opened", 0), engagement.get("clicked", 0)
    return overview


def read_overview(database: Database, workspace_id: str, *, now: dt.datetime, grace: float = 1) -> Overview:
    """:func:`message_overview` of the dashboard's :data:`DAYS`, read without a lock; the days
    counted again are stored after, in a short write of their own."""
    with database.read_only() as session:
        overview = message_overview(session=session, workspace_id=workspace_id, days=DAYS, now=now, grace=grace)
    if overview.recounted:
        with database.unit_of_work() as session:
            save_day_counts(
                session=session,
                workspace_id=workspace_id,
                days=overview.recounted,
                engagement=overview.engagement,
                computed_at=now,
            )
    return overview


def refresh_day_counts(database: Database, *, now: dt.datetime) -> int:
    """Count again the days whose cached count has reached its age, for every workspace whose
    dashboard has been looked at, so that a view finds them counted; returns the workspaces."""
    with database.read_only() as session:
        workspaces = counted_workspaces(session)
    for workspace_id in workspaces:
        read_overview(database, workspace_id, now=now)
    return len(workspaces)


def _engaged(session: Session, workspace_id: str, first_day: dt.date) -> dict[str, int]:
    """People's opens and clicks (distinct messages) from the start of ``first_day`` on."""
    rows = session.execute(
        select(_e.c.kind, func.count(_e.c.message_id.distinct()))
        .where(
            _e.c.workspace_id == workspace_id,
            _e.c.kind.in_(("opened", "clicked")),
            _e.c.occurred_at >= dt.datetime.combine(first_day, dt.time(), tzinfo=dt.UTC),
            ~_e.c.machine,
        )
        .group_by(_e.c.kind)
    )
    return {kind: count for kind, count in rows}


def _add(counts: dict[Any, int], key: Any, count: int) -> None:
    counts[key] = counts.get(key, 0) + count
