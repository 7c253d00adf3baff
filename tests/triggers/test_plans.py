"""PostgreSQL plans of the triggers' hot queries, on a seeded, ANALYZEd database: a cancel
event's lookup and the release of due firings read the partial indexes of pending firings,
never the whole table (the table holds every firing ever made; those indexes hold only what
waits)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import create_engine, insert, text
from sqlalchemy.engine import Connection

from ccm.db import utcnow
from ccm.profiles.models import Profile
from ccm.triggers.firing import due_query, waiting_query
from ccm.triggers.models import TriggerFire
from tests.conftest import DATABASE_URL
from tests.test_postgres_plans import nodes
from tests.triggers.conftest import make_trigger, publish_cart_template

pytestmark = pytest.mark.skipif(not DATABASE_URL, reason="needs CCM_TEST_DATABASE_URL (PostgreSQL)")

PROFILES, FIRES = 2000, 40000


@pytest.fixture
def seeded(api, runtime, workspace) -> Iterator[tuple[Connection, str]]:
    """Many firings of one delayed trigger over many profiles, one in twenty still pending."""
    publish_cart_template(api)
    make_trigger(api, delay_seconds=3600, cancel={"event": "order_completed", "match_property": "cart_id"})
    engine = create_engine(runtime.settings.resolved_database_url)
    with engine.begin() as connection:
        trigger_id, version_id = connection.execute(text("SELECT trigger_id, id FROM trigger_version")).one()
        _seed(connection, workspace[0], trigger_id, version_id)
        connection.execute(text("ANALYZE"))
    with engine.connect() as connection:
        yield connection, workspace[0]
    engine.dispose()


def _seed(connection: Connection, workspace_id: str, trigger_id: str, version_id: str) -> None:
    now = utcnow()
    profiles = [{"id": f"prf_{n:026d}", "workspace_id": workspace_id, "external_id": f"u{n}"} for n in range(PROFILES)]
    connection.execute(insert(Profile.__table__), profiles)
    connection.execute(
        insert(TriggerFire.__table__),
        [
            {
                "id": f"fire_{n:026d}",
                "workspace_id": workspace_id,
                "trigger_id": trigger_id,
                "trigger_version_id": version_id,
                "profile_id": profiles[n % PROFILES]["id"],
                "event_id": f"evt_{n:026d}",
                "event_message_id": f"m-{n}",
                "message_id": None,
                "due_at": now + dt.timedelta(seconds=n % 7200 - 3600),
                "cancel_event": "order_completed",
                "cancel_match": f'"c-{n}"',
                "status": "pending" if n % 20 == 0 else "released",
                "reason": None,
                "created_at": now,
                "updated_at": now,
            }
            for n in range(FIRES)
        ],
    )


def explain(connection: Connection, statement: Any) -> list[tuple[str, str | None, str | None]]:
    sql = str(statement.compile(dialect=connection.dialect, compile_kwargs={"literal_binds": True}))
    found = connection.exec_driver_sql("EXPLAIN (FORMAT JSON) " + sql).scalar_one()
    connection.rollback()
    return [(n["Node Type"], n.get("Relation Name"), n.get("Index Name")) for n in nodes(found[0]["Plan"])]


def test_a_cancel_events_lookup_reads_the_pending_index(seeded):
    connection, workspace_id = seeded

    scans = explain(connection, waiting_query(workspace_id, [f"prf_{17:026d}"], ["order_completed"], utcnow()))

    assert ("Seq Scan", "trigger_fire", None) not in scans, scans
    assert any(index == "ix_trigger_fire_pending_cancel" for _, _, index in scans), scans


def test_the_release_of_due_firings_reads_the_pending_due_index(seeded):
    connection, _ = seeded

    scans = explain(connection, due_query(utcnow(), 10_000))

    assert ("Seq Scan", "trigger_fire", None) not in scans, scans
    assert any(index == "ix_trigger_fire_pending_due" for _, _, index in scans), scans
