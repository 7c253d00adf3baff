"""Signed tokens for links in messages (unsubscribe now; click tracking later).

Each purpose has its own salt, so a token made for one purpose is worthless for another.
``CCM_SECRET_KEY`` may list several keys separated by commas, newest last: tokens are signed
with the newest and verified with any, so rotating the key does not break links already sent.
"""

from __future__ import annotations

import json as _json
import zlib
from typing import Any

from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer
from itsdangerous.encoding import base64_encode

from ccm.crypto import secret_keys

UNSUBSCRIBE = "ccm.unsubscribe"
_COMPACT = _json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))
UNSUBSCRIBE_MAX_AGE = 400 * 24 * 3600


class InvalidToken(Exception):
    pass


class _SmallWindowSerializer(URLSafeTimedSerializer):
    """itsdangerous' URL-safe serializer, compressing with a 1 KiB deflate window. Its own
    ``zlib.compress`` sets up the default 32 KiB window and 256 KiB of state for a payload of
    ~150 bytes — a third of the cost of signing a link, made for every marketing email. The
    output is an ordinary zlib stream: itsdangerous (and every token already sent) loads as before."""

    def dump_payload(self, obj: Any) -> bytes:
        # itsdangerous' own compact JSON (no ASCII escapes, no spaces), with an encoder built once.
        json = _COMPACT.encode(obj).encode()
        deflate = zlib.compressobj(6, zlib.DEFLATED, 10, 1)
        compressed = deflate.compress(json) + deflate.flush()
        if len(compressed) < len(json) - 1:
            return b"." + base64_encode(compressed)
        return base64_encode(json)


class Signer:
    def __init__(self, secret: str) -> None:
        self.keys = secret_keys(secret)
        self._serializers: dict[str, URLSafeTimedSerializer] = {}

    def _serializer(self, purpose: str) -> URLSafeTimedSerializer:
        if purpose not in self._serializers:
            self._serializers[purpose] = _SmallWindowSerializer(self.keys, salt=purpose)
        return self._serializers[purpose]

    def sign(self, purpose: str, payload: dict[str, Any]) -> str:
        return self._serializer(purpose).dumps(payload)

    def verify(self, purpose: str, token: str, *, max_age: int) -> dict[str, Any]:
        try:
            return self._serializer(purpose).loads(token, max_age=max_age)
        except SignatureExpired:
            raise InvalidToken("expired") from None
        except BadSignature:
            raise InvalidToken("bad signature") from None
