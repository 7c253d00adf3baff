"""check_send warns about what delivery then does: each warning is the reason the same message,
sent, ends with (or waits for) — consent, suppression, frequency caps, quiet hours — and the check
writes nothing (it runs in a read-only session)."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from ccm.messages import rules
from ccm.messages.delivery import deliver_message
from ccm.messages.models import Message
from ccm.messages.preview import check_send
from ccm.messages.support import send_from_agent
from ccm.profiles.service import get_profile
from tests.messages.test_timing import SMS_VARIANTS, at
from tests.support.factories import publish_template, put_profile


def profile_id(runtime, workspace_id, external_id="u1"):
    with runtime.db.read_only() as session:
        return get_profile(session=session, workspace_id=workspace_id, external_id=external_id).id


def checked(runtime, workspace_id, *, template=None, channel=None):
    with runtime.db.read_only() as session:  # refuses writes: the check has none
        return check_send(
            session=session,
            runtime=runtime,
            workspace_id=workspace_id,
            profile_id=profile_id(runtime, workspace_id),
            template=template,
            channel=channel,
        )


def sent(runtime, api, workspace_id, *, template=None, text=None, channel=None):
    """Send as the agent would, deliver it now, and read the message back."""
    with runtime.db.unit_of_work() as session:
        message_id = send_from_agent(
            session=session,
            runtime=runtime,
            workspace_id=workspace_id,
            profile_id=profile_id(runtime, workspace_id),
            template=template,
            data={},
            text=text,
            channel=channel,
        )
    deliver_message(runtime, message_id)
    return api.get(f"/v1/messages/{message_id}").json


def test_no_consent_is_warned_and_is_why_the_message_is_skipped(api, runtime, workspace):
    publish_template(api, "deal", variables=["first_name"], variants=SMS_VARIANTS, category="marketing")
    put_profile(api, "u1", channels=["email"])
    api.post("/v1/profiles/u1/consent", json={"channel": "email", "status": "revoked"})

    check = checked(runtime, workspace[0], template="deal", channel="email")
    assert (check.channel, check.warnings, check.category) == (None, ["no_consent"], "marketing")
    message = sent(runtime, api, workspace[0], template="deal", channel="email")
    assert (message["status"], message["reason"]) == ("skipped", "no_consent")


def test_a_suppressed_address_is_warned_even_for_a_transactional_text(api, runtime, workspace):
    put_profile(api, "u1")
    api.post("/v1/suppressions", json={"channel": "email", "address": "u1@example.com", "reason": "manual"})

    check = checked(runtime, workspace[0], channel="email")
    assert (check.channel, check.warnings) == (None, ["suppressed:manual"])
    message = sent(runtime, api, workspace[0], text="About your order", channel="email")
    assert (message["status"], message["reason"]) == ("skipped", "suppressed:manual")


@pytest.mark.settings(local_outbox="email,sms")
def test_the_preferred_channel_falls_back_and_says_why(api, runtime, workspace):
    put_profile(api, "u1", phone="+1 415 555 0100", channels=["email", "sms"])
    api.post("/v1/suppressions", json={"channel": "email", "address": "u1@example.com", "reason": "manual"})

    check = checked(runtime, workspace[0])
    assert (check.channel, check.address, check.warnings) == ("sms", "+14155550100", ["email: suppressed:manual"])
    message = sent(runtime, api, workspace[0], text="About your order")
    assert (message["status"], message["channel"]) == ("delivered", "sms")


@pytest.mark.settings(local_outbox="email,sms")
def test_quiet_hours_in_the_customers_zone_are_warned_with_when_it_would_go(api, runtime, workspace, monkeypatch):
    monkeypatch.setattr(rules, "utcnow", lambda: at("2026-01-10T15:00"))  # midnight in Tokyo
    publish_template(api, "deal", variables=["first_name"], variants=SMS_VARIANTS, category="marketing")
    put_profile(api, "u1", phone="+81 3-1234-5678", timezone="Asia/Tokyo", channels=["sms"])

    check = checked(runtime, workspace[0], template="deal")
    reason = "deferred: quiet_hours on sms in Asia/Tokyo until 2026-01-10T23:00Z"
    assert (check.channel, check.warnings, check.deferred_until) == ("sms", [reason], at("2026-01-10T23:00"))
    message = sent(runtime, api, workspace[0], template="deal")
    assert (message["status"], message["reason"]) == ("queued", reason)


def test_a_reached_frequency_cap_is_warned(api, runtime, workspace):
    api.patch("/v1/workspace", json={"policy": {"frequency_caps": [{"channel": "email", "max": 0, "days": 1}]}})
    publish_template(api, "deal", variables=["first_name"], variants=SMS_VARIANTS, category="marketing")
    put_profile(api, "u1", channels=["email"])

    check = checked(runtime, workspace[0], template="deal")
    assert check.channel == "email" and check.warnings[0].startswith("frequency_cap: at most 0 per 1 days on email")
    message = sent(runtime, api, workspace[0], template="deal")
    assert (message["status"], message["reason"]) == ("skipped", check.warnings[0])


def test_a_clear_send_has_no_warnings_and_the_check_wrote_nothing(api, runtime, workspace):
    put_profile(api, "u1")
    check = checked(runtime, workspace[0])
    assert (check.channel, check.address, check.warnings) == ("email", "u1@example.com", [])
    with runtime.db.read_only() as session:
        assert session.scalar(select(func.count()).select_from(Message)) == 0
