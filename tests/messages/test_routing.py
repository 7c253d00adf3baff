"""Routing decisions, table-driven: ranking, missing addresses, consent, suppression, overrides —
each decision visible on the message. Every channel delivers into the local outbox here."""

from __future__ import annotations

import pytest

from ccm.messages.delivery import deliver_message
from tests.support.factories import publish_template, put_profile

pytestmark = pytest.mark.settings(local_outbox="email,sms,chat")

TEMPLATE_VARIANTS = [
    {"channel": "email", "locale": "en", "subject": "Hi {{ first_name }}", "html": "<p>Hi {{ first_name }}</p>"},
    {"channel": "sms", "locale": "en", "body": "Hi {{ first_name }}"},
    {"channel": "chat", "locale": "en", "body": "Hi {{ first_name }} (chat)"},
]

CASES = [
    # (case, profile fields, send fields, setup, expected status, expected channel, expected route)
    (
        "ranking picks sms first",
        {"phone": "+14155550100", "channels": ["sms", "email"]},
        {},
        None,
        "delivered",
        "sms",
        [("sms", "chosen", None)],
    ),
    (
        "no phone: falls to email",
        {"channels": ["sms", "email"]},
        {},
        None,
        "delivered",
        "email",
        [("sms", "rejected", "no_address"), ("email", "chosen", None)],
    ),
    (
        "workspace order after the ranking",
        {"phone": "+14155550100", "channels": ["chat"]},
        {},
        None,
        "delivered",
        "email",
        [("chat", "rejected", "no_address"), ("email", "chosen", None)],
    ),
    (
        "explicit channel override",
        {"phone": "+14155550100", "channels": ["sms", "email"]},
        {"channel": "email"},
        None,
        "delivered",
        "email",
        [("email", "chosen", None)],
    ),
    (
        "marketing without sms consent",
        {"phone": "+14155550100", "channels": ["sms", "email"]},
        {"category": "marketing", "topic": "news"},
        "revoke_sms",
        "delivered",
        "email",
        [("sms", "rejected", "no_consent"), ("email", "chosen", None)],
    ),
    (
        "transactional ignores topic consent",
        {"phone": "+14155550100", "channels": ["sms", "email"]},
        {},
        "revoke_sms",
        "delivered",
        "sms",
        [("sms", "chosen", None)],
    ),
    (
        "suppressed sms, even transactional",
        {"phone": "+14155550100", "channels": ["sms", "email"]},
        {},
        "suppress_sms",
        "delivered",
        "email",
        [("sms", "rejected", "suppressed:stop"), ("email", "chosen", None)],
    ),
    (
        "everything blocked",
        {"phone": "+14155550100", "channels": ["sms"], "email": None},
        {"channel": "sms"},
        "suppress_sms",
        "skipped",
        None,
        [("sms", "rejected", "suppressed:stop")],
    ),
    (
        "opt-in topic without a grant",
        {"channels": ["email"]},
        {"category": "marketing", "topic": "vip"},
        "opt_in_topic",
        "skipped",
        None,
        [("email", "rejected", "no_consent"), ("sms", "rejected", "no_address"), ("chat", "rejected", "no_address")],
    ),
]


def _setup(api, what):
    if what == "revoke_sms":
        api.post("/v1/profiles/u1/consent", json={"channel": "sms", "status": "revoked", "source": "form"})
    elif what == "suppress_sms":
        api.post("/v1/suppressions", json={"channel": "sms", "address": "+1 415 555 0100", "reason": "stop"})
    elif what == "opt_in_topic":
        assert api.patch("/v1/workspace", json={"policy": {"topics": {"vip": {"mode": "opt_in"}}}}).status_code == 200


@pytest.mark.parametrize("case", CASES, ids=[case[0] for case in CASES])
def test_routing(api, runtime, case):
    _, profile, send, setup, status, channel, route = case
    publish_template(
        api,
        variables=["first_name"],
        variants=TEMPLATE_VARIANTS,
        category="marketing" if send.get("category") == "marketing" else "transactional",
    )
    put_profile(api, "u1", **profile)
    _setup(api, setup)
    accepted = api.post("/v1/messages", json={"to": {"external_id": "u1"}, "template": "welcome", **send})
    assert accepted.status_code == 202, accepted.json
    deliver_message(runtime, accepted.json["id"])
    message = api.get(f"/v1/messages/{accepted.json['id']}").json
    assert message["status"] == status, message
    assert message["channel"] == channel
    assert [(h["channel"], h["decision"], h["reason"]) for h in message["route"]] == route
    if status == "skipped":
        assert message["reason"] == route[0][2]


def test_consent_revoked_while_the_message_waits_is_honoured(api, runtime):
    publish_template(api, variables=["first_name"], variants=TEMPLATE_VARIANTS, category="marketing")
    put_profile(api, "u1", channels=["email"])
    accepted = api.post("/v1/messages", json={"to": {"external_id": "u1"}, "template": "welcome", "topic": "news"})
    api.post("/v1/profiles/u1/consent", json={"channel": "email", "topic": "news", "status": "revoked"})
    deliver_message(runtime, accepted.json["id"])
    message = api.get(f"/v1/messages/{accepted.json['id']}").json
    assert (message["status"], message["reason"]) == ("skipped", "no_consent")
    assert api.get("/v1/outbox").json["items"] == []


def test_a_later_topic_grant_outweighs_an_earlier_channel_revocation(api, runtime):
    publish_template(api, variables=["first_name"], variants=TEMPLATE_VARIANTS, category="marketing")
    put_profile(api, "u1", channels=["email"])
    api.post("/v1/profiles/u1/consent", json={"channel": "email", "status": "revoked"})
    api.post(
        "/v1/profiles/u1/consent",
        json={
            "channel": "email",
            "topic": "news",
            "status": "granted",
            "source": "double_opt_in",
            "proof": {"confirmed_at": "2026-11-01"},
        },
    )
    news = api.post("/v1/messages", json={"to": {"external_id": "u1"}, "template": "welcome", "topic": "news"})
    other = api.post("/v1/messages", json={"to": {"external_id": "u1"}, "template": "welcome", "topic": "offers"})
    for accepted in (news, other):
        deliver_message(runtime, accepted.json["id"])
    assert api.get(f"/v1/messages/{news.json['id']}").json["status"] == "delivered"
    assert api.get(f"/v1/messages/{other.json['id']}").json["reason"] == "no_consent"
