"""The consent ledger, the suppression list, the workspace policy, phone numbers, SMS sizes, and
GDPR export and erasure — over the API."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from ccm.channels.sms import sms_size
from ccm.messages.delivery import deliver_message
from ccm.messages.models import Message
from ccm.suppression.models import Suppression
from tests.support.factories import publish_template, put_profile

SMS = [
    {"channel": "sms", "locale": "en", "body": "{{ text }}"},
    {"channel": "email", "locale": "en", "subject": "Hi", "html": "<p>{{ text }}</p>"},
]


def test_consent_records_are_kept_and_the_latest_decides(api):
    put_profile(api, "u1")
    first = api.post(
        "/v1/profiles/u1/consent",
        json={
            "channel": "sms",
            "topic": "news",
            "status": "granted",
            "source": "double_opt_in",
            "proof": {"token": "abc"},
        },
        headers={"User-Agent": "signup-form/1.0"},
    )
    assert first.status_code == 201
    assert (first.json["ip"], first.json["user_agent"]) == ("127.0.0.1", "signup-form/1.0")
    assert first.json["actor"].startswith("api_key:ccm_")
    api.post("/v1/profiles/u1/consent", json={"channel": "sms", "topic": "news", "status": "revoked", "source": "stop"})
    body = api.get("/v1/profiles/u1/consent").json
    assert [(c["channel"], c["topic"], c["status"], c["source"]) for c in body["current"]] == [
        ("sms", "news", "revoked", "stop")
    ]
    assert [r["status"] for r in body["history"]] == ["revoked", "granted"]  # newest first, nothing lost
    assert body["history"][1]["proof"] == {"token": "abc"}


def test_consent_input_is_validated(api):
    put_profile(api, "u1")
    response = api.post("/v1/profiles/u1/consent", json={"channel": "fax", "status": "granted"})
    assert (response.status_code, response.json["error"]["details"]["field"]) == (422, "channel")
    assert api.post("/v1/profiles/nobody/consent", json={"channel": "sms", "status": "granted"}).status_code == 404


def test_suppressions_are_normalized_idempotent_and_removable(api):
    added = api.post("/v1/suppressions", json={"channel": "sms", "address": "(415) 555-0100", "reason": "manual"})
    assert added.status_code == 201
    assert added.json["items"][0]["address"] == "+14155550100"  # the workspace's default region is US
    again = api.post("/v1/suppressions", json={"channel": "sms", "address": "+1 415 555 0100", "reason": "stop"})
    assert again.json["items"][0]["reason"] == "manual"  # the first reason stays
    assert len(api.get("/v1/suppressions").json["items"]) == 1
    bad = api.post("/v1/suppressions", json={"channel": "email", "address": "not an address"})
    assert (bad.status_code, bad.json["error"]["details"]["field"]) == (422, "address")
    entry_id = added.json["items"][0]["id"]
    assert api.delete(f"/v1/suppressions/{entry_id}").status_code == 204
    assert api.get("/v1/suppressions").json["items"] == []


@pytest.mark.settings(local_outbox="email,sms")
def test_suppression_blocks_even_transactional_messages(api, runtime):
    publish_template(api, variables=["text"], variants=SMS)
    put_profile(api, "u1", phone="+14155550100", channels=["sms"], email=None)
    api.post("/v1/suppressions", json={"channel": "sms", "address": "+14155550100", "reason": "complaint"})
    accepted = api.post(
        "/v1/messages",
        json={"to": {"external_id": "u1"}, "template": "welcome", "data": {"text": "Your code is 123456"}},
    )
    deliver_message(runtime, accepted.json["id"])
    message = api.get(f"/v1/messages/{accepted.json['id']}").json
    assert (message["status"], message["reason"]) == ("skipped", "suppressed:complaint")


def test_workspace_policy_is_validated_whole_and_names_the_field(api):
    response = api.patch(
        "/v1/workspace", json={"policy": {"frequency_caps": [{"channel": "sms", "max": -1, "days": 7}]}}
    )
    assert (response.status_code, response.json["error"]["details"]["field"]) == (422, "policy.frequency_caps.0.max")
    response = api.patch("/v1/workspace", json={"policy": {"timezone": "Mars/Base"}})
    assert response.json["error"]["details"]["field"] == "policy.timezone"
    ok = api.patch("/v1/workspace", json={"policy": {"default_region": "FR", "sms_segment_cap": 2}})
    assert ok.status_code == 200
    assert (ok.json["policy"]["default_region"], ok.json["policy"]["sms_segment_cap"]) == ("FR", 2)
    assert ok.json["policy"]["quiet_hours"]["marketing"]["sms"] == ["08:00", "21:00"]  # defaults kept


@pytest.mark.parametrize(
    ("patch", "field"),
    [
        ({"mail_from": "Shop <hello@shop.example>\r\nBcc: everyone@example.com"}, "mail_from"),
        ({"mail_from": "not an address"}, "mail_from"),
        ({"mail_from": "a@shop.example, b@shop.example"}, "mail_from"),
        ({"mail_from": "x" * 320 + "@shop.example"}, "mail_from"),
        ({"default_locale": "english please"}, "default_locale"),
    ],
)
def test_workspace_sender_and_locale_are_validated(api, patch, field):
    before = api.get("/v1/workspace").json
    response = api.patch("/v1/workspace", json=patch)
    assert (response.status_code, response.json["error"]["details"]["field"]) == (422, field)
    assert api.get("/v1/workspace").json == before
    ok = api.patch("/v1/workspace", json={"mail_from": "Shop <hello@shop.example>", "default_locale": "es-mx"})
    assert (ok.json["mail_from"], ok.json["default_locale"]) == ("Shop <hello@shop.example>", "es-MX")


def test_phone_numbers_are_stored_in_e164_using_the_workspace_region(api):
    api.patch("/v1/workspace", json={"policy": {"default_region": "FR"}})
    assert put_profile(api, "u1", phone="06 12 34 56 78")["phone"] == "+33612345678"
    response = api.put("/v1/profiles/u2", json={"phone": "+1 555 0100"})
    assert (response.status_code, response.json["error"]["details"]["field"]) == (422, "phone")


@pytest.mark.parametrize(
    ("body", "encoding", "segments"),
    [
        ("a" * 160, "GSM-7", 1),
        ("a" * 161, "GSM-7", 2),
        ("a" * 306, "GSM-7", 2),
        ("a" * 307, "GSM-7", 3),
        ("{" * 80, "GSM-7", 1),
        ("{" * 81, "GSM-7", 2),  # extension characters count twice
        ("é" * 160, "GSM-7", 1),  # é is in the GSM alphabet
        ("ç" * 70, "UCS-2", 1),
        ("ç" * 71, "UCS-2", 2),  # ç is not
        ("a" * 69 + "😀", "UCS-2", 2),  # an emoji is two UTF-16 units
    ],
)
def test_sms_encoding_and_segments(body, encoding, segments):
    size = sms_size(body)
    assert (size.encoding, size.segments) == (encoding, segments)


@pytest.mark.settings(local_outbox="email,sms")
def test_sms_over_the_segment_cap_fails_and_previews_show_segments(api, runtime):
    api.patch("/v1/workspace", json={"policy": {"sms_segment_cap": 2}})
    publish_template(api, variables=["text"], variants=SMS)
    put_profile(api, "u1", phone="+14155550100", channels=["sms"])
    preview = api.post("/v1/templates/welcome/preview", json={"data": {"text": "😀" * 70}, "channel": "sms"}).json
    assert (preview["parts"][0]["segments"], preview["parts"][0]["encoding"]) == (3, "UCS-2")
    accepted = api.post(
        "/v1/messages", json={"to": {"external_id": "u1"}, "template": "welcome", "data": {"text": "😀" * 70}}
    )
    deliver_message(runtime, accepted.json["id"])
    message = api.get(f"/v1/messages/{accepted.json['id']}").json
    assert message["status"] == "failed"
    assert message["reason"].startswith("sms_too_long: 3 segments (UCS-2)")
    assert api.get("/v1/outbox").json["items"] == []


@pytest.mark.settings(local_outbox="email,sms")
def test_export_holds_everything_about_the_person(api, runtime):
    publish_template(api, variables=["text"], variants=SMS)
    put_profile(api, "u1", phone="+14155550100", attributes={"plan": "pro"})
    api.post("/v1/profiles/u1/consent", json={"channel": "email", "status": "granted"})
    accepted = api.post(
        "/v1/messages", json={"to": {"external_id": "u1"}, "template": "welcome", "data": {"text": "hello"}}
    )
    deliver_message(runtime, accepted.json["id"])
    export = api.get("/v1/profiles/u1/export")
    assert export.status_code == 200
    assert "attachment" in export.headers["Content-Disposition"]
    body = export.json
    assert body["profile"]["attributes"] == {"plan": "pro"}
    assert [c["status"] for c in body["consent"]] == ["granted"]
    [message] = body["messages"]
    assert (message["id"], message["data"], message["attempts"][0]["outcome"]) == (
        accepted.json["id"],
        {"text": "hello"},
        "delivered",
    )


@pytest.mark.settings(local_outbox="email,sms")
def test_erasure_removes_personal_data_and_keeps_only_hashes(api, runtime):
    publish_template(api, variables=["text"], variants=SMS)
    put_profile(api, "u1", email="ada@example.com", phone="+14155550100")
    sent = api.post(
        "/v1/messages", json={"to": {"external_id": "u1"}, "template": "welcome", "data": {"text": "private"}}
    ).json["id"]
    deliver_message(runtime, sent)
    waiting = api.post(
        "/v1/messages", json={"to": {"external_id": "u1"}, "template": "welcome", "data": {"text": "later"}}
    ).json["id"]
    assert api.delete("/v1/profiles/u1").status_code == 204

    assert api.get("/v1/profiles/u1").status_code == 404
    assert api.get(f"/v1/messages/{waiting}").json["reason"] == "erased"
    with runtime.db.unit_of_work() as session:
        for message in session.scalars(select(Message)):
            assert (message.data, message.to_address, message.profile_id) == ({}, None, None)
        entries = session.scalars(select(Suppression)).all()
        assert sorted(e.channel for e in entries) == ["email", "sms"]
        assert all(e.address is None and e.reason == "erased" and len(e.address_hash) == 64 for e in entries)
    assert api.get("/v1/outbox").json["items"] == []  # the copy of what was sent to them is gone

    # Re-imported later, they are not messaged again.
    put_profile(api, "u1", email="Ada@example.com")
    again = api.post(
        "/v1/messages",
        json={"to": {"external_id": "u1"}, "template": "welcome", "data": {"text": "hi"}, "channel": "email"},
    ).json["id"]
    deliver_message(runtime, again)
    assert api.get(f"/v1/messages/{again}").json["reason"] == "suppressed:erased"


def test_rate_limits_are_shared_through_redis(redis_url):
    if not redis_url:
        pytest.skip("needs CCM_TEST_REDIS_URL")
    import time

    import redis

    from ccm.channels.guards import ProviderGuards

    client = redis.Redis.from_url(redis_url)
    namespace = f"ccm-test-rate-{time.time_ns()}"
    first, second = (ProviderGuards(client, namespace=namespace) for _ in range(2))  # two "processes"
    time.sleep(1.0 - time.time() % 1.0 + 0.01)  # start at the beginning of a window
    admitted = [guards._take("acct", 5, 1) for guards in (first, second) * 4]
    assert admitted.count(True) == 5


REPLY = (
    b"From: Ada <ada@example.com>\r\nTo: noreply@localhost\r\nSubject: Re: Hi\r\n"
    b"Message-ID: <r1@mail.example.com>\r\nIn-Reply-To: <%s@localhost>\r\n\r\nCall me on 555-0100.\r\n"
)


def _replied(api, runtime):
    """u1 got an email and replied to it; a webhook endpoint (never reachable) heard about both."""
    api.patch("/v1/workspace", json={"policy": {"webhooks_allow_private": True}})
    hook = api.post(
        "/v1/webhooks", json={"url": "http://127.0.0.1:9/hook", "events": ["message.delivered", "conversation.replied"]}
    ).json
    publish_template(api, variables=["text"], variants=SMS)
    put_profile(api, "u1", email="ada@example.com", channels=["email"])
    sent = api.post(
        "/v1/messages", json={"to": {"external_id": "u1"}, "template": "welcome", "data": {"text": "private"}}
    ).json["id"]
    deliver_message(runtime, sent)
    taken = api.request("POST", "/v1/inbound/email", data=REPLY % sent.encode())
    assert taken.json == {"taken_as": "reply"}
    return sent, hook


def test_export_includes_replies_conversations_and_events(api, runtime):
    sent, _ = _replied(api, runtime)
    body = api.get("/v1/profiles/u1/export").json
    [conversation] = body["conversations"]
    assert [r["body"] for r in conversation["replies"]] == ["Call me on 555-0100."]
    assert {e["kind"] for e in body["events"]} >= {"replied"}
    assert any(e["message_id"] == sent for e in body["events"])


def test_erasure_removes_replies_event_details_and_webhook_payloads(api, runtime):
    from ccm.conversations.models import Conversation, InboundMessage
    from ccm.engagement.models import EngagementEvent
    from ccm.webhooks.models import WebhookDelivery

    sent, hook = _replied(api, runtime)
    before = api.get(f"/v1/webhooks/{hook['id']}/deliveries").json["items"]
    assert {d["event_type"] for d in before} == {"message.delivered", "conversation.replied"}
    assert api.delete("/v1/profiles/u1").status_code == 204

    with runtime.db.unit_of_work() as session:
        assert session.scalars(select(InboundMessage)).all() == []
        assert session.scalars(select(Conversation)).all() == []
        events = session.scalars(select(EngagementEvent)).all()
        assert events and all(e.detail == {} and e.profile_id is None for e in events)  # still counted
        deliveries = session.scalars(select(WebhookDelivery)).all()
    assert len(deliveries) == 2
    for delivery in deliveries:
        assert delivery.payload == {"type": delivery.event_type, "data": {"erased": True}}
        assert delivery.status == "failed" and delivery.last_error.startswith("erased")
    assert "555-0100" not in repr([d.payload for d in deliveries]) + repr([e.detail for e in events])
