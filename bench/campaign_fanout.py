"""Campaign fan-out at 10k, 100k and 1M recipients: the segment evaluated, the message rows
written, the work queued for the release pump — its rate, CPU per 1,000 recipients and memory.

    .venv/bin/python bench/campaign_fanout.py [--sizes 10000,100000,1000000] [--events-per-profile 2]

For each size: a fresh migrated database seeded with ``ccm seed``'s generator (realistic profiles,
consent, suppressions, events, engagement), ANALYZE, a segment and a marketing campaign made and
launched through the API (in process, as a client would), and then the campaign's fan-out
(``ccm.campaigns.engine.run_fanout``, the body of the ``campaigns.fan_out`` actor) run in a worker
process of its own, nothing else running. That process measures itself: wall time around the
fan-out, its own CPU (getrusage) and its PostgreSQL backend's (``/proc/<pid>/stat``: one pooled
connection, opened before it starts), and its resident memory before and at peak (``VmHWM``).
The counts are checked in the database afterwards: one message per recipient, none missing.
Before it is measured, the same process fans out a campaign of the same segment in a second,
2,000-profile workspace: a worker that has run a campaign before has its statements compiled and
its connections open, and 10,000 recipients take a fifth of a second.

``--baseline DIR`` (another version of CCM, e.g. ``git archive <commit> | tar -x -C DIR``) measures
that version in the same run, on the same seeded database: migrated by the baseline's own
migrations, its fan-out first, then the messages truncated, the database migrated to this
version's head and ANALYZEd, and this version's fan-out. Each fan-out starts right after a
CHECKPOINT and a read of the whole audience (the segment's count), so both find the same cache
and owe the same full-page writes.

``--one-lane`` measures this version again with one fan-out lane (``CCM_CAMPAIGN_FANOUT_LANES=1``),
and ``--without-message-fks`` again with ``message``'s foreign keys dropped — an experiment that
says what their per-row checks cost, not something CCM does — each on the same database after
the messages are truncated. The worker's PostgreSQL CPU is that of all its backends (found by
their application name, ``PGAPPNAME``, opened before the clock starts).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.common import (  # noqa: E402
    REDIS_URL,
    ROOT,
    analyze,
    ccm_env,
    cpu_seconds,
    database_url,
    fresh_database,
    rss_mib,
    save,
)

EVERYONE = {"attribute": "external_id", "op": "exists"}
REACHABLE = {"reachable": "email"}
FKS = {"profile": ("fk_message_profile_id_profile",)}
"""The foreign keys of ``message`` that ``--without-message-fks`` drops (an experiment, not CCM): since
migration 0022 the profile's is the only one left (the workspace's and the template version's were
measured with this option before they were dropped)."""


def bench_runtime(**settings: Any):  # type: ignore[no-untyped-def]
    from ccm.config import Settings
    from ccm.runtime import create_runtime

    return create_runtime(
        Settings(database_url=database_url(), redis_url=REDIS_URL, secret_key="bench-secret", **settings)
    )


WARM_UP_PROFILES = 2_000
"""The warm-up workspace's size: a campaign of the same segment there is fanned out first, in the
same worker process, so that the measured fan-out finds its statements compiled and its pool
open, as in a worker that has run a campaign before."""


def seed_profiles(runtime, profiles: int, events_per_profile: int, workspace: str = "bench") -> tuple[str, float]:  # type: ignore[no-untyped-def]
    """The seeded workspace's id and the seconds seeding took."""
    from ccm.seeding.service import seed_workspace

    done = 0

    def progress(count: int) -> None:
        nonlocal done
        done += count
        print(f"\rseeding {done:,}/{profiles:,}", end="", file=sys.stderr, flush=True)

    seeded = seed_workspace(
        runtime, workspace=workspace, profiles=profiles, events_per_profile=events_per_profile, progress=progress
    )
    print(f"  {seeded.counts} in {seeded.seconds:.1f} s", file=sys.stderr)
    return seeded.workspace_id, seeded.seconds


def api_client(runtime, workspace_id: str):  # type: ignore[no-untyped-def]
    """A test client of the app with an admin key of the workspace (calls the API in process)."""
    from ccm.app import create_app
    from ccm.auth.service import create_api_key

    with runtime.db.unit_of_work() as session:
        _, token = create_api_key(session=session, workspace_id=workspace_id)
    client = create_app(runtime=runtime).test_client()
    return client, {"Authorization": f"Bearer {token}"}


def launch_campaign(  # type: ignore[no-untyped-def]
    runtime, workspace_id: str, rules: dict[str, Any], name: str, **extra: Any
) -> tuple[str, str]:
    """Make a segment and a campaign of the seeded newsletter, launch it; (campaign id, segment id)."""
    client, headers = api_client(runtime, workspace_id)
    segment = client.post("/v1/segments", json={"name": name, "rules": rules}, headers=headers)
    assert segment.status_code == 201, segment.json
    body = {"name": name, "template": "seed-newsletter", "segment": segment.json["id"], "channels": ["email"], **extra}
    campaign = client.post("/v1/campaigns", json=body, headers=headers)
    assert campaign.status_code == 201, campaign.json
    launched = client.post(f"/v1/campaigns/{campaign.json['id']}/launch", headers=headers)
    assert launched.status_code == 200, launched.json
    return campaign.json["id"], segment.json["id"]


def count_segment(runtime, workspace_id: str, segment_id: str) -> int:  # type: ignore[no-untyped-def]
    """The segment's exact size, from the query campaigns read (no time budget)."""
    from sqlalchemy import func, select

    from ccm.db import utcnow
    from ccm.segments.service import audience_query

    with runtime.db.read_only() as session:
        audience = audience_query(session, workspace_id, segment_id, now=utcnow()).subquery()
        return int(session.scalar(select(func.count()).select_from(audience)) or 0)


def fan_out_in_this_process(campaign_id: str, warm_up: str | None) -> dict[str, Any]:
    """The worker side: run the warm-up campaign's fan-out, then the measured one, measuring this
    process and its database backends (as many as it has lanes, all opened before it starts and
    found again by their application name)."""
    from ccm.campaigns.engine import run_fanout

    os.environ["PGAPPNAME"] = f"ccm-fanout-{os.getpid()}"  # libpq's: every connection of this process
    runtime = bench_runtime()
    if warm_up:
        run_fanout(runtime, warm_up)
    lanes = getattr(runtime.settings, "campaign_fanout_lanes", 1)
    with ExitStack() as opened:  # the pool's connections, opened now
        for _ in range(lanes + 1):
            opened.enter_context(runtime.db.engine.connect())
        backends = _backends(runtime)
    rss_before = rss_mib([os.getpid()])[0]
    theirs = {pid: cpu_seconds([pid]) for pid in backends}
    mine, started = _own_cpu(), time.perf_counter()
    run_fanout(runtime, campaign_id)
    seconds = time.perf_counter() - started
    after = _backends(runtime)
    worker_cpu = _own_cpu() - mine
    backend_cpu = sum(cpu_seconds([pid]) - theirs.get(pid, 0.0) for pid in after)
    peak = int(
        next(line for line in Path("/proc/self/status").read_text().splitlines() if line.startswith("VmHWM:")).split()[
            1
        ]
    )
    runtime.close()
    import ccm

    return {
        "code": str(Path(ccm.__file__).parents[1]),
        "lanes": lanes,
        "backends": len(after),
        "seconds": round(seconds, 3),
        "worker_cpu_s": round(worker_cpu, 3),
        "postgres_cpu_s": round(backend_cpu, 3),
        "rss_before_mib": rss_before,
        "peak_rss_mib": round(peak / 1024, 1),
    }


def _backends(runtime) -> list[int]:  # type: ignore[no-untyped-def]
    """The PostgreSQL backends of this process's connections."""
    from sqlalchemy import text

    with runtime.db.engine.connect() as connection:
        rows = connection.execute(
            text("SELECT pid FROM pg_stat_activity WHERE application_name = :name"),
            {"name": os.environ["PGAPPNAME"]},
        )
        return [int(pid) for (pid,) in rows]


def _own_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def fan_out(campaign_id: str, warm_up: str | None, code: Path = ROOT, lanes: int | None = None) -> dict[str, Any]:
    """Run the fan-out of the CCM in ``code`` in a fresh worker process (settings from the
    environment, as a worker's; ``BENCH_CAMPAIGN_CHUNK`` and ``BENCH_FANOUT_LANES`` override the
    chunk's and the lanes' defaults)."""
    env = ccm_env(
        campaign_chunk=os.environ.get("BENCH_CAMPAIGN_CHUNK"),
        campaign_fanout_lanes=lanes or os.environ.get("BENCH_FANOUT_LANES"),
    )
    script = code / "bench" / "campaign_fanout.py"
    warms = warm_up is not None and "--warm-up" in script.read_text()  # a baseline older than the warm-up has none
    done = subprocess.run(
        [sys.executable, str(script), "--fan-out", campaign_id, *(["--warm-up", warm_up] if warms else [])],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


def migrate_with(code: Path) -> None:
    """Migrate the benchmark database to the head of the CCM in ``code``, with its migrations."""
    upgrade = f"from ccm.migrate import upgrade; upgrade({database_url()!r})"
    subprocess.run([sys.executable, "-c", upgrade], cwd=code, env=ccm_env() | {"PYTHONPATH": str(code)}, check=True)


def run_sql(*statements: str) -> None:
    from sqlalchemy import create_engine, text

    engine = create_engine(database_url(), isolation_level="AUTOCOMMIT")
    with engine.connect() as connection:
        for statement in statements:
            connection.execute(text(statement))
    engine.dispose()


def written(runtime, campaign_id: str) -> dict[str, int]:  # type: ignore[no-untyped-def]
    from sqlalchemy import text

    with runtime.db.engine.connect() as connection:
        row = connection.execute(
            text(
                "SELECT count(*), count(DISTINCT profile_id), count(*) FILTER (WHERE status = 'queued')"
                " FROM message WHERE campaign_id = :c"
            ),
            {"c": campaign_id},
        ).one()
    return {"messages": row[0], "distinct_profiles": row[1], "queued": row[2]}


def measure(
    size: int,
    events_per_profile: int,
    rules: dict[str, Any],
    label: str,
    baseline: Path | None,
    without_fks: bool,
    one_lane: bool,
) -> dict[str, Any]:
    fresh_database(migrate=baseline is None)
    if baseline is not None:
        migrate_with(baseline)
    runtime = bench_runtime()
    workspace_id, seed_seconds = seed_profiles(runtime, size, events_per_profile)
    warm_up_workspace, _ = seed_profiles(runtime, WARM_UP_PROFILES, events_per_profile, workspace="warm-up")
    workspaces = (workspace_id, warm_up_workspace)
    analyze()
    runs: dict[str, Any] = {}
    if baseline is not None:
        runs["baseline"] = measure_fan_out(runtime, workspaces, rules, f"{label} {size} baseline", baseline)
        run_sql("TRUNCATE message, campaign_holdout CASCADE")
        migrate_with(ROOT)
        analyze()
    runs["this"] = measure_fan_out(runtime, workspaces, rules, f"{label} {size}", ROOT)
    if one_lane:
        run_sql("TRUNCATE message, campaign_holdout CASCADE")
        analyze()
        runs["one_lane"] = measure_fan_out(runtime, workspaces, rules, f"{label} {size} 1 lane", ROOT, lanes=1)
    if without_fks:
        drops = (f"ALTER TABLE message DROP CONSTRAINT {fk}" for fk in FKS[without_fks])
        run_sql("TRUNCATE message, campaign_holdout CASCADE", *drops)
        analyze()
        name = f"no_fks_{without_fks}"
        runs[name] = measure_fan_out(runtime, workspaces, rules, f"{label} {size} {name}", ROOT)
    runtime.close()
    result = {"profiles": size, "segment": label, "seed_seconds": round(seed_seconds, 1), **runs}
    base = "baseline" if "baseline" in runs else "one_lane" if "one_lane" in runs else None
    if base is not None:  # without --baseline, one lane (the fan-out before lanes) is the same-run baseline
        result["ratio_to"] = base
        for version in runs:
            if version != base:
                ratio = runs[version]["recipients_per_s"] / runs[base]["recipients_per_s"]
                result["ratio" if version == "this" else f"ratio_{version}"] = round(ratio, 2)
    return result


def measure_fan_out(  # type: ignore[no-untyped-def]
    runtime, workspaces: tuple[str, str], rules: dict[str, Any], name: str, code: Path, lanes: int | None = None
) -> dict[str, Any]:
    """Launch a campaign of the segment in the measured workspace and another in the warm-up one,
    and fan them out with the CCM in ``code``, the warm-up first; checked and measured."""
    workspace_id, warm_up_workspace = workspaces
    campaign_id, segment_id = launch_campaign(runtime, workspace_id, rules, f"fan-out {name}")
    warm_up, _ = launch_campaign(runtime, warm_up_workspace, rules, f"warm-up {name}")
    audience = count_segment(runtime, workspace_id, segment_id)
    run_sql("CHECKPOINT")
    result = fan_out(campaign_id, warm_up, code, lanes)
    counts = written(runtime, campaign_id)
    assert counts["messages"] == counts["distinct_profiles"] == audience, (counts, audience)
    per_thousand = 1000 / max(counts["messages"], 1)
    return result | {
        "recipients": counts["messages"],
        "recipients_per_s": round(counts["messages"] / result["seconds"], 1),
        "cpu_ms_per_1000": {
            "worker": round(result["worker_cpu_s"] * 1000 * per_thousand, 2),
            "postgres": round(result["postgres_cpu_s"] * 1000 * per_thousand, 2),
        },
    }


def report(size: int, label: str, version: str, r: dict[str, Any]) -> None:
    print(
        f"{size:>9,} profiles  {label:<9} {version:<15} lanes {r.get('lanes', 1)} "
        f"{r['recipients']:>9,} recipients in {r['seconds']:7.2f} s  "
        f"{r['recipients_per_s']:>9,.0f}/s  CPU ms/1,000: worker {r['cpu_ms_per_1000']['worker']}, "
        f"postgres {r['cpu_ms_per_1000']['postgres']}  RSS {r['rss_before_mib']} → peak {r['peak_rss_mib']} MiB",
        flush=True,
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", default="10000,100000,1000000")
    parser.add_argument("--events-per-profile", type=int, default=2)
    parser.add_argument("--segments", default="everyone,reachable", help="everyone: all profiles; reachable: email")
    parser.add_argument("--baseline", default=None, help="another CCM checkout, measured in the same run")
    parser.add_argument("--one-lane", action="store_true", help="this version again with one fan-out lane")
    parser.add_argument(
        "--without-message-fks",
        nargs="?",
        const="profile",
        choices=sorted(FKS),
        help="an experiment: this version again with message's foreign keys dropped (what their checks cost)",
    )
    parser.add_argument("--fan-out", default=None, help=argparse.SUPPRESS)  # the worker process
    parser.add_argument("--warm-up", default=None, help=argparse.SUPPRESS)  # its warm-up campaign
    args = parser.parse_args()
    if args.fan_out:
        print(json.dumps(fan_out_in_this_process(args.fan_out, args.warm_up)))
        return
    rules = {"everyone": EVERYONE, "reachable": REACHABLE}
    baseline = Path(args.baseline).resolve() if args.baseline else None
    results = []
    for size in (int(s) for s in args.sizes.split(",")):
        for label in args.segments.split(","):
            r = measure(
                size, args.events_per_profile, rules[label], label, baseline, args.without_message_fks, args.one_lane
            )
            results.append(r)
            for version in ("baseline", "this", "one_lane", *(f"no_fks_{name}" for name in FKS)):
                if version in r:
                    report(size, label, version, r[version])
            for key in [key for key in r if key.startswith("ratio")]:
                print(f"{'':>30}{key} (to {r['ratio_to']}): {r[key]}", flush=True)
            save("campaign_fanout", {"when": time.strftime("%Y-%m-%d %H:%M"), "results": results})  # after each size


if __name__ == "__main__":
    main()
