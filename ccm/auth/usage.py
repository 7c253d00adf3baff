"""When each API key (and write key) was last used, without a write per request.

A key that authenticates hundreds of requests a second must not turn each of them into an UPDATE
of one hot row. ``api_key.last_used_at`` is therefore "last used, to the minute": the lookup that
authenticates a request also reads it, and only when it is older than :data:`TOUCH_EVERY` is the
row written, by a conditional UPDATE (so of several processes racing, one writes and the rest
match no row). Within one process, :class:`KeyUse` lets one request per key and minute try, so a
burst of requests that all read the old value (before the first write committed), or a write
that keeps failing, costs one statement a minute, not one per request.

The write runs in a transaction of its own after the request's one has ended: it never holds the
request's locks or transaction, waits at most :data:`LOCK_TIMEOUT_MS` for a lock, and when it
fails (logged) the request is not affected.
"""

from __future__ import annotations

import datetime as dt
import logging
import math
import threading
import time

from sqlalchemy import Connection, bindparam, or_, update
from sqlalchemy.exc import SQLAlchemyError

from ccm.auth.models import ApiKey
from ccm.db import Database

log = logging.getLogger(__name__)

TOUCH_EVERY = dt.timedelta(seconds=60)
LOCK_TIMEOUT_MS = 500
"""How long the write may wait for a lock (the key's row on PostgreSQL, the database's write lock
on SQLite) before it gives up: a request never waits longer than that on its bookkeeping."""

_keys = ApiKey.__table__
_TOUCH = (
    update(_keys)
    .where(
        _keys.c.id == bindparam("key_id"),
        or_(_keys.c.last_used_at.is_(None), _keys.c.last_used_at < bindparam("stale_before")),
    )
    .values(last_used_at=bindparam("now"))
)


def is_stale(last_used_at: dt.datetime | None, now: dt.datetime) -> bool:
    """Whether a key last used at ``last_used_at`` should be written again at ``now``."""
    return last_used_at is None or last_used_at < now - TOUCH_EVERY


class KeyUse:
    """One process's writer of keys' last use (one per app: ``app.extensions["ccm.key_use"]``)."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self._tried: dict[str, float] = {}  # key id -> time.monotonic() of this process's last try
        self._lock = threading.Lock()

    def claim(self, key_id: str, last_used_at: dt.datetime | None, now: dt.datetime) -> bool:
        """Whether this request is the one to write the key's use: the stored time is stale and no
        other request of this process tried within :data:`TOUCH_EVERY`."""
        if not is_stale(last_used_at, now):
            return False
        tick = time.monotonic()
        with self._lock:
            if tick - self._tried.get(key_id, -math.inf) < TOUCH_EVERY.total_seconds():
                return False
            self._tried[key_id] = tick
        return True

    def touch(self, key_id: str, now: dt.datetime) -> bool:
        """Record that ``key_id`` was used at ``now``, unless another process did within the minute.

        Returns:
          Whether the row was written; False too when the write failed (logged, never raised: a
          request must not fail over when its key was last seen).
        """
        try:
            with self.db.engine.connect() as connection:
                return _touch(connection, key_id, now)
        except SQLAlchemyError as exc:
            log.warning("could not record the use of API key %s: %s", key_id, str(exc).splitlines()[0])
            return False


def _touch(connection: Connection, key_id: str, now: dt.datetime) -> bool:
    if connection.dialect.name != "sqlite":
        with connection.begin():
            connection.exec_driver_sql(f"SET LOCAL lock_timeout = {LOCK_TIMEOUT_MS}")
            return _update(connection, key_id, now)
    # SQLite waits for its write lock at BEGIN IMMEDIATE: shorten the connection's busy timeout
    # before it (on the driver's connection, so that no transaction begins) and restore it after.
    raw = connection.connection.dbapi_connection
    assert raw is not None
    usual = raw.execute("PRAGMA busy_timeout").fetchone()[0]
    raw.execute(f"PRAGMA busy_timeout = {LOCK_TIMEOUT_MS}")
    try:
        with connection.begin():
            return _update(connection, key_id, now)
    finally:
        raw.execute(f"PRAGMA busy_timeout = {int(usual)}")


def _update(connection: Connection, key_id: str, now: dt.datetime) -> bool:
    result = connection.execute(_TOUCH, {"key_id": key_id, "now": now, "stale_before": now - TOUCH_EVERY})
    return bool(result.rowcount)
