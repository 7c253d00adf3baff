"""HTTP plumbing shared by the HTTP providers: the client, the commit point, and what an answer means.

When did the request go out? The commit point is called from httpcore's documented ``trace``
extension (event ``http11.send_request_headers.started``) when the request headers are about to be
written on an already open connection; the provider contract test fails if an upgrade of httpx or
httpcore stops emitting it. That splits every failure in two:

- **before** (DNS, connection refused, connect or pool timeout, TLS handshake): the provider never
  saw the request and the commit point was not called, so :class:`TransientDeliveryError`
  (``network_error``) — a retry cannot duplicate anything.
- **after**, with no answer (read timeout, connection reset or closed mid-response, and, to be
  safe, a write that failed part-way):
  :class:`OutcomeUnknownError`, because the provider may have acted on the request. This
  deliberately refines "timeouts are transient": a retried SMS must never be sent twice. Only a
  provider with ``idempotent_retries`` (it dedupes a repeated request, like Standard Webhooks
  receivers on ``webhook-id``) gets :class:`TransientDeliveryError` here.

An answer is classified by :func:`classify_response` after the provider has mapped the bodies it
knows: 429 and 503 are transient and honour ``Retry-After``; other 5xx are transient; 401 and 403
mean our credentials are wrong; redirects (never followed) mean a wrong base URL; other 4xx are
permanent, with the provider's message cut to :data:`MAX_DETAIL` characters.

Secrets never reach logs or errors: error messages go through :func:`scrub`, httpx's own exceptions
are not chained, and a secret that must sit in a URL path (Telegram's bot token) is put there by
the transport only (:func:`send_to_hidden_url`), so ``request.url`` — which httpx logs — shows
``***``.
"""

from __future__ import annotations

import datetime as dt
import email.utils
import functools
import ssl
from collections.abc import Iterable
from typing import Any
from urllib.parse import quote

import certifi
import httpx

from ccm.channels.base import (
    CommitPoint,
    DeliveryError,
    OutcomeUnknownError,
    PermanentDeliveryError,
    ProviderConfigError,
    TransientDeliveryError,
)
from ccm.channels.callbacks import json_object

CONNECT_TIMEOUT = 5.0
READ_TIMEOUT = 10.0
MAX_DETAIL = 300
SECRET_MARK = "***"
"""What stands for a secret in error messages and redacted URLs."""
USER_AGENT = "ccm"
_REAL_PATH = "ccm.real_path"


def make_client(
    *,
    timeout: float = READ_TIMEOUT,
    connect_timeout: float = CONNECT_TIMEOUT,
    auth: tuple[str, str] | None = None,
) -> httpx.Client:
    """An httpx client that never follows redirects and ignores proxy and netrc variables.

    Parameters:
      timeout: seconds to wait for each read, write or pooled connection.
      connect_timeout: seconds to open a connection (never more than ``timeout``).
      auth: HTTP basic credentials sent with every request.
    """
    # trust_env=False: an HTTP(S)_PROXY or ~/.netrc on a worker must not reroute or re-authenticate
    # provider traffic without anyone configuring it here.
    return httpx.Client(
        timeout=httpx.Timeout(timeout, connect=min(connect_timeout, timeout)),
        follow_redirects=False,
        trust_env=False,
        auth=auth,
        headers={"User-Agent": USER_AGENT},
        transport=_RevealingTransport(verify=_tls_context()),
    )


@functools.cache
def _tls_context() -> ssl.SSLContext:
    """One verifying TLS context for every client: loading the CA bundle costs ~15 ms each time."""
    return ssl.create_default_context(cafile=certifi.where())


def send_to_hidden_url(request: httpx.Request, real_url: str) -> httpx.Request:
    """Send ``request`` to ``real_url`` (same origin) while ``request.url`` keeps its redacted form.

    httpx logs ``request.url`` and errors may quote it, so a secret that has to be in the path
    (a Telegram bot token, a Slack webhook's token) is only put into the copy handed to the
    connection.
    """
    real = httpx.URL(real_url)
    if real.scheme != request.url.scheme or real.netloc != request.url.netloc:
        raise ValueError("the real URL must have the redacted URL's scheme, host and port")
    request.extensions[_REAL_PATH] = real.raw_path
    return request


class _RevealingTransport(httpx.HTTPTransport):
    """Hands the connection a copy of the request with the real path of :func:`send_to_hidden_url`."""

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        real = request.extensions.get(_REAL_PATH)
        if real is not None:
            request = httpx.Request(
                request.method,
                request.url.copy_with(raw_path=real),
                headers=request.headers,
                stream=request.stream,
                extensions=request.extensions,
            )
        return super().handle_request(request)


class _RequestWatch:
    """httpcore ``trace`` callback: calls the commit point once, right before the request
    headers are written, and remembers whether that moment was reached."""

    def __init__(self, commit_point: CommitPoint | None) -> None:
        self.commit_point = commit_point
        self.went_out = False

    def __call__(self, event: str, info: dict[str, Any]) -> None:
        if self.went_out or not event.endswith(".send_request_headers.started"):
            return
        if self.commit_point is not None:
            self.commit_point()  # if it raises, httpcore closes the connection with nothing sent
        self.went_out = True


def send_with_commit_point(
    client: httpx.Client,
    request: httpx.Request,
    *,
    commit_point: CommitPoint,
    idempotent: bool,
    label: str,
    secrets: Iterable[str] = (),
) -> httpx.Response:
    """Send ``request``, calling ``commit_point`` once, right before its first byte goes out.

    Parameters:
      idempotent: the provider dedupes a repeated request, so losing the answer is transient.
      label: the provider's name in error messages.
      secrets: strings removed from every error message.

    Returns:
      The response, whatever its status (see :func:`classify_response`).

    Raises:
      TransientDeliveryError: nothing was sent (``network_error``), or the answer was lost and
        the provider is idempotent (``no_response``).
      OutcomeUnknownError: the request went out and no answer came back.
      Exception: whatever ``commit_point`` raised; the request was then not sent.
    """
    watch = _RequestWatch(commit_point)
    request.extensions["trace"] = watch
    try:
        return client.send(request)
    except httpx.TransportError as exc:
        raise _transport_error(
            exc, went_out=watch.went_out, idempotent=idempotent, label=label, secrets=secrets
        ) from None


def send_probe(
    client: httpx.Client, request: httpx.Request, *, label: str, secrets: Iterable[str] = ()
) -> httpx.Response:
    """Send a request that changes nothing (a credentials check): any lost answer is transient."""
    return send_with_commit_point(
        client, request, commit_point=lambda: None, idempotent=True, label=label, secrets=secrets
    )


def _transport_error(
    exc: httpx.TransportError, *, went_out: bool, idempotent: bool, label: str, secrets: Iterable[str]
) -> DeliveryError:
    cause = scrub(f"{type(exc).__name__}: {exc}", secrets)
    if not went_out:
        return TransientDeliveryError(f"{label}: request not sent ({cause})", reason="network_error")
    if idempotent:
        return TransientDeliveryError(
            f"{label}: no answer to the request ({cause})", reason="no_response", may_have_been_sent=True
        )
    return OutcomeUnknownError(
        f"{label}: no answer after the request was sent ({cause}); the provider may have accepted it"
    )


def classify_response(
    response: httpx.Response,
    *,
    label: str,
    detail: str | None = None,
    secrets: Iterable[str] = (),
) -> DeliveryError:
    """The delivery error for a response the provider did not map itself.

    Parameters:
      detail: the provider's own error message; defaults to the response body.
    """
    status = response.status_code
    message = describe(response, label=label, detail=detail, secrets=secrets)
    if status in (429, 503):
        return TransientDeliveryError(
            message,
            reason="rate_limited" if status == 429 else "unavailable",
            retry_after=parse_retry_after(response.headers.get("Retry-After")),
        )
    if status >= 500:
        return TransientDeliveryError(message, reason="server_error")
    if status in (401, 403):
        return ProviderConfigError(message, reason="auth_failed")
    if 300 <= status < 400:
        return ProviderConfigError(
            f"{label} answered HTTP {status} (a redirect, not followed): check the provider's base URL",
            reason="redirected",
        )
    if status >= 400:
        return PermanentDeliveryError(message, reason="rejected")
    return TransientDeliveryError(message, reason="unexpected_status")


def as_check_error(error: DeliveryError) -> DeliveryError:
    """The error a ``check`` raises: only transient or config errors make sense for a probe."""
    if isinstance(error, TransientDeliveryError | ProviderConfigError):
        return error
    return ProviderConfigError(str(error), reason="check_failed")


def describe(response: httpx.Response, *, label: str, detail: str | None = None, secrets: Iterable[str] = ()) -> str:
    """``<label> answered HTTP <status>: <detail or body>``, cut short and scrubbed."""
    text = truncate(detail if detail is not None else response.text)
    return scrub(f"{label} answered HTTP {response.status_code}: {text}", secrets)


def parse_retry_after(value: str | None, *, now: dt.datetime | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header: delay-seconds or an HTTP date (RFC 9110).

    Returns None for a missing or unreadable value, and 0 for a date in the past.
    """
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)  # HTTP dates are always GMT
    return max(0.0, (when - (now or dt.datetime.now(dt.UTC))).total_seconds())


def response_json(response: httpx.Response) -> dict[str, Any]:
    """The response's JSON object, or an empty dict when the body is not one."""
    return json_object(response.content)


def truncate(text: str, limit: int = MAX_DETAIL) -> str:
    """``text`` on one line, cut to ``limit`` characters."""
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def scrub(text: str, secrets: Iterable[str]) -> str:
    """``text`` with every non-empty secret (raw and percent-encoded) replaced by ``***``."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, SECRET_MARK).replace(quote(secret, safe=""), SECRET_MARK)
    return text
