"""PostgreSQL plans of segment conditions on a seeded, ANALYZEd database: an event condition
reads the event table through its ``(workspace_id, name, occurred_at)`` index, an engagement
condition through ``(workspace_id, kind, occurred_at)``, never scanning every event of every
workspace."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import create_engine, insert, text
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session

from ccm.db import utcnow
from ccm.engagement.models import EngagementEvent
from ccm.ingest.models import Event
from ccm.profiles.models import Profile
from ccm.segments import service
from tests.conftest import DATABASE_URL
from tests.segments.conftest import tree
from tests.test_postgres_plans import nodes

pytestmark = pytest.mark.skipif(not DATABASE_URL, reason="needs CCM_TEST_DATABASE_URL (PostgreSQL)")

PROFILES, EVENTS, NAMES = 2000, 60000, 40


@pytest.fixture
def seeded(runtime, workspace) -> Iterator[tuple[Connection, str]]:
    workspace_id = workspace[0]
    engine = create_engine(runtime.settings.resolved_database_url)
    now = utcnow()
    with engine.begin() as connection:
        profiles = [
            {"id": f"prf_{n:026d}", "workspace_id": workspace_id, "external_id": f"u{n}"} for n in range(PROFILES)
        ]
        connection.execute(insert(Profile.__table__), profiles)
        connection.execute(
            insert(Event.__table__),
            [
                {
                    "id": f"evt_{n:026d}",
                    "workspace_id": workspace_id,
                    "received_at": now - dt.timedelta(minutes=n % 9000),
                    "profile_id": profiles[n % PROFILES]["id"],
                    "kind": "track",
                    "name": f"event_{n % NAMES}",
                    "message_id": f"m{n}",
                    "occurred_at": now - dt.timedelta(minutes=n),
                    "properties": {"total": n % 100},
                }
                for n in range(EVENTS)
            ],
        )
        connection.execute(
            insert(EngagementEvent.__table__),
            [
                {
                    "id": f"eng_{n:026d}",
                    "workspace_id": workspace_id,
                    "profile_id": profiles[n % PROFILES]["id"],
                    "kind": ("delivered", "opened", "clicked", "sent")[n % 4],
                    "source": "test",
                    "channel": "email",
                    "occurred_at": now - dt.timedelta(minutes=n),
                }
                for n in range(EVENTS // 2)
            ],
        )
        connection.execute(text("ANALYZE"))
    with engine.connect() as connection:
        yield connection, workspace_id
    engine.dispose()


def explain(connection: Connection, rules: dict[str, Any]) -> list[tuple[str, str | None, str | None]]:
    with Session(connection) as session:
        statement = service.rules_query(session, _workspace(connection), tree(rules), now=utcnow())
    sql = str(statement.compile(dialect=connection.dialect, compile_kwargs={"literal_binds": True}))
    found = connection.exec_driver_sql("EXPLAIN (FORMAT JSON) " + sql).scalar_one()
    connection.rollback()
    return [(n["Node Type"], n.get("Relation Name"), n.get("Index Name")) for n in nodes(found[0]["Plan"])]


def _workspace(connection: Connection) -> str:
    return connection.execute(text("SELECT workspace_id FROM profile LIMIT 1")).scalar_one()


def test_an_event_condition_reads_the_events_index(seeded):
    connection, _ = seeded
    scans = explain(
        connection, {"event": "event_7", "count": {"op": "at_least", "value": 2}, "within_last": {"days": 7}}
    )
    holding = set(connection.execute(text("SELECT DISTINCT tableoid::regclass::text FROM event")).scalars())
    event_scans = [scan for scan in scans if scan[1] in holding]  # empty partitions ahead may be seq-scanned
    assert event_scans and all(scan[0] != "Seq Scan" for scan in event_scans), scans
    assert any(index and "name_occurred" in index for _, _, index in event_scans), scans


def test_an_engagement_condition_reads_the_kind_index(seeded):
    connection, _ = seeded
    scans = explain(connection, {"engagement": "clicked", "within_last": {"days": 1}})
    assert ("Seq Scan", "engagement_event", None) not in scans, scans
    assert any(index == "ix_engagement_event_workspace_kind_time" for _, _, index in scans), scans
