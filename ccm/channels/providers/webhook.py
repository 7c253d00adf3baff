"""A generic SMS or chat gateway: CCM POSTs each message as JSON signed per Standard Webhooks.

https://www.standardwebhooks.com/ — the receiver verifies ``webhook-signature`` over
``{webhook-id}.{webhook-timestamp}.{body}`` and dedupes on ``webhook-id`` (the message id), which
is what makes a retry after a lost answer safe here.

The request body::

    {"type": "message.send", "id": "<message id>", "channel": "sms", "to": "+14155550100",
     "body": "Hello", "workspace_id": "<workspace id>"}

A 2xx answer means accepted; its JSON ``id``, when present, becomes the receipt's id. A ``check``
POSTs ``{"type": "ping"}``, signed the same way.

Callbacks: the gateway POSTs to CCM, signed the same way with the same secret (``webhook-id``
unique per event and kept across its retries, ``webhook-timestamp`` within 5 minutes of CCM's
clock, ``webhook-signature`` over the exact bytes sent; several space-separated ``v1,<base64>``
entries are allowed, for key rotation). Two event types::

    {"type": "message.status",
     "data": {"id": "<the gateway's id from the send answer, or CCM's message id>",
              "status": "delivered" | "failed" | "bounced" | "read",
              "permanent": true,                       # bounced only: false or absent = soft bounce
              "occurred_at": "2024-05-01T12:00:00Z"}}  # optional: RFC 3339 or Unix seconds

    {"type": "message.inbound",
     "data": {"id": "<the gateway's id of the reply>", "from": "+14155550100",
              "to": "+14155550199", "body": "STOP"}}   # "to" is optional

Other types, statuses not listed and payloads missing ``id`` (or ``from`` and ``body``) yield nothing.
"""

from __future__ import annotations

import json
import secrets
from typing import Any, ClassVar, Literal

import httpx
from pydantic import AnyHttpUrl, BaseModel, ConfigDict, Field, SecretStr, field_validator

from ccm.channels.addresses import normalize_e164
from ccm.channels.base import (
    CommitPoint,
    InboundRequest,
    InboundText,
    InvalidAddress,
    OutboundMessage,
    PermanentDeliveryError,
    ProviderLimits,
    Receipt,
    StatusEvent,
)
from ccm.channels.callbacks import (
    WHSEC_PREFIX,
    decode_whsec,
    iso_timestamp,
    json_object,
    standard_webhook_headers,
    verify_standard_webhook,
)
from ccm.channels.http import (
    READ_TIMEOUT,
    as_check_error,
    classify_response,
    make_client,
    response_json,
    send_probe,
    send_with_commit_point,
)

LABEL = "Webhook gateway"
_STATUS_KINDS = {"delivered": "delivered", "failed": "failed", "read": "read"}


class WebhookConfig(BaseModel):
    """Where the gateway listens, the shared signing secret, and the channel it serves."""

    model_config = ConfigDict(extra="forbid", hide_input_in_errors=True)

    url: AnyHttpUrl
    secret: SecretStr = Field(description="whsec_<base64>, as Standard Webhooks tools generate")
    channel: Literal["sms", "chat"]
    max_body_chars: int | None = Field(None, gt=0)
    rate_per_second: float | None = Field(None, gt=0)

    @field_validator("secret")
    @classmethod
    def _decodable(cls, value: SecretStr) -> SecretStr:
        decode_whsec(value.get_secret_value())
        return value


class WebhookProvider:
    """Sends each message as one signed JSON POST to ``config.url``.

    Receivers dedupe on ``webhook-id``, so ``idempotent_retries`` is True: an answer lost after the
    request went out is transient, and the retry carries the same ``webhook-id``.
    """

    name: ClassVar[str] = "webhook"
    handle_key: str | None = "webhook"
    idempotent_retries: ClassVar[bool] = True

    def __init__(self, config: WebhookConfig, *, timeout: float = READ_TIMEOUT) -> None:
        self.config = config
        self.channel = config.channel
        self.limits = ProviderLimits(max_body_chars=config.max_body_chars, rate_per_second=config.rate_per_second)
        self._url = str(config.url)
        self._key = decode_whsec(config.secret.get_secret_value())
        self._secrets = (config.secret.get_secret_value(), config.secret.get_secret_value().removeprefix(WHSEC_PREFIX))
        self._client = make_client(timeout=timeout)

    def __repr__(self) -> str:
        # Without the query: some gateways take an access token there.
        where = httpx.URL(self._url).copy_with(query=None)
        return f"WebhookProvider(url={str(where)!r}, channel={self.channel!r})"

    def normalize_address(self, address: str) -> str:
        """E.164 for ``sms``; for ``chat``, the handle as given, trimmed (the gateway knows its form)."""
        if self.channel == "sms":
            return normalize_e164(address)
        handle = address.strip()
        if not handle or not handle.isprintable():
            raise InvalidAddress(f"{address!r} is not a usable chat handle")
        return handle

    def send(self, message: OutboundMessage, *, commit_point: CommitPoint) -> Receipt:
        """POST the signed message; the receipt's id is the gateway's ``id``, else the message id.

        Raises:
          PermanentDeliveryError: a 4xx answer (``rejected``) or an unusable address.
          ProviderConfigError: 401 or 403 (the gateway refuses our signature), or a redirect.
          TransientDeliveryError: 429, 5xx, network trouble, or no answer (the retry is deduped).
        """
        try:
            to = self.normalize_address(message.to)
        except InvalidAddress as exc:
            raise PermanentDeliveryError(str(exc), reason="invalid_address") from None
        payload = {
            "type": "message.send",
            "id": message.message_id,
            "channel": self.channel,
            "to": to,
            "body": message.body,
            "workspace_id": message.workspace_id,
        }
        request = self._signed_request(message.message_id, payload)
        response = send_with_commit_point(
            self._client,
            request,
            commit_point=commit_point,
            idempotent=self.idempotent_retries,
            label=LABEL,
            secrets=self._secrets,
        )
        if not response.is_success:
            raise classify_response(response, label=LABEL, secrets=self._secrets)
        gateway_id = response_json(response).get("id")
        return Receipt(provider_message_id=str(gateway_id) if gateway_id else message.message_id, status="sent")

    def check(self) -> None:
        """POST a signed ``{"type": "ping"}``; any 2xx means the gateway is there and trusts us."""
        request = self._signed_request(f"ping_{secrets.token_hex(8)}", {"type": "ping"})
        response = send_probe(self._client, request, label=LABEL, secrets=self._secrets)
        if not response.is_success:
            raise as_check_error(classify_response(response, label=LABEL, secrets=self._secrets))

    def close(self) -> None:
        self._client.close()

    def verify_webhook(self, request: InboundRequest, *, now: float | None = None) -> None:
        """Check the Standard Webhooks signature with the account's secret.

        Raises:
          WebhookRejected: a header is missing, no signature matches the exact body, or
            ``webhook-timestamp`` is more than 5 minutes from ``now`` (default: the clock).
        """
        verify_standard_webhook(self._key, request, now=now)

    def parse_status_callback(self, request: InboundRequest) -> list[StatusEvent]:
        """A ``message.status`` event; its ``event_id`` is the ``webhook-id`` header."""
        payload = json_object(request.body)
        data = payload.get("data")
        if payload.get("type") != "message.status" or not isinstance(data, dict) or not data.get("id"):
            return []
        status = data.get("status")
        if status == "bounced":
            kind = "bounced_hard" if data.get("permanent") is True else "bounced_soft"
        elif isinstance(status, str) and status in _STATUS_KINDS:
            kind = _STATUS_KINDS[status]
        else:
            return []
        event_id = request.headers.get("webhook-id") or f"{data['id']}:{status}"
        return [
            StatusEvent(
                provider_message_id=str(data["id"]),
                kind=kind,
                event_id=event_id,
                occurred_at=iso_timestamp(data.get("occurred_at")),
            )
        ]

    def parse_inbound(self, request: InboundRequest) -> list[InboundText]:
        """A ``message.inbound`` event, on this account's channel; addresses as the gateway sent them."""
        payload = json_object(request.body)
        data = payload.get("data")
        if payload.get("type") != "message.inbound" or not isinstance(data, dict):
            return []
        sender, body, gateway_id, to = data.get("from"), data.get("body"), data.get("id"), data.get("to")
        if not (isinstance(sender, str) and sender.strip() and isinstance(body, str) and gateway_id):
            return []
        return [
            InboundText(
                channel=self.channel,
                from_address=sender.strip(),
                to_address=to.strip() if isinstance(to, str) and to.strip() else None,
                body=body,
                provider_message_id=str(gateway_id),
            )
        ]

    def _signed_request(self, webhook_id: str, payload: dict[str, Any]) -> httpx.Request:
        body = json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode()
        return self._client.build_request(
            "POST", self._url, content=body, headers=standard_webhook_headers(self._key, webhook_id, body)
        )
