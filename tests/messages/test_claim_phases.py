"""The claim in three phases — reads, the render with no transaction open, a short compare-and-set —
and what changes between them: a change committed while a message renders wins over the render."""

from __future__ import annotations

import datetime as dt
import sqlite3

import pytest
from sqlalchemy import insert, select, text, update

from ccm.db import utcnow
from ccm.messages import delivery
from ccm.messages.delivery import deliver_message
from ccm.messages.models import AttemptOutcome, DeliveryAttempt, Message
from tests.messages.test_send_api import send
from tests.support.factories import publish_template, put_profile

MARKETING = [
    {"channel": "email", "locale": "en", "subject": "News for {{ first_name }}", "html": "<p>Hi {{ first_name }}</p>"}
]


def during_render(monkeypatch, action) -> None:
    """Run ``action()`` while the claim renders, after the reads and before the claim is written."""
    real_prepare = delivery.prepare

    def prepare(runtime, planned):
        prepared = real_prepare(runtime, planned)
        action()
        return prepared

    monkeypatch.setattr(delivery, "prepare", prepare)


def message(runtime, message_id):
    with runtime.db.read_only() as session:
        return session.get(Message, message_id)


def assert_no_transaction_holds_a_lock(runtime) -> None:
    url = runtime.settings.resolved_database_url
    if url.startswith("sqlite"):
        writer = sqlite3.connect(url.removeprefix("sqlite:///"), timeout=0, isolation_level=None)
        try:
            writer.execute("BEGIN IMMEDIATE")  # fails at once if anyone holds the write lock
            writer.execute("COMMIT")
        finally:
            writer.close()
        return
    with runtime.db.engine.connect() as connection:
        open_elsewhere = connection.execute(
            text(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid() "
                "AND state LIKE 'idle in transaction%'"
            )
        ).scalar()
    assert open_elsewhere == 0


@pytest.fixture
def renders_checked(runtime, monkeypatch):
    """Every render checks, while it runs, that no transaction is open around it; returns the count."""
    renders = []
    real_render = runtime.sandbox.render

    def render(*args, **kwargs):
        assert_no_transaction_holds_a_lock(runtime)
        renders.append(args[1])
        return real_render(*args, **kwargs)

    monkeypatch.setattr(runtime.sandbox, "render", render)
    return renders


def test_a_delivery_renders_with_no_transaction_open(api, runtime, renders_checked):
    publish_template(api)
    put_profile(api, "u1")
    message_id = send(api).json["id"]
    deliver_message(runtime, message_id)
    assert message(runtime, message_id).status == "delivered"
    assert renders_checked  # the subject and the HTML, each checked


def test_a_preview_renders_with_no_transaction_open(api, renders_checked):
    publish_template(api)
    preview = api.post("/v1/templates/welcome/preview", json={"data": {"first_name": "Ada", "plan": "pro"}})
    assert preview.status_code == 200 and preview.json["problems"] == []
    assert renders_checked


def test_consent_revoked_while_the_message_renders_is_honoured(api, runtime, monkeypatch):
    publish_template(api, variables=["first_name"], variants=MARKETING, category="marketing")
    put_profile(api, "u1", channels=["email"])
    message_id = send(api, topic="news").json["id"]
    during_render(
        monkeypatch,
        lambda: api.post("/v1/profiles/u1/consent", json={"channel": "email", "topic": "news", "status": "revoked"}),
    )
    deliver_message(runtime, message_id)
    skipped = api.get(f"/v1/messages/{message_id}").json
    assert (skipped["status"], skipped["reason"]) == ("skipped", "no_consent")
    assert skipped["route"][-1] == {"channel": "email", "decision": "rejected", "reason": "no_consent"}
    assert api.get("/v1/outbox").json["items"] == []


def test_a_suppression_added_while_the_message_renders_is_honoured(api, runtime, monkeypatch):
    publish_template(api)
    put_profile(api, "u1")
    message_id = send(api).json["id"]
    during_render(
        monkeypatch,
        lambda: api.post(
            "/v1/suppressions", json={"channel": "email", "address": "u1@example.com", "reason": "manual"}
        ),
    )
    deliver_message(runtime, message_id)
    assert (message(runtime, message_id).status, message(runtime, message_id).reason) == (
        "skipped",
        "suppressed:manual",
    )
    assert api.get("/v1/outbox").json["items"] == []


def test_a_message_cancelled_while_it_renders_is_not_sent(api, runtime, monkeypatch):
    publish_template(api)
    put_profile(api, "u1")
    message_id = send(api).json["id"]

    def cancel():
        with runtime.db.unit_of_work() as session:
            session.execute(
                update(Message)
                .where(Message.id == message_id)
                .values(status="skipped", reason="erased", updated_at=utcnow())
            )

    during_render(monkeypatch, cancel)
    deliver_message(runtime, message_id)
    assert (message(runtime, message_id).status, message(runtime, message_id).reason) == ("skipped", "erased")
    assert api.get("/v1/outbox").json["items"] == []


def test_a_slow_run_reaching_its_commit_point_during_a_takeover_keeps_the_message(api, runtime, monkeypatch):
    """A claim looked stale, so this run took over; while it rendered, the slow owner reached its
    commit point (it may be sending now). The takeover must not claim the message."""
    publish_template(api)
    put_profile(api, "u1")
    message_id = send(api).json["id"]
    with runtime.db.unit_of_work() as session:
        session.execute(
            update(Message)
            .where(Message.id == message_id)
            .values(status="sending", claim_token="slow", claimed_at=utcnow() - dt.timedelta(minutes=5), claims=1)
        )

    def slow_owner_records_its_intent():
        with runtime.db.unit_of_work() as session:
            session.execute(update(Message).where(Message.id == message_id).values(updated_at=utcnow()))
            session.execute(
                insert(DeliveryAttempt).values(
                    id="att_slow",
                    message_id=message_id,
                    number=1,
                    channel="email",
                    provider="smtp",
                    to_address="u1@example.com",
                    outcome=AttemptOutcome.IN_FLIGHT,
                    hops=[],
                    started_at=utcnow(),
                )
            )

    during_render(monkeypatch, slow_owner_records_its_intent)
    deliver_message(runtime, message_id)
    row = message(runtime, message_id)
    assert (row.status, row.claim_token) == ("sending", "slow")
    assert api.get("/v1/outbox").json["items"] == []
    with runtime.db.read_only() as session:
        assert session.scalars(select(DeliveryAttempt.id)).all() == ["att_slow"]


def test_a_read_only_session_refuses_writes(runtime):
    with runtime.db.read_only() as session, pytest.raises(Exception, match="read-?only"):
        session.execute(update(Message).values(reason="x"))
