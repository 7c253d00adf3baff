"""A message's whole life — sent, delivered, opened, clicked, replied, unsubscribed — on the
profile's timeline and rollups, driven by real HTTP traffic: Mailgun (a loopback HTTP server)
takes the email and reports its delivery with a signed webhook; the person opens it, clicks,
replies and unsubscribes."""

from __future__ import annotations

import email
import email.policy
import hashlib
import hmac
import json
import re
import time

import pytest

from ccm.db import utcnow
from ccm.engagement.writer import drain_hits
from ccm.messages.delivery import deliver_message
from ccm.webhooks.delivery import deliver_webhook
from tests.channels.test_provider_accounts import MAILGUN_DOMAIN, MAILGUN_KEY, add_provider
from tests.support.factories import publish_template, put_profile
from tests.support.http_server import HttpTestServer

SIGNING_KEY = "mailgun-webhook-signing-key"
HTML = '<p>Hi {{ first_name }}</p><p><a href="https://shop.example/sale">Sale</a></p>'


def mailgun_event(event, message_id, event_id):
    timestamp, token = str(int(time.time())), "a" * 50
    signature = hmac.new(SIGNING_KEY.encode(), f"{timestamp}{token}".encode(), hashlib.sha256).hexdigest()
    return {
        "signature": {"timestamp": timestamp, "token": token, "signature": signature},
        "event-data": {
            "id": event_id,
            "event": event,
            "timestamp": float(timestamp),
            "recipient": "u1@example.com",
            "message": {"headers": {"message-id": message_id}},
        },
    }


def test_a_messages_whole_life(api, app, runtime):
    api.patch("/v1/workspace", json={"policy": {"quiet_hours": {"marketing": {}}}})
    with HttpTestServer() as mailgun:
        mailgun.respond(
            f"/v3/{MAILGUN_DOMAIN}/messages.mime",
            200,
            json={"id": "<20261125.1@mg.example.com>", "message": "Queued. Thank you."},
        )
        account = add_provider(
            api,
            "mailgun",
            "mailgun",
            {
                "api_key": MAILGUN_KEY,
                "domain": MAILGUN_DOMAIN,
                "base_url": mailgun.url,
                "webhook_signing_key": SIGNING_KEY,
            },
        )
        publish_template(
            api,
            variables=["first_name"],
            category="marketing",
            variants=[{"channel": "email", "subject": "Sale", "html": HTML}],
        )
        put_profile(api, "u1", channels=["email"])
        message_id = api.post(
            "/v1/messages", json={"to": {"external_id": "u1"}, "template": "welcome", "topic": "deals"}
        ).json["id"]
        deliver_message(runtime, message_id)
        [request] = mailgun.requests
    assert api.get(f"/v1/messages/{message_id}").json["status"] == "sent"
    sent = email.message_from_bytes(request.multipart()["message"].data, policy=email.policy.default)

    client = app.test_client()
    delivered = client.post(
        f"/hooks/{account['id']}/status",
        data=json.dumps(mailgun_event("delivered", "20261125.1@mg.example.com", "ev-1")),
        content_type="application/json",
    )
    assert delivered.status_code == 200
    assert api.get(f"/v1/messages/{message_id}").json["status"] == "delivered"

    _sent_long_ago(runtime, message_id)
    html = sent.get_body(("html",)).get_content()
    browser = {"User-Agent": "Mozilla/5.0 (Windows NT 10.0) Thunderbird/128"}
    assert client.get(re.search(r'http://ccm\.test(/t/o/[^"]+)', html).group(1), headers=browser).status_code == 200
    click = client.get(re.search(r'href="http://ccm\.test(/t/c/[^"]+)"', html).group(1), headers=browser)
    assert click.headers["Location"] == "https://shop.example/sale"
    assert drain_hits(runtime) == 2

    reply = (
        b"From: u1@example.com\r\nTo: noreply@localhost\r\nSubject: Question\r\nMessage-ID: <q1@example.com>\r\n"
        b"In-Reply-To: " + sent["Message-ID"].encode() + b"\r\n\r\nDoes the sale include shoes?\r\n"
    )
    assert api.request("POST", "/v1/inbound/email", data=reply).json == {"taken_as": "reply"}
    unsubscribe = sent["List-Unsubscribe"].strip("<>").removeprefix("http://ccm.test")
    assert client.post(unsubscribe, data={"List-Unsubscribe": "One-Click"}).status_code == 200

    timeline = api.get("/v1/profiles/u1/timeline?limit=3").json
    entries = timeline["items"]
    while timeline["next_cursor"]:  # page through it all
        timeline = api.get(f"/v1/profiles/u1/timeline?limit=3&cursor={timeline['next_cursor']}").json
        entries += timeline["items"]
    kinds = [entry.get("kind") or entry["type"] for entry in reversed(entries)]
    assert kinds == ["message", "delivered", "opened", "clicked", "inbound", "replied", "consent", "unsubscribed"]
    assert len({entry["id"] for entry in entries}) == len(entries)

    profile = api.get("/v1/profiles/u1").json
    counters = profile["engagement"]["email"]
    assert {k: counters[k] for k in ("delivered", "opened", "clicked", "replied", "unsubscribed")} == {
        "delivered": 1,
        "opened": 1,
        "clicked": 1,
        "replied": 1,
        "unsubscribed": 1,
    }
    assert profile["engagement_score"] == round(1 + 3 + 5 - 5, 4)  # open + click + reply − unsubscribe, all fresh
    assert profile["best_channel"] == "email"


def test_routing_uses_the_learned_best_channel_when_no_ranking_is_given(api, runtime):
    from ccm.engagement.service import record_events
    from ccm.profiles.models import Profile

    put_profile(api, "u1", phone="+14155550100", channels=[])
    with runtime.db.unit_of_work() as session:
        profile = session.query(Profile).filter_by(external_id="u1").one()
        record_events(
            session,
            [
                {
                    "workspace_id": profile.workspace_id,
                    "profile_id": profile.id,
                    "channel": "sms",
                    "kind": "replied",
                    "source": "test",
                    "dedupe_key": "r1",
                }
            ],
        )
    assert api.get("/v1/profiles/u1").json["best_channel"] == "sms"
    api.patch("/v1/workspace", json={"policy": {"channel_order": ["email", "sms", "chat"]}})
    publish_template(
        api,
        variables=["first_name"],
        variants=[
            {"channel": "email", "subject": "Hi", "html": "<p>{{ first_name }}</p>"},
            {"channel": "sms", "body": "Hi {{ first_name }}"},
        ],
    )
    message_id = api.post("/v1/messages", json={"to": {"external_id": "u1"}, "template": "welcome"}).json["id"]
    deliver_message(runtime, message_id)
    route = api.get(f"/v1/messages/{message_id}").json["route"]
    assert route[0]["channel"] == "sms"  # first choice, though the workspace puts email first


def test_a_failing_webhook_endpoint_is_retried_with_backoff_and_logged(api, runtime):
    import datetime as dt

    api.patch("/v1/workspace", json={"policy": {"webhooks_allow_private": True}})
    with HttpTestServer() as receiver:
        receiver.respond("/hook", 503)
        hook = api.post("/v1/webhooks", json={"url": f"{receiver.url}/hook", "events": ["message.skipped"]}).json
        publish_template(api)
        put_profile(api, "u1", phone="+14155550100", channels=["sms"], email=None)
        message_id = api.post(
            "/v1/messages", json={"to": {"external_id": "u1"}, "template": "welcome", "channel": "sms"}
        ).json["id"]
        deliver_message(runtime, message_id)  # no sms provider: skipped, announced
        [delivery] = api.get(f"/v1/webhooks/{hook['id']}/deliveries").json["items"]
        deliver_webhook(runtime, delivery["id"])
        logged = api.get(f"/v1/webhooks/{hook['id']}/deliveries").json["items"][0]
        assert (logged["status"], logged["attempts"], logged["last_status_code"]) == ("pending", 1, 503)
        wait = dt.datetime.fromisoformat(logged["next_attempt_at"]) - dt.datetime.now(dt.UTC)
        assert 0 < wait.total_seconds() <= 5
        receiver.reset()  # the endpoint is back
        receiver.respond("/hook", 200)
        deliver_webhook(runtime, delivery["id"])  # a run published before the retry is due waits
        assert api.get(f"/v1/webhooks/{hook['id']}/deliveries").json["items"][0]["attempts"] == 1
        assert receiver.requests == []
        _make_due(runtime, delivery["id"])
        deliver_webhook(runtime, delivery["id"])
    logged = api.get(f"/v1/webhooks/{hook['id']}/deliveries").json["items"][0]
    assert (logged["status"], logged["attempts"]) == ("delivered", 2)
    assert json.loads(receiver.requests[-1].body)["data"]["reason"] == "no_provider"


@pytest.mark.parametrize("cursor", ["bm90IGEgY3Vyc29y", "MjAyNi0wMS0wMVQwMDowMDowMHxldnRfMQ", "%%%"])
def test_a_cursor_the_api_did_not_give_is_a_422(api, cursor):
    put_profile(api, "u1")
    response = api.get(f"/v1/profiles/u1/timeline?cursor={cursor}")  # the second is a naive timestamp
    assert (response.status_code, response.json["error"]["details"]["field"]) == (422, "query.cursor")


def _make_due(runtime, delivery_id):
    from ccm.webhooks.models import WebhookDelivery

    with runtime.db.unit_of_work() as session:
        session.get(WebhookDelivery, delivery_id).next_attempt_at = utcnow()


def _sent_long_ago(runtime, message_id):
    import datetime as dt

    from sqlalchemy import update

    from ccm.messages.models import Message

    with runtime.db.unit_of_work() as session:
        session.execute(
            update(Message)
            .where(Message.id == message_id)
            .values(finished_at=dt.datetime.now(dt.UTC) - dt.timedelta(minutes=5))
        )
