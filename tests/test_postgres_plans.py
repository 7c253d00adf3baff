"""PostgreSQL plans for the hot queries: on a seeded, ANALYZEd database each one uses its index —
no sequential scan of messages, profiles, attempts, job rows or keys — both as planned for the
values given (a custom plan) and as a prepared statement planned once for any values (the
generic plan PostgreSQL may switch to after five executions, as the app's prepared statements do)."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from typing import Any

import psycopg.sql
import pytest
from sqlalchemy import and_, bindparam, create_engine, event, insert, select, text
from sqlalchemy.engine import Connection

from ccm import jobs
from ccm.auth.models import ApiKey
from ccm.auth.service import _CALLER
from ccm.db import utcnow
from ccm.idempotency.models import IdempotencyKey
from ccm.ingest.models import Event
from ccm.ingest.partitions import month_start, partition_name
from ccm.jobs import _LEASE_JOB, PendingJob
from ccm.messages.accept import _LOOKUP
from ccm.messages.bulk import _batch_statement
from ccm.messages.claims import DELIVER, DELIVER_BATCH
from ccm.messages.models import DeliveryAttempt, Message
from ccm.messages.rules import _SENT_SINCE
from ccm.pagination import PageQuery, paginate
from ccm.profiles.models import Profile
from ccm.profiles.search import search_statements
from ccm.workspaces.models import Workspace
from tests.conftest import DATABASE_URL
from tests.support.factories import publish_template

pytestmark = pytest.mark.skipif(not DATABASE_URL, reason="needs CCM_TEST_DATABASE_URL (PostgreSQL)")

THIS_MONTH = partition_name(month_start(utcnow().date()))
"""The partition of ``event`` the seeded events land in (received now)."""
WATCHED = {"message", "profile", "delivery_attempt", "job_outbox", "idempotency_key", "api_key", THIS_MONTH}
_m, _a, _p, _j = Message.__table__, DeliveryAttempt.__table__, Profile.__table__, PendingJob.__table__
_e = Event.__table__


@pytest.fixture
def seeded(api, runtime, workspace) -> Iterator[tuple[Connection, dict[str, Any]]]:
    """Two workspaces' worth of profiles, messages (with attempts), job rows and keys, ANALYZEd."""
    publish_template(api)
    workspace_id = workspace[0]
    engine = create_engine(runtime.settings.resolved_database_url)
    with engine.begin() as connection:
        other = "ws_other"
        connection.execute(insert(Workspace.__table__).values(id=other, name="other"))
        version = connection.execute(text("SELECT id FROM template_version")).scalar_one()
        _seed(connection, [workspace_id, other], version)
        connection.execute(text("ANALYZE"))
    with engine.connect() as connection:
        yield connection, {"workspace_id": workspace_id, "version_id": version}
    engine.dispose()


def _seed(connection: Connection, workspaces: list[str], version: str) -> None:
    now = utcnow()
    profiles = [
        {"id": f"prf_{w}{n:024d}", "workspace_id": ws, "external_id": f"u{n}", "email": f"u{n}@example.com"}
        for w, ws in enumerate(workspaces)
        for n in range(2500)
    ]
    connection.execute(insert(_p), profiles)
    messages, attempts, jobs, keys = [], [], [], []
    for n in range(20000):
        profile = profiles[n % len(profiles)]
        message_id = f"msg_{n:026d}"
        messages.append(
            {
                "id": message_id,
                "workspace_id": profile["workspace_id"],
                "profile_id": profile["id"],
                "source": "api",
                "send_key": f"api:{message_id}",
                "category": "transactional",
                "template_version_id": version,
                "template_key": "welcome",
                "template_version": 1,
                "status": "delivered" if n % 50 else "queued",
                "deadline_at": now,
                "provider_message_id": f"pm-{n}",
                "created_at": now - dt.timedelta(seconds=20000 - n),
                "updated_at": now,
            }
        )
        attempts.append(
            {
                "id": f"att_{n:026d}",
                "message_id": message_id,
                "number": 1,
                "channel": "email",
                "provider": "smtp",
                "outcome": "delivered",
                "provider_message_id": f"pm-{n}",
            }
        )
        if n % 4 == 0:
            jobs.append(
                {
                    "key": f"messages.deliver:{message_id}",
                    "actor": "messages.deliver",
                    "queue": "deliveries",
                    "args": [message_id],
                    "due_at": now + dt.timedelta(seconds=30 + n % 600),
                }
            )
            keys.append(
                {
                    "workspace_id": profile["workspace_id"],
                    "key": f"key-{n}",
                    "request_hash": "0" * 64,
                    "status_code": 202,
                    "response": {"id": message_id, "status": "queued"},
                    "expires_at": now + dt.timedelta(days=2),
                }
            )
    events = [
        {
            "id": f"evt_{n:026d}",
            "workspace_id": profiles[n % len(profiles)]["workspace_id"],
            "received_at": now,
            "profile_id": profiles[n % len(profiles)]["id"],
            "kind": "track",
            "name": "Viewed",
            "message_id": f"m-{n}",
            "occurred_at": now - dt.timedelta(seconds=n),
            "properties": {},
            "context": {},
            "notes": [],
        }
        for n in range(20000)
    ]
    for table, rows in (
        (_m, messages),
        (_a, attempts),
        (_j, jobs),
        (IdempotencyKey.__table__, keys),
        (Event.__table__, events),
    ):
        connection.execute(insert(table), rows)
    connection.execute(
        insert(ApiKey.__table__),
        [
            {"id": f"key_{n:026d}", "workspace_id": workspaces[n % 2], "prefix": "ccm_x", "digest": f"{n:064d}"}
            for n in range(2000)
        ],
    )


def plan(connection: Connection, statement: Any, params: dict[str, Any], *, generic: bool) -> dict[str, Any]:
    """The plan PostgreSQL makes for ``statement``: for these values, or generic (any values)."""
    compiled = statement.compile(dialect=connection.dialect)
    expanded = compiled.construct_expanded_state(params)  # an IN list: one parameter per value
    sql, names = expanded.statement, list(expanded.positiontup or [])
    if not names:  # pyformat: %(name)s, in the order they appear
        import re

        names = re.findall(r"%\((\w+)\)s", sql)
        sql = re.sub(r"%\((\w+)\)s", "%s", sql)
    processors = compiled._bind_processors | expanded.processors
    values = []
    for name in names:
        value = expanded.parameters[name]
        values.append(processors[name](value) if name in processors else value)
    if not generic:
        return _explain(connection, "EXPLAIN (FORMAT JSON) " + sql, values)
    numbered, count = sql, 0
    while "%s" in numbered:
        count += 1
        numbered = numbered.replace("%s", f"${count}", 1)
    connection.exec_driver_sql("DEALLOCATE ALL")
    connection.exec_driver_sql(f"PREPARE hot AS {numbered}")
    connection.exec_driver_sql("SET plan_cache_mode = force_generic_plan")
    try:
        dbapi = connection.connection.dbapi_connection
        literals = ", ".join(psycopg.sql.Literal(value).as_string(dbapi) for value in values)  # type: ignore[arg-type]
        return _explain(
            connection,
            f"EXPLAIN (FORMAT JSON) EXECUTE hot({literals})" if values else "EXPLAIN (FORMAT JSON) EXECUTE hot",
            [],
        )
    finally:
        connection.exec_driver_sql("RESET plan_cache_mode")
        connection.exec_driver_sql("DEALLOCATE hot")


def _explain(connection: Connection, sql: str, values: list[Any]) -> dict[str, Any]:
    raw = connection.exec_driver_sql(sql, tuple(values)).scalar_one()
    connection.rollback()
    document = raw if isinstance(raw, list) else json.loads(raw)
    return document[0]["Plan"]


def nodes(node: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield node
    for child in node.get("Plans", []):
        yield from nodes(child)


def assert_uses(found: dict[str, Any], *indexes: str) -> None:
    scans = [(n["Node Type"], n.get("Relation Name"), n.get("Index Name")) for n in nodes(found)]
    sequential = [scan for scan in scans if scan[0] == "Seq Scan" and scan[1] in WATCHED]
    assert sequential == [], scans
    used = {scan[2] for scan in scans if scan[2]}
    for alternatives in indexes:  # "a|b": either index serves the query
        assert used & set(alternatives.split("|")), scans


def hot_queries(values: dict[str, Any]) -> list[tuple[str, Any, dict[str, Any], tuple[str, ...]]]:
    workspace_id = values["workspace_id"]
    profile_id = f"prf_0{17:024d}"
    now = utcnow()
    [by_email] = search_statements(workspace_id=workspace_id, query="u1234@")
    [by_external_id] = search_statements(workspace_id=workspace_id, query="u1234")
    return [
        (
            "customer search: an email prefix",
            paginate(by_email, Profile.id, PageQuery(limit=25)),
            {},
            ("ix_profile_workspace_email",),
        ),
        (
            "customer search: an external id prefix",
            paginate(by_external_id, Profile.id, PageQuery(limit=25)),
            {},
            ("uq_profile_workspace_id_external_id",),
        ),
        ("api key", _CALLER, {"digest": f"{7:064d}"}, ("uq_api_key_digest",)),
        (
            "accept lookup: profile, latest version, stored key",
            _LOOKUP,
            {"workspace_id": workspace_id, "external_id": "u17", "template": "welcome", "key": "key-4"},
            ("uq_profile_workspace_id_external_id", "pk_idempotency_key"),
        ),
        (
            "batch profiles",
            _batch_statement("profiles", "postgresql"),
            {"workspace_id": workspace_id, "names": [f"u{n}" for n in range(10)]},
            ("uq_profile_workspace_id_external_id",),
        ),
        (
            "batch keys",
            _batch_statement("keys", "postgresql"),
            {"workspace_id": workspace_id, "names": [f"key-{n}" for n in range(0, 40, 4)]},
            ("pk_idempotency_key",),
        ),
        (
            "relay: anything due",
            select(_j.c.id).where(_j.c.due_at <= bindparam("now")).order_by(_j.c.due_at).limit(1),
            {"now": now},
            ("ix_job_outbox_due_at",),
        ),
        (
            "relay: take the due rows",
            select(_j.c.key, _j.c.args)
            .where(_j.c.due_at <= bindparam("now"))
            .order_by(_j.c.due_at)
            .limit(500)
            .with_for_update(skip_locked=True),
            {"now": now + dt.timedelta(seconds=60)},
            ("ix_job_outbox_due_at",),
        ),
        (
            "a job's lease (every delivery batch: one per message)",
            _LEASE_JOB,
            {"b_key": f"messages.deliver:msg_{400:026d}", "b_due": now + dt.timedelta(hours=1)},
            ("uq_job_outbox_key",),
        ),
        (
            "timeline: a profile's messages",
            select(_m)
            .where(_m.c.profile_id == bindparam("profile_id"))
            .order_by(_m.c.created_at.desc(), _m.c.id.desc())
            .limit(51),
            {"profile_id": profile_id},
            ("ix_message_profile_created",),
        ),
        (
            "timeline: a profile's activity (ingested events)",
            select(_e)
            .where(_e.c.profile_id == bindparam("profile_id"))
            .order_by(_e.c.occurred_at.desc(), _e.c.id.desc())
            .limit(51),
            {"profile_id": profile_id},
            (f"{THIS_MONTH}_profile_id_occurred_at_id_idx",),
        ),
        (
            "message list",
            select(_m).where(_m.c.workspace_id == bindparam("workspace_id")).order_by(_m.c.id.desc()).limit(51),
            {"workspace_id": workspace_id},
            ("ix_message_workspace_id|pk_message",),
        ),
        (
            "message list after a cursor",
            select(_m)
            .where(_m.c.workspace_id == bindparam("workspace_id"), _m.c.id < bindparam("cursor"))
            .order_by(_m.c.id.desc())
            .limit(51),
            {"workspace_id": workspace_id, "cursor": f"msg_{10000:026d}"},
            ("ix_message_workspace_id|pk_message",),
        ),
        (
            "message list of one profile",
            select(_m)
            .where(_m.c.workspace_id == bindparam("workspace_id"), _m.c.profile_id == bindparam("profile_id"))
            .order_by(_m.c.id.desc())
            .limit(51),
            {"workspace_id": workspace_id, "profile_id": profile_id},
            ("ix_message_profile_created",),
        ),
        (
            "frequency caps: what a profile was sent lately",
            _SENT_SINCE,
            {
                "b_workspace": workspace_id,
                "b_profile": profile_id,
                "b_self": "msg_0",
                "b_since": now - dt.timedelta(days=7),
            },
            ("ix_message_profile_created",),
        ),
        (
            "provider report: the message behind a provider id",
            select(_m.c.id, _m.c.status)
            .join(_a, _a.c.message_id == _m.c.id)
            .where(and_(_a.c.provider_message_id == bindparam("pid"), _m.c.workspace_id == bindparam("workspace_id")))
            .limit(1),
            {"pid": "pm-1234", "workspace_id": workspace_id},
            ("ix_delivery_attempt_provider_message_id", "pk_message"),
        ),
    ]


@pytest.mark.parametrize("generic", [False, True], ids=["custom plan", "generic plan"])
def test_every_hot_query_uses_its_index(seeded, generic):
    connection, values = seeded
    for name, statement, params, indexes in hot_queries(values):
        try:
            assert_uses(plan(connection, statement, params, generic=generic), *indexes)
        except AssertionError as exc:
            raise AssertionError(f"{name}: {exc}") from None


def test_message_pages_keep_room_for_heap_only_updates(seeded):
    connection, _ = seeded
    options = dict(
        connection.execute(
            text("SELECT relname, reloptions FROM pg_class WHERE relname IN ('message', 'delivery_attempt')")
        ).all()
    )
    assert options == {"message": ["fillfactor=70"], "delivery_attempt": ["fillfactor=90"]}
    indexed = connection.execute(
        text(
            "SELECT a.attname FROM pg_index i JOIN pg_attribute a"
            " ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey) WHERE i.indrelid = 'message'::regclass"
        )
    ).scalars()
    changed_by_deliveries = {
        "status",
        "provider_message_id",
        "claim_token",
        "claimed_at",
        "channel",
        "to_address",
        "updated_at",
        "finished_at",
        "next_attempt_at",
        "reason",
        "route",
        "claims",
    }
    assert set(indexed) & changed_by_deliveries == set()


def _lease(runtime, ids: list[str]) -> None:  # type: ignore[no-untyped-def]
    jobs.lease(runtime, DELIVER_BATCH, ids)


def _finish(runtime, ids: list[str]) -> None:  # type: ignore[no-untyped-def]
    with runtime.db.unit_of_work() as session:
        jobs.finish_many(session, DELIVER, [(one,) for one in ids])


@pytest.mark.parametrize(("run", "statement"), [(_lease, "UPDATE job_outbox"), (_finish, "DELETE FROM job_outbox")])
def test_the_outbox_is_never_scanned_by_a_plan_made_while_it_was_empty(runtime, run, statement):
    """A worker's connection prepares its statements, and PostgreSQL may switch a prepared statement
    to one generic plan after five runs, planned for the table's size of the moment. The outbox is
    often near empty, and then a campaign releases thousands of rows into it: a generic plan made
    on one page is a sequential scan of all of them, for every job of every batch (3 of 16
    backends were busy on leases through a campaign before this was fixed)."""
    engine = runtime.db.engine
    now, ids = utcnow(), [f"msg_{n:026d}" for n in range(5080)]
    rows = [jobs.outbox_row(DELIVER, one, grace=60, now=now) for one in ids]
    with engine.begin() as connection:
        connection.execute(text("TRUNCATE job_outbox"))
        connection.execute(text("ANALYZE job_outbox"))  # empty: relpages 0, reltuples 0
        connection.execute(insert(_j), rows[:80])
    for batch in range(8):  # a quiet moment: the connection prepares its statement, on an outbox of one page
        run(runtime, ids[batch * 10 : (batch + 1) * 10])
    with engine.begin() as connection:  # then a campaign's release
        connection.execute(insert(_j), rows[80:])
    ids = ids[80:]
    scans: list[tuple[int, int]] = []  # (sequential, index) scans of the outbox by this backend, not yet flushed

    def count_scans(conn, cursor, sql, parameters, context, executemany):  # type: ignore[no-untyped-def]
        if sql.startswith(statement):
            counts = conn.exec_driver_sql(
                "SELECT seq_scan, idx_scan FROM pg_stat_xact_user_tables WHERE relname = 'job_outbox'"
            ).one()
            scans.append((int(counts[0] or 0), int(counts[1] or 0)))

    event.listen(engine, "after_cursor_execute", count_scans)
    try:
        for batch in range(8):
            run(runtime, ids[batch * 50 : (batch + 1) * 50])
    finally:
        event.remove(engine, "after_cursor_execute", count_scans)
    assert len(scans) == 8
    sequential = [b[0] - a[0] for a, b in zip(scans, scans[1:], strict=False)]
    by_key = [b[1] - a[1] for a, b in zip(scans, scans[1:], strict=False)]
    assert sequential == [0] * 7, "the outbox was scanned whole"
    assert by_key == [50] * 7  # each of a batch's 50 jobs found by its key
