"""The delivery actor called directly: idempotent on the message id, one provider call at most,
retries that end, and a job outbox that loses nothing."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import select, update

from ccm.db import utcnow
from ccm.jobs import PendingJob
from ccm.messages.claims import MAX_CLAIMS
from ccm.messages.delivery import deliver_message
from ccm.messages.models import DeliveryAttempt, Message
from ccm.relay import relay_once
from tests.messages.test_send_api import send
from tests.support.factories import publish_template, put_profile


@pytest.fixture
def accepted(api, smtp_server):
    publish_template(api)
    put_profile(api, "u1")
    return send(api).json["id"]


def row(runtime, message_id):
    with runtime.db.unit_of_work() as session:
        return session.get(Message, message_id)


def pending_jobs(runtime):
    with runtime.db.unit_of_work() as session:
        return session.scalars(select(PendingJob)).all()


def test_running_twice_calls_the_provider_once(runtime, accepted, smtp_server):
    deliver_message(runtime, accepted)
    deliver_message(runtime, accepted)  # a redelivery, a lost ack, a double promotion
    assert row(runtime, accepted).status == "sent"
    assert len(smtp_server.messages) == 1
    assert pending_jobs(runtime) == []  # finished work leaves the outbox


def test_a_live_claim_makes_a_second_run_a_no_op(runtime, accepted, smtp_server):
    with runtime.db.unit_of_work() as session:
        session.execute(
            update(Message)
            .where(Message.id == accepted)
            .values(status="sending", claim_token="someone", claimed_at=utcnow(), claims=1)
        )
    deliver_message(runtime, accepted)
    assert row(runtime, accepted).status == "sending"
    assert smtp_server.messages == []


def test_a_stale_claim_without_a_provider_call_is_taken_over(runtime, accepted, smtp_server):
    with runtime.db.unit_of_work() as session:
        session.execute(
            update(Message)
            .where(Message.id == accepted)
            .values(status="sending", claim_token="dead", claimed_at=utcnow() - dt.timedelta(minutes=5), claims=1)
        )
    deliver_message(runtime, accepted)
    assert row(runtime, accepted).status == "sent"
    assert len(smtp_server.messages) == 1


def test_the_commit_point_refuses_a_run_that_lost_its_claim(runtime, accepted, smtp_server, monkeypatch):
    from ccm.messages import intents

    real_intent = intents.record

    def stolen(runtime_, claimed, *rest):
        with runtime.db.unit_of_work() as session:  # another run took the message meanwhile
            session.execute(update(Message).where(Message.id == accepted).values(claim_token="thief"))
        return real_intent(runtime_, claimed, *rest)

    monkeypatch.setattr(intents, "record", stolen)
    deliver_message(runtime, accepted)
    assert smtp_server.messages == []  # the DATA was aborted before the final dot
    assert smtp_server.commands.count("DATA") == 1
    with runtime.db.unit_of_work() as session:
        assert session.scalars(select(DeliveryAttempt)).all() == []
    assert row(runtime, accepted).claim_token == "thief"


def test_an_unexpected_error_gives_the_claim_back_and_is_raised(runtime, accepted, smtp_server, monkeypatch):
    from ccm.channels.smtp import SmtpProvider

    def explode(*args, **kwargs):
        raise RuntimeError("bug")

    monkeypatch.setattr(SmtpProvider, "send_batch", explode)
    with pytest.raises(RuntimeError):
        deliver_message(runtime, accepted)
    message = row(runtime, accepted)
    assert (message.status, message.claim_token) == ("retrying", None)
    monkeypatch.undo()
    deliver_message(runtime, accepted)
    assert row(runtime, accepted).status == "sent"
    assert len(smtp_server.messages) == 1


def test_a_message_that_keeps_crashing_fails_with_a_reason(runtime, accepted):
    with runtime.db.unit_of_work() as session:
        session.execute(update(Message).where(Message.id == accepted).values(status="retrying", claims=MAX_CLAIMS))
    deliver_message(runtime, accepted)
    message = row(runtime, accepted)
    assert message.status == "failed"
    assert message.reason.startswith("too_many_attempts")


def test_a_message_past_its_deadline_is_not_sent(runtime, accepted, smtp_server):
    with runtime.db.unit_of_work() as session:
        session.execute(update(Message).where(Message.id == accepted).values(deadline_at=utcnow()))
    deliver_message(runtime, accepted)
    assert (row(runtime, accepted).status, smtp_server.messages) == ("failed", [])
    assert row(runtime, accepted).reason.startswith("deadline_exceeded")


def test_an_erased_profile_skips_its_pending_message(api, runtime, accepted, smtp_server):
    assert api.delete("/v1/profiles/u1").status_code == 204
    message = row(runtime, accepted)
    assert (message.status, message.reason) == ("skipped", "erased")
    deliver_message(runtime, accepted)
    assert smtp_server.messages == []


def test_an_error_inside_the_accepting_transaction_publishes_nothing(runtime, workspace, api, smtp_server):
    from ccm.messages.schemas import SendIn
    from ccm.messages.service import send_message

    publish_template(api)
    put_profile(api, "u1")
    published = []
    runtime.publisher.publish = lambda *args, **kwargs: published.append(args)  # type: ignore[method-assign]
    with pytest.raises(RuntimeError), runtime.db.unit_of_work() as session:
        send_message(
            session=session,
            runtime=runtime,
            workspace_id=workspace[0],
            idempotency_key=None,
            request=SendIn.model_validate({"to": {"external_id": "u1"}, "template": "welcome"}),
        )
        raise RuntimeError("something after the message row, in the same transaction")
    assert published == []
    assert pending_jobs(runtime) == []
    with runtime.db.unit_of_work() as session:
        assert session.scalars(select(Message)).all() == []


def test_the_relay_republishes_due_jobs_and_backs_off(runtime, accepted):
    published = []
    runtime.publisher.publish = lambda actor, queue, args, delay=0.0: published.append((actor, tuple(args)))  # type: ignore[method-assign]
    assert relay_once(runtime) == 0  # not due yet: the fast path published it a moment ago
    with runtime.db.unit_of_work() as session:
        session.execute(update(PendingJob).values(due_at=utcnow() - dt.timedelta(seconds=1)))
    assert relay_once(runtime) == 1
    assert published == [("messages.deliver", (accepted,))]
    assert relay_once(runtime) == 0  # rescheduled further out
    [job] = pending_jobs(runtime)
    assert job.publishes == 1 and job.due_at > utcnow()


def test_a_bug_while_preparing_fails_the_message_with_a_reason(runtime, accepted, smtp_server, monkeypatch):
    def broken(*args, **kwargs):
        raise KeyError("first_name")

    monkeypatch.setattr("ccm.messages.delivery.prepare", broken)
    deliver_message(runtime, accepted)  # ends the message instead of raising (and being retried forever)
    message = row(runtime, accepted)
    assert (message.status, message.reason) == ("failed", "internal_error: KeyError while preparing the message")
    assert pending_jobs(runtime) == [] and smtp_server.messages == []


def test_a_database_error_while_preparing_is_retried(runtime, accepted, smtp_server, monkeypatch):
    from sqlalchemy.exc import OperationalError

    def unwell(*args, **kwargs):
        raise OperationalError("SELECT 1", {}, Exception("server closed the connection"))

    monkeypatch.setattr("ccm.messages.delivery.prepare", unwell)
    with pytest.raises(OperationalError):
        deliver_message(runtime, accepted)
    assert row(runtime, accepted).status == "queued"
    monkeypatch.undo()
    deliver_message(runtime, accepted)
    assert row(runtime, accepted).status == "sent"


def test_a_decision_on_a_message_changed_meanwhile_changes_nothing(runtime, accepted):
    from ccm.messages import outcomes
    from ccm.messages.models import MessageStatus
    from ccm.messages.outbound import load_pending

    with runtime.db.unit_of_work() as session:
        stale = load_pending(session, accepted)
    with runtime.db.unit_of_work() as session:  # another run claimed it in between
        session.execute(update(Message).where(Message.id == accepted).values(status="sending", claim_token="other"))
    with runtime.db.unit_of_work() as session:
        outcomes.finish_message(session, stale, MessageStatus.FAILED, "deadline_exceeded: test")
    message = row(runtime, accepted)
    assert (message.status, message.claim_token, message.reason) == ("sending", "other", None)
    assert len(pending_jobs(runtime)) == 1  # the job stays with the run that owns the message


@pytest.mark.settings(local_outbox="")
def test_a_local_outbox_behind_another_provider_is_a_failover_target_like_any_other(api, runtime):
    from tests.support.http_server import HttpTestServer

    with HttpTestServer() as gateway:
        gateway.respond("/send", 503)
        api.post(
            "/v1/providers",
            json={
                "kind": "webhook",
                "label": "gateway",
                "priority": 0,
                "config": {"url": f"{gateway.url}/send", "secret": "whsec_" + "A" * 32, "channel": "sms"},
            },
        )
        api.post(
            "/v1/providers",
            json={"kind": "local_outbox", "label": "outbox", "priority": 1, "config": {"channel": "sms"}},
        )
        publish_template(api, variants=[{"channel": "sms", "body": "Hi {{ first_name }}"}], variables=["first_name"])
        put_profile(api, "u1", phone="+14155550100", channels=["sms"])
        message_id = send(api).json["id"]
        deliver_message(runtime, message_id)
    message = row(runtime, message_id)
    assert message.status == "delivered"
    assert [item["message_id"] for item in api.get("/v1/outbox").json["items"]] == [message_id]
    hops = api.get(f"/v1/messages/{message_id}").json["attempts"][0]["hops"]
    assert [(hop["provider"], hop["outcome"]) for hop in hops] == [
        ("webhook", "transient_error"),
        ("local_outbox", "delivered"),
    ]
