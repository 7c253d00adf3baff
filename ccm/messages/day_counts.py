"""A workspace's messages counted by the day they were made (UTC), status, channel and skip reason,
cached per day in ``message_day_count`` and counted again from ``message`` when a day's count is
missing or older than :func:`max_age`.

Every day's messages keep changing after it: today's are still being made (a campaign's fan-out)
and delivered, and a closed day's move late (a delivery report or bounce turns ``sent`` into
``delivered`` or ``failed`` days afterwards; a queued one is sent, retried or skipped). Nothing on
the send path writes the cache — each write there would cost every delivery of a campaign — so the
counts shown are at most :func:`max_age` old: a minute for today, five minutes for yesterday, twice
as long for each day further back (late changes gather in the first days), about 21 hours from
nine days back.

Counting from a day scans ``ix_message_workspace_id`` from that day's first id to now (a campaign
message's id is its due time, so no upper id bound holds), so the days to count again are counted
in one query, from the oldest of them to now; the younger days' counts come along.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any, NamedTuple

from sqlalchemy import case, func, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from ccm.campaigns.facts import reason_code
from ccm.db import dialect_of
from ccm.ids import first_id_at
from ccm.messages.models import Message, MessageDayCount, MessageStatus

_m, _c = Message.__table__, MessageDayCount.__table__
TODAY_MAX_AGE = dt.timedelta(minutes=1)
"""How old today's count may be (today is still being made: a campaign's fan-out, its deliveries)."""
FIRST_MAX_AGE = dt.timedelta(minutes=5)
"""How old yesterday's count may be; each day further back may be twice as old (up to 2**8 times)."""


class Cell(NamedTuple):
    """The messages of one day in one status, on one channel (None: none chosen), skipped for one
    reason (None unless skipped)."""

    day: str
    status: str
    channel: str | None
    skip: str | None
    messages: int


def max_age(day: dt.date, today: dt.date) -> dt.timedelta:
    """How old the cached count of ``day`` may be before it is counted again."""
    if day >= today:
        return TODAY_MAX_AGE
    return FIRST_MAX_AGE * 2 ** min((today - day).days - 1, 8)


class DayCells(NamedTuple):
    """The cells of the days asked for; the days among them counted afresh (each day's cells, maybe
    none), for the caller to store with :func:`save_day_counts`; and, when nothing was, what the
    cache holds beside today's count (``engagement``: see :class:`MessageDayCount`)."""

    cells: list[Cell]
    recounted: dict[str, list[Cell]]
    engagement: dict[str, Any] | None = None


def day_cells(*, session: Session, workspace_id: str, days: Sequence[dt.date], now: dt.datetime) -> DayCells:
    """The cells of ``days`` (consecutive, oldest first, the last one today) in at most two reads:
    the cache, then, if it lacks a day or holds one too old, one count from that day to now."""
    cached, engagement = _fresh_cache(session, workspace_id, days, now)
    if len(cached) == len(days):
        return DayCells([cell for cells in cached.values() for cell in cells], {}, engagement)
    start = days[len(cached)]
    counted = count_cells(session=session, workspace_id=workspace_id, start=start)
    recounted: dict[str, list[Cell]] = {day.isoformat(): [] for day in days if day >= start}
    for cell in counted:
        if cell.day in recounted:
            recounted[cell.day].append(cell)
    return DayCells([cell for cells in cached.values() for cell in cells] + counted, recounted)


def count_cells(*, session: Session, workspace_id: str, start: dt.date) -> list[Cell]:
    """The workspace's messages made from the start of ``start`` (UTC) on, counted in one ``GROUP BY``."""
    since = dt.datetime.combine(start, dt.time(), tzinfo=dt.UTC)
    day = _day(session, _m.c.created_at).label("day")
    skip = case((_m.c.status == MessageStatus.SKIPPED, reason_code(session, _m.c.reason))).label("skip")
    rows = session.execute(
        select(day, _m.c.status, _m.c.channel, skip, func.count())
        .where(_m.c.workspace_id == workspace_id, _m.c.id >= first_id_at("msg", since), _m.c.created_at >= since)
        .group_by(day, _m.c.status, _m.c.channel, skip)
    )
    return [Cell(str(at)[:10], status, channel, reason, count) for at, status, channel, reason, count in rows]


def save_day_counts(
    *,
    session: Session,
    workspace_id: str,
    days: dict[str, list[Cell]],
    engagement: dict[str, Any] | None,
    computed_at: dt.datetime,
) -> None:
    """Store the counts of :attr:`DayCells.recounted` (replacing older ones), ``engagement`` beside
    the newest day's (today's)."""
    if not days:
        return
    insert = postgresql.insert if dialect_of(session) == "postgresql" else sqlite.insert
    newest = max(days)
    rows = [
        {"workspace_id": workspace_id, "day": day, "computed_at": computed_at, "counts": [list(c[1:]) for c in cells]}
        | {"engagement": engagement if day == newest else None}
        for day, cells in sorted(days.items())
    ]
    statement = insert(_c).values(rows)
    excluded = statement.excluded
    session.execute(
        statement.on_conflict_do_update(
            index_elements=[_c.c.workspace_id, _c.c.day],
            set_={"counts": excluded.counts, "engagement": excluded.engagement, "computed_at": excluded.computed_at},
        )
    )


def _fresh_cache(
    session: Session, workspace_id: str, days: Sequence[dt.date], now: dt.datetime
) -> tuple[dict[str, list[Cell]], dict[str, Any] | None]:
    """The cached days of ``days`` still young enough, up to the first one that is not (the days
    after it are counted with it anyway), and the engagement kept on the last one."""
    names = [day.isoformat() for day in days]
    rows = {
        row.day: row
        for row in session.execute(
            select(_c.c.day, _c.c.counts, _c.c.engagement, _c.c.computed_at).where(
                _c.c.workspace_id == workspace_id, _c.c.day.in_(names)
            )
        )
    }
    fresh: dict[str, list[Cell]] = {}
    for day, name in zip(days, names, strict=True):
        row = rows.get(name)
        if row is None or now - row.computed_at >= max_age(day, days[-1]):
            break
        fresh[name] = [Cell(name, *cell) for cell in row.counts]
    last = rows.get(names[-1])
    return fresh, last.engagement if last is not None and len(fresh) == len(days) else None


def _day(session: Session, moment: Any) -> Any:
    return func.date_trunc("day", moment) if dialect_of(session) == "postgresql" else func.date(moment)
