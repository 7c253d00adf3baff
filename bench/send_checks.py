"""What the send-time checks cost: routing, suppression, consent, frequency caps and quiet hours,
per message, next to rendering the same message (the baseline, measured in the same run).

    .venv/bin/python bench/send_checks.py [--messages 2000]

Runs in one process against PostgreSQL: ``prepare()`` is called for pending marketing SMS
messages to profiles with consent records and a workspace with two frequency caps and quiet
hours, then for the same messages with a bare policy (transactional, no caps, no quiet hours).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.common import REDIS_URL, database_url, fresh_database, save  # noqa: E402


def setup(count: int):  # type: ignore[no-untyped-def]
    from ccm.config import Settings
    from ccm.consent.models import ConsentRecord
    from ccm.message_templates.schemas import TemplateIn
    from ccm.message_templates.service import create_template, publish
    from ccm.messages.schemas import SendIn
    from ccm.messages.service import send_message
    from ccm.profiles.models import Profile
    from ccm.runtime import create_runtime
    from ccm.workspaces.service import get_or_create_workspace

    runtime = create_runtime(
        Settings(
            database_url=database_url(), redis_url=REDIS_URL, secret_key="bench-secret", local_outbox="email,sms,chat"
        )
    )
    with runtime.db.unit_of_work() as session:
        ws, _ = get_or_create_workspace(session=session, name="bench")
        for category in ("marketing", "transactional"):
            definition = TemplateIn.model_validate(
                {
                    "key": category,
                    "category": category,
                    "variables": ["first_name"],
                    "variants": [
                        {"channel": "sms", "body": "Hi {{ first_name }}, 20% off today"},
                        {"channel": "email", "subject": "Hi", "html": "<p>Hi {{ first_name }}</p>"},
                    ],
                }
            )
            create_template(session=session, sandbox=runtime.sandbox, workspace_id=ws.id, data=definition)
            publish(session=session, sandbox=runtime.sandbox, workspace_id=ws.id, key=category)
        profiles = [
            Profile(
                workspace_id=ws.id,
                external_id=f"u{n}",
                phone=f"+1415555{n % 10000:04d}",
                email=f"u{n}@example.com",
                timezone="UTC",
                attributes={"first_name": "Ada"},
                channels=["sms", "email"],
            )
            for n in range(count)
        ]
        session.add_all(profiles)
        session.flush()
        session.add_all(
            ConsentRecord(
                workspace_id=ws.id, profile_id=p.id, channel="sms", topic="deals", status="granted", source="bench"
            )
            for p in profiles
        )
    ids = {"marketing": [], "transactional": []}
    with runtime.db.unit_of_work() as session:
        for n in range(count):
            for category in ids:
                ids[category].append(
                    send_message(
                        session=session,
                        runtime=runtime,
                        workspace_id=ws.id,
                        idempotency_key=None,
                        request=SendIn.model_validate(
                            {
                                "to": {"external_id": f"u{n}"},
                                "template": category,
                                "topic": "deals" if category == "marketing" else None,
                            }
                        ),
                    ).id
                )
    return runtime, ws.id, ids


def measure(runtime, message_ids: list[str]) -> float:  # type: ignore[no-untyped-def]
    from ccm.messages.outbound import load_pending, plan, prepare

    timings = []
    with runtime.db.unit_of_work() as session:
        for message_id in message_ids:
            pending = load_pending(session, message_id)
            started = time.perf_counter()
            prepare(runtime, plan(runtime, session, pending))  # route and check, then render and build
            timings.append(time.perf_counter() - started)
        session.rollback()
    return statistics.median(timings) * 1e6


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--messages", type=int, default=2000)
    args = parser.parse_args()
    fresh_database()
    runtime, workspace_id, ids = setup(args.messages)
    from ccm.workspaces.models import Workspace
    from ccm.workspaces.schemas import WorkspacePolicy

    with runtime.db.unit_of_work() as session:
        session.get(Workspace, workspace_id).settings = WorkspacePolicy.model_validate(
            {
                "frequency_caps": [
                    {"channel": "*", "max": 5, "days": 7},
                    {"channel": "sms", "topic": "deals", "max": 2, "days": 1},
                ],
                "quiet_hours": {"marketing": {"sms": ["00:00", "23:59"], "email": ["00:00", "23:59"]}},
            }
        ).model_dump(mode="json")
    for category in ids:  # warm caches and prepared statements
        measure(runtime, ids[category][:100])
    checked = measure(runtime, ids["marketing"])
    bare = measure(runtime, ids["transactional"])
    print(f"prepare(), transactional, no caps (baseline)  {bare:7.0f} µs per message")
    print(f"prepare(), marketing with consent, caps, quiet hours  {checked:7.0f} µs per message")
    print(f"send-time checks add {checked - bare:.0f} µs per message ({checked / bare:.2f}× the baseline)")
    save(
        "send_checks",
        {
            "when": time.strftime("%Y-%m-%d %H:%M"),
            "messages": args.messages,
            "baseline_us": round(bare),
            "with_checks_us": round(checked),
            "added_us": round(checked - bare),
            "ratio": round(checked / bare, 2),
        },
    )


if __name__ == "__main__":
    main()
