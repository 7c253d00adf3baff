"""A 100,000-recipient email campaign into Postfix's ``smtp-sink``, end to end — launch through
the API, fan-out, release pump, batched delivery over SMTP — next to a bare smtplib loop into the
same sink in the same run, with the workers' memory before and after, per process.

    .venv/bin/python bench/campaign_smtp.py [--profiles 115000] [--processes 2] [--threads 8]

A fresh database is seeded with ``ccm seed``'s generator (no events: the segment does not read
them); the segment is "reachable by email" (consent given, not suppressed, an email address), about
87 % of the people, so 115,000 profiles make ~100,000 recipients. ``dramatiq workers`` boot and warm
up on a small campaign first; then the measured campaign is launched and the script waits for
``completed``. The rate is the messages sent divided by the time from launch to the campaign's
``completed_at``, read from the database; CPU is read from /proc for the workers' process tree, this
database's PostgreSQL backends, PostgreSQL's shared processes, redis-server and smtp-sink.
"""

from __future__ import annotations

import argparse
import os
import smtplib
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, text

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.campaign_fanout import REACHABLE, api_client, bench_runtime, seed_profiles  # noqa: E402
from bench.common import (  # noqa: E402
    analyze,
    ccm_env,
    database_backends,
    database_url,
    free_port,
    fresh_database,
    involved_cpu,
    need,
    pids_of,
    postgres_auxiliaries,
    process,
    process_tree,
    rss_mib,
    save,
    wait_port,
)


def baseline(port: int, count: int, raw: bytes) -> float:
    """Messages per second for a bare smtplib loop over one connection."""
    with smtplib.SMTP("127.0.0.1", port, local_hostname="localhost") as smtp:
        started = time.perf_counter()
        for n in range(count):
            smtp.sendmail("noreply@example.com", [f"user{n % 1000}@example.com"], raw)
        return count / (time.perf_counter() - started)


def sample_raw(runtime, workspace_id: str) -> bytes:  # type: ignore[no-untyped-def]
    """The bytes one campaign email carries (rendered, footer and all), for the baseline."""
    from ccm.messages.outbound import load_pending, plan, prepare

    client, headers = api_client(runtime, workspace_id)
    sent = client.post(
        "/v1/messages",
        json={"to": {"external_id": "user-0000000"}, "template": "seed-newsletter", "channel": "email"},
        headers=headers,
    )
    if sent.status_code != 202:  # user-0000000 may have no email: take anyone who has one
        with runtime.db.read_only() as session:
            someone = session.execute(text("SELECT external_id FROM profile WHERE email IS NOT NULL LIMIT 1")).scalar()
        sent = client.post(
            "/v1/messages",
            json={"to": {"external_id": someone}, "template": "seed-newsletter", "channel": "email"},
            headers=headers,
        )
    with runtime.db.read_only() as session:
        planned = plan(runtime, session, load_pending(session, sent.json["id"]))
    return prepare(runtime, planned).outbound.raw


def launch(runtime, workspace_id: str, name: str, rules: dict[str, Any]) -> str:  # type: ignore[no-untyped-def]
    client, headers = api_client(runtime, workspace_id)
    segment = client.post("/v1/segments", json={"name": name, "rules": rules}, headers=headers)
    assert segment.status_code == 201, segment.json
    body = {"name": name, "template": "seed-newsletter", "segment": segment.json["id"], "channels": ["email"]}
    campaign = client.post("/v1/campaigns", json=body, headers=headers)
    assert campaign.status_code == 201, campaign.json
    launched = client.post(f"/v1/campaigns/{campaign.json['id']}/launch", headers=headers)
    assert launched.status_code == 200, launched.json
    return campaign.json["id"]


def wait_completed(campaign_id: str, timeout: float, tag: str) -> dict[str, Any]:
    """Wait for the campaign to end; its counts and rate from the database."""
    engine = create_engine(database_url())
    deadline = time.monotonic() + timeout
    with engine.connect() as connection:
        while True:
            row = connection.execute(
                text("SELECT status, released FROM campaign WHERE id = :c"), {"c": campaign_id}
            ).one()
            done = connection.execute(
                text("SELECT count(*) FROM message WHERE campaign_id = :c AND finished_at IS NOT NULL"),
                {"c": campaign_id},
            ).scalar_one()
            print(f"\r{tag}: {row.status}, released {row.released}, ended {done}", end="", file=sys.stderr, flush=True)
            if row.status in ("completed", "cancelled") or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        print(file=sys.stderr)
        result = connection.execute(
            text(
                "SELECT c.status, c.launched_at, c.completed_at, c.paused_reason,"
                " count(m.id) AS messages, count(*) FILTER (WHERE m.status = 'sent') AS sent,"
                " count(*) FILTER (WHERE m.status = 'skipped') AS skipped,"
                " count(*) FILTER (WHERE m.status = 'failed') AS failed, coalesce(sum(m.claims), 0) AS claims,"
                " count(DISTINCT m.profile_id) AS profiles"
                " FROM campaign c LEFT JOIN message m ON m.campaign_id = c.id WHERE c.id = :c"
                " GROUP BY c.id"
            ),
            {"c": campaign_id},
        ).one()
    engine.dispose()
    seconds = ((result.completed_at or result.launched_at) - result.launched_at).total_seconds()
    return {
        "status": result.status,
        "paused_reason": result.paused_reason,
        "messages": result.messages,
        "distinct_profiles": result.profiles,
        "sent": result.sent,
        "skipped": result.skipped,
        "failed": result.failed,
        "claims": int(result.claims),
        "seconds": round(seconds, 2),
        "per_second": round(result.sent / seconds, 1) if seconds else None,
    }


def sample_rss(pids: Callable[[], list[int]], every: float, into: list[dict[str, Any]], stop: threading.Event) -> None:
    """Append the worker processes' RSS (MiB) to ``into`` every ``every`` seconds until ``stop``."""
    started = time.monotonic()
    while not stop.wait(every):
        into.append({"t": round(time.monotonic() - started), "rss_mib": rss_mib(pids())})


def worker_command(args: argparse.Namespace) -> tuple[list[str], dict[str, str]]:
    """``dramatiq workers``, or ``bench.worker_probe`` (tracemalloc inside each worker) with ``--probe``."""
    module = "workers"
    extra = {}
    if args.probe:
        Path(args.probe).mkdir(parents=True, exist_ok=True)
        module, extra = "bench.worker_probe", {"BENCH_PROBE_DIR": str(Path(args.probe).resolve())}
    command = [
        sys.executable,
        "-m",
        "dramatiq",
        module,
        "--processes",
        str(args.processes),
        "--threads",
        str(args.threads),
    ]
    return command, extra


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--profiles", type=int, default=115_000)
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--timeout", type=float, default=1800)
    parser.add_argument("--batch", type=int, default=None, help="CCM_DELIVERY_BATCH of the workers (default 50)")
    parser.add_argument("--no-io-uring", action="store_true", help="the workers' fallback: dots after the COMMIT")
    parser.add_argument(
        "--probe",
        help="a directory: samples from inside each worker (bench/worker_probe.py; BENCH_PROBE_SECONDS and "
        "BENCH_PROBE_TRACEMALLOC=0 in the environment reach it)",
    )
    parser.add_argument("--rss-every", type=float, default=15, help="seconds between RSS samples")
    args = parser.parse_args()
    sink, port = need("smtp-sink", "postfix"), free_port()
    fresh_database()
    runtime = bench_runtime(local_outbox="email")  # only for the sample's render: the workers send over SMTP
    workspace_id, _ = seed_profiles(runtime, args.profiles, 0)
    analyze()
    workers, extra = worker_command(args)
    smtp_url = f"smtp://127.0.0.1:{port}?local_hostname=localhost"
    # The workers inherit this environment but its CCM_* settings (BENCH_PROBE_*, MALLOC_* pass).
    env = {
        **ccm_env(smtp_url=smtp_url, delivery_batch=args.batch, io_uring=False if args.no_io_uring else None),
        **extra,
    }
    # -m: smtp-sink serves 256 connections at once by default; a batch holds B open per worker thread.
    with process([sink, "-u", "nobody", "-m", "4096", f"127.0.0.1:{port}", "4096"]) as sink_process:
        wait_port(port)
        raw = sample_raw(runtime, workspace_id)
        bare = baseline(port, 20_000, raw)
        print(f"bare smtplib loop   {bare:8.0f} messages/s  ({len(raw)} bytes each)", flush=True)
        with process(workers, env=env) as worker_process:
            warm = launch(
                runtime, workspace_id, "warm-up", {"attribute": "attributes.city", "op": "equals", "value": "Abuja"}
            )
            print(f"warm-up: {wait_completed(warm, 600, 'warm-up')}", file=sys.stderr)
            groups = {
                "workers": lambda: process_tree(worker_process.pid),
                "postgres": database_backends,
                "postgres_shared": postgres_auxiliaries,
                "redis": lambda: pids_of("redis-server"),
                "smtp_sink": lambda: process_tree(sink_process.pid),
            }
            analyze()
            cpu: dict[str, float] = {}
            processes = lambda: groups["workers"]()[1:]  # noqa: E731  (the worker processes, not their supervisor)
            rss_before, timeline, stop = rss_mib(processes()), [], threading.Event()
            sampler = threading.Thread(target=sample_rss, args=(processes, args.rss_every, timeline, stop), daemon=True)
            sampler.start()
            with involved_cpu(cpu, groups):
                campaign_id = launch(runtime, workspace_id, "measured", REACHABLE)
                result = wait_completed(campaign_id, args.timeout, "campaign")
            stop.set()
            result["worker_rss_mib"] = {"before": rss_before, "after": rss_mib(processes()), "every": timeline}
    sent = max(result["sent"], 1)
    result["cpu_ms_per_message"] = {name: round(s * 1000 / sent, 3) for name, s in cpu.items() if name != "load"}
    result["ratio_to_bare_smtplib"] = round((result["per_second"] or 0) / bare, 3)
    print(
        f"campaign  {result['per_second']} messages/s  ({result['sent']} sent, {result['skipped']} skipped, "
        f"{result['failed']} failed, {result['claims']} claims, {result['distinct_profiles']} profiles)  ratio "
        f"{result['ratio_to_bare_smtplib']}  CPU ms/message {result['cpu_ms_per_message']}  "
        f"RSS {result['worker_rss_mib']['before']} -> {result['worker_rss_mib']['after']}",
        flush=True,
    )
    save(
        os.environ.get("BENCH_RESULT_NAME", "campaign_smtp"),
        {
            "when": time.strftime("%Y-%m-%d %H:%M"),
            "profiles": args.profiles,
            "bytes": len(raw),
            "processes": args.processes,
            "threads": args.threads,
            "batch": args.batch or 50,
            "bare_smtplib_per_s": round(bare, 1),
            "campaign": result,
        },
    )
    runtime.close()


if __name__ == "__main__":
    main()
