"""A generic SMS or chat gateway: CCM POSTs each message as JSON signed per Standard Webhooks.

https://www.standardwebhooks.com/ — the receiver verifies ``webhook-signature`` over
``{webhook-id}.{webhook-timestamp}.{body}`` and dedupes on ``webhook-id`` (the message id), which
is what makes a retry after a lost answer safe here.

The request body::

    {"type": "message.send", "id": "<message id>", "channel": "sms", "to": "+14155550100",
     "body": "Hello", "workspace_id": "<workspace id>"}

A 2xx answer means accepted; its JSON ``id``, when present, becomes the receipt's id. A ``check``
POSTs ``{"type": "ping"}``, signed the same way.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import secrets
import time
from typing import TYPE_CHECKING, Any, ClassVar, Literal

import httpx
from pydantic import AnyHttpUrl, BaseModel, ConfigDict, Field, SecretStr, field_validator

from ccm.channels.base import (
    CommitPoint,
    InvalidAddress,
    OutboundMessage,
    PermanentDeliveryError,
    ProviderLimits,
    Receipt,
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
from ccm.channels.providers.twilio import normalize_e164

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

LABEL = "Webhook gateway"
SECRET_PREFIX = "whsec_"
MIN_SECRET_BYTES = 16


def decode_secret(secret: str) -> bytes:
    """The HMAC key of a ``whsec_<base64>`` secret (the prefix is optional, as in Standard Webhooks'
    own libraries).

    Raises:
      ValueError: not base64, or shorter than :data:`MIN_SECRET_BYTES` bytes.
    """
    try:
        key = base64.b64decode(secret.removeprefix(SECRET_PREFIX), validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("secret must be whsec_ followed by base64") from None
    if len(key) < MIN_SECRET_BYTES:
        raise ValueError(f"secret must decode to at least {MIN_SECRET_BYTES} bytes")
    return key


def sign(key: bytes, webhook_id: str, timestamp: int, body: bytes) -> str:
    """The ``webhook-signature`` header value: ``v1,<base64 HMAC-SHA256>``."""
    signed = f"{webhook_id}.{timestamp}.".encode() + body
    return "v1," + base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()


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
        decode_secret(value.get_secret_value())
        return value


class WebhookProvider:
    """Sends each message as one signed JSON POST to ``config.url``.

    Receivers dedupe on ``webhook-id``, so ``idempotent_retries`` is True: an answer lost after the
    request went out is transient, and the retry carries the same ``webhook-id``.
    """

    name: ClassVar[str] = "webhook"
    config_model: ClassVar[type[BaseModel]] = WebhookConfig
    channels: ClassVar[tuple[str, ...]] = ("sms", "chat")
    in_transaction: ClassVar[bool] = False
    idempotent_retries: ClassVar[bool] = True

    def __init__(self, config: WebhookConfig, *, timeout: float = READ_TIMEOUT) -> None:
        self.config = config
        self.channel = config.channel
        self.limits = ProviderLimits(max_body_chars=config.max_body_chars, rate_per_second=config.rate_per_second)
        self._url = str(config.url)
        self._key = decode_secret(config.secret.get_secret_value())
        self._secrets = (config.secret.get_secret_value(), config.secret.get_secret_value().removeprefix(SECRET_PREFIX))
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

    def send(self, message: OutboundMessage, *, commit_point: CommitPoint, session: Session | None = None) -> Receipt:
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
        payload = {"type": "message.send", "id": message.message_id, "channel": self.channel, "to": to,
                   "body": message.body, "workspace_id": message.workspace_id}
        request = self._signed_request(message.message_id, payload)
        response = send_with_commit_point(self._client, request, commit_point=commit_point,
                                          idempotent=self.idempotent_retries, label=LABEL, secrets=self._secrets)
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

    def _signed_request(self, webhook_id: str, payload: dict[str, Any]) -> httpx.Request:
        body = json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode()
        timestamp = int(time.time())
        headers = {
            "Content-Type": "application/json",
            "webhook-id": webhook_id,
            "webhook-timestamp": str(timestamp),
            "webhook-signature": sign(self._key, webhook_id, timestamp, body),
        }
        return self._client.build_request("POST", self._url, content=body, headers=headers)
