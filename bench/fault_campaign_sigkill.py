"""A 20,000-recipient email campaign into Postfix's ``smtp-sink`` while ``dramatiq`` worker
processes are SIGKILLed again and again: every recipient must get exactly one email, the campaign
must complete, its counts must be exact.

    .venv/bin/python bench/fault_campaign_sigkill.py [--profiles 23000] [--groups 2] [--threads 4]

A fresh database is seeded with ``ccm seed``'s generator; the segment is "reachable by email"
(~87 % of the people: 23,000 profiles make ~20,000 recipients). ``smtp-sink -d`` writes every
message it accepted (after the final dot; a connection dropped before it leaves nothing) to a file
whose ``Message-ID`` names the CCM message. The workers are ``--groups`` separate
``dramatiq workers --processes 1 --threads N`` (tests/support/sigkill.py); every ``--pause``
seconds one group is SIGKILLed and restarted, until the campaign completes. Then the files are
counted per recipient against the messages the database calls ``sent``: duplicates, missing, and
whether each missing one is among the ``sent(outcome_unknown)`` the kills left. The same-run
baseline is a bare smtplib loop into a second sink.
"""

from __future__ import annotations

import argparse
import re
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, text

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.campaign_fanout import REACHABLE, bench_runtime, launch_campaign, seed_profiles  # noqa: E402
from bench.campaign_smtp import baseline, sample_raw  # noqa: E402
from bench.common import LOGS, analyze, ccm_env, database_url, free_port, fresh_database, need, process, save  # noqa: E402
from tests.support.sigkill import KillPlan, Workers, kill_repeatedly, tally  # noqa: E402

MESSAGE_ID = re.compile(rb"^Message-ID: <(msg_[0-9A-Za-z]+)@", re.MULTILINE | re.IGNORECASE)
FAST_RECOVERY = {
    # A killed worker's claims go stale, and its broker messages come back, within seconds.
    "claim_timeout": 5,
    "broker_heartbeat_timeout": 5,
    "relay_grace": 1,
    "relay_interval": 0.2,
    "smtp_timeout": 2,
    "render_timeout": 2,
}


def received(dump_dir: Path) -> list[str]:
    """The CCM message id (from its ``Message-ID``) of every message smtp-sink accepted: counted by
    message, not address, so that the sample sent for the baseline is not a "duplicate"."""
    found = []
    for path in dump_dir.iterdir():
        match = MESSAGE_ID.search(path.read_bytes())
        if match:
            found.append(match.group(1).decode())
    return found


def database_view(campaign_id: str) -> dict[str, Any]:
    """The campaign's status and counts, the messages by status, and the sent addresses."""
    engine = create_engine(database_url())
    with engine.connect() as connection:
        campaign = connection.execute(
            text("SELECT status, counts, launched_at, completed_at FROM campaign WHERE id = :c"), {"c": campaign_id}
        ).one()
        by_status = dict(
            connection.execute(
                text("SELECT status, count(*) FROM message WHERE campaign_id = :c GROUP BY status"), {"c": campaign_id}
            ).all()
        )
        sent = connection.execute(
            text("SELECT id, reason LIKE 'outcome_unknown%' FROM message WHERE campaign_id = :c AND status = 'sent'"),
            {"c": campaign_id},
        ).all()
    engine.dispose()
    return {"campaign": campaign, "by_status": by_status, "sent": sent}


def intent_commit_ms(rows: int = 50, rounds: int = 300) -> dict[str, dict[str, float]]:
    """COMMIT latency of a transaction shaped like a batch's intent (an UPDATE of ``rows`` rows
    and an INSERT of as many), waiting for the WAL flush and not, alternating. It was part of the
    outcome-unknown window; the dots now go out before the answer (ccm/db_commit.py), so it is
    only what the intent's synchronous COMMIT costs a delivering thread."""
    engine = create_engine(database_url())
    timings: dict[str, list[float]] = {"on": [], "off": []}
    with engine.connect() as connection:
        connection.execute(text("CREATE TABLE intent_probe (id int PRIMARY KEY, touched timestamptz)"))
        connection.execute(text("CREATE TABLE intent_probe_attempt (id bigserial PRIMARY KEY, probe int)"))
        connection.execute(text(f"INSERT INTO intent_probe SELECT n, now() FROM generate_series(1, {rows}) n"))
        connection.commit()
        for n in range(rounds):
            mode = ("on", "off")[n % 2]
            connection.execute(text(f"SET LOCAL synchronous_commit = {mode}"))
            connection.execute(text("UPDATE intent_probe SET touched = now()"))
            connection.execute(text("INSERT INTO intent_probe_attempt (probe) SELECT id FROM intent_probe"))
            started = time.perf_counter()
            connection.commit()
            timings[mode].append((time.perf_counter() - started) * 1000)
        connection.execute(text("DROP TABLE intent_probe, intent_probe_attempt"))
        connection.commit()
    engine.dispose()
    return {mode: _spread(values) for mode, values in timings.items()}


def _spread(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    return {
        "median": round(statistics.median(ordered), 3),
        "p90": round(ordered[int(len(ordered) * 0.9)], 3),
        "p99": round(ordered[int(len(ordered) * 0.99)], 3),
    }


def campaign_status(campaign_id: str) -> str:
    engine = create_engine(database_url())
    try:
        with engine.connect() as connection:
            return connection.execute(
                text("SELECT status FROM campaign WHERE id = :c"), {"c": campaign_id}
            ).scalar_one()
    finally:
        engine.dispose()


def wait_completed(campaign_id: str, timeout: float, workers: Workers) -> bool:
    deadline = time.monotonic() + timeout
    while (status := campaign_status(campaign_id)) not in ("completed", "cancelled"):
        workers.check()
        if time.monotonic() > deadline:
            return False
        time.sleep(0.5)
    return status == "completed"


def exact_counts(view: dict[str, Any]) -> bool:
    """The campaign's recorded counts equal the messages' statuses in the database."""
    counts = (view["campaign"].counts or {}).get("counts", {})
    total = sum(view["by_status"].values())
    return counts.get("targeted") == total and all(counts.get(s) == n for s, n in view["by_status"].items())


def run(args: argparse.Namespace, port: int, dump_dir: Path, campaign_id: str) -> dict[str, Any]:
    env = ccm_env(smtp_url=f"smtp://127.0.0.1:{port}?local_hostname=localhost", **FAST_RECOVERY)
    low, high = (float(x) for x in args.pause.split(","))
    plan = KillPlan(
        groups=args.groups,
        threads=args.threads,
        pause=(low, high),
        kills=args.kills,
        seconds=args.timeout,
        seed=args.seed,
    )
    log_dir = LOGS / f"sigkill-{time.strftime('%H%M%S')}"
    log_dir.mkdir(parents=True, exist_ok=True)
    workers = Workers(env, log_dir, args.threads)
    started = time.monotonic()
    try:
        report = kill_repeatedly(workers, plan, lambda: campaign_status(campaign_id) != "running")
        completed = wait_completed(campaign_id, args.timeout, workers)
    finally:
        workers.stop()
    seconds = time.monotonic() - started
    view = database_view(campaign_id)
    result = tally((row[0] for row in view["sent"]), (row[0] for row in view["sent"] if row[1]), received(dump_dir))
    return {
        "completed": completed,
        "kills": report.kills,
        "seconds": round(seconds, 1),
        "messages_by_status": view["by_status"],
        "counts_exact": exact_counts(view),
        **result.summary,
        "missing_messages": sorted(result.lost),
        "duplicate_messages": result.duplicates,
        "worker_logs": str(log_dir),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--profiles", type=int, default=23_000)
    parser.add_argument("--groups", type=int, default=2)
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--pause", default="1.0,5.0", help="seconds between kills, drawn uniformly: low,high")
    parser.add_argument("--kills", type=int, default=None, help="stop killing after this many (0: a run without kills)")
    parser.add_argument("--timeout", type=float, default=1800)
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--name", default="fault_campaign_sigkill")
    args = parser.parse_args()
    sink = need("smtp-sink", "postfix")
    fresh_database()
    runtime = bench_runtime(local_outbox="email")  # only for the sample's render: the workers send over SMTP
    workspace_id, _ = seed_profiles(runtime, args.profiles, 0)
    analyze()
    dump_dir = Path(tempfile.mkdtemp(prefix="ccm-sink-"))
    dump_dir.chmod(0o777)  # smtp-sink writes as nobody
    port, bare_port = free_port(), free_port()
    # -m: smtp-sink serves 256 connections at once by default; a batch holds B open per worker thread.
    with (
        process([sink, "-u", "nobody", "-m", "4096", "-d", f"{dump_dir}/%H%M%S.", f"127.0.0.1:{port}", "4096"]),
        process([sink, "-u", "nobody", "-m", "64", f"127.0.0.1:{bare_port}", "64"]),
    ):
        time.sleep(0.5)
        bare = baseline(bare_port, 5_000, sample_raw(runtime, workspace_id))
        print(f"bare smtplib loop   {bare:8.0f} messages/s", flush=True)
        commit_ms = intent_commit_ms()
        print(f"intent COMMIT, ms: {commit_ms}", flush=True)
        campaign_id, _ = launch_campaign(runtime, workspace_id, REACHABLE, "under fire")
        result = run(args, port, dump_dir, campaign_id)
    shutil.rmtree(dump_dir, ignore_errors=True)
    result["per_second"] = round(result["expected"] / result["seconds"], 1) if result["seconds"] else None
    result["ratio_to_bare_smtplib"] = round((result["per_second"] or 0) / bare, 3)
    printed = {k: v for k, v in result.items() if k not in ("missing_messages", "duplicate_messages")}
    print(printed, flush=True)
    save(
        args.name,
        {
            "when": time.strftime("%Y-%m-%d %H:%M"),
            "profiles": args.profiles,
            "groups": args.groups,
            "threads": args.threads,
            "pause": args.pause,
            "settings": FAST_RECOVERY,
            "bare_smtplib_per_s": round(bare, 1),
            "intent_commit_ms": {"synchronous_commit_on": commit_ms["on"], "synchronous_commit_off": commit_ms["off"]},
            "campaign": result,
        },
    )
    runtime.close()


if __name__ == "__main__":
    main()
