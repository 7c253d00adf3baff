"""Transactional send API throughput and latency, against a bare Flask endpoint in the same run.

    .venv/bin/python bench/api_send.py [--duration 20] [--connections 8]

Both apps run under gunicorn with 2 workers on this machine, driven by wrk over loopback with the
same request body. CCM runs on PostgreSQL + Redis (no worker consumes during the run: this
measures accepting). Afterwards the number of messages in the database is checked against the
number of 202 answers.
"""

from __future__ import annotations

import argparse
import sys
import time

from sqlalchemy import create_engine, text

sys.path.insert(0, str(__import__("pathlib").Path(__file__).resolve().parents[1]))
from bench.common import (  # noqa: E402
    ROOT,
    ccm_env,
    cpu_usage,
    database_url,
    free_port,
    fresh_database,
    process,
    save,
    seed,
    wait_port,
    wrk,
)

HTML = "<p>Hello {{ first_name }}, your order {{ order }} is confirmed.</p>"


def run_wrk(port: int, *, key: str, duration: int, connections: int, run: str) -> dict[str, float]:
    env = {"CCM_KEY": key, "BENCH_PROFILES": "1000", "BENCH_RUN": run}
    return wrk(
        f"http://127.0.0.1:{port}",
        duration=duration,
        connections=connections,
        script=ROOT / "bench" / "send.lua",
        env=env,
    )


def gunicorn(app: str, port: int, extra: list[str]) -> list[str]:
    return [
        sys.executable,
        "-m",
        "gunicorn",
        "-w",
        "2",
        *extra,
        "-b",
        f"127.0.0.1:{port}",
        "--log-level",
        "warning",
        app,
    ]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--duration", type=int, default=20)
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument(
        "--gunicorn", default="", help="extra gunicorn options for both apps, e.g. '-k gthread --threads 4'"
    )
    args = parser.parse_args()
    extra = args.gunicorn.split()

    fresh_database()
    key = seed(profiles=1000, template_html=HTML)
    results = {}
    for name, app, cwd in (("bare_flask", "bare_app:app", ROOT / "bench"), ("ccm", "ccm.wsgi:app", ROOT)):
        port = free_port()
        with process(gunicorn(app, port, extra), env=ccm_env(), cwd=cwd):
            wait_port(port)
            run_wrk(port, key=key, duration=3, connections=args.connections, run=f"warm-{name}")
            cpu: dict[str, float] = {}
            with cpu_usage(cpu):
                results[name] = run_wrk(port, key=key, duration=args.duration, connections=args.connections, run=name)
            served = results[name]["requests"]
            results[name]["cpu_ms_per_request"] = {k: round(v * 1000 / served, 3) for k, v in cpu.items()}
        print(
            f"{name:10}  {results[name]['requests_per_s']:8.0f} req/s   p50 {results[name]['p50_ms']:6.2f} ms"
            f"   p99 {results[name]['p99_ms']:6.2f} ms   non-2xx {results[name]['errors']}",
            flush=True,
        )
        print(f"            CPU ms per request: {results[name]['cpu_ms_per_request']}", flush=True)
    engine = create_engine(database_url())
    with engine.connect() as connection:
        stored = connection.execute(text("SELECT count(*) FROM message")).scalar_one()
    ratio = results["ccm"]["requests_per_s"] / results["bare_flask"]["requests_per_s"]
    accepted = results["ccm"]["requests"] - results["ccm"]["errors"]
    print(f"ratio ccm / bare flask: {ratio:.2f}   messages stored: {stored} (accepted incl. warm-up ≥ {accepted})")
    save(
        "api_send",
        {
            "when": time.strftime("%Y-%m-%d %H:%M"),
            "connections": args.connections,
            "duration_s": args.duration,
            "gunicorn": args.gunicorn,
            **results,
            "ratio": ratio,
            "messages_stored": stored,
        },
    )


if __name__ == "__main__":
    main()
