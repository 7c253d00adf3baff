"""Delivering B messages in one job over real SMTP: one connection each, one intent transaction,
the final dots last; per-recipient errors stay per recipient; a lost claim or a failing commit
point sends nothing; nothing is sent twice when the batch runs again."""

from __future__ import annotations

import pytest
from sqlalchemy import event, func, select, text

from ccm.messages.batch import deliver_batch
from ccm.messages.delivery import deliver_message
from tests.messages.test_send_api import send
from tests.support.api import wait_for
from tests.support.factories import publish_template, put_profile

pytestmark = pytest.mark.settings(local_outbox="")


@pytest.fixture
def queued(api, smtp_server):
    """Ten transactional emails accepted but not delivered (no worker runs)."""
    publish_template(api)
    for n in range(10):
        put_profile(api, f"u{n}", email=f"u{n}@example.com")
    return [send(api, to={"external_id": f"u{n}"}).json["id"] for n in range(10)]


def message(api, message_id):
    return api.get(f"/v1/messages/{message_id}").json


def test_a_batch_goes_out_on_one_connection_per_message_and_ends_sent(api, runtime, smtp_server, queued):
    deliver_batch(runtime, queued)
    assert sorted(m.rcpt_tos[0] for m in smtp_server.messages) == sorted(f"u{n}@example.com" for n in range(10))
    assert smtp_server.connections == 10
    for message_id in queued:
        found = message(api, message_id)
        assert (found["status"], [a["outcome"] for a in found["attempts"]]) == ("sent", ["sent"])


def test_running_a_batch_again_sends_nothing_twice(api, runtime, smtp_server, queued):
    deliver_batch(runtime, queued)
    deliver_batch(runtime, queued)  # a redelivered batch job
    assert len(smtp_server.messages) == 10


def test_one_recipients_refusal_is_that_recipients_failure(api, runtime, smtp_server, queued):
    smtp_server.set_reply("RCPT u3@example.com", "550 5.1.1 No such user")
    deliver_batch(runtime, queued)
    assert len(smtp_server.messages) == 9
    assert message(api, queued[3])["status"] == "queued"  # to fall back to another channel: it has none
    deliver_message(runtime, queued[3])
    refused = message(api, queued[3])
    assert refused["status"] == "failed" and "550" in refused["reason"]
    assert api.get("/v1/suppressions").json["items"][0]["address"] == "u3@example.com"
    assert {message(api, i)["status"] for i in queued if i != queued[3]} == {"sent"}


def test_a_transient_refusal_retries_that_message_only(api, runtime, smtp_server, queued):
    smtp_server.set_reply("RCPT u5@example.com", "451 4.3.0 Try later")
    deliver_batch(runtime, queued)
    assert message(api, queued[5])["status"] == "retrying"
    assert len(smtp_server.messages) == 9


def test_a_message_claimed_elsewhere_meanwhile_is_left_alone(api, runtime, smtp_server, queued, monkeypatch):
    from ccm.messages import intents

    original = intents.record

    def steal_one(runtime, items, *args):
        with runtime.db.unit_of_work() as session:  # another run takes message 0 over
            session.execute(text("UPDATE message SET claim_token = 'other' WHERE id = :id"), {"id": queued[0]})
        return original(runtime, items, *args)

    monkeypatch.setattr(intents, "record", steal_one)
    deliver_batch(runtime, queued)
    assert len(smtp_server.messages) == 9
    assert message(api, queued[0])["status"] == "sending"  # left to the run that owns it


def test_a_failing_commit_point_sends_nothing_and_gives_the_claims_back(api, runtime, smtp_server, queued, monkeypatch):
    from ccm.messages import intents

    def database_down(*args):
        raise RuntimeError("the database went away")

    monkeypatch.setattr(intents, "record", database_down)
    with pytest.raises(RuntimeError):
        deliver_batch(runtime, queued)
    assert smtp_server.messages == []
    assert {message(api, i)["status"] for i in queued} == {"retrying"}
    monkeypatch.undo()
    deliver_batch(runtime, queued)
    assert len(smtp_server.messages) == 10


def test_a_worker_delivers_published_batches_and_finishes_every_job(api, runtime, smtp_server, worker):
    from ccm import jobs
    from ccm.messages.claims import DELIVER_BATCH
    from ccm.messages.models import TERMINAL_STATUSES

    runtime.publisher.relay_only = True  # accepted, not published: as if a campaign's rows were just written
    publish_template(api)
    for n in range(12):
        put_profile(api, f"u{n}", email=f"u{n}@example.com")
    ids = [send(api, to={"external_id": f"u{n}"}).json["id"] for n in range(12)]
    runtime.publisher.relay_only = False
    with runtime.db.unit_of_work() as session:
        jobs.publish_batches_after_commit(session, DELIVER_BATCH, ids, size=5)  # 3 broker messages
    wait_for(lambda: all(message(api, i)["status"] in TERMINAL_STATUSES for i in ids), message="the batches delivered")
    assert len(smtp_server.messages) == 12
    assert {message(api, i)["status"] for i in ids} == {"sent"}
    with runtime.db.unit_of_work() as session:
        assert session.scalar(select(func.count()).select_from(jobs.PendingJob)) == 0


def test_suppressions_count_in_a_batch_whether_added_before_or_while_it_renders(api, runtime, smtp_server, queued):
    """The batch reads suppression once per transaction for all its addresses: an address
    suppressed before is skipped at planning, one suppressed while the batch renders at the claim."""
    from ccm.messages import outbound

    def suppress(address):
        answer = api.post("/v1/suppressions", json={"channel": "email", "address": address, "reason": "manual"})
        assert answer.status_code == 201, answer.json

    suppress("u1@example.com")
    original, rendered = outbound.prepare, []

    def prepare_then_suppress(runtime, planned):
        if not rendered:
            suppress("u2@example.com")
        rendered.append(planned.pending.id)
        return original(runtime, planned)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr("ccm.messages.delivery.prepare", prepare_then_suppress)
        deliver_batch(runtime, queued)
    assert queued[1] not in rendered  # skipped before rendering
    assert [(message(api, queued[n])["status"], message(api, queued[n])["reason"]) for n in (1, 2)] == [
        ("skipped", "suppressed:manual"),
        ("skipped", "suppressed:manual"),
    ]
    assert sorted(m.rcpt_tos[0] for m in smtp_server.messages) == sorted(
        f"u{n}@example.com" for n in range(10) if n not in (1, 2)
    )


def test_consent_counts_in_a_batch_the_latest_record_deciding_whether_before_or_while_it_renders(
    api, runtime, smtp_server
):
    """The batch reads its profiles' consent once per transaction, not once per message: each
    message is still decided by its profile's latest record for the topic or for all topics."""
    from ccm.messages import outbound

    variants = [{"channel": "email", "locale": "en", "subject": "News", "html": "<p>Hi {{ first_name }}</p>"}]
    publish_template(api, variables=["first_name"], variants=variants, category="marketing")

    def consent(who, topic, status):
        answer = api.post(f"/v1/profiles/{who}/consent", json={"channel": "email", "topic": topic, "status": status})
        assert answer.status_code == 201, answer.json

    for n in range(5):
        put_profile(api, f"u{n}", email=f"u{n}@example.com", channels=["email"])
    consent("u1", "news", "revoked")
    consent("u2", "*", "revoked")
    consent("u2", "news", "granted")  # later: it decides
    consent("u3", "news", "granted")
    consent("u3", "*", "revoked")  # later: it decides
    ids = [send(api, to={"external_id": f"u{n}"}, topic="news").json["id"] for n in range(5)]
    original, rendered = outbound.prepare, []

    def prepare_then_revoke(runtime, planned):
        if not rendered:
            consent("u4", "news", "revoked")
        rendered.append(planned.pending.id)
        return original(runtime, planned)

    consent_reads = []

    def count(conn, cursor, statement, *args):
        if "FROM consent_record" in statement:
            consent_reads.append(statement)

    event.listen(runtime.db.engine, "before_cursor_execute", count)
    try:
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr("ccm.messages.delivery.prepare", prepare_then_revoke)
            deliver_batch(runtime, ids)
    finally:
        event.remove(runtime.db.engine, "before_cursor_execute", count)
    outcomes = [(found["status"], found["reason"]) for found in (message(api, i) for i in ids)]
    assert [(status, reason if status == "skipped" else None) for status, reason in outcomes] == [
        ("sent", None),
        ("skipped", "no_consent"),
        ("sent", None),
        ("skipped", "no_consent"),
        ("skipped", "no_consent"),  # revoked while the batch rendered
    ]
    assert sorted(m.rcpt_tos[0] for m in smtp_server.messages) == ["u0@example.com", "u2@example.com"]
    assert len(consent_reads) == 2  # one per transaction of the claim, whatever the batch's size


@pytest.fixture
def first_intent_refused_at_commit(runtime):
    """PostgreSQL refuses the first intent's COMMIT (a deferred trigger: checked at COMMIT, after
    the dots went out); a sequence, not a table, counts the tries, so the refusal does not undo it."""
    if runtime.db.is_sqlite:
        pytest.skip("SQLite commits before the dots: there is no answer to come after them")
    statements = [
        "CREATE SEQUENCE refuse_once_seq",
        """CREATE FUNCTION refuse_once() RETURNS trigger LANGUAGE plpgsql AS $$
           BEGIN IF nextval('refuse_once_seq') = 1 THEN RAISE EXCEPTION 'refused at COMMIT'; END IF;
           RETURN NULL; END $$""",
        """CREATE CONSTRAINT TRIGGER refuse_once AFTER INSERT ON delivery_attempt
           DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION refuse_once()""",
    ]
    with runtime.db.unit_of_work() as session:
        for statement in statements:
            session.execute(text(statement))
    yield
    with runtime.db.unit_of_work() as session:
        session.execute(text("DROP TRIGGER refuse_once ON delivery_attempt"))
        session.execute(text("DROP FUNCTION refuse_once()"))
        session.execute(text("DROP SEQUENCE refuse_once_seq"))


def test_an_intent_refused_at_commit_after_the_dots_is_written_again_and_nobody_gets_two(
    api, runtime, smtp_server, queued, first_intent_refused_at_commit, caplog
):
    deliver_batch(runtime, queued)
    assert sorted(m.rcpt_tos[0] for m in smtp_server.messages) == sorted(f"u{n}@example.com" for n in range(10))
    for message_id in queued:
        found = message(api, message_id)
        assert (found["status"], [a["outcome"] for a in found["attempts"]]) == ("sent", ["sent"])
    deliver_batch(runtime, queued)  # a redelivered job finds them done
    assert len(smtp_server.messages) == 10
    assert "not confirmed after their final writes" in caplog.text
