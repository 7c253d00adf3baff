"""End-to-end email delivery into a fast SMTP sink, batch size by batch size, next to a bare
smtplib loop measured in the same run, with the CPU every process involved spent per message.

    .venv/bin/python bench/e2e_email.py [--messages 100000] [--batches 1,10,50,200] [--processes 2] [--threads 4]

Postfix's ``smtp-sink`` (Debian package ``postfix``) accepts mail on loopback and throws it away.
The baseline sends one pre-built message of the same size over one smtplib connection. CCM's
run, for each batch size B: the messages are accepted with the bulk path (1,000 per transaction;
starter template ``order-shipped``: layout, partials, CSS inlining, a text part generated from the
HTML, ~2.3 KB), ANALYZE runs, and their jobs are published as ``messages.deliver_batch`` jobs of B
ids (B = 1: one ``messages.deliver`` job each) to ``dramatiq workers`` that booted and warmed up
beforehand. The rate is messages divided by the time from the first claim to the last outcome,
read from the database; the CPU is read from /proc for the workers' process tree, this database's
PostgreSQL backends, PostgreSQL's shared processes, redis-server and smtp-sink — nothing else.
"""

from __future__ import annotations

import argparse
import smtplib
import sys
import time
from pathlib import Path

from sqlalchemy import create_engine, text

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.common import (  # noqa: E402
    REDIS_URL,
    ROOT,
    analyze,
    ccm_env,
    database_backends,
    database_url,
    free_port,
    fresh_database,
    hot_updates,
    involved_cpu,
    need,
    pids_of,
    postgres_auxiliaries,
    process,
    process_tree,
    rss_mib,
    save,
    seed,
    wait_port,
)

DATA = {
    "order_number": "A-1001",
    "tracking_url": "https://example.com/t/1",
    "items": [{"name": "Kettle", "quantity": 1}, {"name": "Mug", "quantity": 2}],
}


def baseline(port: int, count: int, raw: bytes) -> float:
    """Messages per second for a bare smtplib loop over one connection."""
    with smtplib.SMTP("127.0.0.1", port, local_hostname="localhost") as smtp:
        started = time.perf_counter()
        for n in range(count):
            smtp.sendmail("noreply@example.com", [f"user{n % 1000}@example.com"], raw)
        return count / (time.perf_counter() - started)


def bench_runtime():  # type: ignore[no-untyped-def]
    from ccm.config import Settings
    from ccm.runtime import create_runtime

    # The local outbox only serves sample_email(); the workers deliver over SMTP. A long grace:
    # jobs waiting their turn in a deep queue are not published again while this measures.
    runtime = create_runtime(
        Settings(
            database_url=database_url(),
            redis_url=REDIS_URL,
            secret_key="bench-secret",
            local_outbox="email",
            relay_grace=GRACE,
        )
    )
    # Accepted now, published when the measurement starts. Their outbox rows stay due at
    # now + grace, as after a publish: the workers' relay leaves them alone (relay_only would make
    # them due at once, and the relay would publish every one as a single job).
    runtime.publisher.publish_many_after_commit = lambda *args, **kwargs: None
    return runtime


GRACE = 3600.0


def setup_workspace(runtime) -> str:  # type: ignore[no-untyped-def]
    from ccm.message_templates.importer import import_folder
    from ccm.workspaces.service import get_or_create_workspace

    with runtime.db.unit_of_work() as session:
        ws, _ = get_or_create_workspace(session=session, name="bench")
        import_folder(session=session, sandbox=runtime.sandbox, workspace_id=ws.id, root=ROOT / "templates")
    return ws.id


def accept_messages(runtime, workspace_id: str, count: int, tag: str) -> list[str]:  # type: ignore[no-untyped-def]
    """Accept ``count`` messages with the bulk path, 1,000 per transaction; their ids."""
    from ccm.messages import bulk
    from ccm.messages.schemas import SendIn

    ids: list[str] = []
    for start in range(0, count, 1000):
        items = [
            bulk.Item(
                SendIn.model_validate(
                    {"to": {"external_id": f"u{n % 1000}"}, "template": "order-shipped", "data": DATA}
                ),
                None,
            )
            for n in range(start, min(count, start + 1000))
        ]
        with runtime.db.unit_of_work() as session:
            answers = bulk.accept_batch(session=session, runtime=runtime, workspace_id=workspace_id, items=items)
        ids += [answer.id for answer in answers]  # type: ignore[union-attr]
        print(f"\r{tag}: accepted {len(ids)}/{count}", end="", file=sys.stderr, flush=True)
    print(file=sys.stderr)
    return ids


def publish(runtime, ids: list[str], batch: int) -> None:  # type: ignore[no-untyped-def]
    from ccm.messages.claims import DELIVER, DELIVER_BATCH

    publish_many = type(runtime.publisher).publish_many_after_commit.__get__(runtime.publisher)
    if batch == 1:
        publish_many(DELIVER, [(message_id,) for message_id in ids])
    else:
        chunks = [(ids[start : start + batch],) for start in range(0, len(ids), batch)]
        publish_many(DELIVER_BATCH, chunks, keys=[])


def sample_email(runtime, message_id: str) -> bytes:  # type: ignore[no-untyped-def]
    from ccm.messages.outbound import load_pending, plan, prepare

    with runtime.db.read_only() as session:
        planned = plan(runtime, session, load_pending(session, message_id))
    return prepare(runtime, planned).outbound.raw


def wait_delivered(ids: list[str], timeout: float, tag: str) -> dict[str, float]:
    """Wait for every one of ``ids`` to end; the rate from their first claim to their last outcome."""
    engine = create_engine(database_url())
    deadline = time.monotonic() + timeout
    first, last = ids[0], ids[-1]
    between = "id BETWEEN :first AND :last"
    with engine.connect() as connection:
        while True:
            done = connection.execute(
                text(f"SELECT count(*) FROM message WHERE {between} AND finished_at IS NOT NULL"),
                {"first": first, "last": last},
            ).scalar_one()
            print(f"\r{tag}: delivered {done}/{len(ids)}", end="", file=sys.stderr, flush=True)
            if done >= len(ids) or time.monotonic() > deadline:
                break
            time.sleep(0.25)
        print(file=sys.stderr)
        row = connection.execute(
            text(
                f"SELECT count(*) FILTER (WHERE status = 'sent'), min(claimed_at), max(finished_at), "
                f"count(*) FILTER (WHERE status <> 'sent') FROM message WHERE {between}"
            ),
            {"first": first, "last": last},
        ).one()
        # Every claim counts: a second claim is a message delivered twice over by the core.
        claims = connection.execute(
            text(f"SELECT sum(claims) FROM message WHERE {between}"), {"first": first, "last": last}
        ).scalar_one()
    engine.dispose()
    seconds = (row[2] - row[1]).total_seconds()
    return {
        "sent": row[0],
        "not_sent": row[3],
        "claims": int(claims),
        "seconds": round(seconds, 2),
        "per_second": round(row[0] / seconds, 1),
    }


def measure(runtime, workspace_id: str, count: int, batch: int, groups) -> dict:  # type: ignore[no-untyped-def]
    """One batch size: warm up on 2,000 messages, then deliver ``count`` with the CPU and the
    workers' resident memory (each worker process: before, after) read around it."""
    tag = f"B={batch}"
    warm = accept_messages(runtime, workspace_id, min(2000, count), f"{tag} warm-up")
    publish(runtime, warm, batch)
    wait_delivered(warm, timeout=600, tag=f"{tag} warm-up")
    ids = accept_messages(runtime, workspace_id, count, tag)
    analyze()
    cpu: dict[str, float] = {}
    rss_before = rss_mib(groups["workers"]()[1:])  # the worker processes, not their supervisor
    with involved_cpu(cpu, groups):
        publish(runtime, ids, batch)
        result = wait_delivered(ids, timeout=1800, tag=tag)
    result["worker_rss_mib"] = {"before": rss_before, "after": rss_mib(groups["workers"]()[1:])}
    per_message = {name: round(seconds * 1000 / count, 3) for name, seconds in cpu.items() if name != "load"}
    result["cpu_ms_per_message"] = per_message
    result["cpu_ms_per_message_total"] = round(sum(per_message.values()), 3)
    return result


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--messages", type=int, default=100_000)
    parser.add_argument("--batches", default="1,10,50,200")
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--threads", type=int, default=4)
    args = parser.parse_args()
    batches = [int(b) for b in args.batches.split(",")]
    sink, port = need("smtp-sink", "postfix"), free_port()
    fresh_database()
    seed(profiles=1000, template_html="<p>{{ first_name }} {{ order }}</p>")
    runtime = bench_runtime()
    workspace_id = setup_workspace(runtime)
    analyze()
    env = ccm_env(smtp_url=f"smtp://127.0.0.1:{port}?local_hostname=localhost", relay_grace=GRACE)
    workers = [sys.executable, "-m", "dramatiq", "workers", "--processes", str(args.processes)]
    # -m: smtp-sink serves 256 connections at once by default; a batch holds B open per worker thread.
    with process([sink, "-u", "nobody", "-m", "4096", f"127.0.0.1:{port}", "4096"]) as sink_process:
        wait_port(port)
        raw = sample_email(runtime, accept_messages(runtime, workspace_id, 1, "sample")[0])
        bare = baseline(port, 20_000, raw)
        print(f"bare smtplib loop   {bare:8.0f} messages/s  ({len(raw)} bytes each)", flush=True)
        with process([*workers, "--threads", str(args.threads)], env=env) as worker_process:
            groups = {
                "workers": lambda: process_tree(worker_process.pid),
                "postgres": database_backends,
                "postgres_shared": postgres_auxiliaries,
                "redis": lambda: pids_of("redis-server"),
                "smtp_sink": lambda: process_tree(sink_process.pid),
            }
            results = {}
            for batch in batches:
                results[batch] = measure(runtime, workspace_id, args.messages, batch, groups)
                r = results[batch]
                print(
                    f"B={batch:<4} {r['per_second']:8.0f} messages/s  ({r['sent']} sent, {r['not_sent']} not, "
                    f"{r['claims']} claims)  ratio {r['per_second'] / bare:.2f}  CPU "
                    f"{r['cpu_ms_per_message_total']} ms/message {r['cpu_ms_per_message']}  RSS {r['worker_rss_mib']}",
                    flush=True,
                )
    time.sleep(1.5)  # the statistics collector's lag
    save(
        "e2e_email",
        {
            "when": time.strftime("%Y-%m-%d %H:%M"),
            "messages": args.messages,
            "bytes": len(raw),
            "processes": args.processes,
            "threads": args.threads,
            "bare_smtplib_per_s": round(bare, 1),
            "by_batch": results,
            "hot_updates": hot_updates(),
        },
    )


if __name__ == "__main__":
    main()
