"""Every channel end to end: a provider account configured through the API and pointed at a
loopback HTTP server, a message sent through the API and delivered by a real worker, and the
exact request the provider got. Then failover across a channel's accounts: transient errors,
permanent errors, the circuit breaker, and a lost answer that must never become a duplicate."""

from __future__ import annotations

import email
import email.policy
import time
from collections.abc import Iterator
from typing import Any

import pytest

from ccm.channels.providers.twilio import TwilioProvider
from ccm.channels.providers.webhook import WebhookProvider
from tests.channels.test_provider_accounts import (
    MAILGUN_DOMAIN,
    MAILGUN_KEY,
    SMS_PATH,
    TELEGRAM_TOKEN,
    TWILIO_SID,
    TWILIO_TOKEN,
    WEBHOOK_SECRET,
    add_provider,
    twilio_config,
    webhook_signature_ok,
)
from tests.messages.test_send_api import finished
from tests.support.api import wait_for
from tests.support.factories import publish_template, put_profile
from tests.support.http_server import HttpTestServer

VARIANTS = [
    {
        "channel": "email",
        "locale": "en",
        "subject": "Your code, {{ first_name }}",
        "html": "<p>Hi {{ first_name }}, your code is <b>{{ code }}</b>.</p>",
    },
    {"channel": "sms", "locale": "en", "body": "Hi {{ first_name }}, your code is {{ code }}"},
    {"channel": "chat", "locale": "en", "body": "Hi {{ first_name }}! Code: {{ code }}"},
]
SMS_TEXT = "Hi Ada, your code is 4711"
CHAT_TEXT = "Hi Ada! Code: 4711"
PHONE = "+14155550100"
TWILIO_SID_SM = "SM" + "a" * 32
TWILIO_OK = {"status": 201, "json": {"sid": TWILIO_SID_SM, "status": "queued"}}
TWILIO_DOWN = {"status": 503, "json": {"code": 20503, "message": "Service Unavailable"}}
SLACK_HOOK = "/services/T0001/B0001/slackHookToken5ecret"
CLIENT_TIMEOUT = 0.3
SLOW = 5.0  # a server delay well past CLIENT_TIMEOUT; stopping the server cuts it short


@pytest.fixture
def server() -> Iterator[HttpTestServer]:
    with HttpTestServer() as running:
        yield running


@pytest.fixture
def backup() -> Iterator[HttpTestServer]:
    """A second provider's server, for failover."""
    with HttpTestServer() as running:
        yield running


@pytest.fixture
def short_timeouts(monkeypatch: pytest.MonkeyPatch) -> None:
    """The registry builds HTTP providers with their default read timeout (10 s); lower the
    default so a lost answer is noticed within the test."""
    for cls in (TwilioProvider, WebhookProvider):
        monkeypatch.setattr(cls.__init__, "__kwdefaults__", {"timeout": CLIENT_TIMEOUT})


def send(api: Any, **body: Any) -> str:
    accepted = api.post(
        "/v1/messages", json={"to": {"external_id": "u1"}, "template": "code", "data": {"code": "4711"}, **body}
    )
    assert accepted.status_code == 202, accepted.json
    return accepted.json["id"]


def with_status(api: Any, message_id: str, status: str) -> dict[str, Any]:
    def probe() -> dict[str, Any] | None:
        body = api.get(f"/v1/messages/{message_id}").json
        return body if body["status"] == status else None

    return wait_for(probe, message=f"message {message_id} to be {status}")


def settled(api: Any, message_id: str) -> dict[str, Any]:
    """The message once its first attempt is over, whatever the outcome (``retrying`` included)."""

    def probe() -> dict[str, Any] | None:
        body = api.get(f"/v1/messages/{message_id}").json
        return body if body["status"] not in ("queued", "sending") else None

    return wait_for(probe, message=f"message {message_id} to settle")


def prepare(api: Any, **profile: Any) -> None:
    publish_template(api, "code", variables=["first_name", "code"], variants=VARIANTS)
    put_profile(api, "u1", email="ada@example.com", **profile)


def hop(account: dict[str, Any], outcome: str, error: str | None = None) -> dict[str, Any]:
    return {
        "provider": account["kind"],
        "account": account["id"],
        "label": account["label"],
        "outcome": outcome,
        "error": error,
    }


# Each channel, end to end.


def test_sms_goes_out_through_twilio(api, worker, server):
    server.respond(SMS_PATH, **TWILIO_OK)
    account = add_provider(api, "twilio", "twilio", twilio_config(server.url))
    prepare(api, phone=PHONE, channels=["sms"])

    message = finished(api, send(api))

    assert (message["status"], message["channel"], message["to_address"]) == ("sent", "sms", PHONE)
    assert message["reason"] == f"accepted by twilio as {TWILIO_SID_SM}"
    [attempt] = message["attempts"]
    assert (attempt["provider"], attempt["outcome"], attempt["provider_message_id"]) == (
        "twilio",
        "sent",
        TWILIO_SID_SM,
    )
    assert attempt["hops"] == [hop(account, "sent")]
    [request] = server.requests
    assert (request.method, request.path) == ("POST", SMS_PATH)
    assert request.basic_auth() == (TWILIO_SID, TWILIO_TOKEN)
    assert request.headers["content-type"] == "application/x-www-form-urlencoded"
    assert request.form() == {"To": PHONE, "From": "+14155550199", "Body": SMS_TEXT}


def test_whatsapp_goes_out_through_twilio_as_chat(api, worker, server):
    server.respond(SMS_PATH, **TWILIO_OK)
    account = add_provider(api, "twilio", "whatsapp", twilio_config(server.url, whatsapp=True))
    assert account["channel"] == "chat"
    prepare(api, chat={"whatsapp": PHONE}, channels=["chat"])

    message = finished(api, send(api))

    assert (message["status"], message["channel"], message["to_address"]) == ("sent", "chat", PHONE)
    assert message["attempts"][0]["hops"] == [hop(account, "sent")]
    [request] = server.requests
    assert (request.method, request.path) == ("POST", SMS_PATH)
    assert request.basic_auth() == (TWILIO_SID, TWILIO_TOKEN)
    assert request.form() == {"To": f"whatsapp:{PHONE}", "From": "whatsapp:+14155550199", "Body": CHAT_TEXT}


def test_chat_goes_out_through_telegram(api, worker, server):
    path = f"/bot{TELEGRAM_TOKEN}/sendMessage"
    server.respond(path, json={"ok": True, "result": {"message_id": 99, "chat": {"id": 12345}}})
    account = add_provider(api, "telegram", "bot", {"bot_token": TELEGRAM_TOKEN, "base_url": server.url})
    prepare(api, chat={"telegram": "12345"}, channels=["chat"])

    message = finished(api, send(api))

    assert (message["status"], message["channel"], message["to_address"]) == ("sent", "chat", "12345")
    [attempt] = message["attempts"]
    assert (attempt["provider_message_id"], attempt["hops"]) == ("99", [hop(account, "sent")])
    [request] = server.requests
    assert (request.method, request.path) == ("POST", path)
    assert request.headers["content-type"] == "application/json"
    assert "authorization" not in request.headers
    assert request.json() == {"chat_id": 12345, "text": CHAT_TEXT}


def test_chat_goes_out_through_a_slack_incoming_webhook(api, worker, server):
    server.respond(SLACK_HOOK, body="ok")
    account = add_provider(api, "slack", "slack", {"base_url": f"{server.url}/services/"})
    prepare(api, chat={"slack": server.url + SLACK_HOOK}, channels=["chat"])

    message = finished(api, send(api))

    assert (message["status"], message["channel"], message["reason"]) == ("sent", "chat", "accepted by slack")
    [attempt] = message["attempts"]
    assert (attempt["provider_message_id"], attempt["hops"]) == (None, [hop(account, "sent")])
    [request] = server.requests
    assert (request.method, request.path) == ("POST", SLACK_HOOK)
    assert request.headers["content-type"] == "application/json"
    assert "authorization" not in request.headers
    assert request.json() == {"text": CHAT_TEXT}


def test_sms_goes_out_through_a_signed_webhook(api, worker, workspace, server):
    server.respond("/gateway", status=202, json={"id": "gw-42"})
    account = add_provider(
        api, "webhook", "gateway", {"url": f"{server.url}/gateway", "secret": WEBHOOK_SECRET, "channel": "sms"}
    )
    prepare(api, phone=PHONE, channels=["sms"])

    message_id = send(api)
    message = finished(api, message_id)

    assert (message["status"], message["reason"]) == ("sent", "accepted by webhook as gw-42")
    assert message["attempts"][0]["hops"] == [hop(account, "sent")]
    [request] = server.requests
    assert (request.method, request.path) == ("POST", "/gateway")
    assert request.headers["content-type"] == "application/json"
    assert request.json() == {
        "type": "message.send",
        "id": message_id,
        "channel": "sms",
        "to": PHONE,
        "body": SMS_TEXT,
        "workspace_id": workspace[0],
    }
    assert request.headers["webhook-id"] == message_id
    assert abs(int(request.headers["webhook-timestamp"]) - time.time()) < 60
    assert webhook_signature_ok(request)


def test_email_goes_out_through_mailgun_as_mime(api, worker, server):
    path = f"/v3/{MAILGUN_DOMAIN}/messages.mime"
    server.respond(path, json={"id": "<20260101.1@mg.example.com>", "message": "Queued. Thank you."})
    account = add_provider(
        api, "mailgun", "mailgun", {"api_key": MAILGUN_KEY, "domain": MAILGUN_DOMAIN, "base_url": server.url}
    )
    prepare(api, channels=["email"])

    message = finished(api, send(api))

    assert (message["status"], message["channel"], message["to_address"]) == ("sent", "email", "ada@example.com")
    [attempt] = message["attempts"]
    assert (attempt["provider_message_id"], attempt["hops"]) == ("20260101.1@mg.example.com", [hop(account, "sent")])
    [request] = server.requests
    assert (request.method, request.path) == ("POST", path)
    assert request.basic_auth() == ("api", MAILGUN_KEY)
    parts = request.multipart()
    assert set(parts) == {"to", "message"}
    assert parts["to"].data == b"ada@example.com"
    assert parts["message"].content_type == "message/rfc822"
    mime = email.message_from_bytes(parts["message"].data, policy=email.policy.default)
    assert (mime["Subject"], mime["To"]) == ("Your code, Ada", "ada@example.com")
    assert "your code is <b>4711</b>" in mime.get_body(("html",)).get_content()
    assert "your code is 4711" in mime.get_body(("plain",)).get_content()


# Failover across the accounts of one channel.


def two_sms_accounts(api: Any, first: HttpTestServer, second: HttpTestServer) -> tuple[dict[str, Any], ...]:
    primary = add_provider(api, "twilio", "primary", twilio_config(first.url), priority=1)
    secondary = add_provider(api, "twilio", "secondary", twilio_config(second.url), priority=2)
    prepare(api, phone=PHONE, channels=["sms"])
    return primary, secondary


def test_a_transient_error_fails_over_to_the_next_account(api, worker, server, backup):
    server.respond(SMS_PATH, **TWILIO_DOWN)
    backup.respond(SMS_PATH, **TWILIO_OK)
    primary, secondary = two_sms_accounts(api, server, backup)

    message = finished(api, send(api))

    assert message["status"] == "sent"
    [attempt] = message["attempts"]
    assert [(h["account"], h["outcome"]) for h in attempt["hops"]] == [
        (primary["id"], "transient_error"),
        (secondary["id"], "sent"),
    ]
    assert attempt["hops"][0]["error"].startswith("unavailable: Twilio answered HTTP 503: 20503 Service Unavailable")
    assert (len(server.requests), len(backup.requests)) == (1, 1)
    assert backup.requests[0].form()["Body"] == SMS_TEXT


def test_all_accounts_down_retries_and_sends_when_one_recovers(api, worker, server, backup):
    for down in (server, backup):  # Retry-After keeps the retry a second away while the test looks
        down.respond(SMS_PATH, **TWILIO_DOWN, headers={"Retry-After": "1"})
    primary, secondary = two_sms_accounts(api, server, backup)

    message_id = send(api)
    retrying = with_status(api, message_id, "retrying")

    assert "primary: unavailable: Twilio answered HTTP 503" in retrying["reason"]  # accounts named by label
    assert "secondary: unavailable: Twilio answered HTTP 503" in retrying["reason"]
    [attempt] = retrying["attempts"]
    assert (attempt["outcome"], attempt["error"], attempt["retry_at"] is not None) == (
        "transient_error",
        retrying["reason"],
        True,
    )
    assert [(h["account"], h["outcome"]) for h in attempt["hops"]] == [
        (primary["id"], "transient_error"),
        (secondary["id"], "transient_error"),
    ]
    server.reset()
    server.respond(SMS_PATH, **TWILIO_OK)

    message = finished(api, message_id)

    assert message["status"] == "sent"
    assert [a["outcome"] for a in message["attempts"]] == ["transient_error", "sent"]
    assert message["attempts"][1]["hops"] == [hop(primary, "sent")]
    assert (len(server.requests), len(backup.requests)) == (1, 1)


def test_a_permanent_error_fails_the_message_without_trying_the_next_account(api, worker, server, backup):
    server.respond(SMS_PATH, status=400, json={"code": 21211, "message": "The 'To' number is not valid."})
    backup.respond(SMS_PATH, **TWILIO_OK)
    primary, _ = two_sms_accounts(api, server, backup)

    message = finished(api, send(api, channel="sms"))

    assert message["status"] == "failed"
    assert message["reason"].startswith("invalid_address: Twilio answered HTTP 400: 21211")
    [attempt] = message["attempts"]
    assert attempt["outcome"] == "permanent_error"
    assert attempt["hops"] == [hop(primary, "permanent_error", message["reason"])]
    assert (len(server.requests), backup.requests) == (1, [])


def test_an_open_circuit_skips_the_failing_account(api, runtime, worker, server, backup):
    server.respond(SMS_PATH, **TWILIO_DOWN)
    backup.respond(SMS_PATH, **TWILIO_OK)
    primary, secondary = two_sms_accounts(api, server, backup)

    for _ in range(runtime.guards.threshold):  # consecutive failures that open the breaker
        failed_over = finished(api, send(api))
        assert [h["outcome"] for h in failed_over["attempts"][0]["hops"]] == ["transient_error", "sent"]
    message = finished(api, send(api))

    assert message["status"] == "sent"
    assert message["attempts"][0]["hops"] == [hop(primary, "skipped", "circuit_open"), hop(secondary, "sent")]
    assert (len(server.requests), len(backup.requests)) == (runtime.guards.threshold, runtime.guards.threshold + 1)


def test_a_lost_answer_is_sent_outcome_unknown_never_a_duplicate(api, worker, server, backup, short_timeouts):
    server.respond(SMS_PATH, **TWILIO_OK, delay=SLOW)
    backup.respond(SMS_PATH, **TWILIO_OK)
    primary, _ = two_sms_accounts(api, server, backup)

    message = finished(api, send(api))

    assert message["status"] == "sent"
    assert message["reason"].startswith("outcome_unknown: Twilio: no answer after the request was sent")
    assert message["reason"].endswith("not retried, to avoid a duplicate")
    [attempt] = message["attempts"]
    assert (attempt["outcome"], [h["outcome"] for h in attempt["hops"]]) == ("unknown", ["unknown"])
    assert attempt["hops"][0]["account"] == primary["id"]
    assert (len(server.requests), backup.requests) == (1, [])


def test_a_lost_answer_from_an_idempotent_gateway_is_not_sent_again_elsewhere(
    api, worker, server, backup, short_timeouts
):
    server.respond("/gateway", status=202, json={"id": "gw-1"}, delay=SLOW)
    backup.respond(SMS_PATH, **TWILIO_OK)
    add_provider(
        api,
        "webhook",
        "gateway",
        {"url": f"{server.url}/gateway", "secret": WEBHOOK_SECRET, "channel": "sms"},
        priority=1,
    )
    add_provider(api, "twilio", "twilio", twilio_config(backup.url), priority=2)
    prepare(api, phone=PHONE, channels=["sms"])

    message = settled(api, send(api))

    assert [h["provider"] for h in message["attempts"][0]["hops"]] == ["webhook"]
    assert backup.requests == []  # the gateway may have the message already


def test_a_rate_below_one_per_second_still_lets_a_message_through(api, worker, server):
    server.respond(SMS_PATH, **TWILIO_OK)
    add_provider(api, "twilio", "slow", twilio_config(server.url, rate_per_second=0.5))
    prepare(api, phone=PHONE, channels=["sms"])

    message = settled(api, send(api))

    assert message["status"] == "sent", message["reason"]


def test_chat_uses_the_handle_for_the_accounts_provider(api, worker, server):
    path = f"/bot{TELEGRAM_TOKEN}/sendMessage"
    server.respond(path, json={"ok": True, "result": {"message_id": 99}})
    add_provider(api, "telegram", "bot", {"bot_token": TELEGRAM_TOKEN, "base_url": server.url})
    prepare(api, chat={"slack": "https://hooks.slack.com/services/T1/B1/x", "telegram": "12345"})

    message = settled(api, send(api, channel="chat"))

    assert (message["status"], message["to_address"]) == ("sent", "12345"), message["reason"]
