"""Monthly partitions of ``event`` on PostgreSQL, created ahead and purged by retention.

The table is ``PARTITION BY RANGE (received_at)``: a month's events live in ``event_YYYY_MM``, and
anything outside the partitions made so far lands in ``event_default`` (never refused). The
periodic ``ingest.maintain`` job creates the partitions for this month and the next
``AHEAD_MONTHS``, and with ``CCM_EVENT_RETENTION_MONTHS`` set detaches and drops those older than
that; it also purges the dedupe table (``event_seen``) past ``CCM_EVENT_DEDUPE_DAYS``. On SQLite
(development) the table is a plain one and only the dedupe purge applies.
"""

from __future__ import annotations

import datetime as dt
import re

from sqlalchemy import Connection, delete, text
from sqlalchemy.orm import Session

from ccm.db import dialect_of, rowcount, utcnow
from ccm.ingest.models import EventSeen

AHEAD_MONTHS = 2
_PARTITION_NAME = re.compile(r"event_(default|\d{4}_\d{2})")


def month_start(day: dt.date, shift: int = 0) -> dt.date:
    """The first day of the month ``shift`` months after ``day``'s."""
    index = day.year * 12 + day.month - 1 + shift
    return dt.date(index // 12, index % 12 + 1, 1)


def partition_name(month: dt.date) -> str:
    return f"event_{month:%Y_%m}"


def is_partition(name: str | None) -> bool:
    """Whether a table is one of ``event``'s partitions (the models know only ``event``)."""
    return bool(name) and _PARTITION_NAME.fullmatch(name or "") is not None


def create_ahead(connection: Connection, today: dt.date, *, ahead: int = AHEAD_MONTHS) -> list[str]:
    """Create the partitions of this month and the next ``ahead`` (those missing); their names."""
    if connection.dialect.name != "postgresql":
        return []
    existing = set(connection.execute(text(_PARTITIONS)).scalars())
    made = []
    for shift in range(ahead + 1):
        start = month_start(today, shift)
        name = partition_name(start)
        if name in existing:
            continue
        connection.execute(
            text(
                f"CREATE TABLE IF NOT EXISTS {name} PARTITION OF event "
                f"FOR VALUES FROM ('{start.isoformat()}') TO ('{month_start(start, 1).isoformat()}')"
            )
        )
        made.append(name)
    return made


def drop_older(session: Session, today: dt.date, *, keep_months: int) -> list[str]:
    """Detach and drop the monthly partitions wholly older than ``keep_months`` months."""
    if dialect_of(session) != "postgresql" or keep_months <= 0:
        return []
    cutoff = partition_name(month_start(today, -keep_months))
    dropped = []
    for name in session.execute(text(_PARTITIONS)).scalars():
        if name != "event_default" and name < cutoff:
            session.execute(text(f"ALTER TABLE event DETACH PARTITION {name}"))
            session.execute(text(f"DROP TABLE {name}"))
            dropped.append(name)
    return dropped


def purge_seen(session: Session, *, days: int) -> int:
    """Forget message ids seen more than ``days`` ago (a retry after that is stored again)."""
    return rowcount(session.execute(delete(EventSeen).where(EventSeen.seen_at < utcnow() - dt.timedelta(days=days))))


_PARTITIONS = """
SELECT child.relname FROM pg_inherits
JOIN pg_class parent ON parent.oid = pg_inherits.inhparent
JOIN pg_class child ON child.oid = pg_inherits.inhrelid
WHERE parent.relname = 'event' ORDER BY child.relname
"""
