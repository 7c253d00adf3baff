"""Counting an audience within a time budget (``CCM_SEGMENT_COUNT_BUDGET_MS``).

The exact count runs first, stopped by the database when the budget is spent: PostgreSQL's
``SET LOCAL statement_timeout`` inside a savepoint (its ``QueryCanceled`` is rolled back to the
savepoint), SQLite's progress handler. An interrupted count answers an estimate instead, marked
``approximate``: the same rules counted over a sample of the workspace's profiles and scaled up
(PostgreSQL: ``TABLESAMPLE SYSTEM`` of about :data:`SAMPLE_ROWS` rows; SQLite: one row in
:data:`SQLITE_STRIDE`, drawn at random), under a budget of its own. Should that run out too,
PostgreSQL answers the planner's row estimate (``EXPLAIN (FORMAT JSON)``) and SQLite the number
of profiles in the workspace, an upper bound. So a count answers within about twice its budget
(:data:`ESTIMATE_MIN_MS` at least for the estimate).
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, FromClause, Select, func, literal_column, select, tablesample, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from ccm.db import dialect_of
from ccm.segments.compiler import Context
from ccm.segments.service import PROFILE, audience, context

SAMPLE_ROWS = 20_000
ESTIMATE_MIN_MS = 500
"""The estimate's own budget is the count's, but never less than this (a tiny budget would
otherwise leave no time to estimate either)."""
SQLITE_STRIDE = 20
_PROGRESS_STEPS = 5_000
"""SQLite virtual-machine steps between two looks at the clock."""

Build = Callable[[Context], ColumnElement[bool]]
"""Compiles the audience's condition for a context (so the same rules can run over a sample)."""


@dataclass(frozen=True)
class Count:
    count: int
    approximate: bool


class _OutOfTime(Exception):
    pass


def count_audience(session: Session, workspace_id: str, build: Build, *, now: dt.datetime, budget_ms: int) -> Count:
    """How many profiles ``build`` matches, exactly if that takes less than ``budget_ms``."""
    ctx = context(session, workspace_id, now=now)
    exact = _counted(audience(ctx, build(ctx)))
    try:
        with _budget(session, budget_ms):
            return Count(int(session.scalar(exact) or 0), False)
    except _OutOfTime:
        pass
    if dialect_of(session) == "postgresql":
        return _estimate_postgresql(session, workspace_id, build, now=now, budget_ms=budget_ms)
    return _estimate_sqlite(session, workspace_id, build, now=now, budget_ms=budget_ms)


def _counted(statement: Select[Any]) -> Select[Any]:
    return select(func.count()).select_from(statement.subquery())


@contextmanager
def _budget(session: Session, budget_ms: int) -> Iterator[None]:
    """Run the block in a savepoint the database interrupts after ``budget_ms``; raise
    :class:`_OutOfTime` when it did. The savepoint is always rolled back (it only read), which
    also ends PostgreSQL's ``SET LOCAL``."""
    savepoint = session.begin_nested()
    try:
        if dialect_of(session) == "postgresql":
            session.execute(text(f"SET LOCAL statement_timeout = {int(budget_ms)}"))
            yield
        else:
            with _sqlite_deadline(session, budget_ms):
                yield
    except DBAPIError as exc:
        if not _interrupted(exc):
            raise
        raise _OutOfTime from None
    finally:
        savepoint.rollback()


@contextmanager
def _sqlite_deadline(session: Session, budget_ms: int) -> Iterator[None]:
    raw: Any = session.connection().connection.dbapi_connection
    deadline = time.monotonic() + budget_ms / 1000
    raw.set_progress_handler(lambda: int(time.monotonic() > deadline), _PROGRESS_STEPS)
    try:
        yield
    finally:
        raw.set_progress_handler(None, 0)


def _interrupted(exc: DBAPIError) -> bool:
    """PostgreSQL's query_canceled (57014), or SQLite's "interrupted" from the progress handler."""
    code = getattr(exc.orig, "sqlstate", None)
    return code == "57014" or "interrupted" in str(exc.orig)


def _estimate_postgresql(
    session: Session, workspace_id: str, build: Build, *, now: dt.datetime, budget_ms: int
) -> Count:
    rows = session.scalar(text("SELECT reltuples FROM pg_class WHERE relname = 'profile'")) or 0
    percent = min(100.0, max(0.01, 100.0 * SAMPLE_ROWS / rows)) if rows > 0 else 100.0
    sample = tablesample(PROFILE, func.system(percent), name="profile", seed=literal_column("1"))
    try:
        with _budget(session, max(budget_ms, ESTIMATE_MIN_MS)):
            found = _sampled(session, workspace_id, build, now, sample)
            return Count(round(found * 100.0 / percent), True)
    except _OutOfTime:
        pass
    ctx = context(session, workspace_id, now=now)
    return Count(int(_planned_rows(session, audience(ctx, build(ctx)))), True)


def _sampled(session: Session, workspace_id: str, build: Build, now: dt.datetime, profile: FromClause) -> int:
    ctx = context(session, workspace_id, now=now, profile=profile)
    return int(session.scalar(_counted(audience(ctx, build(ctx)))) or 0)


def _planned_rows(session: Session, statement: Select[Any]) -> float:
    """The planner's estimate of the rows ``statement`` returns (it is not run)."""
    # Values rendered as quoted literals by SQLAlchemy (EXPLAIN cannot take the IN lists' expanded
    # parameters any other way).
    compiled = statement.compile(session.get_bind(), compile_kwargs={"literal_binds": True})
    plan = session.connection().exec_driver_sql(f"EXPLAIN (FORMAT JSON) {compiled}").scalar()
    if not plan:
        raise RuntimeError("EXPLAIN gave no plan")
    return float(plan[0]["Plan"]["Plan Rows"])


def _estimate_sqlite(session: Session, workspace_id: str, build: Build, *, now: dt.datetime, budget_ms: int) -> Count:
    ctx = context(session, workspace_id, now=now)
    one_in_stride = func.abs(func.random()) % SQLITE_STRIDE == 0  # random: a stride over rowid aliases with data
    sampled = audience(ctx, build(ctx)).where(one_in_stride)
    try:
        with _budget(session, max(budget_ms, ESTIMATE_MIN_MS)):
            return Count(int(session.scalar(_counted(sampled)) or 0) * SQLITE_STRIDE, True)
    except _OutOfTime:
        pass
    everyone = select(func.count()).where(PROFILE.c.workspace_id == workspace_id, PROFILE.c.merged_into_id.is_(None))
    return Count(int(session.scalar(everyone) or 0), True)
