"""How long segment counts and audience reads take on PostgreSQL, over a large workspace.

    .venv/bin/python bench/segment_count.py [--profiles 1000000] [--events 2000000] [--runs 3]

Seeds with set-based inserts (``INSERT … SELECT generate_series``): profiles with geography,
demography and plan attributes, track events over the last 90 days (three names), engagement
events and consent records; runs ANALYZE; then for a few rule shapes prints the exact count's
time (median of ``--runs``), the time to read the whole audience in keyset chunks of 10,000 ids
(as a campaign's fan-out does), what the budgeted count (``CCM_SEGMENT_COUNT_BUDGET_MS``, 2 s)
answers, and the EXPLAIN ANALYZE summary of the count.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.common import REDIS_URL, analyze, database_url, fresh_database  # noqa: E402

SHAPES: dict[str, dict[str, Any]] = {
    "attribute equals (country = FR)": {"attribute": "attributes.country", "op": "equals", "value": "FR"},
    "attribute range and text (age 25..34, plan pro)": {
        "and": [
            {"attribute": "attributes.age", "op": "between", "values": [25, 34]},
            {"attribute": "attributes.plan", "op": "equals", "value": "pro"},
        ]
    },
    "signed up in the last 30 days (Paris)": {
        "attribute": "created_at",
        "op": "within_last",
        "value": {"days": 30},
        "timezone": "Europe/Paris",
    },
    "order_completed >= 2 times in 30 days": {
        "event": "order_completed",
        "count": {"op": "at_least", "value": 2},
        "within_last": {"days": 30},
    },
    "never added_to_cart": {"event": "added_to_cart", "count": {"op": "at_most", "value": 0}},
    "opened an email in 30 days": {"engagement": "opened", "within_last": {"days": 30}},
    "reachable on email (topic news)": {"reachable": "email", "topic": "news"},
    "nested: FR and (ordered big or opened) and not sms-first": {
        "and": [
            {"attribute": "attributes.country", "op": "equals", "value": "FR"},
            {
                "or": [
                    {
                        "event": "order_completed",
                        "where": [{"property": "properties.total", "op": "gte", "value": 150}],
                        "within_last": {"days": 60},
                    },
                    {"engagement": "opened", "within_last": {"days": 30}},
                ]
            },
            {"not": {"attribute": "best_channel", "op": "equals", "value": "sms"}},
        ]
    },
}

_PROFILES = """
INSERT INTO profile (id, workspace_id, external_id, email, chat, attributes, channels, preferences,
                     engagement, engagement_score, best_channel, created_at, updated_at)
SELECT 'prf_' || lpad(g::text, 26, '0'), :ws, 'u' || g, 'u' || g || '@example.com', '{}',
       jsonb_build_object('country', (ARRAY['FR','DE','US','GB','ES'])[1 + g % 5], 'age', 18 + g % 60,
                          'plan', CASE WHEN g % 10 = 0 THEN 'pro' ELSE 'free' END,
                          'city', (ARRAY['Paris','Lyon','Berlin','Austin','Leeds','Madrid','Nantes'])[1 + g % 7]),
       '[]', '{}', '{}', (g % 100) / 100.0, CASE WHEN g % 3 = 0 THEN 'sms' ELSE 'email' END,
       now() - (g % 1000) * interval '1 day', now()
FROM generate_series(1, :n) AS g
"""
_EVENTS = """
INSERT INTO event (id, workspace_id, received_at, profile_id, kind, name, message_id, occurred_at,
                   properties, context, notes)
SELECT 'evt_' || lpad(g::text, 26, '0'), :ws, now() - (g % 90) * interval '1 day',
       'prf_' || lpad((1 + abs(hashtext('p' || g)) % :n)::text, 26, '0'), 'track',
       (ARRAY['order_completed','viewed_product','added_to_cart'])[1 + abs(hashtext('e' || g)) % 3], 'm' || g,
       now() - (g % 90) * interval '1 day' - (g % 86400) * interval '1 second',
       jsonb_build_object('total', g % 200), '{}', '[]'
FROM generate_series(1, :e) AS g
"""
_ENGAGEMENT = """
INSERT INTO engagement_event (id, workspace_id, profile_id, message_id, channel, kind, machine, source,
                              dedupe_key, detail, occurred_at, recorded_at)
SELECT 'eng_' || lpad(g::text, 26, '0'), :ws, 'prf_' || lpad((1 + abs(hashtext('o' || g)) % :n)::text, 26, '0'),
       NULL, 'email', (ARRAY['delivered','opened','clicked','opened'])[1 + g % 4], g % 10 = 0, 'bench',
       NULL, '{}', now() - (g % 60) * interval '1 day', now()
FROM generate_series(1, :e / 2) AS g
"""
_CONSENT = """
INSERT INTO consent_record (id, workspace_id, profile_id, channel, topic, status, source, proof, recorded_at)
SELECT 'cns_' || lpad(g::text, 26, '0'), :ws, 'prf_' || lpad((1 + abs(hashtext('c' || g)) % :n)::text, 26, '0'),
       'email', CASE WHEN g % 2 = 0 THEN 'news' ELSE '*' END, CASE WHEN g % 3 = 0 THEN 'revoked' ELSE 'granted' END,
       'bench', '{}', now() - g * interval '1 second'
FROM generate_series(1, :n / 10) AS g
"""


def seed(runtime: Any, profiles: int, events: int) -> str:
    from sqlalchemy import text

    from ccm.workspaces.service import get_or_create_workspace

    with runtime.db.unit_of_work() as session:
        workspace, _ = get_or_create_workspace(session=session, name="bench")
        workspace_id = workspace.id
    started = time.perf_counter()
    with runtime.db.engine.begin() as connection:
        for name, sql in (
            ("profiles", _PROFILES),
            ("events", _EVENTS),
            ("engagement", _ENGAGEMENT),
            ("consent", _CONSENT),
        ):
            step = time.perf_counter()
            connection.execute(text(sql), {"ws": workspace_id, "n": profiles, "e": events})
            print(f"  seeded {name} in {time.perf_counter() - step:.1f} s", flush=True)
    analyze()
    print(f"seeded {profiles:,} profiles and {events:,} events in {time.perf_counter() - started:.1f} s, ANALYZEd")
    return workspace_id


def measure(runtime: Any, workspace_id: str, rules: dict[str, Any], runs: int) -> dict[str, Any]:
    from sqlalchemy import func, select

    from ccm.db import utcnow
    from ccm.profiles.models import Profile
    from ccm.segments.compiler import compile_node
    from ccm.segments.counting import count_audience
    from ccm.segments.rules import NODE_ADAPTER
    from ccm.segments.service import rules_query

    tree = NODE_ADAPTER.validate_python(rules, strict=False)
    times, chunked = [], []
    with runtime.db.read_only() as session:
        query = rules_query(session, workspace_id, tree, now=utcnow())
        for _ in range(runs):
            started = time.perf_counter()
            count = session.scalar(select(func.count()).select_from(query.subquery()))
            times.append(time.perf_counter() - started)
        started, cursor, read = time.perf_counter(), "", 0
        while True:
            chunk = session.scalars(query.where(Profile.id > cursor).order_by(Profile.id).limit(10_000)).all()
            if not chunk:
                break
            read, cursor = read + len(chunk), chunk[-1]
        chunked.append(time.perf_counter() - started)
        budgeted = count_audience(
            session, workspace_id, lambda ctx: compile_node(tree, ctx), now=utcnow(), budget_ms=2000
        )
        plan = explain_analyze(session, select(func.count()).select_from(query.subquery()))
    assert read == count, (read, count)
    return {
        "count": count,
        "seconds": statistics.median(times),
        "chunks": chunked[0],
        "budgeted": budgeted,
        "plan": plan,
    }


def explain_analyze(session: Any, statement: Any) -> str:
    compiled = statement.compile(session.get_bind(), compile_kwargs={"literal_binds": True})
    found = session.connection().exec_driver_sql(f"EXPLAIN (ANALYZE, FORMAT JSON) {compiled}").scalar()[0]
    kinds = sorted(
        {f"{n['Node Type']}{' ' + n['Index Name'] if n.get('Index Name') else ''}" for n in _nodes(found["Plan"])}
    )
    return f"{found['Execution Time']:.0f} ms: " + ", ".join(kinds)


def _nodes(node: dict[str, Any]) -> Any:
    yield node
    for child in node.get("Plans", []):
        yield from _nodes(child)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--profiles", type=int, default=1_000_000)
    parser.add_argument("--events", type=int, default=2_000_000)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()

    from ccm.config import Settings
    from ccm.runtime import create_runtime

    fresh_database()
    runtime = create_runtime(Settings(database_url=database_url(), redis_url=REDIS_URL, secret_key="bench-secret"))
    workspace_id = seed(runtime, args.profiles, args.events)
    print(f"\n| rule shape | matches | count (median of {args.runs}) | audience, 10k keyset chunks | budgeted (2 s) |")
    print("|---|---:|---:|---:|---|")
    plans = []
    for name, rules in SHAPES.items():
        found = measure(runtime, workspace_id, rules, args.runs)
        budgeted = found["budgeted"]
        answer = f"{budgeted.count:,} {'approximate' if budgeted.approximate else 'exact'}"
        print(
            f"| {name} | {found['count']:,} | {found['seconds'] * 1000:.0f} ms | {found['chunks']:.2f} s | {answer} |",
            flush=True,
        )
        plans.append(f"- {name}: {found['plan']}")
    print("\nEXPLAIN ANALYZE of each count:")
    print("\n".join(plans))
    runtime.close()


if __name__ == "__main__":
    main()
