"""How fast a campaign's results and its CSV export are on PostgreSQL (issue 10).

    BENCH_DATABASE=bench_res BENCH_ADMIN_URL=postgresql+psycopg://postgres@127.0.0.1:5432/postgres \\
      .venv/bin/python bench/campaign_results.py [--messages 100000] [--runs 5]

Seeds set-based (``generate_series``, no Python per row): an A/B campaign of ``--messages``
recipients (sent, delivered, bounced, skipped with reasons, still queued), their attempts, opens
(people and machines), clicks, replies, unsubscriptions and delivery reports; a 5 % holdout;
``order_completed`` conversions and other events as noise; and as many messages of other sources
around it. Then ANALYZE, and times ``GET /results`` (its SQL and the whole request), the timeline,
``results.csv`` and the streamed ``export.csv`` (with the peak memory Python allocated for it),
each the median of ``--runs`` after a warm-up.
"""

from __future__ import annotations

import argparse
import datetime as dt
import statistics
import sys
import time
import tracemalloc
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.common import REDIS_URL, analyze, database_url, fresh_database, save, seed  # noqa: E402

SEED = """
INSERT INTO profile (id, workspace_id, external_id, email, chat, attributes, channels, created_at, updated_at)
SELECT format('pro_bench%s', lpad(n::text, 23, '0')), :ws, 'u' || n, 'user' || n || '@example.com',
       '{}', '{}', '["email"]', now(), now()
FROM generate_series(1, :people) AS n;

INSERT INTO campaign (id, workspace_id, name, status, category, segment_id, schedule, holdout_percent,
                      ab_test, goal, fanout_phase, fanout_chunks, released, throttled_by_provider,
                      fallback_timezone_count, holdout_count, id_seed, created_at, updated_at, launched_at)
VALUES (:campaign, :ws, 'bench', 'running', 'marketing', 'seg_bench', '{}', 5,
        '{"sample_percent": 100, "wait_hours": 4, "metric": "clicked", "winner": null}',
        '{"event": "order_completed", "within_hours": 72}', 'sample', 0, 0, 0, 0, 0, '', :launch, :launch, :launch);
INSERT INTO campaign_variant (id, campaign_id, key, template, weight)
VALUES ('cmv_bench_a', :campaign, 'A', 'bench', 1), ('cmv_bench_b', :campaign, 'B', 'bench', 1);

-- n % 100 decides what happened: 0-1 queued, 2-6 skipped, 7-9 bounced, 10-49 delivered, 50-99 sent
INSERT INTO message (id, workspace_id, profile_id, source, send_key, category, template_version_id,
                     template_key, template_version, data, route, status, reason, deadline_at, claims,
                     created_at, updated_at, finished_at, channel, to_address, campaign_id, variant)
SELECT format('msg_bench%s', lpad(n::text, 23, '0')), :ws, format('pro_bench%s', lpad(n::text, 23, '0')),
       'campaign', :campaign || ':' || n, 'marketing', :version, 'bench', 1, '{}', '[]',
       CASE WHEN n % 100 < 2 THEN 'queued' WHEN n % 100 < 7 THEN 'skipped' WHEN n % 100 < 10 THEN 'failed'
            WHEN n % 100 < 50 THEN 'delivered' ELSE 'sent' END,
       CASE WHEN n % 100 < 2 THEN NULL WHEN n % 100 < 5 THEN 'no_consent: email, marketing'
            WHEN n % 100 < 7 THEN 'quiet_hours: 22:00-08:00' WHEN n % 100 < 10 THEN 'bounced: 550 5.1.1'
            ELSE 'sent' END,
       :launch + interval '3 days', 1, :launch, :launch,
       CASE WHEN n % 100 >= 7 THEN :launch + (n % 3600) * interval '1 second' END,
       'email', 'user' || n || '@example.com', :campaign, CASE WHEN n % 2 = 0 THEN 'A' ELSE 'B' END
FROM generate_series(1, :messages) AS n;

-- messages of other sources around the campaign's (the results must not read them)
INSERT INTO message (id, workspace_id, profile_id, source, send_key, category, template_version_id,
                     template_key, template_version, data, route, status, reason, deadline_at, claims,
                     created_at, updated_at, finished_at, channel, to_address)
SELECT format('msg_other%s', lpad(n::text, 23, '0')), :ws,
       format('pro_bench%s', lpad((n % :messages + 1)::text, 23, '0')),
       'api', 'api:' || n, 'transactional', :version, 'bench', 1, '{}', '[]', 'sent', 'sent',
       :launch + interval '3 days', 1, :launch, :launch, :launch, 'email', 'user' || n || '@example.com'
FROM generate_series(1, :messages) AS n;

INSERT INTO delivery_attempt (id, message_id, number, channel, provider, outcome, started_at, finished_at, hops)
SELECT 'att_' || substr(m.id, 5), m.id, 1, 'email', 'smtp', 'sent', m.finished_at, m.finished_at, '[]'
FROM message m WHERE m.campaign_id = :campaign AND m.status IN ('sent', 'delivered', 'failed');

-- engagement: by a hash of the message, opens (people 30 % of A, 35 % of B), machine opens, clicks ...
INSERT INTO engagement_event (id, workspace_id, profile_id, message_id, channel, kind, machine, source,
                              dedupe_key, detail, occurred_at, recorded_at)
SELECT 'evt_' || k.tag || substr(m.id, 10), :ws, m.profile_id, m.id, 'email', k.kind, k.machine, 'bench',
       'bench:' || k.tag || m.id, '{}', m.finished_at + k.after, now()
FROM message m
JOIN (VALUES ('o', 'opened', false, interval '20 minutes', 30, 35),
             ('m', 'opened', true, interval '1 minute', 15, 15),
             ('c', 'clicked', false, interval '25 minutes', 4, 6),
             ('r', 'replied', false, interval '3 hours', 1, 1),
             ('u', 'unsubscribed', false, interval '30 minutes', 1, 1),
             ('d', 'delivered', false, interval '5 seconds', 100, 100))
     AS k(tag, kind, machine, after, share_a, share_b)
  ON (abs(hashtext(m.id || k.tag)) % 100) < CASE WHEN m.variant = 'A' THEN k.share_a ELSE k.share_b END
WHERE m.campaign_id = :campaign AND m.status IN ('sent', 'delivered') AND (k.tag <> 'd' OR m.status = 'delivered');
INSERT INTO engagement_event (id, workspace_id, profile_id, message_id, channel, kind, machine, source,
                              dedupe_key, detail, occurred_at, recorded_at)
SELECT 'evt_b' || substr(m.id, 10), :ws, m.profile_id, m.id, 'email', 'bounced', false, 'bench',
       'bench:b' || m.id, '{}', m.finished_at + interval '1 minute', now()
FROM message m WHERE m.campaign_id = :campaign AND m.status = 'failed';

-- the holdout: the profiles after the campaign's recipients
INSERT INTO campaign_holdout (campaign_id, profile_id, added_at)
SELECT :campaign, format('pro_bench%s', lpad(n::text, 23, '0')), :launch
FROM generate_series(:messages + 1, :people) AS n;

-- conversions (4 % within the window, 1 % after it) and page views as noise, for everyone
INSERT INTO event (id, workspace_id, received_at, profile_id, kind, name, message_id, occurred_at,
                   properties, context, notes)
SELECT format('evt_conv%s_%s', n, e.k), :ws, now(), format('pro_bench%s', lpad(n::text, 23, '0')), 'track',
       e.name, format('bench-%s-%s', n, e.k), :launch + e.after, '{}', '{}', '[]'
FROM generate_series(1, :people) AS n
JOIN (VALUES (1, 'order_completed', interval '5 hours', 4), (2, 'order_completed', interval '100 hours', 1),
             (3, 'page_viewed', interval '2 hours', 100), (4, 'page_viewed', interval '30 hours', 100))
     AS e(k, name, after, share)
  ON (abs(hashtext(n::text || e.k)) % 100) < e.share;
"""


def seed_campaign(messages: int) -> tuple[str, str]:
    from sqlalchemy import create_engine, text

    seed(profiles=0, template_html="<p>Order {{ order }} for {{ first_name }}</p>")
    engine = create_engine(database_url())
    campaign = "cmp_BENCH" + "0" * 21
    with engine.begin() as connection:
        ws = connection.execute(text("SELECT id FROM workspace")).scalar_one()
        version = connection.execute(text("SELECT id FROM template_version")).scalar_one()
        params = {
            "ws": ws,
            "campaign": campaign,
            "version": version,
            "messages": messages,
            "people": messages + messages // 20,
            "launch": dt.datetime(2026, 12, 1, 9, 0),
        }
        for statement in SEED.split(";\n"):
            if statement.strip():
                connection.execute(text(statement), params)
    engine.dispose()
    return ws, campaign


def timed(runs: int, work: Any) -> dict[str, float]:
    work()  # warm-up: connections, plans, caches
    seconds = []
    for _ in range(runs):
        started = time.perf_counter()
        work()
        seconds.append(time.perf_counter() - started)
    summaries = {"median_ms": statistics.median, "min_ms": min, "max_ms": max}
    return {name: round(1000 * summary(seconds), 1) for name, summary in summaries.items()}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--messages", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()

    from sqlalchemy import text

    from ccm.app import create_app
    from ccm.auth.service import create_api_key
    from ccm.campaigns.models import Campaign
    from ccm.campaigns.results import campaign_results
    from ccm.config import Settings
    from ccm.runtime import create_runtime

    fresh_database()
    started = time.perf_counter()
    ws, campaign_id = seed_campaign(args.messages)
    seeded = time.perf_counter() - started
    analyze()
    runtime = create_runtime(Settings(database_url=database_url(), redis_url=REDIS_URL, secret_key="bench-secret"))
    with runtime.db.unit_of_work() as session:
        _, key = create_api_key(session=session, workspace_id=ws)
    client = create_app(runtime=runtime).test_client()
    headers = {"Authorization": f"Bearer {key}"}

    def service() -> None:
        with runtime.db.read_only() as session:
            campaign_results(session, session.get_one(Campaign, campaign_id))

    def get(path: str) -> Any:
        response = client.get(f"/v1/campaigns/{campaign_id}/{path}", headers=headers)
        assert response.status_code == 200, response.get_data(as_text=True)[:500]
        return response

    def export() -> None:
        response = client.get(f"/v1/campaigns/{campaign_id}/export.csv", headers=headers, buffered=False)
        lines = sum(chunk.count(b"\n") for chunk in response.response)
        response.close()
        assert lines == args.messages + args.messages // 20 + 1, lines

    def baseline() -> None:
        # the floor: one pass over the campaign's messages, counted by variant
        with runtime.db.read_only() as session:
            session.execute(
                text("SELECT variant, count(*) FROM message WHERE workspace_id = :ws AND campaign_id = :c GROUP BY 1"),
                {"ws": ws, "c": campaign_id},
            ).all()

    result: dict[str, Any] = {"messages": args.messages, "seed_seconds": round(seeded, 1)}
    result["baseline_scan"] = timed(args.runs, baseline)
    result["results_sql"] = timed(args.runs, service)
    result["results_http"] = timed(args.runs, lambda: get("results"))
    result["timeline_http"] = timed(args.runs, lambda: get("results/timeline?hours=72"))
    result["results_csv"] = timed(args.runs, lambda: get("results.csv"))
    result["export_csv"] = timed(max(1, args.runs // 2), export)
    tracemalloc.start()
    export()
    result["export_peak_python_mib"] = round(tracemalloc.get_traced_memory()[1] / 2**20, 1)
    tracemalloc.stop()
    total = get("results").json["total"]["counts"]
    result["counts"] = total
    runtime.close()
    result["load_average"] = Path("/proc/loadavg").read_text().split()[:3]
    save("campaign_results", result)
    for name, value in result.items():
        print(f"{name}: {value}")


if __name__ == "__main__":
    main()
