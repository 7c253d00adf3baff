"""Where a campaign email's delivery time goes, in one process and one thread: a seeded campaign
is launched through the API and fanned out, then its messages are delivered B at a time by
calling ``messages.deliver_batch``'s body directly (no broker, no worker threads) into Postfix's
``smtp-sink``, under cProfile; with the CPU per message of this process and of its PostgreSQL
backends, and the statements per message.

    .venv/bin/python bench/profile_campaign_delivery.py [--profiles 5000] [--batch 50] [--top 30]

Run it twice with ``--no-profile`` to compare versions: cProfile's own cost is about as large as
what it measures.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import os
import pstats
import sys
import time
from pathlib import Path

from sqlalchemy import event, text

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.campaign_fanout import REACHABLE, bench_runtime, launch_campaign, seed_profiles  # noqa: E402
from bench.common import (  # noqa: E402
    analyze,
    cpu_seconds,
    database_backends,
    free_port,
    fresh_database,
    need,
    process,
    wait_port,
)


def campaign_messages(runtime, workspace_id: str) -> list[str]:  # type: ignore[no-untyped-def]
    """Launch a campaign to everyone reachable by email and fan it out here; its message ids."""
    from ccm.campaigns.engine import run_fanout

    campaign_id, _ = launch_campaign(runtime, workspace_id, REACHABLE, "profiled")
    run_fanout(runtime, campaign_id)
    with runtime.db.read_only() as session:
        return list(
            session.scalars(text("SELECT id FROM message WHERE campaign_id = :c ORDER BY id"), {"c": campaign_id})
        )


def deliver(runtime, ids: list[str], batch: int, profiler: cProfile.Profile | None) -> dict[str, float]:  # type: ignore[no-untyped-def]
    from ccm.messages.batch import deliver_batch

    statements = 0

    def count(*_: object) -> None:
        nonlocal statements
        statements += 1

    event.listen(runtime.db.engine, "before_cursor_execute", count)
    backends = database_backends()
    backend_before, started, cpu_before = cpu_seconds(backends), time.perf_counter(), time.process_time()
    if profiler is not None:
        profiler.enable()
    for start in range(0, len(ids), batch):
        deliver_batch(runtime, ids[start : start + batch])
    if profiler is not None:
        profiler.disable()
    cpu, wall = time.process_time() - cpu_before, time.perf_counter() - started
    backend = cpu_seconds(backends) - backend_before
    event.remove(runtime.db.engine, "before_cursor_execute", count)
    return {
        "messages": len(ids),
        "per_second": round(len(ids) / wall, 1),
        "cpu_ms_per_message": round(cpu * 1000 / len(ids), 3),
        "postgres_ms_per_message": round(backend * 1000 / len(ids), 3),
        "statements_per_message": round(statements / len(ids), 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--profiles", type=int, default=5_000)
    parser.add_argument("--batch", type=int, default=50)
    parser.add_argument("--top", type=int, default=30)
    parser.add_argument("--no-profile", action="store_true")
    parser.add_argument("--sort", default="cumulative")
    args = parser.parse_args()
    sink, port = need("smtp-sink", "postfix"), free_port()
    fresh_database()
    with process([sink, "-u", "nobody", "-m", "1024", f"127.0.0.1:{port}", "1024"]):
        wait_port(port)
        runtime = bench_runtime(smtp_url=f"smtp://127.0.0.1:{port}?local_hostname=localhost", log_level="WARNING")
        workspace_id, _ = seed_profiles(runtime, args.profiles, 0)
        analyze()
        ids = campaign_messages(runtime, workspace_id)
        analyze()
        warm, measured = ids[: 4 * args.batch], ids[4 * args.batch :]
        deliver(runtime, warm, args.batch, None)
        # Timed by this process's CPU clock: on a shared machine wall time charges whatever call was
        # running when the scheduler took the core away (a getrandom() once looked like 0.3 ms).
        profiler = None if args.no_profile else cProfile.Profile(time.process_time)
        result = deliver(runtime, measured, args.batch, profiler)
        with runtime.db.read_only() as session:
            sent = session.scalar(
                text("SELECT count(*) FROM message WHERE id = ANY(:ids) AND status = 'sent'"), {"ids": measured}
            )
        runtime.close()
    print(f"{result}  sent {sent}", flush=True)
    if profiler is not None:
        out = io.StringIO()
        stats = pstats.Stats(profiler, stream=out)
        stats.sort_stats(args.sort).print_stats(args.top)
        print(out.getvalue().replace(os.getcwd() + "/", ""))


if __name__ == "__main__":
    main()
