"""Providers' callbacks: proving they are genuine, then reading status reports and replies.

Payloads carry the providers' real field names, as their documentation records them. Signatures
are computed here independently of :mod:`ccm.channels.callbacks`, and each scheme is also checked
against a vector its authors published (Twilio's library tests, the Standard Webhooks example).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import Iterator
from typing import Any

import pytest
from pydantic import ValidationError

from ccm.channels.base import InboundRequest, InboundText, StatusEvent, WebhookRejected
from ccm.channels.callbacks import iso_timestamp, parse_timestamp, url_variants
from ccm.channels.providers.mailgun import MailgunConfig, MailgunProvider
from ccm.channels.providers.slack import SlackConfig, SlackProvider
from ccm.channels.providers.telegram import TelegramConfig, TelegramProvider
from ccm.channels.providers.twilio import TwilioConfig, TwilioProvider
from ccm.channels.providers.webhook import WebhookConfig, WebhookProvider
from ccm.channels.registry import PROVIDERS

NOW = 1_714_564_800  # 2024-05-01T12:00:00Z
TWILIO_SID = "AC" + "0123456789abcdef" * 2
TWILIO_TOKEN = "twilio-auth-token-5ecret"
TWILIO_URL = "https://ccm.example.com/v1/callbacks/twilio/acct_1"
MESSAGE_SID = "SM" + "a" * 32
WEBHOOK_KEY = b"callback-webhook-key-24b"
WEBHOOK_SECRET = "whsec_" + base64.b64encode(WEBHOOK_KEY).decode()
TELEGRAM_TOKEN = "123456:telegram-Bot-Token_5ecret"
TELEGRAM_SECRET = "tg-webhook_5ecret"
MAILGUN_KEY = "key-mailgun-api-5ecret"
MAILGUN_SIGNING_KEY = "mailgun-signing-key-5ecret"
MAILGUN_MESSAGE_ID = "20240501120000.1.ABCDEF@mg.example.com"
SECRETS = (
    TWILIO_TOKEN,
    WEBHOOK_SECRET,
    WEBHOOK_SECRET.removeprefix("whsec_"),
    TELEGRAM_TOKEN,
    TELEGRAM_SECRET,
    MAILGUN_KEY,
    MAILGUN_SIGNING_KEY,
)


def inbound(
    *,
    url: str = "https://ccm.example.com/callback",
    public_url: str | None = None,
    headers: dict[str, str] | None = None,
    body: bytes = b"",
    form: dict[str, str] | None = None,
) -> InboundRequest:
    return InboundRequest(
        method="POST", url=url, public_url=public_url or url, headers=headers or {}, body=body, form=form or {}
    )


def assert_rejected(verify: Any, request: InboundRequest, *, now: float = NOW, says: str = "") -> WebhookRejected:
    with pytest.raises(WebhookRejected) as caught:
        verify(request, now=now)
    message = str(caught.value)
    assert says in message
    assert not any(secret in message or secret in repr(caught.value) for secret in SECRETS)
    return caught.value


@pytest.fixture
def built() -> Iterator[list[Any]]:
    providers: list[Any] = []
    yield providers
    for provider in providers:
        provider.close()


# Twilio ------------------------------------------------------------------------------------------


def twilio_signature(token: str, url: str, form: dict[str, str]) -> str:
    data = url + "".join(f"{name}{form[name]}" for name in sorted(form))
    return base64.b64encode(hmac.new(token.encode(), data.encode(), hashlib.sha1).digest()).decode()


def twilio_status(status: str, **extra: str) -> dict[str, str]:
    return {
        "SmsSid": MESSAGE_SID,
        "SmsStatus": status,
        "MessageStatus": status,
        "To": "+14155550100",
        "MessageSid": MESSAGE_SID,
        "AccountSid": TWILIO_SID,
        "From": "+14155550199",
        "ApiVersion": "2010-04-01",
        **extra,
    }


TWILIO_INBOUND_SMS = {
    "ToCountry": "US",
    "ToState": "CA",
    "SmsMessageSid": "SM" + "b" * 32,
    "NumMedia": "0",
    "ToCity": "SAN FRANCISCO",
    "FromZip": "94103",
    "SmsSid": "SM" + "b" * 32,
    "FromState": "CA",
    "SmsStatus": "received",
    "FromCity": "SAN FRANCISCO",
    "Body": "STOP",
    "FromCountry": "US",
    "To": "+14155550199",
    "ToZip": "94105",
    "NumSegments": "1",
    "MessageSid": "SM" + "b" * 32,
    "AccountSid": TWILIO_SID,
    "From": "+14155550100",
    "ApiVersion": "2010-04-01",
}
TWILIO_INBOUND_WHATSAPP = {
    "SmsMessageSid": "SM" + "c" * 32,
    "NumMedia": "0",
    "ProfileName": "Bob",
    "MessageType": "text",
    "SmsSid": "SM" + "c" * 32,
    "WaId": "14155550100",
    "SmsStatus": "received",
    "Body": "Yes please",
    "To": "whatsapp:+14155550199",
    "NumSegments": "1",
    "ReferralNumMedia": "0",
    "MessageSid": "SM" + "c" * 32,
    "AccountSid": TWILIO_SID,
    "From": "whatsapp:+14155550100",
    "ApiVersion": "2010-04-01",
}


def twilio(built: list[Any], token: str = TWILIO_TOKEN, *, whatsapp: bool = False) -> TwilioProvider:
    provider = TwilioProvider(
        TwilioConfig(account_sid=TWILIO_SID, auth_token=token, from_number="+14155550199", whatsapp=whatsapp)
    )
    built.append(provider)
    return provider


def twilio_request(
    form: dict[str, str],
    *,
    signed_url: str = TWILIO_URL,
    token: str = TWILIO_TOKEN,
    url: str = TWILIO_URL,
    public_url: str = TWILIO_URL,
) -> InboundRequest:
    headers = {"x-twilio-signature": twilio_signature(token, signed_url, form)}
    return inbound(url=url, public_url=public_url, headers=headers, form=form)


def test_twilio_accepts_the_vector_from_its_own_library(built):
    form = {
        "CallSid": "CA1234567890ABCDE",
        "Digits": "1234",
        "From": "+14158675309",
        "To": "+18005551212",
        "Caller": "+14158675309",
    }
    request = inbound(
        url="https://mycompany.com/myapp.php?foo=1&bar=2",
        headers={"x-twilio-signature": "RSOYDt4T1cUTdK1PDd93/VVr8B8="},
        form=form,
    )

    twilio(built, token="12345").verify_webhook(request)


def test_twilio_accepts_a_genuine_status_callback(built):
    twilio(built).verify_webhook(twilio_request(twilio_status("delivered")), now=NOW)


def test_twilio_rejects_a_forged_signature(built):
    request = twilio_request(twilio_status("delivered"))
    forged = inbound(url=TWILIO_URL, headers={"x-twilio-signature": "RSOYDt4T1cUTdK1PDd93/VVr8B8="}, form=request.form)

    assert_rejected(twilio(built).verify_webhook, forged, says="X-Twilio-Signature")


def test_twilio_rejects_a_signature_made_with_another_token(built):
    request = twilio_request(twilio_status("delivered"), token="another-accounts-token")

    assert_rejected(twilio(built).verify_webhook, request)


def test_twilio_rejects_a_callback_without_signature(built):
    assert_rejected(
        twilio(built).verify_webhook,
        inbound(url=TWILIO_URL, form=twilio_status("delivered")),
        says="missing X-Twilio-Signature",
    )


def test_twilio_rejects_a_changed_form_field(built):
    request = twilio_request(twilio_status("undelivered", ErrorCode="30003"))
    changed = inbound(url=TWILIO_URL, headers=request.headers, form={**request.form, "ErrorCode": "30001"})

    assert_rejected(twilio(built).verify_webhook, changed)


@pytest.mark.parametrize(
    "internal_url",
    [
        "http://ccm.example.com/v1/callbacks/twilio/acct_1",  # TLS ended at the proxy
        "http://10.0.0.7:8000/v1/callbacks/twilio/acct_1",  # another host and port behind it
    ],
)
def test_twilio_verifies_through_a_proxy_via_the_public_url(built, internal_url):
    request = twilio_request(twilio_status("delivered"), url=internal_url, public_url=TWILIO_URL)

    twilio(built).verify_webhook(request, now=NOW)


def test_twilio_verifies_against_the_request_url_when_the_public_url_differs(built):
    request = twilio_request(twilio_status("delivered"), public_url="https://old-name.example.com/v1/callbacks/x")

    twilio(built).verify_webhook(request, now=NOW)


@pytest.mark.parametrize(
    ("signed_url", "received_url"),
    [
        ("https://ccm.example.com:443/v1/callbacks/twilio/acct_1", TWILIO_URL),
        (TWILIO_URL, "https://ccm.example.com:443/v1/callbacks/twilio/acct_1"),
    ],
    ids=["port-signed", "port-received"],
)
def test_twilio_verifies_with_or_without_the_default_port(built, signed_url, received_url):
    request = twilio_request(
        twilio_status("delivered"), signed_url=signed_url, url=received_url, public_url=received_url
    )

    twilio(built).verify_webhook(request, now=NOW)


@pytest.mark.parametrize(
    ("status", "error_code", "kind"),
    [
        ("delivered", None, "delivered"),
        ("failed", "30008", "failed"),
        ("read", None, "read"),
        ("undelivered", "30003", "bounced_hard"),
        ("undelivered", "30005", "bounced_hard"),
        ("undelivered", "30006", "bounced_hard"),
        ("undelivered", "21211", "bounced_hard"),
        ("undelivered", "21614", "bounced_hard"),
        ("undelivered", "30007", "failed"),
        ("undelivered", "30001", "bounced_soft"),
        ("undelivered", "30002", "bounced_soft"),
        ("undelivered", None, "bounced_soft"),
    ],
)
def test_twilio_maps_status_callbacks_to_events(built, status, error_code, kind):
    form = twilio_status(status, **({"ErrorCode": error_code} if error_code else {}))

    events = twilio(built).parse_status_callback(twilio_request(form))

    assert [(e.kind, e.provider_message_id, e.event_id, e.recipient) for e in events] == [
        (kind, MESSAGE_SID, f"{MESSAGE_SID}:{status}", "+14155550100")
    ]
    assert events[0].detail.get("error_code") == error_code


@pytest.mark.parametrize("status", ["queued", "accepted", "sending", "sent"])
def test_twilio_records_nothing_for_intermediate_statuses(built, status):
    assert twilio(built).parse_status_callback(twilio_request(twilio_status(status))) == []


def test_twilio_takes_the_carriers_delivery_time(built):
    form = twilio_status("delivered", RawDlrDoneDate="2405011203")

    [event] = twilio(built).parse_status_callback(twilio_request(form))

    assert event.occurred_at == "2024-05-01T12:03:00+00:00"


def test_twilio_whatsapp_read_receipt_names_the_bare_number(built):
    form = twilio_status("read", ChannelPrefix="whatsapp", To="whatsapp:+14155550100", From="whatsapp:+14155550199")

    [event] = twilio(built, whatsapp=True).parse_status_callback(twilio_request(form))

    assert (event.kind, event.recipient) == ("read", "+14155550100")


def test_twilio_reads_an_incoming_sms(built):
    provider = twilio(built)
    request = twilio_request(TWILIO_INBOUND_SMS)

    assert provider.parse_inbound(request) == [
        InboundText(
            channel="sms",
            from_address="+14155550100",
            to_address="+14155550199",
            body="STOP",
            provider_message_id="SM" + "b" * 32,
        )
    ]
    assert provider.parse_status_callback(request) == []


def test_twilio_reads_an_incoming_whatsapp_message_on_the_chat_channel(built):
    [reply] = twilio(built, whatsapp=True).parse_inbound(twilio_request(TWILIO_INBOUND_WHATSAPP))

    assert (reply.channel, reply.from_address, reply.to_address, reply.body) == (
        "chat",
        "+14155550100",
        "+14155550199",
        "Yes please",
    )


def test_twilio_status_callback_is_not_an_incoming_message(built):
    assert twilio(built).parse_inbound(twilio_request(twilio_status("delivered"))) == []


# Standard Webhooks (the generic gateway) ----------------------------------------------------------


def standard_signature(key: bytes, webhook_id: str, timestamp: int | str, body: bytes) -> str:
    digest = hmac.new(key, f"{webhook_id}.{timestamp}.".encode() + body, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def gateway(built: list[Any], secret: str = WEBHOOK_SECRET) -> WebhookProvider:
    provider = WebhookProvider(WebhookConfig(url="https://gateway.example.com/send", secret=secret, channel="sms"))
    built.append(provider)
    return provider


def gateway_request(
    payload: dict[str, Any] | bytes,
    *,
    webhook_id: str = "evt_2fTq9Zb1",
    timestamp: int = NOW,
    key: bytes = WEBHOOK_KEY,
    signature: str | None = None,
) -> InboundRequest:
    body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    headers = {
        "webhook-id": webhook_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": signature or standard_signature(key, webhook_id, timestamp, body),
    }
    return inbound(headers=headers, body=body)


def gateway_status(status: str, **extra: Any) -> dict[str, Any]:
    return {
        "type": "message.status",
        "data": {"id": "gw-42", "status": status, "occurred_at": "2024-05-01T11:59:30Z", **extra},
    }


GATEWAY_INBOUND = {
    "type": "message.inbound",
    "data": {"id": "gw-in-7", "from": "+14155550100", "to": "+14155550199", "body": "STOP"},
}


def test_gateway_accepts_the_standard_webhooks_example(built):
    request = inbound(
        body=b'{"test": 2432232314}',
        headers={
            "webhook-id": "msg_p5jXN8AQM9LWM0D4loKWxJek",
            "webhook-timestamp": "1614265330",
            "webhook-signature": "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=",
        },
    )

    gateway(built, secret="whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").verify_webhook(request, now=1614265330)


def test_gateway_accepts_a_genuine_status_callback(built):
    gateway(built).verify_webhook(gateway_request(gateway_status("delivered")), now=NOW)


def test_gateway_rejects_a_forged_signature(built):
    forged = "v1," + base64.b64encode(b"\0" * 32).decode()

    assert_rejected(
        gateway(built).verify_webhook,
        gateway_request(gateway_status("delivered"), signature=forged),
        says="webhook-signature",
    )


def test_gateway_rejects_a_signature_made_with_another_key(built):
    request = gateway_request(gateway_status("delivered"), key=b"some-other-key-of-24-byte")

    assert_rejected(gateway(built).verify_webhook, request)


@pytest.mark.parametrize("header", ["webhook-id", "webhook-timestamp", "webhook-signature"])
def test_gateway_rejects_a_callback_missing_a_header(built, header):
    request = gateway_request(gateway_status("delivered"))
    headers = {name: value for name, value in request.headers.items() if name != header}

    assert_rejected(
        gateway(built).verify_webhook, inbound(headers=headers, body=request.body), says=f"missing {header}"
    )


@pytest.mark.parametrize("age", [-301, 301], ids=["future", "past"])
def test_gateway_rejects_a_timestamp_outside_five_minutes(built, age):
    request = gateway_request(gateway_status("delivered"), timestamp=NOW - age)

    assert_rejected(gateway(built).verify_webhook, request, says="replay window")


@pytest.mark.parametrize("age", [-299, 299], ids=["future", "past"])
def test_gateway_accepts_a_timestamp_inside_five_minutes(built, age):
    gateway(built).verify_webhook(gateway_request(gateway_status("delivered"), timestamp=NOW - age), now=NOW)


def test_gateway_rejects_a_timestamp_that_is_not_whole_seconds(built):
    body = json.dumps(gateway_status("delivered")).encode()
    stamp = "2024-05-01T12:00:00Z"
    headers = {
        "webhook-id": "evt_1",
        "webhook-timestamp": stamp,
        "webhook-signature": standard_signature(WEBHOOK_KEY, "evt_1", stamp, body),
    }

    assert_rejected(gateway(built).verify_webhook, inbound(headers=headers, body=body), says="webhook-timestamp")


def test_gateway_rejects_a_reserialised_body(built):
    request = gateway_request(gateway_status("delivered"))
    compact = json.dumps(json.loads(request.body), separators=(",", ":")).encode()
    assert compact != request.body and json.loads(compact) == json.loads(request.body)

    assert_rejected(gateway(built).verify_webhook, inbound(headers=request.headers, body=compact))


def test_gateway_accepts_any_one_matching_signature_in_the_list(built):
    body = json.dumps(gateway_status("delivered")).encode()
    old_key = standard_signature(b"the-key-before-rotation!", "evt_1", NOW, body)
    listed = f"v1a,c2lnbmVk {old_key} {standard_signature(WEBHOOK_KEY, 'evt_1', NOW, body)} v1,bm90LWl0"

    gateway(built).verify_webhook(gateway_request(body, webhook_id="evt_1", signature=listed), now=NOW)


def test_gateway_signature_list_without_a_match_is_rejected(built):
    body = json.dumps(gateway_status("delivered")).encode()
    listed = f"v1,bm90LWl0 {standard_signature(b'the-key-before-rotation!', 'evt_1', NOW, body)}"

    assert_rejected(gateway(built).verify_webhook, gateway_request(body, webhook_id="evt_1", signature=listed))


@pytest.mark.parametrize(
    ("status", "extra", "kind"),
    [
        ("delivered", {}, "delivered"),
        ("failed", {}, "failed"),
        ("read", {}, "read"),
        ("bounced", {"permanent": True}, "bounced_hard"),
        ("bounced", {"permanent": False}, "bounced_soft"),
        ("bounced", {}, "bounced_soft"),
    ],
)
def test_gateway_maps_status_events(built, status, extra, kind):
    events = gateway(built).parse_status_callback(gateway_request(gateway_status(status, **extra)))

    assert events == [
        StatusEvent(
            provider_message_id="gw-42", kind=kind, event_id="evt_2fTq9Zb1", occurred_at="2024-05-01T11:59:30+00:00"
        )
    ]


def test_gateway_ignores_a_status_it_does_not_know(built):
    assert gateway(built).parse_status_callback(gateway_request(gateway_status("queued"))) == []


def test_gateway_reads_an_inbound_message_on_its_channel(built):
    provider = gateway(built)
    request = gateway_request(GATEWAY_INBOUND)

    assert provider.parse_inbound(request) == [
        InboundText(
            channel="sms",
            from_address="+14155550100",
            to_address="+14155550199",
            body="STOP",
            provider_message_id="gw-in-7",
        )
    ]
    assert provider.parse_status_callback(request) == []


def test_gateway_status_event_is_not_an_inbound_message(built):
    assert gateway(built).parse_inbound(gateway_request(gateway_status("delivered"))) == []


# Telegram ---------------------------------------------------------------------------------------

TELEGRAM_BOT = {"id": 123456, "is_bot": True, "first_name": "CCM", "username": "ccm_bot"}
TELEGRAM_USER = {"id": 987654321, "is_bot": False, "first_name": "Bob", "username": "bob", "language_code": "en"}
TELEGRAM_CHAT = {"id": 987654321, "first_name": "Bob", "username": "bob", "type": "private"}
TELEGRAM_TEXT = {
    "update_id": 730151001,
    "message": {"message_id": 1365, "from": TELEGRAM_USER, "chat": TELEGRAM_CHAT, "date": NOW, "text": "STOP"},
}
TELEGRAM_PHOTO = {
    "update_id": 730151002,
    "message": {
        "message_id": 1366,
        "from": TELEGRAM_USER,
        "chat": TELEGRAM_CHAT,
        "date": NOW,
        "photo": [
            {"file_id": "AgACAgIAAxkBAAIB", "file_unique_id": "AQADr", "file_size": 1234, "width": 90, "height": 67}
        ],
    },
}


def telegram_member(update_id: int, old: str, new: str) -> dict[str, Any]:
    return {
        "update_id": update_id,
        "my_chat_member": {
            "chat": TELEGRAM_CHAT,
            "from": TELEGRAM_USER,
            "date": NOW + 60,
            "old_chat_member": {"user": TELEGRAM_BOT, "status": old},
            "new_chat_member": {"user": TELEGRAM_BOT, "status": new, **({"until_date": 0} if new == "kicked" else {})},
        },
    }


def telegram(built: list[Any], secret: str | None = TELEGRAM_SECRET) -> TelegramProvider:
    provider = TelegramProvider(TelegramConfig(bot_token=TELEGRAM_TOKEN, webhook_secret=secret))
    built.append(provider)
    return provider


def telegram_request(update: dict[str, Any], token: str | None = TELEGRAM_SECRET) -> InboundRequest:
    headers = {"x-telegram-bot-api-secret-token": token} if token else {}
    return inbound(headers={"content-type": "application/json", **headers}, body=json.dumps(update).encode())


def test_telegram_accepts_the_configured_secret_token(built):
    telegram(built).verify_webhook(telegram_request(TELEGRAM_TEXT), now=NOW)


def test_telegram_rejects_a_wrong_secret_token(built):
    assert_rejected(
        telegram(built).verify_webhook,
        telegram_request(TELEGRAM_TEXT, token="guessed-token"),
        says="does not match webhook_secret",
    )


def test_telegram_rejects_a_callback_without_the_secret_token(built):
    assert_rejected(
        telegram(built).verify_webhook,
        telegram_request(TELEGRAM_TEXT, token=None),
        says="missing X-Telegram-Bot-Api-Secret-Token",
    )


def test_telegram_refuses_every_callback_without_a_configured_secret(built):
    assert_rejected(
        telegram(built, secret=None).verify_webhook, telegram_request(TELEGRAM_TEXT), says="no webhook_secret"
    )


def test_telegram_webhook_secret_must_be_one_setwebhook_accepts():
    with pytest.raises(ValidationError):
        TelegramConfig(bot_token=TELEGRAM_TOKEN, webhook_secret="has spaces and ünïcode")


def test_telegram_reads_a_text_message(built):
    provider = telegram(built)
    request = telegram_request(TELEGRAM_TEXT)

    assert provider.parse_inbound(request) == [
        InboundText(
            channel="chat",
            from_address="987654321",
            to_address="123456",
            body="STOP",
            provider_message_id="987654321:1365",
            received_at="2024-05-01T12:00:00+00:00",
        )
    ]
    assert provider.parse_status_callback(request) == []


def test_telegram_ignores_a_message_without_text(built):
    assert telegram(built).parse_inbound(telegram_request(TELEGRAM_PHOTO)) == []


def test_telegram_bot_blocked_is_an_unsubscribe_for_the_chat(built):
    provider = telegram(built)
    request = telegram_request(telegram_member(730151003, old="member", new="kicked"))

    assert provider.parse_status_callback(request) == [
        StatusEvent(
            provider_message_id="",
            kind="unsubscribed",
            event_id="update:730151003",
            occurred_at="2024-05-01T12:01:00+00:00",
            recipient="987654321",
        )
    ]
    assert provider.parse_inbound(request) == []


def test_telegram_bot_unblocked_records_nothing(built):
    request = telegram_request(telegram_member(730151004, old="kicked", new="member"))

    assert telegram(built).parse_status_callback(request) == []


# Mailgun ----------------------------------------------------------------------------------------


def mailgun_event(event: str, **extra: Any) -> dict[str, Any]:
    return {
        "tags": [],
        "timestamp": NOW - 30.329574,
        "id": f"{event[:4]}-CPgfbmQMTCKtHW6uIWtuVe",
        "recipient": "alice@example.com",
        "recipient-domain": "example.com",
        "event": event,
        "log-level": "info",
        "envelope": {"transport": "smtp", "sender": "bounces@mg.example.com", "targets": "alice@example.com"},
        "flags": {"is-routed": False, "is-authenticated": True, "is-system-test": False, "is-test-mode": False},
        "message": {
            "headers": {
                "to": "alice@example.com",
                "message-id": MAILGUN_MESSAGE_ID,
                "from": "Shop <shop@mg.example.com>",
                "subject": "Your order",
            },
            "attachments": [],
            "size": 2140,
        },
        "user-variables": {},
        **extra,
    }


MAILGUN_DELIVERED = mailgun_event(
    "delivered",
    **{
        "delivery-status": {
            "tls": True,
            "mx-host": "mx.example.com",
            "attempt-no": 1,
            "description": "",
            "session-seconds": 0.43,
            "utf8": True,
            "code": 250,
            "message": "OK",
            "certificate-verified": True,
        }
    },
)
MAILGUN_HARD_BOUNCE = mailgun_event(
    "failed",
    severity="permanent",
    reason="bounce",
    **{
        "delivery-status": {
            "attempt-no": 1,
            "code": 550,
            "message": "5.1.1 The email account that you tried to reach does not exist.",
            "description": "",
            "session-seconds": 0.1,
        }
    },
)
MAILGUN_SOFT_BOUNCE = mailgun_event(
    "failed",
    severity="temporary",
    reason="generic",
    **{
        "delivery-status": {
            "attempt-no": 2,
            "code": 452,
            "message": "4.2.2 The email account that you tried to reach is over quota.",
            "description": "",
            "retry-seconds": 600,
        }
    },
)


def mailgun_payload(
    event_data: dict[str, Any],
    *,
    key: str = MAILGUN_SIGNING_KEY,
    timestamp: int = NOW,
    token: str = "a8ce0edb2dd8301dee6c2405235584e45aa91d1e9f979f3de0",
) -> dict[str, Any]:
    digest = hmac.new(key.encode(), f"{timestamp}{token}".encode(), hashlib.sha256).hexdigest()
    return {"signature": {"timestamp": str(timestamp), "token": token, "signature": digest}, "event-data": event_data}


def mailgun(built: list[Any], signing_key: str | None = MAILGUN_SIGNING_KEY) -> MailgunProvider:
    provider = MailgunProvider(
        MailgunConfig(api_key=MAILGUN_KEY, domain="mg.example.com", webhook_signing_key=signing_key)
    )
    built.append(provider)
    return provider


def mailgun_request(payload: dict[str, Any]) -> InboundRequest:
    return inbound(headers={"content-type": "application/json"}, body=json.dumps(payload).encode())


def test_mailgun_accepts_a_genuine_webhook(built):
    mailgun(built).verify_webhook(mailgun_request(mailgun_payload(MAILGUN_DELIVERED)), now=NOW)


def test_mailgun_rejects_a_forged_signature(built):
    payload = mailgun_payload(MAILGUN_DELIVERED)
    payload["signature"]["signature"] = "0" * 64

    assert_rejected(mailgun(built).verify_webhook, mailgun_request(payload), says="signature does not match")


def test_mailgun_rejects_a_signature_made_with_the_api_key(built):
    request = mailgun_request(mailgun_payload(MAILGUN_DELIVERED, key=MAILGUN_KEY))

    assert_rejected(mailgun(built).verify_webhook, request)


def test_mailgun_rejects_a_webhook_without_signature(built):
    request = mailgun_request({"event-data": MAILGUN_DELIVERED})

    assert_rejected(mailgun(built).verify_webhook, request, says="no complete signature")


def test_mailgun_refuses_every_webhook_without_a_signing_key(built):
    request = mailgun_request(mailgun_payload(MAILGUN_DELIVERED))

    assert_rejected(mailgun(built, signing_key=None).verify_webhook, request, says="no webhook_signing_key")


@pytest.mark.parametrize("age", [-301, 301], ids=["future", "past"])
def test_mailgun_rejects_a_timestamp_outside_five_minutes(built, age):
    request = mailgun_request(mailgun_payload(MAILGUN_DELIVERED, timestamp=NOW - age))

    assert_rejected(mailgun(built).verify_webhook, request, says="replay window")


@pytest.mark.parametrize("age", [-299, 299], ids=["future", "past"])
def test_mailgun_accepts_a_timestamp_inside_five_minutes(built, age):
    mailgun(built).verify_webhook(mailgun_request(mailgun_payload(MAILGUN_DELIVERED, timestamp=NOW - age)), now=NOW)


@pytest.mark.parametrize(
    ("event_data", "kind"),
    [
        (MAILGUN_DELIVERED, "delivered"),
        (MAILGUN_HARD_BOUNCE, "bounced_hard"),
        (MAILGUN_SOFT_BOUNCE, "bounced_soft"),
        (mailgun_event("complained"), "complained"),
        (mailgun_event("unsubscribed"), "unsubscribed"),
        (mailgun_event("opened", ip="203.0.113.9", **{"client-info": {"client-type": "browser"}}), "opened"),
        (mailgun_event("clicked", url="https://shop.example.com/orders/42"), "clicked"),
    ],
    ids=lambda value: value if isinstance(value, str) else None,
)
def test_mailgun_maps_events(built, event_data, kind):
    [event] = mailgun(built).parse_status_callback(mailgun_request(mailgun_payload(event_data)))

    assert (event.kind, event.provider_message_id, event.event_id, event.recipient) == (
        kind,
        MAILGUN_MESSAGE_ID,
        event_data["id"],
        "alice@example.com",
    )
    assert event.occurred_at == "2024-05-01T11:59:29.670426+00:00"


def test_mailgun_bounce_keeps_the_smtp_answer(built):
    [event] = mailgun(built).parse_status_callback(mailgun_request(mailgun_payload(MAILGUN_HARD_BOUNCE)))

    assert event.detail == {
        "code": "550",
        "reason": "bounce",
        "message": "5.1.1 The email account that you tried to reach does not exist.",
    }


def test_mailgun_message_id_loses_its_angle_brackets(built):
    event_data = mailgun_event("delivered")
    event_data["message"]["headers"]["message-id"] = f"<{MAILGUN_MESSAGE_ID}>"

    [event] = mailgun(built).parse_status_callback(mailgun_request(mailgun_payload(event_data)))

    assert event.provider_message_id == MAILGUN_MESSAGE_ID


@pytest.mark.parametrize("name", ["accepted", "rejected", "stored"])
def test_mailgun_records_nothing_for_other_events(built, name):
    assert mailgun(built).parse_status_callback(mailgun_request(mailgun_payload(mailgun_event(name)))) == []


def test_mailgun_has_no_inbound(built):
    assert mailgun(built).parse_inbound(mailgun_request(mailgun_payload(MAILGUN_DELIVERED))) == []


# Slack and every provider -----------------------------------------------------------------------


def test_slack_has_no_callbacks(built):
    provider = SlackProvider(SlackConfig())
    built.append(provider)
    request = inbound(headers={"content-type": "application/json"}, body=b'{"text": "hi"}')

    assert PROVIDERS["slack"].callbacks == frozenset()
    assert_rejected(provider.verify_webhook, request, says="no callbacks")
    assert provider.parse_status_callback(request) == []
    assert provider.parse_inbound(request) == []


@pytest.mark.parametrize(
    ("kind", "callbacks"),
    [
        ("twilio", {"status", "inbound"}),
        ("webhook", {"status", "inbound"}),
        ("telegram", {"status", "inbound"}),
        ("mailgun", {"status"}),
        ("slack", set()),
        ("smtp", set()),
        ("local_outbox", set()),
    ],
)
def test_every_provider_declares_its_callbacks(kind, callbacks):
    assert PROVIDERS[kind].callbacks == frozenset(callbacks)


# Shared helpers ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (1714564800, "2024-05-01T12:00:00+00:00"),
        ("1714564800.5", "2024-05-01T12:00:00.500000+00:00"),
        ("2024-05-01T14:00:00+02:00", "2024-05-01T12:00:00+00:00"),
        ("2024-05-01T12:00:00Z", "2024-05-01T12:00:00+00:00"),
        ("Wed, 01 May 2024 12:00:00 GMT", "2024-05-01T12:00:00+00:00"),
        ("2024-05-01", None),
        ("nan", None),
        ("soon", None),
        (True, None),
        (None, None),
    ],
)
def test_timestamps_are_read_in_every_form_providers_send(value, expected):
    assert iso_timestamp(value) == expected


def test_an_unreadable_timestamp_is_none():
    assert parse_timestamp("next tuesday") is None


@pytest.mark.parametrize(
    ("url", "variants"),
    [
        ("https://a.example/x?y=1", ["https://a.example/x?y=1", "https://a.example:443/x?y=1"]),
        ("http://a.example:80/x", ["http://a.example:80/x", "http://a.example/x"]),
        ("https://a.example:8443/x", ["https://a.example:8443/x"]),
        ("https://[2001:db8::1]:443/x", ["https://[2001:db8::1]:443/x", "https://[2001:db8::1]/x"]),
    ],
)
def test_url_variants_add_or_drop_only_the_default_port(url, variants):
    assert url_variants(url) == variants
