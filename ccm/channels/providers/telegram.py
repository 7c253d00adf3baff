"""Telegram Bot API: ``sendMessage`` to a chat id or ``@channelname``.

https://core.telegram.org/bots/api#sendmessage — the bot token is part of every URL
(``/bot<token>/method``); it is put there only on the wire (see
:func:`ccm.channels.http.send_to_hidden_url`), so logs and errors show ``/bot***/``.

Callbacks (https://core.telegram.org/bots/api#setwebhook) are JSON ``Update`` objects. Telegram
signs nothing: it repeats the ``secret_token`` given to ``setWebhook`` in the
``X-Telegram-Bot-Api-Secret-Token`` header, which must equal ``webhook_secret``, and it sends no
timestamp to bound replays. A text ``message`` is an inbound reply; a ``my_chat_member`` update
saying the bot was blocked (``kicked``) is an opt-out. Telegram has no delivery or read receipts
for bots, so nothing else becomes a status event.
"""

from __future__ import annotations

import re
from typing import Any, ClassVar, Literal

import httpx
from pydantic import AnyHttpUrl, BaseModel, ConfigDict, Field, SecretStr, field_validator

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
    TransientDeliveryError,
    WebhookRejected,
)
from ccm.channels.callbacks import iso_timestamp, json_object, nested, require_header, same
from ccm.channels.http import (
    READ_TIMEOUT,
    SECRET_MARK,
    as_check_error,
    classify_response,
    describe,
    make_client,
    parse_retry_after,
    response_json,
    send_probe,
    send_to_hidden_url,
    send_with_commit_point,
)

LABEL = "Telegram"
_TOKEN = re.compile(r"[0-9]+:[A-Za-z0-9_-]+")
_CHAT_ID = re.compile(r"-?[0-9]{1,20}")
_CHANNEL = re.compile(r"@[A-Za-z][A-Za-z0-9_]{3,31}")
_WEBHOOK_SECRET = re.compile(r"[A-Za-z0-9_-]{1,256}")  # what setWebhook accepts as secret_token
SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"
# 403 descriptions: the user (or group) shut the bot out, which is an opt-out, not a bad address.
_SHUT_OUT = ("blocked by the user", "kicked", "not a member", "can't initiate conversation")


class TelegramConfig(BaseModel):
    """A bot's token (from @BotFather) and, optionally, how ``text`` is formatted and the
    ``secret_token`` its webhook was registered with (without it no callback is accepted)."""

    model_config = ConfigDict(extra="forbid", hide_input_in_errors=True)

    bot_token: SecretStr
    base_url: AnyHttpUrl = AnyHttpUrl("https://api.telegram.org")
    parse_mode: Literal["HTML", "MarkdownV2", "Markdown"] | None = None
    rate_per_second: float = Field(30.0, gt=0)
    webhook_secret: SecretStr | None = None

    @field_validator("bot_token")
    @classmethod
    def _token_shape(cls, value: SecretStr) -> SecretStr:
        if not _TOKEN.fullmatch(value.get_secret_value()):
            raise ValueError("bot_token must look like 123456:ABC-DEF… (digits, a colon, letters)")
        return value

    @field_validator("webhook_secret")
    @classmethod
    def _secret_shape(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and not _WEBHOOK_SECRET.fullmatch(value.get_secret_value()):
            raise ValueError("webhook_secret must be 1 to 256 letters, digits, _ or - (as setWebhook requires)")
        return value


class TelegramProvider:
    """Sends ``OutboundMessage.body`` as a text message from one bot.

    Telegram does not dedupe ``sendMessage``, so an answer lost after the request went out is an
    :class:`~ccm.channels.base.OutcomeUnknownError`.
    """

    name: ClassVar[str] = "telegram"
    handle_key: str | None = "telegram"
    idempotent_retries: ClassVar[bool] = False

    def __init__(self, config: TelegramConfig, *, timeout: float = READ_TIMEOUT) -> None:
        self.config = config
        self.channel = "chat"
        self.limits = ProviderLimits(max_body_chars=4096, rate_per_second=config.rate_per_second)
        self._base = str(config.base_url).rstrip("/")
        self._token = config.bot_token.get_secret_value()
        self._client = make_client(timeout=timeout)

    def __repr__(self) -> str:
        return f"TelegramProvider(base_url={self._base!r}, bot_id={self._token.split(':')[0]!r})"

    def normalize_address(self, address: str) -> str:
        """A numeric chat id (negative for groups and channels) or a public ``@channelname``."""
        chat = address.strip()
        if _CHAT_ID.fullmatch(chat) or _CHANNEL.fullmatch(chat):
            return chat
        raise InvalidAddress(f"{address!r} is not a Telegram chat id or @channelname")

    def send(self, message: OutboundMessage, *, commit_point: CommitPoint) -> Receipt:
        """Call ``sendMessage``; the receipt's id is Telegram's ``message_id`` (unique per chat).

        Raises:
          PermanentDeliveryError: ``invalid_address`` (chat not found, user deactivated, group
            migrated), ``unsubscribed`` (bot blocked or removed) or ``rejected``.
          ProviderConfigError: the token was refused (401, or 404 for a malformed one).
          TransientDeliveryError: 429 (with Telegram's ``retry_after``), 5xx, network trouble.
          OutcomeUnknownError: no answer after the request went out.
        """
        payload: dict[str, Any] = {"chat_id": self._chat_id(message.to), "text": message.body}
        if self.config.parse_mode:
            payload["parse_mode"] = self.config.parse_mode
        request = self._request("POST", "sendMessage", json=payload)
        response = send_with_commit_point(
            self._client,
            request,
            commit_point=commit_point,
            idempotent=self.idempotent_retries,
            label=LABEL,
            secrets=(self._token,),
        )
        body = response_json(response)
        if not (response.is_success and body.get("ok")):
            raise self._error(response, body)
        message_id = (body.get("result") or {}).get("message_id")
        return Receipt(provider_message_id=None if message_id is None else str(message_id), status="sent")

    def check(self) -> None:
        """Call ``getMe``: proves the token."""
        response = send_probe(self._client, self._request("GET", "getMe"), label=LABEL, secrets=(self._token,))
        body = response_json(response)
        if not (response.is_success and body.get("ok")):
            raise as_check_error(self._error(response, body))

    def close(self) -> None:
        self._client.close()

    def verify_webhook(self, request: InboundRequest, *, now: float | None = None) -> None:
        """Check that the secret-token header equals ``webhook_secret``. Telegram sends no
        timestamp, so ``now`` is not used.

        Raises:
          WebhookRejected: ``webhook_secret`` is not configured, or the header is missing or wrong.
        """
        if self.config.webhook_secret is None:
            raise WebhookRejected(
                "this Telegram account has no webhook_secret, so no callback can be verified: "
                "set one and pass it to setWebhook as secret_token"
            )
        received = require_header(request, SECRET_HEADER)
        if not same(self.config.webhook_secret.get_secret_value(), received):
            raise WebhookRejected(f"{SECRET_HEADER} does not match webhook_secret")

    def parse_status_callback(self, request: InboundRequest) -> list[StatusEvent]:
        """An ``unsubscribed`` event for the chat when the update says the bot was blocked
        (``my_chat_member`` with new status ``kicked``); it concerns no message, so its
        ``provider_message_id`` is empty and ``recipient`` is the chat id."""
        update = json_object(request.body)
        member = update.get("my_chat_member")
        chat_id, update_id = nested(member, "chat", "id"), update.get("update_id")
        if nested(member, "new_chat_member", "status") != "kicked" or chat_id is None or update_id is None:
            return []
        return [
            StatusEvent(
                provider_message_id="",
                kind="unsubscribed",
                event_id=f"update:{update_id}",
                occurred_at=iso_timestamp(nested(member, "date")),
                recipient=str(chat_id),
            )
        ]

    def parse_inbound(self, request: InboundRequest) -> list[InboundText]:
        """A text ``message`` from a chat; its id is ``<chat id>:<message id>`` (message ids are
        only unique within a chat), and ``to_address`` is the bot's id. Other updates (photos
        without text, edits, channel posts) yield nothing."""
        message = json_object(request.body).get("message")
        if not isinstance(message, dict) or not isinstance(message.get("text"), str):
            return []
        chat_id, message_id = nested(message, "chat", "id"), message.get("message_id")
        if chat_id is None or message_id is None:
            return []
        return [
            InboundText(
                channel="chat",
                from_address=str(chat_id),
                to_address=self._token.split(":")[0],
                body=message["text"],
                provider_message_id=f"{chat_id}:{message_id}",
                received_at=iso_timestamp(message.get("date")),
            )
        ]

    def _request(self, method: str, api_method: str, **kwargs: Any) -> httpx.Request:
        request = self._client.build_request(method, f"{self._base}/bot{SECRET_MARK}/{api_method}", **kwargs)
        return send_to_hidden_url(request, f"{self._base}/bot{self._token}/{api_method}")

    def _chat_id(self, address: str) -> int | str:
        try:
            chat = self.normalize_address(address)
        except InvalidAddress as exc:
            raise PermanentDeliveryError(str(exc), reason="invalid_address") from None
        return chat if chat.startswith("@") else int(chat)

    def _error(self, response: httpx.Response, body: dict[str, Any]) -> DeliveryError:
        """Map ``{"ok": false, "error_code": 400, "description": ...}``, then the shared rules."""
        description = str(body.get("description") or response.text)
        parameters = body.get("parameters") or {}
        if "migrate_to_chat_id" in parameters:
            description += f" (the chat is now {parameters['migrate_to_chat_id']})"
        message = describe(response, label=LABEL, detail=description, secrets=(self._token,))
        status, lowered = response.status_code, description.lower()
        if status == 429:
            wait = parameters.get("retry_after")
            retry_after = (
                float(wait) if isinstance(wait, int | float) else parse_retry_after(response.headers.get("Retry-After"))
            )
            return TransientDeliveryError(message, reason="rate_limited", retry_after=retry_after)
        if status in (401, 404):
            return ProviderConfigError(message, reason="auth_failed")
        if status == 403:
            shut_out = any(phrase in lowered for phrase in _SHUT_OUT)
            return PermanentDeliveryError(message, reason="unsubscribed" if shut_out else "invalid_address")
        if status == 400 and ("chat not found" in lowered or "migrate_to_chat_id" in parameters):
            return PermanentDeliveryError(message, reason="invalid_address")
        return classify_response(response, label=LABEL, detail=description, secrets=(self._token,))
