"""Event storage that grows: monthly partitions made ahead, retention, the dedupe window."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from sqlalchemy import text

from ccm.db import utcnow
from ccm.ingest import partitions, tasks
from ccm.ingest.service import ingest
from ccm.ingest.spec import calls_of


def _track(runtime: Any, workspace_id: str, received_at: dt.datetime, message_id: str) -> int:
    body = {"userId": "u1", "event": "Viewed", "messageId": message_id}
    with runtime.db.unit_of_work() as session:
        calls = calls_of(body, kind="track", received_at=received_at, ip=None)
        return ingest(session=session, workspace_id=workspace_id, calls=calls, received_at=received_at).stored


def _partitions(runtime: Any) -> list[str]:
    with runtime.db.read_only() as session:
        return list(session.execute(text(partitions._PARTITIONS)).scalars())


@pytest.fixture
def postgres(runtime: Any) -> Any:
    if runtime.db.is_sqlite:
        pytest.skip("partitions are PostgreSQL's; on SQLite the event table is a plain one")
    yield runtime
    with runtime.db.unit_of_work() as session:  # the real months back, whatever a test dropped
        partitions.create_ahead(session.connection(), utcnow().date())


def test_months_are_made_ahead_once_and_an_event_lands_in_its_month(postgres, workspace):
    with postgres.db.unit_of_work() as session:
        made = partitions.create_ahead(session.connection(), dt.date(2099, 1, 15))
    with postgres.db.unit_of_work() as session:
        again = partitions.create_ahead(session.connection(), dt.date(2099, 1, 15))

    assert (made, again) == (["event_2099_01", "event_2099_02", "event_2099_03"], [])
    _track(postgres, workspace[0], dt.datetime(2099, 2, 10, tzinfo=dt.UTC), "feb")
    _track(postgres, workspace[0], dt.datetime(2199, 1, 1, tzinfo=dt.UTC), "no-month-yet")
    with postgres.db.read_only() as session:
        placed = dict(session.execute(text("SELECT message_id, tableoid::regclass::text FROM event")).all())
    assert placed == {"feb": "event_2099_02", "no-month-yet": "event_default"}


def test_retention_drops_whole_months_older_than_the_setting_and_keeps_the_rest(postgres, workspace):
    with postgres.db.unit_of_work() as session:
        partitions.create_ahead(session.connection(), dt.date(2099, 1, 1))
    _track(postgres, workspace[0], dt.datetime(2099, 1, 5, tzinfo=dt.UTC), "old")
    _track(postgres, workspace[0], dt.datetime(2099, 2, 5, tzinfo=dt.UTC), "kept")

    with postgres.db.unit_of_work() as session:
        dropped = partitions.drop_older(session, dt.date(2099, 3, 20), keep_months=1)

    assert "event_2099_01" in dropped and "event_2099_02" not in dropped
    assert {"event_2099_02", "event_2099_03", "event_default"} <= set(_partitions(postgres))
    with postgres.db.read_only() as session:
        assert list(session.execute(text("SELECT message_id FROM event")).scalars()) == ["kept"]


def test_retention_off_drops_nothing(postgres):
    with postgres.db.unit_of_work() as session:
        assert partitions.drop_older(session, dt.date(2199, 1, 1), keep_months=0) == []


def test_a_message_id_is_forgotten_after_the_dedupe_window(runtime, workspace):
    long_ago = utcnow() - dt.timedelta(days=40)
    assert _track(runtime, workspace[0], long_ago, "m-1") == 1
    assert _track(runtime, workspace[0], utcnow(), "m-1") == 0  # within the window: a duplicate

    with runtime.db.unit_of_work() as session:
        assert partitions.purge_seen(session, days=30) == 1

    assert _track(runtime, workspace[0], utcnow(), "m-1") == 1


def test_the_periodic_job_makes_this_months_partitions(runtime):
    tasks.maintain(runtime)

    if not runtime.db.is_sqlite:
        this_month = partitions.partition_name(partitions.month_start(utcnow().date()))
        assert this_month in _partitions(runtime)


@pytest.mark.parametrize(
    ("day", "shift", "month"),
    [
        (dt.date(2026, 12, 31), 0, dt.date(2026, 12, 1)),
        (dt.date(2026, 12, 2), 1, dt.date(2027, 1, 1)),
        (dt.date(2027, 1, 9), -13, dt.date(2025, 12, 1)),
    ],
)
def test_month_arithmetic_crosses_years(day, shift, month):
    assert partitions.month_start(day, shift) == month


def test_only_the_event_partitions_are_hidden_from_the_schema_comparison():
    assert partitions.is_partition("event_2026_12") and partitions.is_partition("event_default")
    assert not partitions.is_partition("event") and not partitions.is_partition("event_seen")
