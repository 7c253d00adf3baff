"""Mailgun's HTTP API: the message CCM built (``OutboundMessage.raw``) goes out unchanged.

https://documentation.mailgun.com/docs/mailgun/api-reference/openapi-final/tag/Messages/ —
``POST /v3/{domain}/messages.mime`` with the recipient in ``to`` and the MIME message as the
``message`` file. EU domains use ``base_url = "https://api.eu.mailgun.net"``.

Webhooks (https://documentation.mailgun.com/docs/mailgun/user-manual/events/webhooks/) POST JSON
``{"signature": {"timestamp", "token", "signature"}, "event-data": {...}}``; ``signature`` is the
hex HMAC-SHA256 of ``timestamp + token`` under the domain's HTTP webhook signing key (not the API
key), which must be set as ``webhook_signing_key`` for any callback to be accepted. A timestamp
more than 5 minutes from now is a replay. Inbound email (routes) is not handled here.
"""

from __future__ import annotations

from typing import Any, ClassVar

import httpx
from pydantic import AnyHttpUrl, BaseModel, ConfigDict, Field, SecretStr

from ccm.channels.addresses import normalize_email_address
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
from ccm.channels.callbacks import check_fresh, hmac_digest, iso_timestamp, json_object, nested, parse_timestamp, same
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

LABEL = "Mailgun"
_EVENT_KINDS = {
    "delivered": "delivered",
    "complained": "complained",
    "unsubscribed": "unsubscribed",
    "opened": "opened",
    "clicked": "clicked",
}
_FAILED_KINDS = {"permanent": "bounced_hard", "temporary": "bounced_soft"}


class MailgunConfig(BaseModel):
    """A Mailgun sending domain and the API key that may send from it."""

    model_config = ConfigDict(extra="forbid", hide_input_in_errors=True)

    api_key: SecretStr
    domain: str = Field(max_length=253, pattern=r"^([A-Za-z0-9-]{1,63}\.)+[A-Za-z0-9-]{2,63}$")
    base_url: AnyHttpUrl = AnyHttpUrl("https://api.mailgun.net")
    rate_per_second: float | None = Field(None, gt=0)
    webhook_signing_key: SecretStr | None = None


class MailgunProvider:
    """Sends ``OutboundMessage.raw`` to ``OutboundMessage.to`` through Mailgun.

    Mailgun does not dedupe, so an answer lost after the request went out is an
    :class:`~ccm.channels.base.OutcomeUnknownError`. The receipt's id is the Message-Id Mailgun
    assigned, without angle brackets, as its events and webhooks report it.
    """

    name: ClassVar[str] = "mailgun"
    handle_key: str | None = None
    idempotent_retries: ClassVar[bool] = False

    def __init__(self, config: MailgunConfig, *, timeout: float = READ_TIMEOUT) -> None:
        self.config = config
        self.channel = "email"
        self.limits = ProviderLimits(rate_per_second=config.rate_per_second)
        self._base = str(config.base_url).rstrip("/")
        self._secrets = (config.api_key.get_secret_value(),)
        self._client = make_client(timeout=timeout, auth=("api", self._secrets[0]))

    def __repr__(self) -> str:
        return f"MailgunProvider(domain={self.config.domain!r}, base_url={self._base!r})"

    def normalize_address(self, address: str) -> str:
        """The ASCII form of the email address (deliverability is not checked: no DNS here)."""
        return normalize_email_address(address)

    def send(self, message: OutboundMessage, *, commit_point: CommitPoint) -> Receipt:
        """Upload the MIME message for delivery to ``message.to``.

        Raises:
          PermanentDeliveryError: Mailgun refused the message (``rejected``), or there is no
            MIME content or usable address.
          ProviderConfigError: wrong key or unknown domain (401, 403, 404).
          TransientDeliveryError, OutcomeUnknownError: see :mod:`ccm.channels.http`.
        """
        if not message.raw:
            raise PermanentDeliveryError("the message has no raw MIME content", reason="invalid_message")
        try:
            to = self.normalize_address(message.to)
        except InvalidAddress as exc:
            raise PermanentDeliveryError(str(exc), reason="invalid_address") from None
        request = self._client.build_request(
            "POST",
            f"{self._base}/v3/{self.config.domain}/messages.mime",
            data={"to": to},
            files={"message": ("message.eml", message.raw, "message/rfc822")},
        )
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
        mailgun_id = response_json(response).get("id")
        return Receipt(
            provider_message_id=mailgun_id.strip("<>") if isinstance(mailgun_id, str) else None, status="sent"
        )

    def check(self) -> None:
        """Fetch the domain: proves the key and that the domain exists in this region."""
        request = self._client.build_request("GET", f"{self._base}/v3/domains/{self.config.domain}")
        response = send_probe(self._client, request, label=LABEL, secrets=self._secrets)
        if not response.is_success:
            raise as_check_error(self._error(response))

    def close(self) -> None:
        self._client.close()

    def verify_webhook(self, request: InboundRequest, *, now: float | None = None) -> None:
        """Check the body's ``signature`` object with ``webhook_signing_key``.

        Raises:
          WebhookRejected: no signing key is configured, the signature object is missing or
            incomplete, the signature is wrong, or its timestamp is more than 5 minutes from
            ``now`` (default: the clock).
        """
        if self.config.webhook_signing_key is None:
            raise WebhookRejected(
                "this Mailgun account has no webhook_signing_key, so no callback can be "
                "verified: set it to the domain's HTTP webhook signing key"
            )
        signature = json_object(request.body).get("signature")
        timestamp, token, received = (nested(signature, name) for name in ("timestamp", "token", "signature"))
        if not all(isinstance(value, str) and value for value in (timestamp, token, received)):
            raise WebhookRejected("the body has no complete signature object (timestamp, token, signature)")
        key = self.config.webhook_signing_key.get_secret_value().encode()
        if not same(hmac_digest(key, f"{timestamp}{token}".encode()).hex(), received):
            raise WebhookRejected("the Mailgun signature does not match: check webhook_signing_key")
        check_fresh(parse_timestamp(timestamp), now=now)

    def parse_status_callback(self, request: InboundRequest) -> list[StatusEvent]:
        """The event in ``event-data``: ``failed`` is ``bounced_hard`` or ``bounced_soft`` by its
        ``severity``; ``accepted``, ``rejected`` and ``stored`` yield nothing. The message id is
        the ``message-id`` header without angle brackets, as the receipt stored it."""
        event = json_object(request.body).get("event-data")
        if not isinstance(event, dict):
            return []
        name, event_id = nested(event, "event"), nested(event, "id")
        message_id = nested(event, "message", "headers", "message-id")
        kind = _FAILED_KINDS.get(nested(event, "severity")) if name == "failed" else _EVENT_KINDS.get(name)
        if kind is None or not isinstance(message_id, str) or not event_id:
            return []
        return [
            StatusEvent(
                provider_message_id=message_id.strip().strip("<>"),
                kind=kind,
                event_id=str(event_id),
                occurred_at=iso_timestamp(event.get("timestamp")),
                recipient=_text(event.get("recipient")),
                detail=_event_detail(event),
            )
        ]

    def parse_inbound(self, request: InboundRequest) -> list[InboundText]:
        """Nothing: email replies do not arrive through these webhooks."""
        return []

    def _error(self, response: httpx.Response) -> DeliveryError:
        """Map ``{"message": ...}`` answers; 404 means an unknown domain (or the wrong region)."""
        detail = response_json(response).get("message")
        detail = str(detail) if detail else None
        if response.status_code == 404:
            message = describe(response, label=LABEL, detail=detail, secrets=self._secrets)
            return ProviderConfigError(message, reason="unknown_domain")
        return classify_response(response, label=LABEL, detail=detail, secrets=self._secrets)


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _event_detail(event: dict[str, Any]) -> dict[str, str]:
    """What Mailgun says about the outcome: the SMTP code and messages, the failure reason, the URL clicked."""
    status = event.get("delivery-status")
    found = {name: nested(status, name) for name in ("code", "message", "description")}
    found.update(reason=event.get("reason"), url=event.get("url"))
    return {name: str(value) for name, value in found.items() if value not in (None, "")}
