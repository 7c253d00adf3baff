"""API keys: random high-entropy tokens stored as a SHA-256 digest.

A slow password hash would be wrong here: every API request checks a key, and a KDF would cap the
send API at a few hundred requests per second. A 256-bit random token cannot be brute-forced, so a
plain digest is enough to make a leaked table useless.
"""

from __future__ import annotations

import hashlib
import secrets

from sqlalchemy import bindparam, select
from sqlalchemy.orm import Session

from ccm.auth.models import ApiKey
from ccm.db import utcnow

KEY_PREFIX = "ccm_"


def digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def create_api_key(*, session: Session, workspace_id: str, name: str = "") -> tuple[ApiKey, str]:
    """Create a key for the workspace.

    Returns:
      The stored row and the plaintext key, which is not kept anywhere and cannot be shown again.
    """
    token = KEY_PREFIX + secrets.token_urlsafe(32)
    key = ApiKey(workspace_id=workspace_id, name=name, prefix=token[:12], digest=digest(token))
    session.add(key)
    session.flush()
    return key, token


_keys = ApiKey.__table__
_WORKSPACE_OF_KEY = select(_keys.c.workspace_id).where(  # prebuilt: every request runs it
    _keys.c.digest == bindparam("digest"), _keys.c.revoked_at.is_(None))


def authenticate(*, session: Session, token: str) -> str | None:
    """The workspace id a key belongs to, or None for an unknown or revoked key. Not cached, so
    that revoking a key takes effect on the very next request."""
    if not token.startswith(KEY_PREFIX):
        return None
    return session.execute(_WORKSPACE_OF_KEY, {"digest": digest(token)}).scalar()


def revoke_api_key(*, session: Session, workspace_id: str, key_id: str) -> bool:
    key = session.scalar(select(ApiKey).where(ApiKey.id == key_id, ApiKey.workspace_id == workspace_id))
    if key is None:
        return False
    key.revoked_at = key.revoked_at or utcnow()
    return True
