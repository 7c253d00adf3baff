"""Open and click tracking: signed links and pixels written into HTML at render time, and the
classification of who (or what) opened or clicked.

A click token carries the message id and the target URL, signed (HMAC-SHA256, truncated to 128
bits) with a key derived from ``CCM_SECRET_KEY`` for this purpose only: a click can only ever
redirect to a URL CCM itself wrote into that message, and needs no database lookup, which keeps
the tracking endpoints fast. Tokens verify with every listed key, so a key rotation keeps links
in old emails working.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import html
import json
import re
from dataclasses import dataclass
from typing import Any

from ccm.crypto import derive_key, secret_keys

_HREF = re.compile(r"""(<a\b[^>]*?\bhref\s*=\s*)(["'])(.*?)\2""", re.IGNORECASE | re.DOTALL)
_BODY_END = re.compile(r"</body\s*>", re.IGNORECASE)
_NOTRACK = re.compile(r"\bdata-ccm-notrack\b", re.IGNORECASE)
_MACHINE_AGENTS = re.compile(
    r"barracuda|mimecast|proofpoint|symantec|forcepoint|trendmicro|safelinks|urldefense|microsoft office|"
    r"bot\b|crawler|spider|python-requests|curl/|wget|headlesschrome|go-http-client",
    re.IGNORECASE,
)


class InvalidToken(Exception):
    pass


@dataclass(frozen=True)
class Hit:
    """A tracking request, as buffered until the writer records it."""

    id: str
    kind: str  # "opened" | "clicked"
    message_id: str
    url: str | None
    user_agent: str
    ip: str | None
    method: str
    at: float

    def to_json(self) -> str:
        return json.dumps(self.__dict__, separators=(",", ":"))

    @classmethod
    def from_json(cls, raw: str | bytes) -> Hit:
        return cls(**json.loads(raw))


class LinkSigner:
    """Compact signed tokens for tracking links (see the module docstring)."""

    def __init__(self, secret: str) -> None:
        self._keys = [derive_key(key, "ccm.tracking") for key in reversed(secret_keys(secret))]  # newest signs

    def sign(self, payload: dict[str, Any]) -> str:
        body = _body(payload)
        return f"{body}.{self._mac(self._keys[0], body)}"

    def short_mac(self, payload: dict[str, Any], *, length: int = 12) -> str:
        """A MAC of ``payload`` short enough for an email address's local part (newest key)."""
        return self._mac(self._keys[0], _body(payload))[:length]

    def short_mac_matches(self, payload: dict[str, Any], mac: str, *, length: int = 12) -> bool:
        """Whether ``mac`` is ``short_mac(payload)`` under any configured key, whatever its case
        (mail systems may fold addresses), so addresses in mail sent before a key rotation still match."""
        body = _body(payload)
        return any(hmac.compare_digest(mac.lower(), self._mac(key, body)[:length].lower()) for key in self._keys)

    def verify(self, token: str) -> dict[str, Any]:
        body, _, mac = token.partition(".")
        if not body or not mac or not any(hmac.compare_digest(mac, self._mac(key, body)) for key in self._keys):
            raise InvalidToken("bad signature")
        try:
            return json.loads(_unb64(body))
        except ValueError:
            raise InvalidToken("bad payload") from None

    @staticmethod
    def _mac(key: bytes, body: str) -> str:
        return _b64(hmac.new(key, body.encode(), hashlib.sha256).digest()[:16])


def rewrite_html(
    markup: str,
    *,
    message_id: str,
    public_url: str,
    signer: LinkSigner,
    clicks: bool,
    opens: bool,
    keep: frozenset[str] = frozenset(),
) -> str:
    """Point every http(s) link at the click endpoint and add the open pixel. Links marked
    ``data-ccm-notrack`` and the URLs in ``keep`` (the unsubscribe link) are left alone."""
    if clicks:

        def tracked(match: re.Match[str]) -> str:
            prefix, quote, target = match.group(1), match.group(2), html.unescape(match.group(3)).strip()
            if _NOTRACK.search(prefix) or target in keep or not target.lower().startswith(("http://", "https://")):
                return match.group(0)
            token = signer.sign({"m": message_id, "u": target})
            return f"{prefix}{quote}{public_url}/t/c/{token}{quote}"

        markup = _HREF.sub(tracked, markup)
    if opens:
        pixel = (
            f'<img src="{public_url}/t/o/{signer.sign({"m": message_id})}.gif" width="1" height="1" '
            'alt="" style="display:block;border:0;width:1px;height:1px">'
        )
        markup, found = _BODY_END.subn(pixel + "</body>", markup, count=1)
        if not found:
            markup += pixel
    return markup


def is_machine(hit: Hit, *, seconds_after_send: float | None) -> bool:
    """Whether an open or click was most likely made by a machine rather than a person.

    - HEAD requests, and user agents of security scanners, link checkers and scripts.
    - Apple Mail Privacy Protection prefetches every image through Apple's proxy, with a bare
      ``Mozilla/5.0`` user agent, soon after delivery: opens with exactly that agent count as machine.
    - Anything within 2 seconds of sending: no person opens or clicks that fast.
    """
    agent = hit.user_agent.strip()
    if hit.method == "HEAD" or not agent or _MACHINE_AGENTS.search(agent):
        return True
    if hit.kind == "opened" and agent == "Mozilla/5.0":
        return True
    return seconds_after_send is not None and seconds_after_send < 2.0


def _body(payload: dict[str, Any]) -> str:
    return _b64(_COMPACT.encode(payload).encode())


# Built once: json.dumps with separators builds an encoder per call, and every link of every
# tracked email is signed.
_COMPACT = json.JSONEncoder(separators=(",", ":"))


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
