"""API keys: random high-entropy tokens stored as a SHA-256 digest.

A slow password hash would be wrong here: every API request checks a key, and a KDF would cap the
send API at a few hundred requests per second. A 256-bit random token cannot be brute-forced, so a
plain digest is enough to make a leaked table useless.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets
from dataclasses import dataclass

from sqlalchemy import bindparam, or_, select
from sqlalchemy.orm import Session

from ccm.auth.models import ApiKey, ApiKeyRole
from ccm.db import utcnow
from ccm.errors import Conflict, NotFound

KEY_PREFIX = "ccm_"


@dataclass(frozen=True)
class Caller:
    """The key a request authenticated with."""

    key_id: str
    workspace_id: str
    role: str
    prefix: str
    last_used_at: dt.datetime | None = None
    """As stored, to the minute (see :mod:`ccm.auth.usage`): read by the same lookup, for free."""


def digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def create_api_key(
    *, session: Session, workspace_id: str, name: str = "", role: ApiKeyRole = ApiKeyRole.ADMIN
) -> tuple[ApiKey, str]:
    """Create a key for the workspace.

    Returns:
      The stored row and the plaintext key, which is not kept anywhere and cannot be shown again.
    """
    token = KEY_PREFIX + secrets.token_urlsafe(32)
    key = ApiKey(workspace_id=workspace_id, name=name, prefix=token[:12], digest=digest(token), role=role)
    session.add(key)
    session.flush()
    return key, token


_keys = ApiKey.__table__
_CALLER = select(  # prebuilt: every request
    _keys.c.id, _keys.c.workspace_id, _keys.c.role, _keys.c.prefix, _keys.c.last_used_at
).where(_keys.c.digest == bindparam("digest"), _keys.c.revoked_at.is_(None))


def authenticate(*, session: Session, token: str) -> Caller | None:
    """The key behind a token, or None for an unknown or revoked one: one indexed lookup (a Core
    statement on the session's connection, prepared by PostgreSQL after a few uses). Not cached,
    so that revoking a key takes effect on the very next request, in every process."""
    if not token.startswith(KEY_PREFIX):
        return None
    row = session.connection().execute(_CALLER, {"digest": digest(token)}).first()
    return None if row is None else Caller(row.id, row.workspace_id, row.role, row.prefix, row.last_used_at)


def list_api_keys(*, session: Session, workspace_id: str | None) -> list[ApiKey]:
    """Keys not revoked, oldest first; every workspace's when ``workspace_id`` is None (the CLI)."""
    statement = select(ApiKey).where(ApiKey.revoked_at.is_(None)).order_by(ApiKey.created_at, ApiKey.id)
    if workspace_id is not None:
        statement = statement.where(ApiKey.workspace_id == workspace_id)
    return list(session.scalars(statement))


def revoke_api_key(*, session: Session, workspace_id: str, key_id: str, caller_key_id: str | None = None) -> bool:
    """Revoke one of the workspace's keys (again is fine); False when it has no such key.

    Raises:
      Conflict: ``key_id`` is the caller's own key: it would lock the caller out mid-request, and
        with its last admin key a workspace could no longer manage keys through the API.
    """
    if key_id == caller_key_id:
        raise Conflict("id: a key cannot revoke itself; use another admin key or `ccm api-keys revoke`", field="id")
    key = session.scalar(select(ApiKey).where(ApiKey.id == key_id, ApiKey.workspace_id == workspace_id))
    if key is None:
        return False
    key.revoked_at = key.revoked_at or utcnow()
    return True


def revoke_by_id_or_prefix(*, session: Session, ref: str) -> ApiKey:
    """Revoke the key whose id or visible prefix is ``ref``, in any workspace (the operator's CLI).

    Raises:
      NotFound: no key not yet revoked matches.
      Conflict: the prefix matches several keys; give the id.
    """
    matches = list(
        session.scalars(select(ApiKey).where(or_(ApiKey.id == ref, ApiKey.prefix == ref), ApiKey.revoked_at.is_(None)))
    )
    if not matches:
        raise NotFound(f"no API key (not already revoked) with id or prefix {ref!r}", field="key")
    if len(matches) > 1:
        raise Conflict(
            f"{len(matches)} keys have the prefix {ref!r}; give the id: " + ", ".join(key.id for key in matches),
            field="key",
        )
    matches[0].revoked_at = utcnow()
    return matches[0]
