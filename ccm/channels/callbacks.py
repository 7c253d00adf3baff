"""Proving that a provider's callback is genuine: signature checks, replay windows, timestamps.

Every signature or shared secret is compared with :func:`same` (``hmac.compare_digest``), so the
time a comparison takes says nothing about how much of a forgery was right. A
:class:`~ccm.channels.base.WebhookRejected` message names the header or field that failed and
never quotes a secret or the signature received.

Standard Webhooks (https://www.standardwebhooks.com) is implemented here in both directions:
:func:`sign_standard_webhook` for what CCM sends, :func:`verify_standard_webhook` for what it
receives.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import email.utils
import hashlib
import hmac
import json
import math
import time
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from ccm.channels.base import InboundRequest, WebhookRejected
from ccm.validation import check_input

REPLAY_TOLERANCE = 300.0
"""Seconds a signed timestamp may be away from now, either way, before the callback is a replay."""
_DEFAULT_PORTS = {"http": 80, "https": 443}


def same(expected: str | bytes, received: str | bytes) -> bool:
    """Whether two secrets or signatures are equal, in constant time."""
    return hmac.compare_digest(_as_bytes(expected), _as_bytes(received))


def hmac_digest(key: bytes, message: bytes, algorithm: str = "sha256") -> bytes:
    """The raw HMAC of ``message`` under ``key`` (``algorithm`` is a :mod:`hashlib` name)."""
    return hmac.new(key, message, getattr(hashlib, algorithm)).digest()


def require_header(request: InboundRequest, name: str) -> str:
    """The value of header ``name`` (any case), stripped.

    Raises:
      WebhookRejected: the header is missing or empty.
    """
    value = request.headers.get(name.lower(), "").strip()
    if not value:
        raise WebhookRejected(f"missing {name} header")
    return value


def check_fresh(timestamp: float | None, *, now: float | None = None, tolerance: float = REPLAY_TOLERANCE) -> None:
    """Refuse a signed timestamp more than ``tolerance`` seconds before or after ``now``.

    Raises:
      WebhookRejected: unreadable (None) or outside the window.
    """
    if timestamp is None:
        raise WebhookRejected("the signed timestamp is not readable")
    skew = timestamp - (time.time() if now is None else now)
    if abs(skew) > tolerance:
        raise WebhookRejected(
            f"the signed timestamp is {abs(skew):.0f} s in the {'future' if skew > 0 else 'past'}, "
            f"outside the {tolerance:.0f} s replay window"
        )


def parse_timestamp(value: Any) -> float | None:
    """Seconds since the epoch from any form providers use, like ``Retry-After``'s two forms.

    Accepts a number or a string of one (Unix seconds, fractions allowed), an ISO 8601 /
    RFC 3339 date-time (``Z`` or an offset; none means UTC) or an HTTP date (RFC 9110).
    Returns None for anything else.
    """
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int | float):
        return float(value) if math.isfinite(value) else None
    if not isinstance(value, str) or not value.strip():
        return None
    text = value.strip()
    try:
        seconds = float(text)
    except ValueError:
        pass
    else:
        return seconds if math.isfinite(seconds) else None
    for parse in (_iso_datetime, email.utils.parsedate_to_datetime):
        try:
            when = parse(text)
        except (TypeError, ValueError, IndexError):
            continue
        return (when if when.tzinfo else when.replace(tzinfo=dt.UTC)).timestamp()
    return None


def iso_timestamp(value: Any) -> str | None:
    """``value`` (see :func:`parse_timestamp`) as an ISO 8601 date-time in UTC, or None."""
    seconds = parse_timestamp(value)
    if seconds is None:
        return None
    try:
        return dt.datetime.fromtimestamp(seconds, dt.UTC).isoformat()
    except (OverflowError, OSError, ValueError):
        return None


def json_object(body: bytes) -> dict[str, Any]:
    """The body's JSON object, or an empty dict when it is not one.

    Raises:
      ValidationFailed: it holds something no column can store (see :func:`ccm.validation.check_input`).
    """
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError, RecursionError):
        return {}
    if not isinstance(data, dict):
        return {}
    check_input(data, "body")
    return data


def nested(data: Any, *keys: str) -> Any:
    """``data[k1][k2]…``, or None as soon as a level is not a JSON object or lacks the key."""
    for key in keys:
        if not isinstance(data, dict):
            return None
        data = data.get(key)
    return data


def url_variants(url: str) -> list[str]:
    """``url`` as given, and with its default port added (if absent) or removed (if present).

    Providers sign the URL they were configured with; a proxy or framework may add or drop
    ``:443`` on the way.
    """
    parts = urlsplit(url)
    default = _DEFAULT_PORTS.get(parts.scheme)
    try:
        port = parts.port
    except ValueError:
        return [url]
    if default is None or port not in (None, default):
        return [url]
    host = parts.netloc.rsplit(":", 1)[0] if port else parts.netloc
    other = host if port else f"{host}:{default}"
    return [url, urlunsplit(parts._replace(netloc=other))]


WHSEC_PREFIX = "whsec_"
MIN_SECRET_BYTES = 16


def decode_whsec(secret: str) -> bytes:
    """The HMAC key of a ``whsec_<base64>`` secret (the prefix is optional, as in Standard Webhooks'
    own libraries).

    Raises:
      ValueError: not base64, or shorter than :data:`MIN_SECRET_BYTES` bytes.
    """
    try:
        key = base64.b64decode(secret.removeprefix(WHSEC_PREFIX), validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("secret must be whsec_ followed by base64") from None
    if len(key) < MIN_SECRET_BYTES:
        raise ValueError(f"secret must decode to at least {MIN_SECRET_BYTES} bytes")
    return key


def standard_webhook_headers(key: bytes, webhook_id: str, body: bytes) -> dict[str, str]:
    """The headers of a signed JSON webhook (Standard Webhooks), timestamped now."""
    timestamp = int(time.time())
    return {
        "content-type": "application/json",
        "webhook-id": webhook_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": sign_standard_webhook(key, webhook_id, timestamp, body),
    }


def sign_standard_webhook(key: bytes, webhook_id: str, timestamp: int | str, body: bytes) -> str:
    """The ``webhook-signature`` header value: ``v1,<base64 HMAC-SHA256>`` over
    ``{webhook-id}.{webhook-timestamp}.{body}``."""
    signed = f"{webhook_id}.{timestamp}.".encode() + body
    return "v1," + base64.b64encode(hmac_digest(key, signed)).decode()


def verify_standard_webhook(
    key: bytes, request: InboundRequest, *, now: float | None = None, tolerance: float = REPLAY_TOLERANCE
) -> None:
    """Check a Standard Webhooks request: one ``v1`` signature in ``webhook-signature`` (a
    space-separated list) must match the exact body, and ``webhook-timestamp`` must be fresh.

    Raises:
      WebhookRejected: a header is missing, no signature matches, or the timestamp is stale.
    """
    webhook_id = require_header(request, "webhook-id")
    timestamp = require_header(request, "webhook-timestamp")
    received = require_header(request, "webhook-signature").split()
    if not timestamp.isdigit():
        raise WebhookRejected("webhook-timestamp is not whole seconds since the epoch")
    expected = sign_standard_webhook(key, webhook_id, timestamp, request.body)
    # Every entry is compared (no early exit) and other versions (v1a: asymmetric) never match.
    if not any([same(expected, candidate) for candidate in received]):
        raise WebhookRejected("no webhook-signature entry matches the body")
    check_fresh(float(timestamp), now=now, tolerance=tolerance)


def _as_bytes(value: str | bytes) -> bytes:
    return value.encode() if isinstance(value, str) else value


def _iso_datetime(text: str) -> dt.datetime:
    # Python 3.11's fromisoformat reads "Z" and most of RFC 3339; a bare date is not a moment.
    if len(text) <= 10:
        raise ValueError("a date without a time")
    return dt.datetime.fromisoformat(text)
