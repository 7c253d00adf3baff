"""The contract every HTTP provider keeps, run against a real HTTP server on 127.0.0.1.

One row of :data:`CASES` per provider: how to build it against a base URL, a message for its
channel, the exact request its real API expects, and its real success and error bodies. Every test
below runs over every row.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from ccm.channels.base import (
    OutboundMessage,
    OutcomeUnknownError,
    PermanentDeliveryError,
    ProviderConfigError,
    Receipt,
    TransientDeliveryError,
)
from ccm.channels.providers.mailgun import MailgunConfig, MailgunProvider
from ccm.channels.providers.slack import SlackConfig, SlackProvider
from ccm.channels.providers.telegram import TelegramConfig, TelegramProvider
from ccm.channels.providers.twilio import TwilioConfig, TwilioProvider
from ccm.channels.providers.webhook import WebhookConfig, WebhookProvider
from tests.support.http_server import HttpTestServer, RecordedRequest, refused_url

TIMEOUT = 0.3
SLOW = 3.0  # a server delay well past TIMEOUT; stopping the server cuts it short

TWILIO_SID = "AC" + "0123456789abcdef" * 2
TWILIO_TOKEN = "twilio-auth-token-5ecret"
WEBHOOK_KEY = b"contract-webhook-key-24b"
WEBHOOK_SECRET = "whsec_" + base64.b64encode(WEBHOOK_KEY).decode()
SLACK_TOKEN = "slackHookToken5ecret"
SLACK_PATH = f"/services/T0001/B0001/{SLACK_TOKEN}"
TELEGRAM_TOKEN = "123456:telegram-Bot-Token_5ecret"
MAILGUN_KEY = "key-mailgun-api-5ecret"
MAILGUN_DOMAIN = "mg.example.com"
RAW_EMAIL = b"From: Shop <shop@mg.example.com>\r\nTo: bob@example.net\r\nSubject: Hi\r\n\r\nHello Bob\r\n"


def _message(channel: str, to: str, **fields: Any) -> OutboundMessage:
    return OutboundMessage(
        message_id="msg_0001", workspace_id="ws_0001", channel=channel, to=to, body="Hello Bob", **fields
    )


@dataclass(frozen=True)
class Case:
    """One provider's row: ``build`` and ``message`` take the base URL of the server to use."""

    id: str
    secrets: tuple[str, ...]
    build: Callable[[str], Any]
    message: Callable[[str], OutboundMessage]
    send_path: str
    success: dict[str, Any]
    receipt_id: str | None
    expect_request: Callable[[RecordedRequest], None]
    invalid: dict[str, Any]
    invalid_reason: str
    invalid_text: str
    unauthorized: dict[str, Any]
    rate_limited: dict[str, Any]
    idempotent: bool = False
    check_path: str | None = None
    check_ok: dict[str, Any] = field(default_factory=dict)


def _twilio_request(request: RecordedRequest) -> None:
    assert (request.method, request.path) == ("POST", f"/2010-04-01/Accounts/{TWILIO_SID}/Messages.json")
    assert request.basic_auth() == (TWILIO_SID, TWILIO_TOKEN)
    assert request.headers["content-type"] == "application/x-www-form-urlencoded"
    assert request.form() == {"To": "+14155550100", "From": "+14155550199", "Body": "Hello Bob"}


def _webhook_request(request: RecordedRequest) -> None:
    assert (request.method, request.path) == ("POST", "/gateway")
    assert request.headers["content-type"] == "application/json"
    assert request.json() == {
        "type": "message.send",
        "id": "msg_0001",
        "channel": "sms",
        "to": "+14155550100",
        "body": "Hello Bob",
        "workspace_id": "ws_0001",
    }
    webhook_id, timestamp = request.headers["webhook-id"], request.headers["webhook-timestamp"]
    assert webhook_id == "msg_0001"
    digest = hmac.new(WEBHOOK_KEY, f"{webhook_id}.{timestamp}.".encode() + request.body, hashlib.sha256).digest()
    assert request.headers["webhook-signature"] == "v1," + base64.b64encode(digest).decode()


def _slack_request(request: RecordedRequest) -> None:
    assert (request.method, request.path) == ("POST", SLACK_PATH)
    assert request.headers["content-type"] == "application/json"
    assert "authorization" not in request.headers
    assert request.json() == {"text": "Hello Bob"}


def _telegram_request(request: RecordedRequest) -> None:
    assert (request.method, request.path) == ("POST", f"/bot{TELEGRAM_TOKEN}/sendMessage")
    assert request.headers["content-type"] == "application/json"
    assert request.json() == {"chat_id": 123456789, "text": "Hello Bob"}


def _mailgun_request(request: RecordedRequest) -> None:
    assert (request.method, request.path) == ("POST", f"/v3/{MAILGUN_DOMAIN}/messages.mime")
    assert request.basic_auth() == ("api", MAILGUN_KEY)
    assert request.headers["content-type"].startswith("multipart/form-data; boundary=")
    parts = request.multipart()
    assert set(parts) == {"to", "message"}
    assert parts["to"].data == b"bob@example.net" and parts["to"].filename is None
    assert parts["message"].data == RAW_EMAIL and parts["message"].filename


CASES = [
    Case(
        id="twilio",
        secrets=(TWILIO_TOKEN,),
        build=lambda base: TwilioProvider(
            TwilioConfig(account_sid=TWILIO_SID, auth_token=TWILIO_TOKEN, from_number="+14155550199", base_url=base),
            timeout=TIMEOUT,
        ),
        message=lambda base: _message("sms", "+14155550100"),
        send_path=f"/2010-04-01/Accounts/{TWILIO_SID}/Messages.json",
        success={"status": 201, "json": {"sid": "SM" + "a" * 32, "status": "queued", "to": "+14155550100"}},
        receipt_id="SM" + "a" * 32,
        expect_request=_twilio_request,
        invalid={
            "status": 400,
            "json": {
                "code": 21211,
                "message": "The 'To' number +14155550100 is not a valid phone number.",
                "more_info": "https://www.twilio.com/docs/errors/21211",
                "status": 400,
            },
        },
        invalid_reason="invalid_address",
        invalid_text="21211 The 'To' number +14155550100 is not a valid phone number.",
        unauthorized={
            "status": 401,
            "json": {
                "code": 20003,
                "message": "Authenticate",
                "status": 401,
                "more_info": "https://www.twilio.com/docs/errors/20003",
            },
        },
        rate_limited={
            "status": 429,
            "headers": {"Retry-After": "7"},
            "json": {"code": 20429, "message": "Too Many Requests", "status": 429},
        },
        check_path=f"/2010-04-01/Accounts/{TWILIO_SID}.json",
        check_ok={"json": {"sid": TWILIO_SID, "status": "active"}},
    ),
    Case(
        id="webhook",
        secrets=(WEBHOOK_SECRET, WEBHOOK_SECRET.removeprefix("whsec_")),
        build=lambda base: WebhookProvider(
            WebhookConfig(url=f"{base}/gateway", secret=WEBHOOK_SECRET, channel="sms"), timeout=TIMEOUT
        ),
        message=lambda base: _message("sms", "+14155550100"),
        send_path="/gateway",
        success={"status": 202, "json": {"id": "gw-42"}},
        receipt_id="gw-42",
        expect_request=_webhook_request,
        invalid={"status": 422, "json": {"error": "unknown recipient"}},
        invalid_reason="rejected",
        invalid_text="unknown recipient",
        unauthorized={"status": 401, "json": {"error": "invalid signature"}},
        rate_limited={"status": 429, "headers": {"Retry-After": "7"}, "json": {"error": "slow down"}},
        idempotent=True,
        check_path="/gateway",
        check_ok={"status": 204},
    ),
    Case(
        id="slack",
        secrets=(SLACK_TOKEN,),
        build=lambda base: SlackProvider(SlackConfig(base_url=f"{base}/services/"), timeout=TIMEOUT),
        message=lambda base: _message("chat", f"{base}{SLACK_PATH}"),
        send_path=SLACK_PATH,
        success={"body": "ok"},
        receipt_id=None,
        expect_request=_slack_request,
        invalid={"status": 400, "body": "invalid_payload"},
        invalid_reason="rejected",
        invalid_text="invalid_payload",
        unauthorized={"status": 401, "body": "invalid_auth"},
        rate_limited={"status": 429, "headers": {"Retry-After": "7"}, "body": "rate_limited"},
    ),
    Case(
        id="telegram",
        secrets=(TELEGRAM_TOKEN,),
        build=lambda base: TelegramProvider(TelegramConfig(bot_token=TELEGRAM_TOKEN, base_url=base), timeout=TIMEOUT),
        message=lambda base: _message("chat", "123456789"),
        send_path=f"/bot{TELEGRAM_TOKEN}/sendMessage",
        success={"json": {"ok": True, "result": {"message_id": 4711, "chat": {"id": 123456789}, "text": "Hello"}}},
        receipt_id="4711",
        expect_request=_telegram_request,
        invalid={"status": 400, "json": {"ok": False, "error_code": 400, "description": "Bad Request: chat not found"}},
        invalid_reason="invalid_address",
        invalid_text="Bad Request: chat not found",
        unauthorized={"status": 401, "json": {"ok": False, "error_code": 401, "description": "Unauthorized"}},
        rate_limited={
            "status": 429,
            "headers": {"Retry-After": "7"},
            "json": {
                "ok": False,
                "error_code": 429,
                "description": "Too Many Requests: retry after 7",
                "parameters": {"retry_after": 7},
            },
        },
        check_path=f"/bot{TELEGRAM_TOKEN}/getMe",
        check_ok={"json": {"ok": True, "result": {"id": 123456, "is_bot": True, "first_name": "CCM"}}},
    ),
    Case(
        id="mailgun",
        secrets=(MAILGUN_KEY,),
        build=lambda base: MailgunProvider(
            MailgunConfig(api_key=MAILGUN_KEY, domain=MAILGUN_DOMAIN, base_url=base), timeout=TIMEOUT
        ),
        message=lambda base: _message(
            "email", "bob@example.net", raw=RAW_EMAIL, envelope_from="bounces@mg.example.com"
        ),
        send_path=f"/v3/{MAILGUN_DOMAIN}/messages.mime",
        success={"json": {"id": "<20240101.1@mg.example.com>", "message": "Queued. Thank you."}},
        receipt_id="20240101.1@mg.example.com",
        expect_request=_mailgun_request,
        invalid={
            "status": 400,
            "json": {"message": "'to' parameter is not a valid address. please check documentation"},
        },
        invalid_reason="rejected",
        invalid_text="'to' parameter is not a valid address. please check documentation",
        unauthorized={"status": 401, "body": "Forbidden"},
        rate_limited={"status": 429, "headers": {"Retry-After": "7"}, "json": {"message": "Too many requests"}},
        check_path=f"/v3/domains/{MAILGUN_DOMAIN}",
        check_ok={"json": {"domain": {"name": MAILGUN_DOMAIN, "state": "active"}}},
    ),
]
CHECKED = [case for case in CASES if case.check_path]


@dataclass
class CommitRecorder:
    """A commit point that remembers how many requests the server had seen when it was called."""

    server: HttpTestServer | None = None
    calls: list[int] = field(default_factory=list)
    error: Exception | None = None

    def __call__(self) -> None:
        self.calls.append(len(self.server.requests) if self.server else 0)
        if self.error is not None:
            raise self.error


class ClaimLost(Exception):
    """Stands for the worker losing the message at the commit point."""


@pytest.fixture(params=CASES, ids=[case.id for case in CASES])
def case(request: pytest.FixtureRequest) -> Case:
    return request.param


@pytest.fixture(params=CHECKED, ids=[case.id for case in CHECKED])
def checked_case(request: pytest.FixtureRequest) -> Case:
    return request.param


@pytest.fixture
def server() -> Iterator[HttpTestServer]:
    with HttpTestServer() as running:
        yield running


@pytest.fixture
def connect() -> Iterator[Callable[[Case, str], Any]]:
    """Builds providers and closes them all at the end of the test."""
    providers: list[Any] = []

    def build(case: Case, base: str) -> Any:
        providers.append(case.build(base))
        return providers[-1]

    yield build
    for provider in providers:
        provider.close()


def send(case: Case, provider: Any, base: str, commit: CommitRecorder) -> Receipt:
    return provider.send(case.message(base), commit_point=commit)


def assert_secret_free(case: Case, *things: Any) -> None:
    for thing in things:
        for text in (repr(thing), str(thing)):
            for secret in case.secrets:
                assert secret not in text, f"{case.id}: a secret leaked into {text!r}"


def test_success_returns_receipt_and_sends_the_real_request(case, server, connect, caplog):
    caplog.set_level(logging.DEBUG)
    server.respond(case.send_path, **case.success)
    provider = connect(case, server.url)
    commit = CommitRecorder(server)

    receipt = send(case, provider, server.url, commit)

    assert receipt == Receipt(provider_message_id=case.receipt_id, status="sent")
    assert len(server.requests) == 1
    case.expect_request(server.requests[0])
    assert_secret_free(case, provider, provider.config, receipt, caplog.text)


def test_commit_point_is_called_once_right_before_the_request(case, server, connect):
    server.respond(case.send_path, **case.success)
    commit = CommitRecorder(server)

    send(case, connect(case, server.url), server.url, commit)

    assert commit.calls == [0]
    assert len(server.requests) == 1


def test_commit_point_raising_sends_nothing(case, server, connect):
    server.respond(case.send_path, **case.success)
    commit = CommitRecorder(server, error=ClaimLost("another run owns the message"))

    with pytest.raises(ClaimLost):
        send(case, connect(case, server.url), server.url, commit)

    assert server.requests == []


def test_connection_refused_is_transient_before_the_commit_point(case, connect):
    base = refused_url()
    commit = CommitRecorder()

    with pytest.raises(TransientDeliveryError) as caught:
        send(case, connect(case, base), base, commit)

    assert caught.value.reason == "network_error"
    assert commit.calls == []
    assert_secret_free(case, caught.value)


def test_read_timeout_is_unknown_unless_the_provider_dedupes(case, server, connect):
    server.respond(case.send_path, delay=SLOW, **case.success)
    expected = TransientDeliveryError if case.idempotent else OutcomeUnknownError

    with pytest.raises(expected) as caught:
        send(case, connect(case, server.url), server.url, CommitRecorder(server))

    assert len(server.requests) == 1
    assert_secret_free(case, caught.value)


@pytest.mark.parametrize("reset", [True, False], ids=["reset", "closed"])
def test_connection_lost_after_the_request_is_unknown_unless_the_provider_dedupes(case, server, connect, reset):
    server.disconnect(case.send_path, reset=reset)
    expected = TransientDeliveryError if case.idempotent else OutcomeUnknownError

    with pytest.raises(expected) as caught:
        send(case, connect(case, server.url), server.url, CommitRecorder(server))

    assert type(caught.value) is expected
    assert len(server.requests) == 1
    assert_secret_free(case, caught.value)


@pytest.mark.parametrize("status", [500, 502, 503])
def test_server_errors_are_transient(case, server, connect, status):
    server.respond(case.send_path, status, body="upstream trouble")

    with pytest.raises(TransientDeliveryError) as caught:
        send(case, connect(case, server.url), server.url, CommitRecorder(server))

    assert_secret_free(case, caught.value)


def test_rate_limit_is_transient_and_honours_retry_after(case, server, connect):
    server.respond(case.send_path, **case.rate_limited)

    with pytest.raises(TransientDeliveryError) as caught:
        send(case, connect(case, server.url), server.url, CommitRecorder(server))

    assert caught.value.retry_after == 7
    assert_secret_free(case, caught.value)


def test_validation_error_is_permanent_with_the_providers_message(case, server, connect):
    server.respond(case.send_path, **case.invalid)

    with pytest.raises(PermanentDeliveryError) as caught:
        send(case, connect(case, server.url), server.url, CommitRecorder(server))

    assert caught.value.reason == case.invalid_reason
    assert case.invalid_text in str(caught.value)
    assert_secret_free(case, caught.value)


def test_unauthorized_is_a_config_error(case, server, connect):
    server.respond(case.send_path, **case.unauthorized)

    with pytest.raises(ProviderConfigError) as caught:
        send(case, connect(case, server.url), server.url, CommitRecorder(server))

    assert_secret_free(case, caught.value)


def test_check_succeeds(case, server, connect):
    if case.check_path:
        server.respond(case.check_path, **case.check_ok)

    assert connect(case, server.url).check() is None

    assert len(server.requests) == (1 if case.check_path else 0)  # Slack has nothing to check remotely


def test_check_refused_credentials_is_a_config_error(checked_case, server, connect):
    server.respond(checked_case.check_path, **checked_case.unauthorized)

    with pytest.raises(ProviderConfigError) as caught:
        connect(checked_case, server.url).check()

    assert_secret_free(checked_case, caught.value)


def test_check_unreachable_is_transient(checked_case, connect):
    with pytest.raises(TransientDeliveryError) as caught:
        connect(checked_case, refused_url()).check()

    assert_secret_free(checked_case, caught.value)
