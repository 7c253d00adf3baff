"""Encryption of secrets at rest (provider credentials).

Fernet (AES-128-CBC + HMAC-SHA256, from ``cryptography``) with keys derived from
``CCM_SECRET_KEY`` by HKDF under a purpose of their own, so the same secret never serves as both a
signing key and an encryption key. ``CCM_SECRET_KEY`` may list several keys, newest last: new
values are encrypted with the newest, and every listed key still decrypts (key rotation).
"""

from __future__ import annotations

import base64
import json
from typing import Any

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF


def secret_keys(secret: str) -> list[str]:
    """The keys ``CCM_SECRET_KEY`` lists, separated by commas, newest last."""
    return [key.strip() for key in secret.split(",") if key.strip()]


def derive_key(key: str, purpose: str) -> bytes:
    """32 bytes of key material for one purpose (HKDF-SHA256), independent of every other purpose's."""
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=b"ccm", info=purpose.encode()).derive(key.encode())


class SecretBox:
    def __init__(self, secret: str, *, purpose: str) -> None:
        # MultiFernet encrypts with its first key: the newest, which is listed last.
        self._fernet = MultiFernet(
            [Fernet(base64.urlsafe_b64encode(derive_key(key, purpose))) for key in reversed(secret_keys(secret))]
        )

    def seal(self, values: dict[str, Any]) -> str:
        return self._fernet.encrypt(json.dumps(values, sort_keys=True).encode()).decode()

    def open(self, token: str) -> dict[str, Any]:
        try:
            return json.loads(self._fernet.decrypt(token.encode()))
        except InvalidToken:
            raise ValueError("cannot decrypt: the secret key that sealed this value is not configured") from None
