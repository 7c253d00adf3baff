"""Slack-style incoming webhooks (Mattermost and Rocket.Chat accept the same request).

The recipient's address *is* the incoming-webhook URL (``https://hooks.slack.com/services/T…/B…/…``),
so it is where the request goes: :meth:`SlackProvider.normalize_address` is the guard that keeps a
profile's address from sending CCM's requests anywhere else (SSRF). Only HTTPS URLs on
``allowed_hosts`` pass, or, when ``base_url`` is set, URLs under it (plain HTTP only on loopback, for
tests). The URL's token is a credential too: it stays out of logs and error messages.

https://api.slack.com/messaging/webhooks#handling_errors

Incoming webhooks send no callbacks (no delivery reports, no replies), so every callback is
refused and nothing is parsed.
"""

from __future__ import annotations

import ipaddress
from typing import ClassVar

import httpx
from pydantic import AnyHttpUrl, BaseModel, ConfigDict, Field, field_validator

from ccm.channels.base import (
    CommitPoint,
    DeliveryError,
    InboundRequest,
    InboundText,
    InvalidAddress,
    OutboundMessage,
    PermanentDeliveryError,
    ProviderLimits,
    Receipt,
    StatusEvent,
    WebhookRejected,
)
from ccm.channels.http import (
    READ_TIMEOUT,
    SECRET_MARK,
    classify_response,
    describe,
    make_client,
    send_to_hidden_url,
    send_with_commit_point,
)

LABEL = "Slack webhook"
_LOOPBACK_NAMES = frozenset({"localhost"})
# Error bodies of incoming webhooks: the first set says the URL (our "address") is dead, the
# second that this message can never be posted. Anything else falls to the shared rules.
_INVALID_ADDRESS = frozenset(
    {
        "no_service",
        "no_service_id",
        "no_team",
        "team_disabled",
        "channel_not_found",
        "channel_is_archived",
        "invalid_token",
        "no_active_hooks",
        "user_not_found",
    }
)
_REJECTED = frozenset(
    {
        "invalid_payload",
        "no_text",
        "too_many_attachments",
        "action_prohibited",
        "posting_to_general_channel_denied",
    }
)


class SlackConfig(BaseModel):
    """Which webhook URLs may be posted to: HTTPS on ``allowed_hosts`` or, if set, under ``base_url``."""

    model_config = ConfigDict(extra="forbid", hide_input_in_errors=True)

    allowed_hosts: list[str] = Field(default_factory=lambda: ["hooks.slack.com"])
    base_url: AnyHttpUrl | None = None

    @field_validator("allowed_hosts")
    @classmethod
    def _hostnames(cls, hosts: list[str]) -> list[str]:
        cleaned = [host.strip().lower() for host in hosts]
        if not cleaned or not all(host and host.isascii() and all(c not in host for c in ":/@ ") for host in cleaned):
            raise ValueError("allowed_hosts must list bare host names, like hooks.slack.com")
        return cleaned

    @field_validator("base_url")
    @classmethod
    def _safe_base(cls, url: AnyHttpUrl | None) -> AnyHttpUrl | None:
        if url is None:
            return None
        if url.username or url.password or url.query or url.fragment:
            raise ValueError("base_url must not carry credentials, a query or a fragment")
        if url.scheme == "http" and not _is_loopback(url.host or ""):
            raise ValueError("base_url must be https (plain http only on loopback)")
        return url


class SlackProvider:
    """Posts ``{"text": body}`` to the recipient's incoming-webhook URL.

    Slack does not dedupe, so an answer lost after the request went out is an
    :class:`~ccm.channels.base.OutcomeUnknownError`. Slack answers ``ok`` with no message id: the
    receipt's id is None.
    """

    name: ClassVar[str] = "slack"
    handle_key: str | None = "slack"
    idempotent_retries: ClassVar[bool] = False

    def __init__(self, config: SlackConfig, *, timeout: float = READ_TIMEOUT) -> None:
        self.config = config
        self.channel = "chat"
        self.limits = ProviderLimits(max_body_chars=40_000)
        self._base = httpx.URL(str(config.base_url)) if config.base_url else None
        self._client = make_client(timeout=timeout)

    def __repr__(self) -> str:
        where = f"base_url={str(self._base)!r}" if self._base else f"allowed_hosts={self.config.allowed_hosts!r}"
        return f"SlackProvider({where})"

    def normalize_address(self, address: str) -> str:
        """The webhook URL, if CCM may post to it.

        Raises:
          InvalidAddress: not a URL, credentials, query or fragment in it, not HTTPS, another port,
            a host not in ``allowed_hosts``, or (with ``base_url``) not under ``base_url``.
        """
        url = _parse_url(address.strip())
        if self._base is not None:
            _require_under(url, self._base)
        else:
            _require_allowed(url, self.config.allowed_hosts)
        return str(url)

    def send(self, message: OutboundMessage, *, commit_point: CommitPoint) -> Receipt:
        """POST ``{"text": message.body}`` to the webhook URL in ``message.to``.

        The address is checked again here, before anything is sent: a stored address is only as
        safe as the configuration it was checked against.

        Raises:
          PermanentDeliveryError: a refused URL or a dead webhook (``invalid_address``), or a
            message Slack will never post (``rejected``).
          ProviderConfigError: 401/403 with a body Slack does not document, or a redirect.
          TransientDeliveryError, OutcomeUnknownError: see :mod:`ccm.channels.http`.
        """
        try:
            url = httpx.URL(self.normalize_address(message.to))
        except InvalidAddress as exc:
            raise PermanentDeliveryError(str(exc), reason="invalid_address") from None
        request = self._client.build_request("POST", _redacted(url), json={"text": message.body})
        send_to_hidden_url(request, str(url))
        secrets = (str(url), url.path)
        response = send_with_commit_point(
            self._client,
            request,
            commit_point=commit_point,
            idempotent=self.idempotent_retries,
            label=LABEL,
            secrets=secrets,
        )
        if not response.is_success:
            raise _error(response, secrets)
        return Receipt(provider_message_id=None, status="sent")

    def check(self) -> None:
        """Nothing to call: incoming webhooks have no credential to test, and each recipient's URL
        is checked when it is sent to. The configuration itself was validated when it was built."""

    def close(self) -> None:
        self._client.close()

    def verify_webhook(self, request: InboundRequest, *, now: float | None = None) -> None:
        """Always raises :class:`WebhookRejected`: incoming webhooks have no callbacks to verify."""
        raise WebhookRejected("Slack incoming webhooks send no callbacks")

    def parse_status_callback(self, request: InboundRequest) -> list[StatusEvent]:
        return []

    def parse_inbound(self, request: InboundRequest) -> list[InboundText]:
        return []


def _parse_url(address: str) -> httpx.URL:
    # httpx parses it here exactly as it will when sending, so the guard and the request agree.
    if not address.isascii() or not address.isprintable() or any(c in address for c in " \\"):
        raise InvalidAddress("a webhook URL must be printable ASCII without spaces or backslashes")
    try:
        url = httpx.URL(address)
    except httpx.InvalidURL:
        raise InvalidAddress("not a valid webhook URL") from None
    if url.scheme not in ("http", "https") or not url.host:
        raise InvalidAddress("a webhook URL must be an http(s) URL")
    if url.userinfo or url.query or url.fragment:
        raise InvalidAddress("a webhook URL must not carry credentials, a query or a fragment")
    segments = url.path.split("/")
    if not url.path.strip("/") or ".." in segments or "." in segments:
        raise InvalidAddress("a webhook URL needs a plain path")
    return url


def _require_allowed(url: httpx.URL, allowed_hosts: list[str]) -> None:
    if url.scheme != "https" or url.port not in (None, 443):
        raise InvalidAddress("a webhook URL must be https on the default port")
    if url.host not in allowed_hosts:
        raise InvalidAddress(f"webhook host {url.host!r} is not in allowed_hosts")


def _require_under(url: httpx.URL, base: httpx.URL) -> None:
    prefix = base.path.rstrip("/") + "/"
    if (url.scheme, url.host, url.port) != (base.scheme, base.host, base.port) or not url.path.startswith(prefix):
        raise InvalidAddress("the webhook URL is not under the configured base_url")


def _redacted(url: httpx.URL) -> httpx.URL:
    """The URL with everything after its first path segment (the token) masked."""
    first = url.path.strip("/").split("/")[0]
    return url.copy_with(path=f"/{first}/{SECRET_MARK}")


def _is_loopback(host: str) -> bool:
    host = host.strip("[]").lower()
    if host in _LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _error(response: httpx.Response, secrets: tuple[str, ...]) -> DeliveryError:
    """Map Slack's plain-text error codes, then the shared rules."""
    code = response.text.strip()
    if 400 <= response.status_code < 500 and response.status_code != 429:
        message = describe(response, label=LABEL, secrets=secrets)
        if code in _INVALID_ADDRESS:
            return PermanentDeliveryError(message, reason="invalid_address")
        if code in _REJECTED:
            return PermanentDeliveryError(message, reason="rejected")
    return classify_response(response, label=LABEL, secrets=secrets)
