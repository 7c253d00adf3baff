"""A workspace's messages counted by the day they were made (UTC), status, channel and skip reason,
cached per day in ``message_day_count`` and counted again from ``message`` when a day's count is
missing or older than :func:`max_age`; the messages made since today's count are counted live.

A day's messages keep changing after they are made: today's are being delivered, and a closed day's
move late (a delivery report or bounce turns ``sent`` into ``delivered`` or ``failed`` days
afterwards; a queued one is sent, retried or skipped). Nothing on the send path writes the cache —
each write there would cost every delivery of a campaign — so a message's *status* shown is at most
:func:`max_age` old: a minute for today's, five minutes for yesterday's, twice as long for each day
further back (late changes gather in the first days), about 21 hours from nine days back. A new
message shows at once: a cached count covers the messages made before its ``computed_at``, the
live count those made since.

Counting from a day scans ``ix_message_workspace_id`` from that day's first id (a campaign
message's id is its due time, so no upper id bound holds), so the days to count again are counted
in one query, from the oldest of them to now; the younger days' counts come along.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any, NamedTuple

from sqlalchemy import Row, case, func, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from ccm.db import dialect_of
from ccm.ids import first_id_at
from ccm.messages.models import Message, MessageDayCount, MessageStatus
from ccm.messages.reasons import reason_code

_m, _c = Message.__table__, MessageDayCount.__table__
TODAY_MAX_AGE = dt.timedelta(minutes=1)
"""How old today's count may be (today is still being made: a campaign's fan-out, its deliveries)."""
FIRST_MAX_AGE = dt.timedelta(minutes=5)
"""How old yesterday's count may be; each day further back may be twice as old (up to 2**8 times)."""
VIEW_GRACE = 3
"""A view takes a count up to this many times its :func:`max_age` old: the periodic refresh
(:data:`ccm.messages.tasks.COUNT_DAYS`) recounts at the age itself, so a view only counts when
no worker has (the first view of a workspace, or workers stopped)."""


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


def day_cells(
    *, session: Session, workspace_id: str, days: Sequence[dt.date], now: dt.datetime, grace: float = 1
) -> DayCells:
    """The cells of ``days`` (consecutive, oldest first, the last one today) in two reads: the
    cache, then one count — of the messages made since today's count if every day is cached and
    young enough, else of every message made from the oldest day missing or too old until ``now``
    (the ``computed_at`` to store them with)."""
    cached = _fresh_cache(session, workspace_id, days, now, grace)
    kept = [Cell(row.day, *cell) for row in cached for cell in row.counts]
    if len(cached) == len(days):
        since = cached[-1].computed_at
        return DayCells(
            kept + count_cells(session=session, workspace_id=workspace_id, since=since), {}, cached[-1].engagement
        )
    start = days[len(cached)]
    since = dt.datetime.combine(start, dt.time(), tzinfo=dt.UTC)
    counted = count_cells(session=session, workspace_id=workspace_id, since=since, until=now)
    recounted: dict[str, list[Cell]] = {day.isoformat(): [] for day in days if day >= start}
    for cell in counted:
        if cell.day in recounted:
            recounted[cell.day].append(cell)
    return DayCells(kept + counted, recounted)


def count_cells(
    *, session: Session, workspace_id: str, since: dt.datetime, until: dt.datetime | None = None
) -> list[Cell]:
    """The workspace's messages made from ``since`` (until before ``until``), counted in one ``GROUP BY``."""
    day = _day(session, _m.c.created_at).label("day")
    skip = case((_m.c.status == MessageStatus.SKIPPED, reason_code(session, _m.c.reason))).label("skip")
    made = [_m.c.workspace_id == workspace_id, _m.c.id >= first_id_at("msg", since), _m.c.created_at >= since]
    if until is not None:
        made.append(_m.c.created_at < until)
    rows = session.execute(
        select(day, _m.c.status, _m.c.channel, skip, func.count())
        .where(*made)
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
    session: Session, workspace_id: str, days: Sequence[dt.date], now: dt.datetime, grace: float
) -> list[Row[*tuple[Any, ...]]]:
    """The cached rows of ``days`` still young enough (``grace`` times :func:`max_age`), up to the
    first one that is not (the days after it are counted with it anyway)."""
    names = [day.isoformat() for day in days]
    columns = (_c.c.day, _c.c.counts, _c.c.engagement, _c.c.computed_at)
    rows = {
        row.day: row
        for row in session.execute(select(*columns).where(_c.c.workspace_id == workspace_id, _c.c.day.in_(names)))
    }
    fresh = []
    for day, name in zip(days, names, strict=True):
        row = rows.get(name)
        if row is None or now - row.computed_at >= max_age(day, days[-1]) * grace:
            break
        fresh.append(row)
    return fresh


def counted_workspaces(session: Session) -> list[str]:
    """The workspaces whose dashboard has been looked at (they have a cached count)."""
    return list(session.scalars(select(_c.c.workspace_id).distinct()))


def _day(session: Session, moment: Any) -> Any:
    return func.date_trunc("day", moment) if dialect_of(session) == "postgresql" else func.date(moment)
