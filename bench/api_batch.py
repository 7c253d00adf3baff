"""Bulk send API throughput: ``POST /v1/messages/batch`` with 1,000 messages a request (each with
its own idempotency key), against a bare Flask endpoint storing the same items with one pipelined
``executemany`` in one transaction, measured in the same run.

    .venv/bin/python bench/api_batch.py [--duration 20] [--connections 4] [--workers 2] [--runs 3]
        [--batch 1000] [--gunicorn "..."]

Set-up, warm-up, alternation and CPU accounting are those of bench/api_send.py; the figure is
messages accepted per second (every item of every 200 answer; the script checks the database
afterwards: messages stored ≥ messages answered).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, text

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.api_send import APPS, HTML, measure, run_wrk, summary  # noqa: E402
from bench.common import (  # noqa: E402
    ccm_env,
    database_url,
    free_port,
    fresh_database,
    gunicorn,
    libpq_url,
    process,
    save,
    seed,
    wait_booted,
    wait_port,
)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--duration", type=int, default=20)
    parser.add_argument("--connections", type=int, default=4)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--runs", type=int, default=3, help="alternate runs of each app")
    parser.add_argument("--batch", type=int, default=1000, help="messages per request")
    parser.add_argument("--gunicorn", default="", help="extra gunicorn options for both apps")
    parser.add_argument("--only", choices=sorted(APPS), help="measure one app only")
    parser.add_argument("--name", default="api_batch", help="results file name (bench/results/NAME.json)")
    args = parser.parse_args()

    fresh_database()
    key = seed(profiles=1000, template_html=HTML)
    names = [args.only] if args.only else list(APPS)
    runs: dict[str, list[dict[str, Any]]] = {name: [] for name in names}
    env = {**ccm_env(), "BENCH_DSN": libpq_url()}
    wrk_env = {"BENCH_BATCH": str(args.batch)}
    for attempt in range(args.runs):
        for name in names:
            app, cwd = APPS[name]
            port, booted = free_port(), Path(f"/tmp/ccm-bench/booted-{name}")
            command = gunicorn(app, port, workers=args.workers, options=args.gunicorn.split(), booted_dir=booted)
            with process(command, env=env, cwd=cwd) as proc:
                wait_port(port)
                wait_booted(booted, args.workers, proc)
                warm = f"warm-{name}-{attempt}"
                run_wrk(
                    port, key=key, duration=3, connections=args.connections, run=warm, script="batch.lua", env=wrk_env
                )
                result = measure(
                    proc, port, key=key, args=args, run=f"{name}-{attempt}", script="batch.lua", per_request=args.batch
                )
            runs[name].append(result)
            print(
                f"{name:12} run {attempt + 1}: {result['accepted_per_s']:8.0f} messages/s"
                f"   p50 {result['p50_ms']:7.1f} ms   p99 {result['p99_ms']:7.1f} ms per request"
                f"   non-2xx {result['errors']}   CPU ms/msg {result['cpu_ms_per_accepted']}",
                flush=True,
            )
    report: dict[str, Any] = {
        "when": time.strftime("%Y-%m-%d %H:%M"),
        "batch": args.batch,
        "connections": args.connections,
        "duration_s": args.duration,
        "workers": args.workers,
        "gunicorn": args.gunicorn,
        "runs": runs,
    }
    for name in names:
        report[name] = {field: summary(runs[name], field) for field in ("accepted_per_s", "p99_ms", "p50_ms")}
        report[name]["cpu_ms_per_accepted"] = statistics.median(
            r["cpu_ms_per_accepted"]["involved"] for r in runs[name]
        )
        print(f"{name:12} messages/s {report[name]['accepted_per_s']}", flush=True)
    if len(names) == 2:
        ratios = [
            c["accepted_per_s"] / b["accepted_per_s"] for c, b in zip(runs["ccm"], runs["bare_insert"], strict=True)
        ]
        report["ratio"] = {"min": round(min(ratios), 3), "median": round(statistics.median(ratios), 3)}
        print(f"ratio ccm / bare executemany, per run: {[round(r, 2) for r in ratios]}", flush=True)
    if "ccm" in names:
        engine = create_engine(database_url())
        with engine.connect() as connection:
            stored = connection.execute(text("SELECT count(*) FROM message")).scalar_one()
        engine.dispose()
        answered = sum((r["requests"] - r["errors"]) * args.batch for r in runs["ccm"])
        report["messages_stored"] = stored
        print(f"messages stored: {stored} (answered in measured runs: {answered}, plus warm-ups)", flush=True)
        assert stored >= answered, "fewer messages stored than answered"
    save(args.name, report)


if __name__ == "__main__":
    main()
