"""What each HTTP provider does beyond the shared contract, and the shared HTTP plumbing itself.

The contract every provider keeps is in ``test_provider_contract.py``; these are the scenarios
particular to one provider's API (its error codes, address rules, signing) or to ``ccm.channels.http``.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import logging
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from pydantic import ValidationError

from ccm.channels.base import (
    InvalidAddress,
    OutboundMessage,
    PermanentDeliveryError,
    ProviderConfigError,
    TransientDeliveryError,
)
from ccm.channels.http import classify_response, make_client, parse_retry_after, send_with_commit_point
from ccm.channels.providers.mailgun import MailgunConfig, MailgunProvider
from ccm.channels.providers.slack import SlackConfig, SlackProvider
from ccm.channels.providers.telegram import TelegramConfig, TelegramProvider
from ccm.channels.providers.twilio import TwilioConfig, TwilioProvider
from ccm.channels.providers.webhook import WebhookConfig, WebhookProvider
from tests.support.http_server import HttpTestServer

TIMEOUT = 0.3
SID = "AC" + "ab" * 16
MESSAGES = f"/2010-04-01/Accounts/{SID}/Messages.json"
TOKEN = "twilio-token-5ecret"
BOT_TOKEN = "987654:bot-Token_5ecret"
WEBHOOK_KEY = b"webhook-signing-key-0123"
WEBHOOK_SECRET = "whsec_" + base64.b64encode(WEBHOOK_KEY).decode()


class Commits:
    """A commit point that counts its calls."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self) -> None:
        self.calls += 1


@pytest.fixture
def server() -> Iterator[HttpTestServer]:
    with HttpTestServer() as running:
        yield running


@pytest.fixture
def closing() -> Iterator[list[Any]]:
    """Providers appended here are closed at the end of the test."""
    providers: list[Any] = []
    yield providers
    for provider in providers:
        provider.close()


def message(to: str, *, channel: str = "sms", body: str = "Hi", **fields: Any) -> OutboundMessage:
    return OutboundMessage(message_id="msg_1", workspace_id="ws_1", channel=channel, to=to, body=body, **fields)


def twilio(server: HttpTestServer, closing: list[Any], **config: Any) -> TwilioProvider:
    config = {"account_sid": SID, "auth_token": TOKEN, "base_url": server.url, **config}
    if "messaging_service_sid" not in config:
        config.setdefault("from_number", "+14155550199")
    closing.append(TwilioProvider(TwilioConfig(**config), timeout=TIMEOUT))
    return closing[-1]


def webhook(server: HttpTestServer, closing: list[Any], channel: str = "sms") -> WebhookProvider:
    config = WebhookConfig(url=f"{server.url}/hook", secret=WEBHOOK_SECRET, channel=channel)
    closing.append(WebhookProvider(config, timeout=TIMEOUT))
    return closing[-1]


def slack(server: HttpTestServer, closing: list[Any]) -> SlackProvider:
    closing.append(SlackProvider(SlackConfig(base_url=f"{server.url}/services/"), timeout=TIMEOUT))
    return closing[-1]


def telegram(server: HttpTestServer, closing: list[Any], **config: Any) -> TelegramProvider:
    closing.append(
        TelegramProvider(TelegramConfig(bot_token=BOT_TOKEN, base_url=server.url, **config), timeout=TIMEOUT)
    )
    return closing[-1]


def mailgun(server: HttpTestServer, closing: list[Any]) -> MailgunProvider:
    config = MailgunConfig(api_key="key-5ecret", domain="mg.example.com", base_url=server.url)
    closing.append(MailgunProvider(config, timeout=TIMEOUT))
    return closing[-1]


# --- ccm.channels.http ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "seconds"),
    [("7", 7.0), (" 120 ", 120.0), (None, None), ("", None), ("soon", None), ("-3", None), ("1.5", None)],
)
def test_retry_after_reads_delay_seconds(value, seconds):
    assert parse_retry_after(value) == seconds


def test_retry_after_reads_an_http_date():
    now = dt.datetime(2025, 1, 1, 12, 0, 0, tzinfo=dt.UTC)

    assert parse_retry_after("Wed, 01 Jan 2025 12:00:30 GMT", now=now) == 30.0
    assert parse_retry_after("Wed, 01 Jan 2025 11:00:00 GMT", now=now) == 0.0


def test_503_with_an_http_date_is_transient_with_that_delay():
    later = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=60)
    response = httpx.Response(503, headers={"Retry-After": later.strftime("%a, %d %b %Y %H:%M:%S GMT")})

    error = classify_response(response, label="X")

    assert isinstance(error, TransientDeliveryError) and error.reason == "unavailable"
    assert 55 <= error.retry_after <= 60


def test_other_4xx_is_permanent_with_the_body_cut_short():
    error = classify_response(httpx.Response(418, text="teapot " * 100), label="X")

    assert isinstance(error, PermanentDeliveryError) and error.reason == "rejected"
    assert len(str(error)) < 340


def test_a_redirect_is_not_followed_and_is_a_config_error(server):
    server.respond("/send", 302, headers={"Location": f"{server.url}/elsewhere"})
    client = make_client(timeout=TIMEOUT)
    try:
        response = send_with_commit_point(
            client,
            client.build_request("POST", f"{server.url}/send"),
            commit_point=Commits(),
            idempotent=False,
            label="X",
        )
    finally:
        client.close()

    assert isinstance(classify_response(response, label="X"), ProviderConfigError)
    assert [request.path for request in server.requests] == ["/send"]


def test_commit_point_runs_for_each_request_on_a_reused_connection(server):
    server.respond("/send", json={})
    client, commits = make_client(timeout=TIMEOUT), Commits()
    try:
        for _ in range(2):
            send_with_commit_point(
                client,
                client.build_request("POST", f"{server.url}/send"),
                commit_point=commits,
                idempotent=False,
                label="X",
            )
    finally:
        client.close()

    assert commits.calls == 2
    assert len(server.requests) == 2


def test_client_still_sends_after_a_commit_point_refused(server):
    server.respond("/send", json={})
    client = make_client(timeout=TIMEOUT)

    def refuse() -> None:
        raise RuntimeError("claim lost")

    try:
        with pytest.raises(RuntimeError):
            send_with_commit_point(
                client,
                client.build_request("POST", f"{server.url}/send"),
                commit_point=refuse,
                idempotent=False,
                label="X",
            )
        response = send_with_commit_point(
            client,
            client.build_request("POST", f"{server.url}/send"),
            commit_point=Commits(),
            idempotent=False,
            label="X",
        )
    finally:
        client.close()

    assert response.status_code == 200
    assert len(server.requests) == 1


# --- Twilio --------------------------------------------------------------------------------------


def test_twilio_sends_through_a_messaging_service(server, closing):
    server.respond(MESSAGES, 201, json={"sid": "SM1"})
    provider = twilio(server, closing, messaging_service_sid="MG" + "cd" * 16)

    provider.send(message("+14155550100"), commit_point=Commits())

    assert server.requests[0].form() == {"To": "+14155550100", "MessagingServiceSid": "MG" + "cd" * 16, "Body": "Hi"}


def test_twilio_whatsapp_prefixes_both_numbers_and_serves_chat(server, closing):
    server.respond(MESSAGES, 201, json={"sid": "SM1"})
    provider = twilio(server, closing, whatsapp=True)

    provider.send(message("+14155550100", channel="chat"), commit_point=Commits())

    assert provider.channel == "chat"
    form = server.requests[0].form()
    assert (form["To"], form["From"]) == ("whatsapp:+14155550100", "whatsapp:+14155550199")


@pytest.mark.parametrize(
    ("code", "reason"), [(21610, "unsubscribed"), (21408, "rejected"), (21614, "invalid_address"), (21602, "rejected")]
)
def test_twilio_error_codes_map_to_permanent_reasons(server, closing, code, reason):
    server.respond(MESSAGES, 400, json={"code": code, "message": f"Twilio says {code}", "status": 400})

    with pytest.raises(PermanentDeliveryError) as caught:
        twilio(server, closing).send(message("+14155550100"), commit_point=Commits())

    assert caught.value.reason == reason
    assert f"Twilio says {code}" in str(caught.value)


@pytest.mark.parametrize(("status", "code"), [(400, 21606), (404, 20404)])
def test_twilio_sender_or_account_problems_are_config_errors(server, closing, status, code):
    server.respond(MESSAGES, status, json={"code": code, "message": "nope", "status": status})

    with pytest.raises(ProviderConfigError):
        twilio(server, closing).send(message("+14155550100"), commit_point=Commits())


def test_twilio_refuses_a_non_e164_address_before_the_commit_point(server, closing):
    commits = Commits()

    with pytest.raises(PermanentDeliveryError) as caught:
        twilio(server, closing).send(message("4155550100"), commit_point=commits)

    assert caught.value.reason == "invalid_address"
    assert (commits.calls, server.requests) == (0, [])


def test_twilio_normalizes_addresses(server, closing):
    sms, whatsapp = twilio(server, closing), twilio(server, closing, whatsapp=True)

    assert sms.normalize_address("+1 (415) 555-0100") == "+14155550100"
    assert whatsapp.normalize_address("whatsapp:+14155550100") == "+14155550100"
    for bad in ("4155550100", "+123", "+1415555010012345", "whatsapp:+14155550100"):
        with pytest.raises(InvalidAddress):
            sms.normalize_address(bad)


def test_twilio_config_needs_exactly_one_sender():
    with pytest.raises(ValidationError):
        TwilioConfig(account_sid=SID, auth_token=TOKEN)
    with pytest.raises(ValidationError):
        TwilioConfig(
            account_sid=SID, auth_token=TOKEN, from_number="+14155550199", messaging_service_sid="MG" + "cd" * 16
        )


# --- Webhook gateway -----------------------------------------------------------------------------


def test_webhook_receipt_falls_back_to_the_message_id(server, closing):
    server.respond("/hook", 204)

    receipt = webhook(server, closing).send(message("+14155550100"), commit_point=Commits())

    assert receipt.provider_message_id == "msg_1"


def test_webhook_signature_verifies_with_a_fresh_timestamp(server, closing):
    server.respond("/hook", 200, json={})

    webhook(server, closing, channel="chat").send(message(" U024BE7LH ", channel="chat"), commit_point=Commits())

    request = server.requests[0]
    timestamp = request.headers["webhook-timestamp"]
    assert abs(int(timestamp) - time.time()) < 5
    signed = f"{request.headers['webhook-id']}.{timestamp}.".encode() + request.body
    expected = base64.b64encode(hmac.new(WEBHOOK_KEY, signed, hashlib.sha256).digest()).decode()
    assert request.headers["webhook-signature"] == f"v1,{expected}"
    assert request.json()["to"] == "U024BE7LH"


def test_webhook_retry_after_a_lost_answer_carries_the_same_id(server, closing):
    server.disconnect("/hook")
    server.respond("/hook", 200, json={"id": "gw-1"})
    provider = webhook(server, closing)

    with pytest.raises(TransientDeliveryError):
        provider.send(message("+14155550100"), commit_point=Commits())
    provider.send(message("+14155550100"), commit_point=Commits())

    assert [request.headers["webhook-id"] for request in server.requests] == ["msg_1", "msg_1"]


def test_webhook_check_sends_a_signed_ping(server, closing):
    server.respond("/hook", 200)

    webhook(server, closing).check()

    request = server.requests[0]
    assert request.json() == {"type": "ping"}
    assert request.headers["webhook-id"].startswith("ping_")
    assert request.headers["webhook-signature"].startswith("v1,")


def test_webhook_check_refused_is_a_config_error_not_permanent(server, closing):
    server.respond("/hook", 400, json={"error": "unknown event type"})

    with pytest.raises(ProviderConfigError) as caught:
        webhook(server, closing).check()

    assert caught.value.reason == "check_failed"


@pytest.mark.parametrize("secret", ["whsec_not*base64", "whsec_" + base64.b64encode(b"short").decode()])
def test_webhook_config_refuses_a_bad_secret_without_echoing_it(secret):
    with pytest.raises(ValidationError) as caught:
        WebhookConfig(url="https://gw.example.com/hook", secret=secret, channel="sms")

    assert secret not in str(caught.value)


# --- Slack ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "http://hooks.slack.com/services/T/B/X",
        "https://evil.example.com/services/T/B/X",
        "https://hooks.slack.com:8443/services/T/B/X",
        "https://user:pass@hooks.slack.com/services/T/B/X",
        "https://hooks.slack.com@evil.example.com/services/T/B/X",
        "https://hooks.slack.com/services/T/B/X?redirect=1",
        "https://hooks.slack.com/services/T/B/X#frag",
        "https://hooks.slack.com\\@evil.example.com/services",
        "https://hooks.slack.com/",
        "https://169.254.169.254/latest/meta-data",
        "file:///etc/passwd",
        "not a url",
    ],
)
def test_slack_refuses_urls_outside_the_allowed_hosts(url):
    with pytest.raises(InvalidAddress):
        SlackProvider(SlackConfig()).normalize_address(url)


def test_slack_accepts_an_incoming_webhook_url():
    provider = SlackProvider(SlackConfig(allowed_hosts=["hooks.slack.com", "Chat.Example.com"]))

    assert (
        provider.normalize_address(" https://hooks.slack.com/services/T0/B0/abc ")
        == "https://hooks.slack.com/services/T0/B0/abc"
    )
    assert provider.normalize_address("https://chat.example.com/hooks/xyz") == "https://chat.example.com/hooks/xyz"


def test_slack_with_base_url_refuses_anything_not_under_it(server, closing):
    provider = slack(server, closing)
    port = server.port

    assert provider.normalize_address(f"{server.url}/services/T/B/X") == f"{server.url}/services/T/B/X"
    for url in (
        f"http://127.0.0.1:{port + 1}/services/T/B/X",
        f"{server.url}/admin/T",
        f"{server.url}/services/../admin",
        "https://hooks.slack.com/services/T/B/X",
    ):
        with pytest.raises(InvalidAddress):
            provider.normalize_address(url)


def test_slack_base_url_must_be_https_unless_loopback():
    with pytest.raises(ValidationError):
        SlackConfig(base_url="http://hooks.internal.example.com/")
    assert SlackConfig(base_url="http://localhost:8080/services/").base_url is not None


def test_slack_refused_address_is_permanent_and_nothing_is_sent(server, closing):
    commits = Commits()

    with pytest.raises(PermanentDeliveryError) as caught:
        slack(server, closing).send(message("https://evil.example.com/x", channel="chat"), commit_point=commits)

    assert caught.value.reason == "invalid_address"
    assert (commits.calls, server.requests) == (0, [])


@pytest.mark.parametrize(
    ("status", "code", "reason"),
    [
        (404, "channel_not_found", "invalid_address"),
        (404, "no_service", "invalid_address"),
        (410, "channel_is_archived", "invalid_address"),
        (403, "action_prohibited", "rejected"),
        (403, "invalid_token", "invalid_address"),
    ],
)
def test_slack_error_codes_are_permanent(server, closing, status, code, reason):
    server.respond("/services/T/B/X", status, body=code)

    with pytest.raises(PermanentDeliveryError) as caught:
        slack(server, closing).send(message(f"{server.url}/services/T/B/X", channel="chat"), commit_point=Commits())

    assert caught.value.reason == reason


def test_slack_webhook_token_stays_out_of_the_logs(server, closing, caplog):
    caplog.set_level(logging.DEBUG)
    server.respond("/services/T/B/tok3n", body="ok")

    slack(server, closing).send(message(f"{server.url}/services/T/B/tok3n", channel="chat"), commit_point=Commits())

    assert server.requests[0].path == "/services/T/B/tok3n"
    assert "tok3n" not in caplog.text and "/services/***" in caplog.text


# --- Telegram ------------------------------------------------------------------------------------

SEND = f"/bot{BOT_TOKEN}/sendMessage"


def test_telegram_sends_to_a_channel_name_with_the_parse_mode(server, closing):
    server.respond(SEND, json={"ok": True, "result": {"message_id": 5}})

    telegram(server, closing, parse_mode="HTML").send(message("@ccm_news", channel="chat"), commit_point=Commits())

    assert server.requests[0].json() == {"chat_id": "@ccm_news", "text": "Hi", "parse_mode": "HTML"}


def test_telegram_blocked_bot_is_unsubscribed(server, closing):
    server.respond(
        SEND, 403, json={"ok": False, "error_code": 403, "description": "Forbidden: bot was blocked by the user"}
    )

    with pytest.raises(PermanentDeliveryError) as caught:
        telegram(server, closing).send(message("-100123", channel="chat"), commit_point=Commits())

    assert caught.value.reason == "unsubscribed"


def test_telegram_rate_limit_uses_retry_after_from_the_body(server, closing):
    server.respond(
        SEND,
        429,
        json={
            "ok": False,
            "error_code": 429,
            "description": "Too Many Requests: retry after 11",
            "parameters": {"retry_after": 11},
        },
    )

    with pytest.raises(TransientDeliveryError) as caught:
        telegram(server, closing).send(message("42", channel="chat"), commit_point=Commits())

    assert caught.value.retry_after == 11


def test_telegram_migrated_group_is_an_invalid_address_naming_the_new_chat(server, closing):
    server.respond(
        SEND,
        400,
        json={
            "ok": False,
            "error_code": 400,
            "parameters": {"migrate_to_chat_id": -1009},
            "description": "Bad Request: group chat was upgraded to a supergroup chat",
        },
    )

    with pytest.raises(PermanentDeliveryError) as caught:
        telegram(server, closing).send(message("-42", channel="chat"), commit_point=Commits())

    assert caught.value.reason == "invalid_address" and "-1009" in str(caught.value)


def test_telegram_token_stays_out_of_logs_and_reprs(server, closing, caplog):
    caplog.set_level(logging.DEBUG)
    server.respond(SEND, json={"ok": True, "result": {"message_id": 5}})
    provider = telegram(server, closing)

    provider.send(message("42", channel="chat"), commit_point=Commits())

    assert server.requests[0].path == SEND
    assert "/bot***/sendMessage" in caplog.text
    assert BOT_TOKEN not in caplog.text + repr(provider) + repr(provider.config)


def test_telegram_config_refuses_a_malformed_token_without_echoing_it():
    with pytest.raises(ValidationError) as caught:
        TelegramConfig(bot_token="no-colon/../secret")

    assert "no-colon" not in str(caught.value)


def test_telegram_normalizes_chat_ids_and_channel_names():
    provider = TelegramProvider(TelegramConfig(bot_token=BOT_TOKEN))

    assert provider.normalize_address(" -100123 ") == "-100123"
    assert provider.normalize_address("@ccm_news") == "@ccm_news"
    for bad in ("bob", "@ab", "12 34", ""):
        with pytest.raises(InvalidAddress):
            provider.normalize_address(bad)


# --- Mailgun -------------------------------------------------------------------------------------


def test_mailgun_unknown_domain_is_a_config_error(server, closing):
    server.respond("/v3/mg.example.com/messages.mime", 404, json={"message": "Domain not found: mg.example.com"})

    with pytest.raises(ProviderConfigError) as caught:
        mailgun(server, closing).send(
            message("bob@example.net", channel="email", raw=b"Subject: x\r\n\r\nx"), commit_point=Commits()
        )

    assert "Domain not found" in str(caught.value)


def test_mailgun_refuses_a_message_without_mime_before_the_commit_point(server, closing):
    commits = Commits()

    with pytest.raises(PermanentDeliveryError) as caught:
        mailgun(server, closing).send(message("bob@example.net", channel="email"), commit_point=commits)

    assert caught.value.reason == "invalid_message"
    assert (commits.calls, server.requests) == (0, [])


def test_mailgun_normalizes_email_addresses(server, closing):
    provider = mailgun(server, closing)

    assert provider.normalize_address("bob@EXAMPLE.net") == "bob@example.net"
    with pytest.raises(InvalidAddress):
        provider.normalize_address("bob-at-example.net")
