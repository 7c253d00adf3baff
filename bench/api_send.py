"""Transactional send API throughput and latency, against a bare Flask endpoint doing one durable
INSERT on the same database, measured in the same run.

    .venv/bin/python bench/api_send.py [--duration 20] [--connections 8] [--workers 2] [--runs 3]
        [--gunicorn "-k gthread --threads 2"]

Both apps run under the same gunicorn settings, driven by wrk over loopback with the same request
body (a unique ``Idempotency-Key`` each). CCM runs on PostgreSQL + Redis with no worker consuming
(this measures accepting). The database is ANALYZEd after seeding and before each measured run;
each app's gunicorn workers have all booted before a 3-second warm-up. The two apps are measured
alternately ``--runs`` times; min and median are printed. CPU per accepted message is read from
/proc for exactly the processes involved: the app's gunicorn processes, the PostgreSQL backends
connected to the benchmark database, wrk, and — shared with whatever else runs on the machine —
PostgreSQL's own processes (WAL writer, checkpointer, autovacuum) and redis-server. Afterwards
the number of messages stored is checked against the number of 202 answers.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, text

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.common import (  # noqa: E402
    ROOT,
    analyze,
    ccm_env,
    database_backends,
    database_url,
    free_port,
    fresh_database,
    gunicorn,
    involved_cpu,
    libpq_url,
    pids_of,
    postgres_auxiliaries,
    process,
    process_tree,
    save,
    seed,
    wait_booted,
    wait_port,
    wrk,
)

HTML = "<p>Hello {{ first_name }}, your order {{ order }} is confirmed.</p>"
APPS = {"bare_insert": ("bare_insert:app", ROOT / "bench"), "ccm": ("ccm.wsgi:app", ROOT)}


def run_wrk(
    port: int,
    *,
    key: str,
    duration: int,
    connections: int,
    run: str,
    script: str = "send.lua",
    env: dict[str, str] | None = None,
) -> dict[str, float]:
    return wrk(
        f"http://127.0.0.1:{port}",
        duration=duration,
        connections=connections,
        script=ROOT / "bench" / script,
        env={"CCM_KEY": key, "BENCH_PROFILES": "1000", "BENCH_RUN": run, **(env or {})},
    )


def measure(
    proc: subprocess.Popen[bytes],
    port: int,
    *,
    key: str,
    args: argparse.Namespace,
    run: str,
    script: str = "send.lua",
    per_request: int = 1,
    wrk_env: dict[str, str] | None = None,
) -> dict[str, Any]:
    """One measured wrk run with the CPU every involved process used, per accepted message
    (``per_request`` messages in each 2xx answer); ``wrk_env`` reaches the wrk script."""
    analyze()
    cpu: dict[str, float] = {}
    groups = {
        "app": lambda: process_tree(proc.pid),
        "postgres": database_backends,
        "postgres_shared": postgres_auxiliaries,
        "redis": lambda: pids_of("redis-server"),
    }
    env = {"BENCH_BATCH": str(per_request), **(wrk_env or {})}
    with involved_cpu(cpu, groups):
        result: dict[str, Any] = run_wrk(
            port, key=key, duration=args.duration, connections=args.connections, run=run, script=script, env=env
        )
    accepted = (result["requests"] - result["errors"]) * per_request
    result["accepted_per_s"] = round(accepted / args.duration, 1)
    result["cpu_ms_per_accepted"] = {name: round(seconds * 1000 / max(accepted, 1), 4) for name, seconds in cpu.items()}
    own = ("app", "postgres", "load")
    result["cpu_ms_per_accepted"]["involved"] = round(sum(result["cpu_ms_per_accepted"][n] for n in own), 4)
    return result


def summary(runs: list[dict[str, Any]], field: str) -> dict[str, float]:
    values = [run[field] for run in runs]
    return {"min": min(values), "median": statistics.median(values), "max": max(values)}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--duration", type=int, default=20)
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--runs", type=int, default=3, help="alternate runs of each app")
    parser.add_argument(
        "--gunicorn", default="", help="extra gunicorn options for both apps, e.g. '-k gthread --threads 2'"
    )
    parser.add_argument("--only", choices=sorted(APPS), help="measure one app only")
    parser.add_argument("--name", default="api_send", help="results file name (bench/results/NAME.json)")
    args = parser.parse_args()

    fresh_database()
    key = seed(profiles=1000, template_html=HTML)
    names = [args.only] if args.only else list(APPS)
    runs: dict[str, list[dict[str, Any]]] = {name: [] for name in names}
    env = {**ccm_env(), "BENCH_DSN": libpq_url()}
    for attempt in range(args.runs):
        for name in names:
            app, cwd = APPS[name]
            port, booted = free_port(), Path(f"/tmp/ccm-bench/booted-{name}")
            with process(
                gunicorn(app, port, workers=args.workers, options=args.gunicorn.split(), booted_dir=booted),
                env=env,
                cwd=cwd,
            ) as proc:
                wait_port(port)
                wait_booted(booted, args.workers, proc)
                run_wrk(port, key=key, duration=3, connections=args.connections, run=f"warm-{name}-{attempt}")
                result = measure(proc, port, key=key, args=args, run=f"{name}-{attempt}")
            runs[name].append(result)
            print(
                f"{name:12} run {attempt + 1}: {result['accepted_per_s']:7.0f} accepted/s"
                f"   p50 {result['p50_ms']:6.2f} ms   p99 {result['p99_ms']:6.2f} ms   non-2xx {result['errors']}"
                f"   CPU ms/msg {result['cpu_ms_per_accepted']}",
                flush=True,
            )
    report: dict[str, Any] = {
        "when": time.strftime("%Y-%m-%d %H:%M"),
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
        print(f"{name:12} accepted/s {report[name]['accepted_per_s']}  p99 ms {report[name]['p99_ms']}", flush=True)
    if len(names) == 2:
        ratios = [
            c["accepted_per_s"] / b["accepted_per_s"] for c, b in zip(runs["ccm"], runs["bare_insert"], strict=True)
        ]
        report["ratio"] = {"min": round(min(ratios), 3), "median": round(statistics.median(ratios), 3)}
        print(f"ratio ccm / bare durable insert, per run: {[round(r, 2) for r in ratios]}", flush=True)
    if "ccm" in names:
        engine = create_engine(database_url())
        with engine.connect() as connection:
            stored = connection.execute(text("SELECT count(*) FROM message")).scalar_one()
        engine.dispose()
        answered = sum(r["requests"] - r["errors"] for r in runs["ccm"])
        report["messages_stored"] = stored
        print(f"messages stored: {stored} (202s answered in measured runs: {answered}, plus warm-ups)", flush=True)
        assert stored >= answered, "fewer messages stored than accepted"
    save(args.name, report)


if __name__ == "__main__":
    main()
