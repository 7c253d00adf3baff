"""Twilio Programmable Messaging: SMS, or WhatsApp through the same Messages API.

https://www.twilio.com/docs/messaging/api/message-resource#create-a-message-resource

Callbacks (https://www.twilio.com/docs/usage/webhooks/webhooks-security) are form POSTs signed in
``X-Twilio-Signature``: base64 HMAC-SHA1 under the auth token of the URL Twilio called followed by
every form field's name and value, sorted by name. The signature carries no timestamp, so there is
no replay window. Status callbacks report a message's ``MessageStatus``; an incoming SMS or
WhatsApp message comes with ``SmsStatus=received`` and no ``MessageStatus``.
"""

from __future__ import annotations

import base64
import datetime as dt
from typing import ClassVar

import httpx
from pydantic import AnyHttpUrl, BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

from ccm.channels.addresses import normalize_e164
from ccm.channels.base import (
    CommitPoint,
    DeliveryError,
    InboundRequest,
    InboundText,
    InvalidAddress,
    OutboundMessage,
    PermanentDeliveryError,
    ProviderConfigError,
    ProviderLimits,
    Receipt,
    StatusEvent,
    WebhookRejected,
)
from ccm.channels.callbacks import hmac_digest, require_header, same, url_variants
from ccm.channels.http import (
    READ_TIMEOUT,
    as_check_error,
    classify_response,
    describe,
    make_client,
    response_json,
    send_probe,
    send_with_commit_point,
)

LABEL = "Twilio"
WHATSAPP = "whatsapp:"
# Twilio error codes (https://www.twilio.com/docs/api/errors) that say something about the recipient
# or our account rather than the request; any other 4xx is a plain rejection.
_INVALID_ADDRESS = frozenset({21211, 21214, 21217, 21401, 21612, 21614, 63003})
_UNSUBSCRIBED = frozenset({21610})
_CONFIG = frozenset({20003, 20404, 21212, 21606, 21659})
# Error codes of an ``undelivered`` message. The first set rules the number out (unreachable,
# unknown, a landline, invalid, not a mobile number); 30007 is a carrier's spam filter refusing this
# content, not the address. Any other code (queue overflow, account suspended, unknown) may pass later.
_HARD_BOUNCE = frozenset({30003, 30005, 30006, 21211, 21614})
_FILTERED = frozenset({30007})
_STATUS_KINDS = {"delivered": "delivered", "failed": "failed", "read": "read"}


class TwilioConfig(BaseModel):
    """Settings of a Twilio account. Exactly one of ``from_number`` and ``messaging_service_sid``.

    ``whatsapp`` sends WhatsApp messages (channel ``chat``) from a WhatsApp-enabled sender.
    """

    model_config = ConfigDict(extra="forbid", hide_input_in_errors=True)

    account_sid: str = Field(pattern=r"^AC[0-9a-fA-F]{32}$")
    auth_token: SecretStr
    from_number: str | None = None
    messaging_service_sid: str | None = Field(None, pattern=r"^MG[0-9a-fA-F]{32}$")
    whatsapp: bool = False
    base_url: AnyHttpUrl = AnyHttpUrl("https://api.twilio.com")
    rate_per_second: float = Field(10.0, gt=0)

    @field_validator("from_number")
    @classmethod
    def _e164_sender(cls, value: str | None) -> str | None:
        return None if value is None else normalize_e164(value.removeprefix(WHATSAPP))

    @model_validator(mode="after")
    def _one_sender(self) -> TwilioConfig:
        if (self.from_number is None) == (self.messaging_service_sid is None):
            raise ValueError("set exactly one of from_number and messaging_service_sid")
        return self


class TwilioProvider:
    """Sends ``OutboundMessage.body`` as an SMS, or a WhatsApp message when configured so.

    Twilio does not dedupe a repeated request, so an answer lost after the request went out is
    an :class:`~ccm.channels.base.OutcomeUnknownError`.
    """

    name: ClassVar[str] = "twilio"
    idempotent_retries: ClassVar[bool] = False

    def __init__(self, config: TwilioConfig, *, timeout: float = READ_TIMEOUT) -> None:
        self.config = config
        self.channel = "chat" if config.whatsapp else "sms"
        self.handle_key = "whatsapp" if config.whatsapp else "twilio"  # WhatsApp handles: {"whatsapp": "+1…"}
        self.limits = ProviderLimits(max_body_chars=1600, rate_per_second=config.rate_per_second)
        self._account_url = f"{str(config.base_url).rstrip('/')}/2010-04-01/Accounts/{config.account_sid}"
        self._secrets = (config.auth_token.get_secret_value(),)
        self._client = make_client(timeout=timeout, auth=(config.account_sid, self._secrets[0]))

    def __repr__(self) -> str:
        return (
            f"TwilioProvider(account_sid={self.config.account_sid!r}, channel={self.channel!r}, "
            f"base_url={str(self.config.base_url)!r})"
        )

    def normalize_address(self, address: str) -> str:
        """The number in E.164; a ``whatsapp:`` prefix is accepted (and dropped) for WhatsApp."""
        if self.config.whatsapp:
            address = address.removeprefix(WHATSAPP)
        return normalize_e164(address)

    def send(self, message: OutboundMessage, *, commit_point: CommitPoint) -> Receipt:
        """Create a Message resource; its ``sid`` becomes the receipt's id.

        Raises:
          PermanentDeliveryError: Twilio refused the message (``invalid_address``,
            ``unsubscribed`` or ``rejected``), or the address is not E.164.
          ProviderConfigError: wrong credentials, account or sender.
          TransientDeliveryError, OutcomeUnknownError: see :mod:`ccm.channels.http`.
        """
        form = {"To": self._wire_address(message.to), "Body": message.body, **self._sender()}
        request = self._client.build_request("POST", f"{self._account_url}/Messages.json", data=form)
        response = send_with_commit_point(
            self._client,
            request,
            commit_point=commit_point,
            idempotent=self.idempotent_retries,
            label=LABEL,
            secrets=self._secrets,
        )
        if not response.is_success:
            raise self._error(response)
        return Receipt(provider_message_id=response_json(response).get("sid"), status="sent")

    def check(self) -> None:
        """Fetch the account resource: proves the SID and token."""
        request = self._client.build_request("GET", f"{self._account_url}.json")
        response = send_probe(self._client, request, label=LABEL, secrets=self._secrets)
        if not response.is_success:
            raise as_check_error(self._error(response))

    def close(self) -> None:
        self._client.close()

    def verify_webhook(self, request: InboundRequest, *, now: float | None = None) -> None:
        """Check ``X-Twilio-Signature`` against ``request.public_url`` and ``request.url``, each
        with and without the default port: a proxy may have changed the scheme, host or port.
        Twilio signs no timestamp, so ``now`` is not used.

        Raises:
          WebhookRejected: the header is missing or matches none of those URLs.
        """
        received = require_header(request, "X-Twilio-Signature")
        urls = dict.fromkeys(variant for url in (request.public_url, request.url) for variant in url_variants(url))
        fields = "".join(name + request.form[name] for name in sorted(request.form))
        key = self._secrets[0].encode()
        expected = [base64.b64encode(hmac_digest(key, (url + fields).encode(), "sha1")) for url in urls]
        if not any([same(signature, received) for signature in expected]):
            raise WebhookRejected(
                "X-Twilio-Signature does not match the request: check the auth token "
                "and that CCM_PUBLIC_URL is the URL Twilio was given"
            )

    def parse_status_callback(self, request: InboundRequest) -> list[StatusEvent]:
        """The event a status callback reports, or [] for steps CCM does not record (``queued``,
        ``sending``, ``sent``…) and for incoming messages.

        ``undelivered`` is ``bounced_hard`` for error codes that rule the number out,
        ``failed`` for carrier filtering (30007) and ``bounced_soft`` otherwise.
        """
        form = request.form
        sid, status = form.get("MessageSid"), form.get("MessageStatus") or form.get("SmsStatus")
        if not sid or not status:
            return []
        error_code = form.get("ErrorCode", "").strip()
        kind = _undelivered_kind(error_code) if status == "undelivered" else _STATUS_KINDS.get(status)
        if kind is None:
            return []
        detail = {"status": status, **({"error_code": error_code} if error_code else {})}
        return [
            StatusEvent(
                provider_message_id=sid,
                kind=kind,
                event_id=f"{sid}:{status}",
                occurred_at=_dlr_done_date(form.get("RawDlrDoneDate", "")),
                recipient=form.get("To", "").removeprefix(WHATSAPP) or None,
                detail=detail,
            )
        ]

    def parse_inbound(self, request: InboundRequest) -> list[InboundText]:
        """An incoming SMS (channel ``sms``) or WhatsApp message (``chat``, by its ``whatsapp:``
        address); the addresses lose that prefix."""
        form = request.form
        sender, sid = form.get("From", ""), form.get("MessageSid")
        is_incoming = "MessageStatus" not in form or form.get("SmsStatus") == "received"
        if "Body" not in form or not sender or not sid or not is_incoming:
            return []
        return [
            InboundText(
                channel="chat" if sender.startswith(WHATSAPP) else "sms",
                from_address=sender.removeprefix(WHATSAPP),
                to_address=form.get("To", "").removeprefix(WHATSAPP) or None,
                body=form["Body"],
                provider_message_id=sid,
            )
        ]

    def _wire_address(self, address: str) -> str:
        try:
            number = self.normalize_address(address)
        except InvalidAddress as exc:
            raise PermanentDeliveryError(str(exc), reason="invalid_address") from None
        return WHATSAPP + number if self.config.whatsapp else number

    def _sender(self) -> dict[str, str]:
        if self.config.messaging_service_sid:
            return {"MessagingServiceSid": self.config.messaging_service_sid}
        number = self.config.from_number or ""
        return {"From": WHATSAPP + number if self.config.whatsapp else number}

    def _error(self, response: httpx.Response) -> DeliveryError:
        """Map Twilio's error JSON (``{"code": 21211, "message": ...}``), then the shared rules."""
        body = response_json(response)
        code, text = body.get("code"), body.get("message")
        detail = f"{code} {text}" if code and text else None
        status = response.status_code
        message = describe(response, label=LABEL, detail=detail, secrets=self._secrets)
        if code in _CONFIG or status == 404:
            return ProviderConfigError(message, reason="auth_failed" if status in (401, 403) else "misconfigured")
        if 400 <= status < 500 and status != 429:
            if code in _INVALID_ADDRESS:
                return PermanentDeliveryError(message, reason="invalid_address")
            if code in _UNSUBSCRIBED:
                return PermanentDeliveryError(message, reason="unsubscribed")
        return classify_response(response, label=LABEL, detail=detail, secrets=self._secrets)


def _undelivered_kind(error_code: str) -> str:
    code = int(error_code) if error_code.isdigit() else None
    if code in _HARD_BOUNCE:
        return "bounced_hard"
    return "failed" if code in _FILTERED else "bounced_soft"


def _dlr_done_date(value: str) -> str | None:
    """``RawDlrDoneDate`` (the carrier's ``YYMMDDhhmm``, sometimes with seconds, in UTC) as ISO 8601."""
    value = value.strip()
    pattern = {10: "%y%m%d%H%M", 12: "%y%m%d%H%M%S"}.get(len(value)) if value.isdigit() else None
    try:
        return dt.datetime.strptime(value, pattern).replace(tzinfo=dt.UTC).isoformat() if pattern else None
    except ValueError:
        return None
