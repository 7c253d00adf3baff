"""End-to-end email delivery rate into a fast SMTP sink, against a bare smtplib loop in the same run.

    .venv/bin/python bench/e2e_email.py [--messages 10000] [--processes 2] [--threads 8]

Postfix's ``smtp-sink`` (Debian package ``postfix``) accepts mail on loopback and throws it away.
The baseline sends one pre-built message of the same size ``--messages`` times over one smtplib
connection. CCM's run: the messages are accepted first (starter template ``order-shipped``:
layout, partials, CSS inlining, a text part generated from the HTML), then ``dramatiq workers``
start and deliver them; the rate is messages divided by the time from the first claim to the last
delivery, read from the database.
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
    ccm_env,
    cpu_usage,
    database_url,
    free_port,
    fresh_database,
    need,
    process,
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


def accept_messages(count: int) -> bytes:
    """Accept ``count`` messages through the send service (no worker running); return a rendered
    sample of the email for the baseline."""
    from ccm.config import Settings
    from ccm.message_templates.importer import import_folder
    from ccm.messages.schemas import SendIn
    from ccm.messages.service import send_message
    from ccm.runtime import create_runtime
    from ccm.workspaces.service import get_or_create_workspace

    # The local outbox only serves sample_email(); the workers deliver over SMTP.
    runtime = create_runtime(
        Settings(database_url=database_url(), redis_url=REDIS_URL, secret_key="bench-secret", local_outbox="email")
    )
    with runtime.db.unit_of_work() as session:
        ws, _ = get_or_create_workspace(session=session, name="bench")
        import_folder(session=session, sandbox=runtime.sandbox, workspace_id=ws.id, root=ROOT / "templates")
    for start in range(0, count, 1000):
        with runtime.db.unit_of_work() as session:
            for n in range(start, min(count, start + 1000)):
                send_message(
                    session=session,
                    runtime=runtime,
                    workspace_id=ws.id,
                    idempotency_key=f"e2e-{n}",
                    request=SendIn.model_validate(
                        {"to": {"external_id": f"u{n % 1000}"}, "template": "order-shipped", "data": DATA}
                    ),
                )
        print(f"\raccepted {min(count, start + 1000)}/{count}", end="", file=sys.stderr, flush=True)
    print(file=sys.stderr)
    return sample_email(runtime, ws.id)


def sample_email(runtime, workspace_id: str) -> bytes:  # type: ignore[no-untyped-def]
    from ccm.messages.models import Message
    from ccm.messages.outbound import load_pending, prepare

    with runtime.db.unit_of_work() as session:
        message_id = session.query(Message.id).filter_by(workspace_id=workspace_id).limit(1).scalar()
        return prepare(runtime, session, load_pending(session, message_id)).outbound.raw


def wait_delivered(count: int, timeout: float) -> dict[str, float]:
    engine = create_engine(database_url())
    deadline = time.monotonic() + timeout
    with engine.connect() as connection:
        while True:
            done = connection.execute(
                text("SELECT count(*) FROM message WHERE status IN ('sent', 'delivered', 'failed', 'skipped')")
            ).scalar_one()
            print(f"\rdelivered {done}/{count}", end="", file=sys.stderr, flush=True)
            if done >= count or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        print(file=sys.stderr)
        row = connection.execute(
            text(
                "SELECT count(*) FILTER (WHERE status = 'sent'), min(claimed_at), max(finished_at), "
                "count(*) FILTER (WHERE status NOT IN ('sent')) FROM message"
            )
        ).one()
    engine.dispose()
    seconds = (row[2] - row[1]).total_seconds()
    return {"sent": row[0], "not_sent": row[3], "seconds": round(seconds, 2), "per_second": round(row[0] / seconds, 1)}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--messages", type=int, default=10000)
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--threads", type=int, default=8)
    args = parser.parse_args()
    sink, port = need("smtp-sink", "postfix"), free_port()
    fresh_database()
    seed(profiles=1000, template_html="<p>{{ first_name }} {{ order }}</p>")
    raw = accept_messages(args.messages)
    with process([sink, "-u", "nobody", f"127.0.0.1:{port}", "1024"]):
        wait_port(port)
        bare = baseline(port, args.messages, raw)
        print(f"bare smtplib loop   {bare:8.0f} messages/s  ({len(raw)} bytes each)", flush=True)
        env = ccm_env(smtp_url=f"smtp://127.0.0.1:{port}?local_hostname=localhost")
        cpu: dict[str, float] = {}
        with (
            process(
                [
                    sys.executable,
                    "-m",
                    "dramatiq",
                    "workers",
                    "--processes",
                    str(args.processes),
                    "--threads",
                    str(args.threads),
                ],
                env=env,
            ),
            cpu_usage(cpu),
        ):
            ccm = wait_delivered(args.messages, timeout=600)
    ratio = ccm["per_second"] / bare
    print(f"ccm end to end      {ccm['per_second']:8.0f} messages/s  ({ccm['sent']} sent, {ccm['not_sent']} not)")
    per_message = {name: round(seconds * 1000 / args.messages, 3) for name, seconds in cpu.items()}
    print(f"ratio ccm / bare smtplib: {ratio:.2f}   CPU ms per message: {per_message}")
    save(
        "e2e_email",
        {
            "when": time.strftime("%Y-%m-%d %H:%M"),
            "messages": args.messages,
            "bytes": len(raw),
            "processes": args.processes,
            "threads": args.threads,
            "bare_smtplib_per_s": round(bare, 1),
            "ccm": ccm,
            "ratio": ratio,
            "cpu_ms_per_message": per_message,
        },
    )


if __name__ == "__main__":
    main()
