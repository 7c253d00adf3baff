"""Quiet hours in the recipient's time zone (across DST changes and for unknown zones), frequency
caps at their boundaries, and channel fallback after a permanent failure."""

from __future__ import annotations

import datetime as dt

import pytest

from ccm.messages import rules
from ccm.messages.delivery import deliver_message
from ccm.messages.timing import next_allowed
from tests.support.factories import publish_template, put_profile
from tests.support.http_server import HttpTestServer

UTC = dt.UTC
DAY = (dt.time(8), dt.time(21))


def at(text):
    return dt.datetime.fromisoformat(text).replace(tzinfo=UTC)


@pytest.mark.parametrize(
    ("now", "zone", "window", "expected"),
    [
        ("2026-01-10T12:00", "Europe/Paris", DAY, None),  # 13:00 in Paris
        ("2026-01-10T21:30", "Europe/Paris", DAY, "2026-01-11T07:00"),  # 22:30 → 08:00 CET
        ("2026-01-10T06:59", "Europe/Paris", DAY, "2026-01-10T07:00"),  # a minute early
        ("2026-01-10T20:00", "Europe/Paris", DAY, "2026-01-11T07:00"),  # 21:00 is already closed
        ("2026-03-28T21:30", "Europe/Paris", DAY, "2026-03-29T06:00"),  # spring forward: 08:00 CEST
        ("2026-10-24T20:30", "Europe/Paris", DAY, "2026-10-25T07:00"),  # fall back: 08:00 CET
        ("2026-03-08T05:00", "America/New_York", DAY, "2026-03-08T12:00"),  # US spring forward
        ("2026-01-10T15:00", "Asia/Tokyo", DAY, "2026-01-10T23:00"),  # midnight in Tokyo
        ("2026-01-10T12:00", "UTC", (dt.time(22), dt.time(6)), "2026-01-10T22:00"),  # a window over midnight
        ("2026-01-10T23:00", "UTC", (dt.time(22), dt.time(6)), None),
        ("2026-01-10T12:00", "UTC", None, None),  # no window: any time
    ],
)
def test_next_allowed_moment(now, zone, window, expected):
    found = next_allowed(at(now), window, [zone])
    assert found == (at(expected) if expected else None)


def test_an_unknown_time_zone_waits_until_the_window_is_open_everywhere():
    zones = ["America/New_York", "Asia/Tokyo"]  # 08-21 in both: 23:00-02:00 UTC in January
    assert next_allowed(at("2026-01-10T12:00"), DAY, zones) == at("2026-01-10T23:00")
    assert next_allowed(at("2026-01-11T01:00"), DAY, zones) is None


def test_windows_that_never_meet_are_refused():
    with pytest.raises(ValueError):
        next_allowed(at("2026-01-10T12:00"), (dt.time(9), dt.time(10)), ["Pacific/Kiritimati", "Pacific/Pago_Pago"])


SMS_VARIANTS = [
    {"channel": "sms", "locale": "en", "body": "Deal for {{ first_name }}"},
    {"channel": "email", "locale": "en", "subject": "Deal", "html": "<p>Deal {{ first_name }}</p>"},
]


def send(api, **body):
    response = api.post("/v1/messages", json={"to": {"external_id": "u1"}, "template": "welcome", **body})
    assert response.status_code == 202, response.json
    return response.json["id"]


@pytest.fixture
def clock(monkeypatch):
    """Pretend it is a given UTC time for the send-time rules."""

    def set_now(text):
        monkeypatch.setattr(rules, "utcnow", lambda: at(text))

    return set_now


@pytest.mark.settings(local_outbox="email,sms")
def test_marketing_sms_is_deferred_to_the_recipients_morning(api, runtime, clock):
    publish_template(api, variables=["first_name"], variants=SMS_VARIANTS, category="marketing")
    put_profile(api, "u1", phone="+81 3-1234-5678", timezone="Asia/Tokyo", channels=["sms"])
    message_id = send(api, channel="sms")
    clock("2026-01-10T15:00")  # midnight in Tokyo
    deliver_message(runtime, message_id)
    message = api.get(f"/v1/messages/{message_id}").json
    assert message["status"] == "queued"
    assert message["reason"] == "deferred: quiet_hours on sms in Asia/Tokyo until 2026-01-10T23:00Z"
    assert message["next_attempt_at"].startswith("2026-01-10T23:00")
    assert api.get("/v1/outbox").json["items"] == []

    clock("2026-01-10T23:05")  # 08:05 in Tokyo
    deliver_message(runtime, message_id)
    message = api.get(f"/v1/messages/{message_id}").json
    assert message["status"] == "delivered"
    raw = api.get("/v1/outbox").json["items"][0]["raw"]
    assert raw == "Deal for Ada\nReply STOP to opt out"  # marketing SMS carries the opt-out footer
    assert message["segments"] == 1


@pytest.mark.settings(local_outbox="email,sms")
def test_transactional_sms_bypasses_quiet_hours_unless_the_workspace_says_not(api, runtime, clock):
    publish_template(api, variables=["first_name"], variants=SMS_VARIANTS)
    put_profile(api, "u1", phone="+81 3-1234-5678", timezone="Asia/Tokyo", channels=["sms"])
    clock("2026-01-10T15:00")
    first = send(api, channel="sms")
    deliver_message(runtime, first)
    assert api.get(f"/v1/messages/{first}").json["status"] == "delivered"

    api.patch(
        "/v1/workspace",
        json={"policy": {"quiet_hours": {"transactional_bypass": False, "transactional": {"sms": ["07:00", "22:00"]}}}},
    )
    second = send(api, channel="sms")
    deliver_message(runtime, second)
    message = api.get(f"/v1/messages/{second}").json
    assert (message["status"], message["next_attempt_at"][:16]) == ("queued", "2026-01-10T22:00")


@pytest.mark.settings(local_outbox="email,sms")
def test_a_profiles_own_quiet_hours_replace_the_workspaces(api, runtime, clock):
    publish_template(api, variables=["first_name"], variants=SMS_VARIANTS, category="marketing")
    put_profile(
        api,
        "u1",
        phone="+33 6 12 34 56 78",
        timezone="Europe/Paris",
        channels=["sms"],
        preferences={"quiet_hours": ["18:00", "20:00"]},
    )
    clock("2026-01-10T12:00")  # 13:00 in Paris: fine for the workspace, not for them
    message_id = send(api, channel="sms")
    deliver_message(runtime, message_id)
    assert api.get(f"/v1/messages/{message_id}").json["next_attempt_at"].startswith("2026-01-10T17:00")


@pytest.mark.settings(local_outbox="email,sms")
def test_unknown_time_zone_uses_the_strictest_reading(api, runtime, clock):
    api.patch("/v1/workspace", json={"policy": {"audience_timezones": ["America/New_York", "Asia/Tokyo"]}})
    publish_template(api, variables=["first_name"], variants=SMS_VARIANTS, category="marketing")
    put_profile(api, "u1", phone="+14155550100", channels=["sms"])
    clock("2026-01-10T12:00")  # 07:00 in New York, 21:00 in Tokyo
    message_id = send(api, channel="sms")
    deliver_message(runtime, message_id)
    message = api.get(f"/v1/messages/{message_id}").json
    assert message["next_attempt_at"].startswith("2026-01-10T23:00")
    assert "time zone unknown" in message["reason"]


@pytest.mark.settings(local_outbox="email,sms")
def test_frequency_cap_at_its_boundary(api, runtime):
    api.patch("/v1/workspace", json={"policy": {"frequency_caps": [{"channel": "*", "max": 2, "days": 7}]}})
    publish_template(api, variables=["first_name"], variants=SMS_VARIANTS, category="marketing")
    publish_template(api, key="receipt", variables=["first_name"], variants=SMS_VARIANTS)
    put_profile(api, "u1", channels=["email"])
    messages = []
    for template in ("welcome", "receipt", "welcome", "welcome"):
        message_id = send(api, template=template)
        deliver_message(runtime, message_id)
        messages.append(api.get(f"/v1/messages/{message_id}").json)
    # the transactional receipt is exempt and not counted: the cap allows exactly two marketing messages
    assert [m["status"] for m in messages] == ["delivered", "delivered", "delivered", "skipped"]
    assert messages[3]["reason"] == "frequency_cap: at most 2 per 7 days on * for topic *"


@pytest.mark.settings(local_outbox="email,sms")
def test_a_message_being_sent_counts_against_the_cap(api, runtime):
    from sqlalchemy import update

    from ccm.db import utcnow
    from ccm.messages.models import Message

    api.patch("/v1/workspace", json={"policy": {"frequency_caps": [{"channel": "*", "max": 1, "days": 1}]}})
    publish_template(api, variables=["first_name"], variants=SMS_VARIANTS, category="marketing")
    put_profile(api, "u1", channels=["email"])
    first, second = send(api), send(api)
    with runtime.db.unit_of_work() as session:  # another worker is handing the first one over right now
        session.execute(update(Message).where(Message.id == first).values(status="sending", claimed_at=utcnow()))
    deliver_message(runtime, second)
    assert api.get(f"/v1/messages/{second}").json["reason"] == "frequency_cap: at most 1 per 1 days on * for topic *"
    with runtime.db.unit_of_work() as session:  # a stale claim taken over: the message does not block itself
        session.execute(update(Message).where(Message.id == first).values(claimed_at=utcnow() - dt.timedelta(hours=1)))
    deliver_message(runtime, first)
    assert api.get(f"/v1/messages/{first}").json["status"] == "delivered"


@pytest.mark.settings(local_outbox="email")
def test_a_permanent_failure_falls_back_to_the_next_channel_and_suppresses_the_address(api, runtime):
    with HttpTestServer() as twilio:
        sid = "AC" + "0" * 32
        twilio.respond(
            f"/2010-04-01/Accounts/{sid}/Messages.json",
            400,
            json={"code": 21211, "message": "The 'To' number is not a valid phone number.", "status": 400},
        )
        created = api.post(
            "/v1/providers",
            json={
                "kind": "twilio",
                "label": "twilio",
                "config": {
                    "account_sid": sid,
                    "auth_token": "secret-token",
                    "from_number": "+14155550000",
                    "base_url": twilio.url,
                },
            },
        )
        assert created.status_code == 201, created.json
        publish_template(api, variables=["first_name"], variants=SMS_VARIANTS)
        put_profile(api, "u1", phone="+14155550100", channels=["sms", "email"])
        message_id = send(api)
        deliver_message(runtime, message_id)  # sms fails permanently: queued again without sms
        deliver_message(runtime, message_id)  # email
    message = api.get(f"/v1/messages/{message_id}").json
    assert (message["status"], message["channel"]) == ("delivered", "email")
    assert [(h["channel"], h["decision"]) for h in message["route"]] == [("sms", "failed"), ("email", "chosen")]
    assert [(a["channel"], a["outcome"]) for a in message["attempts"]] == [
        ("sms", "permanent_error"),
        ("email", "delivered"),
    ]
    [entry] = api.get("/v1/suppressions?channel=sms").json["items"]
    assert (entry["address"], entry["reason"]) == ("+14155550100", "invalid_address")


@pytest.mark.settings(local_outbox="email")
def test_a_single_channel_message_fails_instead_of_falling_back(api, runtime):
    with HttpTestServer() as twilio:
        sid = "AC" + "0" * 32
        twilio.respond(
            f"/2010-04-01/Accounts/{sid}/Messages.json",
            400,
            json={"code": 21408, "status": 400, "message": "Permission to send an SMS has not been enabled."},
        )
        api.post(
            "/v1/providers",
            json={
                "kind": "twilio",
                "label": "twilio",
                "config": {
                    "account_sid": sid,
                    "auth_token": "secret-token",
                    "from_number": "+14155550000",
                    "base_url": twilio.url,
                },
            },
        )
        publish_template(api, variables=["first_name"], variants=SMS_VARIANTS)
        put_profile(api, "u1", phone="+14155550100", channels=["sms", "email"])
        message_id = send(api, channel="sms")
        deliver_message(runtime, message_id)
    message = api.get(f"/v1/messages/{message_id}").json
    assert message["status"] == "failed"
    assert "Permission to send an SMS" in message["reason"]
    assert [h["channel"] for h in message["route"]] == ["sms"]
    assert api.get("/v1/suppressions").json["items"] == []  # a policy refusal says nothing about the address
