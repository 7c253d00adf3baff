"""The contract every registered provider keeps, derived from the registry.

:data:`HARNESSES` has one row per kind in :data:`ccm.channels.registry.PROVIDERS` — a test fails
when a kind has none, so a new provider cannot skip this file. Every provider is built the way
CCM builds it (``build_provider`` from its registry entry's config model) and run against a real
counterpart on this machine: an HTTP server on 127.0.0.1 for the HTTP providers, an SMTP server
(aiosmtpd) for SMTP, CCM's own database for the local outbox. The HTTP providers' detailed
error mapping lives in ``test_provider_contract.py``, SMTP's in ``test_smtp.py``; this file holds
what every kind must do alike, callbacks included.
"""

from __future__ import annotations

import base64
import socket
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from sqlalchemy import func, select

from ccm.channels.base import (
    InboundRequest,
    InboundText,
    OutboundMessage,
    PermanentDeliveryError,
    Provider,
    Receipt,
    StatusEvent,
    TransientDeliveryError,
    WebhookRejected,
)
from ccm.channels.models import OutboxItem
from ccm.channels.registry import PROVIDERS, build_provider
from ccm.db import Database
from tests.channels import test_provider_callbacks as recorded
from tests.channels.test_provider_contract import (
    MAILGUN_DOMAIN,
    MAILGUN_KEY,
    RAW_EMAIL,
    SLACK_PATH,
    TELEGRAM_TOKEN,
    TWILIO_SID,
    TWILIO_TOKEN,
    WEBHOOK_SECRET,
)
from tests.support.http_server import HttpTestServer, refused_url
from tests.support.smtp_server import SmtpTestServer

OTHER_WEBHOOK_SECRET = "whsec_" + base64.b64encode(b"another-webhook-key-of-24b").decode()


class Counterpart:
    """What a provider talks to: its address, what it received, and how it answers."""

    address: str

    def received(self) -> int:
        raise NotImplementedError

    def accept(self) -> None:
        """Answer the next send with success."""

    def refuse(self) -> None:
        """Answer the next send with a permanent refusal."""
        raise NotImplementedError


@dataclass
class HttpCounterpart(Counterpart):
    server: HttpTestServer
    path: str
    success: dict[str, Any]
    invalid: dict[str, Any]

    @property
    def address(self) -> str:  # type: ignore[override]
        return self.server.url

    def received(self) -> int:
        return len(self.server.requests_to(self.path))

    def accept(self) -> None:
        self.server.respond(self.path, **self.success)

    def refuse(self) -> None:
        self.server.respond(self.path, **self.invalid)


@dataclass
class SmtpCounterpart(Counterpart):
    server: SmtpTestServer

    @property
    def address(self) -> str:  # type: ignore[override]
        return self.server.url()

    def received(self) -> int:
        return len(self.server.messages)

    def refuse(self) -> None:
        self.server.set_reply("RCPT", "550 5.1.1 <bob@example.net>: Recipient address rejected")


@dataclass
class OutboxCounterpart(Counterpart):
    db: Database
    address: str = ""

    def received(self) -> int:
        with self.db.read_only() as session:
            return session.scalar(select(func.count()).select_from(OutboxItem)) or 0


@dataclass(frozen=True)
class Harness:
    """One kind's row.

    ``config`` is its registry settings for a counterpart at an address; ``message`` a message
    for its channel (given the workspace id); ``callbacks`` a genuine recorded callback for each
    kind of callback its registry entry declares, verified by an instance built from
    ``callback_config(genuine=True)`` and refused by one with another secret."""

    counterpart: Callable[[Any], Iterator[Counterpart]]
    config: Callable[[str], dict[str, Any]]
    message: Callable[[str, str], OutboundMessage]
    secrets: tuple[str, ...] = ()
    refuses: bool = True
    unreachable: Callable[[], dict[str, Any]] | None = None
    callback_config: Callable[[bool], dict[str, Any]] | None = None
    callbacks: dict[str, Callable[[], InboundRequest]] = field(default_factory=dict)


def _message(channel: str, to: str, workspace_id: str, **fields: Any) -> OutboundMessage:
    return OutboundMessage(
        message_id="msg_contract01", workspace_id=workspace_id, channel=channel, to=to, body="Hello Bob", **fields
    )


def _email(to: str, workspace_id: str) -> OutboundMessage:
    return _message("email", to, workspace_id, raw=RAW_EMAIL, envelope_from="bounces@mg.example.com")


def _http(path: str, success: dict[str, Any], invalid: dict[str, Any]) -> Callable[[Any], Iterator[Counterpart]]:
    def serve(runtime: Any) -> Iterator[Counterpart]:
        with HttpTestServer() as server:
            yield HttpCounterpart(server, path, success, invalid)

    return serve


def _smtp(runtime: Any) -> Iterator[Counterpart]:
    with SmtpTestServer() as server:
        yield SmtpCounterpart(server)


def _outbox(runtime: Any) -> Iterator[Counterpart]:
    yield OutboxCounterpart(runtime.db)


def _closed_smtp_port() -> dict[str, Any]:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return {"url": f"smtp://127.0.0.1:{port}?local_hostname=localhost", "timeout": 2}


HARNESSES: dict[str, Harness] = {
    "smtp": Harness(
        counterpart=_smtp,
        config=lambda address: {"url": address, "timeout": 5},
        message=lambda address, ws: _email("bob@example.net", ws),
        unreachable=_closed_smtp_port,
    ),
    "local_outbox": Harness(
        counterpart=_outbox,
        config=lambda address: {"channel": "email"},
        message=lambda address, ws: _email("bob@example.net", ws),
        refuses=False,  # a table in CCM's own database takes whatever it is given
    ),
    "mailgun": Harness(
        counterpart=_http(
            f"/v3/{MAILGUN_DOMAIN}/messages.mime",
            {"json": {"id": "<20240101.1@mg.example.com>", "message": "Queued. Thank you."}},
            {"status": 400, "json": {"message": "to parameter is not a valid address. please check documentation"}},
        ),
        config=lambda address: {"api_key": MAILGUN_KEY, "domain": MAILGUN_DOMAIN, "base_url": address},
        message=lambda address, ws: _email("bob@example.net", ws),
        secrets=(MAILGUN_KEY,),
        unreachable=lambda: {"api_key": MAILGUN_KEY, "domain": MAILGUN_DOMAIN, "base_url": refused_url()},
        callback_config=lambda genuine: {
            "api_key": MAILGUN_KEY,
            "domain": "mg.example.com",
            "webhook_signing_key": recorded.MAILGUN_SIGNING_KEY if genuine else "another-signing-key",
        },
        callbacks={"status": lambda: recorded.mailgun_request(recorded.mailgun_payload(recorded.MAILGUN_DELIVERED))},
    ),
    "twilio": Harness(
        counterpart=_http(
            f"/2010-04-01/Accounts/{TWILIO_SID}/Messages.json",
            {"status": 201, "json": {"sid": "SM" + "a" * 32, "status": "queued", "to": "+14155550100"}},
            {"status": 400, "json": {"code": 21211, "message": "The 'To' number is not a valid phone number."}},
        ),
        config=lambda address: {
            "account_sid": TWILIO_SID,
            "auth_token": TWILIO_TOKEN,
            "from_number": "+14155550199",
            "base_url": address,
        },
        message=lambda address, ws: _message("sms", "+14155550100", ws),
        secrets=(TWILIO_TOKEN,),
        unreachable=lambda: {
            "account_sid": TWILIO_SID,
            "auth_token": TWILIO_TOKEN,
            "from_number": "+14155550199",
            "base_url": refused_url(),
        },
        callback_config=lambda genuine: {
            "account_sid": TWILIO_SID,
            "auth_token": recorded.TWILIO_TOKEN if genuine else "another-auth-token",
            "from_number": "+14155550199",
        },
        callbacks={
            "status": lambda: recorded.twilio_request(recorded.twilio_status("delivered")),
            "inbound": lambda: recorded.twilio_request(recorded.TWILIO_INBOUND_SMS),
        },
    ),
    "webhook": Harness(
        counterpart=_http(
            "/gateway",
            {"status": 202, "json": {"id": "gw-42"}},
            {"status": 422, "json": {"error": "unknown recipient"}},
        ),
        config=lambda address: {"url": f"{address}/gateway", "secret": WEBHOOK_SECRET, "channel": "sms"},
        message=lambda address, ws: _message("sms", "+14155550100", ws),
        secrets=(WEBHOOK_SECRET, WEBHOOK_SECRET.removeprefix("whsec_")),
        unreachable=lambda: {"url": f"{refused_url()}/gateway", "secret": WEBHOOK_SECRET, "channel": "sms"},
        callback_config=lambda genuine: {
            "url": "https://gateway.example.com/send",
            "secret": recorded.WEBHOOK_SECRET if genuine else OTHER_WEBHOOK_SECRET,
            "channel": "sms",
        },
        callbacks={
            "status": lambda: recorded.gateway_request(recorded.gateway_status("delivered")),
            "inbound": lambda: recorded.gateway_request(recorded.GATEWAY_INBOUND),
        },
    ),
    "slack": Harness(
        counterpart=_http(SLACK_PATH, {"body": "ok"}, {"status": 400, "body": "invalid_payload"}),
        config=lambda address: {"base_url": f"{address}/services/"},
        message=lambda address, ws: _message("chat", f"{address}{SLACK_PATH}", ws),
        secrets=(SLACK_PATH.rsplit("/", 1)[1],),
    ),
    "telegram": Harness(
        counterpart=_http(
            f"/bot{TELEGRAM_TOKEN}/sendMessage",
            {"json": {"ok": True, "result": {"message_id": 4711, "chat": {"id": 123456789}, "text": "Hello"}}},
            {"status": 400, "json": {"ok": False, "error_code": 400, "description": "Bad Request: chat not found"}},
        ),
        config=lambda address: {"bot_token": TELEGRAM_TOKEN, "base_url": address},
        message=lambda address, ws: _message("chat", "123456789", ws),
        secrets=(TELEGRAM_TOKEN,),
        unreachable=lambda: {"bot_token": TELEGRAM_TOKEN, "base_url": refused_url()},
        callback_config=lambda genuine: {
            "bot_token": TELEGRAM_TOKEN,
            "webhook_secret": recorded.TELEGRAM_SECRET if genuine else "another-secret-token",
        },
        callbacks={
            "status": lambda: recorded.telegram_request(
                recorded.telegram_member(730151003, old="member", new="kicked")
            ),
            "inbound": lambda: recorded.telegram_request(recorded.TELEGRAM_TEXT),
        },
    ),
}

KINDS = sorted(PROVIDERS)


def test_every_registered_kind_has_a_contract_row():
    assert HARNESSES.keys() == PROVIDERS.keys()


def test_every_row_records_each_callback_its_kind_declares():
    for kind, spec in PROVIDERS.items():
        assert HARNESSES[kind].callbacks.keys() == spec.callbacks, kind


@dataclass
class Live:
    kind: str
    harness: Harness
    counterpart: Counterpart
    workspace_id: str
    db: Database
    built: list[Provider] = field(default_factory=list)

    def build(self, values: dict[str, Any] | None = None) -> Provider:
        provider = build_provider(self.kind, values or self.harness.config(self.counterpart.address), db=self.db)
        self.built.append(provider)
        return provider

    def message(self) -> OutboundMessage:
        return self.harness.message(self.counterpart.address, self.workspace_id)


@pytest.fixture(params=KINDS)
def live(request: pytest.FixtureRequest, runtime: Any, workspace: tuple[str, str]) -> Iterator[Live]:
    harness = HARNESSES[request.param]
    serving = harness.counterpart(runtime)
    running = Live(request.param, harness, next(serving), workspace[0], runtime.db)
    yield running
    for provider in running.built:
        provider.close()
    serving.close()


class Commit:
    """A commit point that records how many messages the counterpart had when it was called."""

    def __init__(self, counterpart: Counterpart, error: Exception | None = None) -> None:
        self.counterpart, self.error, self.seen = counterpart, error, list[int]()

    def __call__(self) -> None:
        self.seen.append(self.counterpart.received())
        if self.error is not None:
            raise self.error


def test_builds_from_its_registry_entry_for_a_channel_it_declares(live):
    provider = live.build()
    spec = PROVIDERS[live.kind]

    assert provider.name == live.kind
    assert provider.channel in spec.channels
    assert provider.channel == spec.channel_for(
        spec.config_model.model_validate(live.harness.config(live.counterpart.address))
    )
    assert provider.normalize_address(live.message().to)


def test_sends_exactly_once_right_after_the_commit_point(live):
    live.counterpart.accept()
    commit = Commit(live.counterpart)

    receipt = live.build().send(live.message(), commit_point=commit)

    assert isinstance(receipt, Receipt) and receipt.status in {"sent", "delivered"}
    assert commit.seen == [0]
    assert live.counterpart.received() == 1


def test_a_commit_point_that_raises_sends_nothing(live):
    live.counterpart.accept()
    lost = RuntimeError("another run owns the message")

    with pytest.raises(RuntimeError, match="another run"):
        live.build().send(live.message(), commit_point=Commit(live.counterpart, lost))

    assert live.counterpart.received() == 0


def test_an_unreachable_counterpart_is_transient_and_says_whether_it_may_have_sent(live):
    if live.harness.unreachable is None:
        values, message = live.harness.config(live.counterpart.address), live.message()
        if live.kind == "slack":  # the handle is the webhook URL: point it where nothing listens
            dead = refused_url()
            values, message = {"base_url": f"{dead}/services/"}, _message("chat", f"{dead}{SLACK_PATH}", "ws")
        else:  # the local outbox: its database cannot be opened
            live.db = Database("sqlite:////nonexistent-directory/ccm.db")
    else:
        values, message = live.harness.unreachable(), live.message()
    commit = Commit(live.counterpart)

    with pytest.raises(TransientDeliveryError) as caught:
        live.build(values).send(message, commit_point=commit)

    # Past the commit point, only a retry on the same account is safe, and the error must say so.
    assert caught.value.may_have_been_sent or commit.seen == []
    assert live.counterpart.received() == 0


def test_a_refusal_is_permanent_and_keeps_no_secret(live):
    if not live.harness.refuses:
        pytest.skip(f"{live.kind} never refuses a message")
    live.counterpart.refuse()
    provider = live.build()

    with pytest.raises(PermanentDeliveryError) as caught:
        provider.send(live.message(), commit_point=Commit(live.counterpart))

    _assert_secret_free(live.harness, provider, caught.value)


def _assert_secret_free(harness: Harness, *things: object) -> None:
    for thing in things:
        for text in (repr(thing), str(thing)):
            for secret in harness.secrets:
                assert secret not in text, f"a secret leaked into {text!r}"


@pytest.mark.parametrize("kind", KINDS)
def test_callbacks_it_declares_verify_and_parse_and_it_refuses_the_rest(kind, runtime):
    harness, spec = HARNESSES[kind], PROVIDERS[kind]
    if not spec.callbacks:
        values = harness.unreachable() if harness.unreachable else harness.config("http://127.0.0.1:9")
        provider = build_provider(kind, values, db=runtime.db)
        with pytest.raises(WebhookRejected):
            provider.verify_webhook(recorded.inbound(body=b'{"status": "delivered"}'), now=recorded.NOW)
        return
    assert harness.callback_config is not None
    genuine = build_provider(kind, harness.callback_config(True), db=runtime.db)
    forged = build_provider(kind, harness.callback_config(False), db=runtime.db)
    for callback_kind, request in harness.callbacks.items():
        genuine.verify_webhook(request(), now=recorded.NOW)
        with pytest.raises(WebhookRejected):
            forged.verify_webhook(request(), now=recorded.NOW)
        parsed: list[StatusEvent] | list[InboundText] = (
            genuine.parse_status_callback(request()) if callback_kind == "status" else genuine.parse_inbound(request())
        )
        assert parsed, f"{kind}: the recorded {callback_kind} callback parsed to nothing"
        expected = StatusEvent if callback_kind == "status" else InboundText
        assert all(isinstance(item, expected) for item in parsed)
