"""Open-tracking hits per second and latency, against a bare Flask endpoint in the same run.

    .venv/bin/python bench/tracking.py [--duration 20] [--connections 8]

Both apps run under gunicorn with 2 workers; wrk requests an open pixel of a real message (the
token is verified, the hit pushed to Redis, the GIF returned). Afterwards the buffered hits are
written by the batch writer and the events counted.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.common import (  # noqa: E402
    REDIS_URL,
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


def pixel_path() -> str:
    """The open pixel of a real message (so the writer records real events afterwards)."""
    from ccm.config import Settings
    from ccm.messages.schemas import SendIn
    from ccm.messages.service import send_message
    from ccm.runtime import create_runtime
    from ccm.workspaces.service import get_or_create_workspace

    seed(profiles=1, template_html="<p>{{ first_name }} {{ order }}</p>")
    runtime = create_runtime(Settings(database_url=database_url(), redis_url=REDIS_URL, secret_key="bench-secret"))
    with runtime.db.unit_of_work() as session:
        ws, _ = get_or_create_workspace(session=session, name="bench")
        message = send_message(
            session=session,
            runtime=runtime,
            workspace_id=ws.id,
            idempotency_key=None,
            request=SendIn.model_validate({"to": {"external_id": "u0"}, "template": "bench", "data": {"order": "1"}}),
        )
    token = runtime.link_signer.sign({"m": message.id})
    runtime.close()
    return f"/t/o/{token}.gif"


def write_rate() -> tuple[int, float]:
    """Record every buffered hit with the batch writer; (events, events per second)."""
    from ccm.config import Settings
    from ccm.engagement.writer import drain_hits
    from ccm.runtime import create_runtime

    runtime = create_runtime(Settings(database_url=database_url(), redis_url=REDIS_URL, secret_key="bench-secret"))
    started, total = time.perf_counter(), 0
    while taken := drain_hits(runtime, limit=1000):
        total += taken
    elapsed = time.perf_counter() - started
    runtime.close()
    return total, total / elapsed if elapsed else 0.0


def run_wrk(port: int, path: str, *, duration: int, connections: int) -> dict[str, float]:
    return wrk(f"http://127.0.0.1:{port}{path}", duration=duration, connections=connections)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--duration", type=int, default=20)
    parser.add_argument("--connections", type=int, default=8)
    args = parser.parse_args()
    fresh_database()
    path = pixel_path()
    results = {}
    for name, app, cwd in (("bare_flask", "bare_pixel:app", ROOT / "bench"), ("ccm", "ccm.wsgi:app", ROOT)):
        port = free_port()
        command = [
            sys.executable,
            "-m",
            "gunicorn",
            "-w",
            "2",
            "-b",
            f"127.0.0.1:{port}",
            "--log-level",
            "warning",
            app,
        ]
        with process(command, env=ccm_env(), cwd=cwd):
            wait_port(port)
            run_wrk(port, path, duration=3, connections=args.connections)
            cpu: dict[str, float] = {}
            with cpu_usage(cpu):
                results[name] = run_wrk(port, path, duration=args.duration, connections=args.connections)
            results[name]["cpu_ms_per_hit"] = {
                k: round(v * 1000 / results[name]["requests"], 3) for k, v in cpu.items() if v > 0.1
            }
        print(
            f"{name:10}  {results[name]['requests_per_s']:8.0f} hits/s   p50 {results[name]['p50_ms']:6.2f} ms"
            f"   p99 {results[name]['p99_ms']:6.2f} ms   non-2xx {results[name]['errors']}",
            flush=True,
        )
    ratio = results["ccm"]["requests_per_s"] / results["bare_flask"]["requests_per_s"]
    written, rate = write_rate()
    print(f"ratio ccm / bare flask: {ratio:.2f}   then the writer recorded {written} events at {rate:.0f}/s")
    save(
        "tracking",
        {
            "when": time.strftime("%Y-%m-%d %H:%M"),
            "connections": args.connections,
            "duration_s": args.duration,
            **results,
            "ratio": ratio,
            "events_written": written,
            "writer_events_per_s": round(rate),
        },
    )


if __name__ == "__main__":
    main()
