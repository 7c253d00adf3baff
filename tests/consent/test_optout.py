"""One opt-out and its inverse: what each reason suppresses and revokes, recorded once however
often it is reported, and START lifting a STOP but never a bounce, a complaint or an erasure."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from ccm.consent.models import ConsentRecord
from ccm.consent.optout import RULES, OptInReason, OptOutReason, opt_in, opt_out
from ccm.messages.delivery import deliver_message
from ccm.suppression.models import Suppression
from ccm.suppression.service import suppress
from tests.channels.test_provider_accounts import add_provider, twilio_config
from tests.support.factories import publish_template, put_profile
from tests.support.http_server import HttpTestServer

ADDRESSES = {"email": "ada@example.com", "sms": "+14155550100", "chat": "987654321"}
EXPECTED = {  # reason: (suppression on email, on sms, on chat; consent revoked)
    OptOutReason.STOP: ("stop", "stop", "stop", True),
    OptOutReason.UNSUBSCRIBE: (None, None, None, True),
    OptOutReason.COMPLAINT: ("complaint", "complaint", "complaint", True),
    OptOutReason.BLOCKED: ("complaint", "stop", "stop", True),
    OptOutReason.HARD_BOUNCE: ("hard_bounce", "hard_bounce", "hard_bounce", False),
    OptOutReason.INVALID_ADDRESS: ("hard_bounce", "invalid_address", "invalid_address", False),
}


@pytest.fixture
def person(api, runtime, workspace):
    put_profile(api, "u1", email=ADDRESSES["email"], phone=ADDRESSES["sms"], chat={"telegram": ADDRESSES["chat"]})
    return workspace[0], api.get("/v1/profiles/u1").json["id"]


def suppressions(runtime):
    with runtime.db.unit_of_work() as session:
        return [(s.channel, s.reason) for s in session.scalars(select(Suppression).order_by(Suppression.channel))]


def ledger(runtime):
    with runtime.db.unit_of_work() as session:
        return [
            (r.channel, r.topic, r.status, r.source, r.actor)
            for r in session.scalars(select(ConsentRecord).order_by(ConsentRecord.recorded_at, ConsentRecord.id))
        ]


def out(runtime, person, reason, channel="sms", **overrides):
    workspace_id, profile_id = person
    values = {
        "workspace_id": workspace_id,
        "profile_id": profile_id,
        "channel": channel,
        "address": ADDRESSES[channel],
        "reason": reason,
        "source": "test",
        "proof": {"case": str(reason)},
        **overrides,
    }
    with runtime.db.unit_of_work() as session:
        return opt_out(session, **values)


def back_in(runtime, person, reason, channel="sms", **overrides):
    workspace_id, profile_id = person
    values = {
        "workspace_id": workspace_id,
        "profile_id": profile_id,
        "channel": channel,
        "address": ADDRESSES[channel],
        "reason": reason,
        "source": "test",
        **overrides,
    }
    with runtime.db.unit_of_work() as session:
        return opt_in(session, **values)


def test_every_reason_has_a_rule():
    assert set(RULES) == set(OptOutReason) == set(EXPECTED)


@pytest.mark.parametrize("channel", ["email", "sms", "chat"])
@pytest.mark.parametrize("reason", list(OptOutReason))
def test_each_reason_suppresses_and_revokes_as_its_rule_says(runtime, person, reason, channel):
    *suppressed_as, revokes = EXPECTED[reason]
    expected = suppressed_as[["email", "sms", "chat"].index(channel)]
    assert out(runtime, person, reason, channel)
    assert suppressions(runtime) == ([(channel, expected)] if expected else [])
    assert ledger(runtime) == ([(channel, "*", "revoked", "test", "recipient")] if revokes else [])


@pytest.mark.parametrize("reason", list(OptOutReason))
def test_fifty_duplicate_reports_make_one_suppression_and_one_ledger_record(runtime, person, reason):
    changed = [out(runtime, person, reason) for _ in range(50)]
    assert changed == [True] + [False] * 49
    assert len(suppressions(runtime)) == (1 if EXPECTED[reason][1] else 0)
    assert len(ledger(runtime)) == (1 if EXPECTED[reason][3] else 0)


def test_an_address_already_suppressed_keeps_its_first_reason_and_nothing_more_is_recorded(runtime, person):
    assert out(runtime, person, OptOutReason.HARD_BOUNCE)
    assert not out(runtime, person, OptOutReason.STOP)  # the number is dead: no STOP to confirm
    assert suppressions(runtime) == [("sms", "hard_bounce")] and ledger(runtime) == []


def test_an_address_no_one_is_known_by_is_still_suppressed(runtime, person):
    assert out(runtime, person, OptOutReason.BLOCKED, "chat", profile_id=None)
    assert suppressions(runtime) == [("chat", "stop")] and ledger(runtime) == []


def test_an_unsubscribe_revokes_its_topic_once_with_its_proof(runtime, person):
    long_agent = "Mozilla/5.0 " + "x" * 600  # longer than the ledger keeps
    for _ in range(2):
        out(runtime, person, OptOutReason.UNSUBSCRIBE, "email", topic="news", ip="203.0.113.9", user_agent=long_agent)
    with runtime.db.unit_of_work() as session:
        [record] = session.scalars(select(ConsentRecord)).all()
        assert (record.topic, record.status, record.ip, record.proof) == (
            "news",
            "revoked",
            "203.0.113.9",
            {"case": "unsubscribe"},
        )
        assert record.user_agent == long_agent[:500]
    assert suppressions(runtime) == []  # transactional mail still reaches them


def test_start_lifts_a_stop_and_grants_consent_once(runtime, person):
    out(runtime, person, OptOutReason.STOP)
    assert back_in(runtime, person, OptInReason.START)
    assert not back_in(runtime, person, OptInReason.START)  # not stopped any more: nothing to lift
    assert suppressions(runtime) == []
    assert [status for _, _, status, _, _ in ledger(runtime)] == ["revoked", "granted"]


@pytest.mark.parametrize("reason", ["hard_bounce", "complaint", "erased", "invalid_address", "manual"])
def test_start_never_lifts_another_suppression(runtime, person, reason):
    workspace_id, _ = person
    with runtime.db.unit_of_work() as session:
        suppress(session=session, workspace_id=workspace_id, channel="sms", address=ADDRESSES["sms"], reason=reason)
    assert not back_in(runtime, person, OptInReason.START)
    assert suppressions(runtime) == [("sms", reason)] and ledger(runtime) == []


def test_a_resubscription_grants_unless_granted(runtime, person):
    out(runtime, person, OptOutReason.UNSUBSCRIBE, "email", topic="news")
    assert back_in(runtime, person, OptInReason.RESUBSCRIBE, "email", address=None, topic="news")
    assert not back_in(runtime, person, OptInReason.RESUBSCRIBE, "email", address=None, topic="news")
    assert [(topic, status) for _, topic, status, _, _ in ledger(runtime)] == [("news", "revoked"), ("news", "granted")]


def test_a_carrier_stop_found_at_send_time_is_the_same_opt_out_as_a_keyword(api, runtime):
    """Twilio refuses a number that texted STOP to the carrier (21610): the number is suppressed
    and the person's consent revoked, as if they had texted us STOP."""
    with HttpTestServer() as twilio:
        config = twilio_config(twilio.url)
        twilio.respond(
            f"/2010-04-01/Accounts/{config['account_sid']}/Messages.json",
            400,
            json={"code": 21610, "message": "Attempt to send to unsubscribed recipient"},
        )
        add_provider(api, "twilio", "twilio", config)
        publish_template(api, variants=[{"channel": "sms", "body": "Your code"}])
        put_profile(api, "u1", phone=ADDRESSES["sms"], channels=["sms"], email=None)
        accepted = api.post("/v1/messages", json={"to": {"external_id": "u1"}, "template": "welcome", "channel": "sms"})
        deliver_message(runtime, accepted.json["id"])
    message = api.get(f"/v1/messages/{accepted.json['id']}").json
    assert message["status"] == "failed" and message["reason"].startswith("unsubscribed")
    assert suppressions(runtime) == [("sms", "stop")]
    assert ledger(runtime) == [("sms", "*", "revoked", "provider_unsubscribe", "provider")]
