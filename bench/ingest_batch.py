"""Event ingestion throughput: the Segment-spec ``POST /v1/batch`` with 100 events a request (each
with its own ``messageId``), against a bare Flask endpoint parsing the same JSON, in the same run.

    .venv/bin/python bench/ingest_batch.py [--duration 20] [--connections 4] [--workers 2] [--runs 3]
        [--batch 100] [--profiles 10000] [--gunicorn "..."]

The database is fresh and migrated, seeded with a workspace, a write key and ``--profiles``
profiles (``u0`` …, each on the device ``anon-<n>``) whose ids the events name: 70 % track, 20 %
page, 10 % identify with traits (bench/ingest.lua). Set-up, warm-up, alternation and CPU
accounting are those of bench/api_send.py (``measure``). The figure is events accepted per second
(every event of every 200 answer); afterwards the rows in ``event`` must be at least the events
answered 200, warm-ups included: an answer means the events are committed.
"""

from __future__ import annotations

import argparse
import base64
import statistics
import sys
import time
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, text

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.api_send import measure, run_wrk, summary  # noqa: E402
from bench.common import (  # noqa: E402
    REDIS_URL,
    ROOT,
    analyze,
    ccm_env,
    database_url,
    free_port,
    fresh_database,
    gunicorn,
    process,
    save,
    wait_booted,
    wait_port,
)

APPS = {"bare_flask": ("bare_app:app", ROOT / "bench"), "ccm": ("ccm.wsgi:app", ROOT)}
SCRIPT = "ingest.lua"


def seed_ingest(*, profiles: int) -> str:
    """A workspace, its write key and ``profiles`` profiles, each with one anonymous id linked.

    Returns:
      The Basic credentials the clients send: base64 of ``<write key>:``.
    """
    from ccm.auth.models import ApiKeyRole
    from ccm.auth.service import create_api_key
    from ccm.config import Settings
    from ccm.ingest.models import ProfileAnonymousId
    from ccm.profiles.models import Profile
    from ccm.runtime import create_runtime
    from ccm.workspaces.service import get_or_create_workspace

    runtime = create_runtime(Settings(database_url=database_url(), redis_url=REDIS_URL, secret_key="bench-secret"))
    with runtime.db.unit_of_work() as session:
        ws, _ = get_or_create_workspace(session=session, name="bench")
        _, key = create_api_key(session=session, workspace_id=ws.id, name="web", role=ApiKeyRole.WRITE)
        people = [
            Profile(workspace_id=ws.id, external_id=f"u{n}", email=f"user{n}@example.com", channels=["email"])
            for n in range(profiles)
        ]
        session.add_all(people)
        session.flush()
        session.add_all(
            ProfileAnonymousId(workspace_id=ws.id, anonymous_id=f"anon-{n}", profile_id=person.id)
            for n, person in enumerate(people)
        )
    runtime.close()
    return base64.b64encode(f"{key}:".encode()).decode()


def one_run(name: str, attempt: int, *, credentials: str, args: argparse.Namespace) -> dict[str, Any]:
    """Boot ``name`` under gunicorn, warm it up once every worker has booted, then measure it.
    The warm-up's figures are kept: its events count in the durability check."""
    app, cwd = APPS[name]
    port, booted = free_port(), Path(f"/tmp/ccm-bench/booted-{name}")
    command = gunicorn(app, port, workers=args.workers, options=args.gunicorn.split(), booted_dir=booted)
    wrk_env = {"BENCH_BATCH": str(args.batch), "BENCH_PROFILES": str(args.profiles)}
    with process(command, env=ccm_env(), cwd=cwd) as proc:
        wait_port(port)
        wait_booted(booted, args.workers, proc)
        warm = run_wrk(
            port,
            key=credentials,
            duration=3,
            connections=args.connections,
            run=f"warm-{name}-{attempt}",
            script=SCRIPT,
            env=wrk_env,
        )
        result = measure(
            proc,
            port,
            key=credentials,
            args=args,
            run=f"{name}-{attempt}",
            script=SCRIPT,
            per_request=args.batch,
            wrk_env=wrk_env,
        )
    result["warm_up"] = {"requests": warm["requests"], "errors": warm["errors"]}
    return result


def report_of(runs: dict[str, list[dict[str, Any]]], args: argparse.Namespace) -> dict[str, Any]:
    """Min / median / max of each app's runs, and the ratio CCM / baseline of each run."""
    report: dict[str, Any] = {
        "when": time.strftime("%Y-%m-%d %H:%M"),
        "batch": args.batch,
        "profiles": args.profiles,
        "connections": args.connections,
        "duration_s": args.duration,
        "workers": args.workers,
        "gunicorn": args.gunicorn,
        "runs": runs,
    }
    for name, measured in runs.items():
        report[name] = {field: summary(measured, field) for field in ("accepted_per_s", "p99_ms", "p50_ms")}
        report[name]["cpu_ms_per_accepted"] = statistics.median(r["cpu_ms_per_accepted"]["involved"] for r in measured)
        print(f"{name:12} events/s {report[name]['accepted_per_s']}  p99 ms {report[name]['p99_ms']}", flush=True)
    if len(runs) == 2:
        pairs = zip(runs["ccm"], runs["bare_flask"], strict=True)
        ratios = [c["accepted_per_s"] / b["accepted_per_s"] for c, b in pairs]
        report["ratio"] = {"min": round(min(ratios), 4), "median": round(statistics.median(ratios), 4)}
        print(f"ratio ccm / bare Flask, per run: {[round(r, 4) for r in ratios]}", flush=True)
    return report


def check_durable(runs: list[dict[str, Any]], batch: int) -> dict[str, int]:
    """Events stored against events answered 200 (measured runs and warm-ups): an answer must
    mean a commit. More may be stored: wrk drops the requests in flight when its time is up."""
    engine = create_engine(database_url())
    with engine.connect() as connection:
        stored = connection.execute(text("SELECT count(*) FROM event")).scalar_one()
    engine.dispose()
    answered = sum((r[part]["requests"] - r[part]["errors"]) * batch for r in runs for part in ("warm_up", "measured"))
    print(f"events stored: {stored} (answered 200, warm-ups included: {answered})", flush=True)
    assert stored >= answered, "fewer events stored than answered"
    return {"events_stored": stored, "events_answered": answered}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--duration", type=int, default=20)
    parser.add_argument("--connections", type=int, default=4)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--runs", type=int, default=3, help="alternate runs of each app")
    parser.add_argument("--batch", type=int, default=100, help="events per request")
    parser.add_argument("--profiles", type=int, default=10000, help="known users the events name")
    parser.add_argument("--gunicorn", default="", help="extra gunicorn options for both apps")
    parser.add_argument("--only", choices=sorted(APPS), help="measure one app only")
    parser.add_argument("--name", default="ingest_batch", help="results file name (bench/results/NAME.json)")
    args = parser.parse_args()

    fresh_database()
    credentials = seed_ingest(profiles=args.profiles)
    analyze()
    names = [args.only] if args.only else list(APPS)
    runs: dict[str, list[dict[str, Any]]] = {name: [] for name in names}
    for attempt in range(args.runs):
        for name in names:
            result = one_run(name, attempt, credentials=credentials, args=args)
            runs[name].append(result)
            print(
                f"{name:12} run {attempt + 1}: {result['accepted_per_s']:8.0f} events/s"
                f"   p50 {result['p50_ms']:7.1f} ms   p99 {result['p99_ms']:7.1f} ms per request"
                f"   non-2xx {result['errors']}   CPU ms/event {result['cpu_ms_per_accepted']}",
                flush=True,
            )
    report = report_of(runs, args)
    if "ccm" in names:
        measured = [{"warm_up": r["warm_up"], "measured": r} for r in runs["ccm"]]
        report.update(check_durable(measured, args.batch))
    save(args.name, report)


if __name__ == "__main__":
    main()
