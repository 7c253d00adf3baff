"""``Idempotency-Key`` handling for requests that create work.

The key row is inserted first, in the transaction that does the work. Under PostgreSQL a second
request with the same key blocks on that insert until the first commits, then replays its stored
answer (or, if the first rolled back, does the work itself); SQLite serializes writers anyway.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from ccm.db import dialect_of, insert_ignoring_conflicts, rowcount, utcnow
from ccm.errors import Conflict, IdempotencyKeyReused, ValidationFailed
from ccm.idempotency.models import IdempotencyKey

MAX_KEY_LENGTH = 255
TABLE = IdempotencyKey.__table__


@dataclass(frozen=True)
class IdempotentResult:
    body: dict[str, Any]
    status: int
    replayed: bool


def fingerprint(method: str, path: str, body: bytes) -> str:
    return hashlib.sha256(b"%s %s\n%s" % (method.encode(), path.encode(), body)).hexdigest()


def run_idempotent(
    *,
    session: Session,
    workspace_id: str,
    key: str | None,
    request_hash: str,
    ttl: float,
    work: Callable[[], tuple[dict[str, Any], int]],
    expected: tuple[dict[str, Any], int] | None = None,
) -> IdempotentResult:
    """Run ``work`` once per key; replay its answer for the same key and request.

    ``expected`` is the answer ``work`` will most likely give (a pre-generated id, say): it is
    stored with the key up front, saving a write when it turns out right.

    Raises:
      IdempotencyKeyReused: the key was used with a different request.
      Conflict: a request with this key is still being processed.
    """
    if key is None:
        body, status = work()
        return IdempotentResult(body, status, replayed=False)
    check_key(key)
    stored = _reserve(session, workspace_id, key, request_hash, ttl, expected or ({}, 0))
    if stored is not None:
        return _replay(stored, request_hash)
    body, status = work()
    if (body, status) != expected:
        session.execute(
            update(IdempotencyKey)
            .where(
                IdempotencyKey.workspace_id == workspace_id,
                IdempotencyKey.key == key,
            )
            .values(status_code=status, response=body)
        )
    return IdempotentResult(body, status, replayed=False)


def purge_expired(*, session: Session) -> int:
    """Delete the keys past their expiry (the periodic ``idempotency.purge_expired``); returns how many."""
    result = session.execute(delete(IdempotencyKey).where(IdempotencyKey.expires_at < utcnow()))
    return rowcount(result)


def check_key(key: str, field: str = "Idempotency-Key") -> None:
    if not key or len(key) > MAX_KEY_LENGTH or not key.isprintable():
        raise ValidationFailed(f"{field} must be 1-{MAX_KEY_LENGTH} printable characters", field=field)


def key_row(
    *,
    workspace_id: str,
    key: str,
    request_hash: str,
    ttl: float,
    answer: tuple[dict[str, Any], int],
    now: dt.datetime,
) -> dict[str, Any]:
    """The row that reserves ``key`` and stores its answer, for callers that insert it in their
    own statement (the send API writes it with the message it guards)."""
    return {
        "workspace_id": workspace_id,
        "key": key,
        "request_hash": request_hash,
        "response": answer[0],
        "status_code": answer[1],
        "created_at": now,
        "expires_at": now + dt.timedelta(seconds=ttl),
    }


def replay(
    *,
    stored_hash: str,
    status_code: int,
    response: dict[str, Any],
    request_hash: str,
    field: str = "Idempotency-Key",
) -> IdempotentResult:
    """The stored answer to a repeat of a request (``field`` names the key in errors).

    Raises:
      IdempotencyKeyReused: the key was used with a different request.
      Conflict: the request that has the key has not finished yet.
    """
    if stored_hash != request_hash:
        raise IdempotencyKeyReused(f"{field}: this key was already used with a different request", field=field)
    if status_code == 0:
        raise Conflict(f"{field}: a request with this key is still in progress", field=field)
    return IdempotentResult(response, status_code, replayed=True)


def _reserve(
    session: Session, workspace_id: str, key: str, request_hash: str, ttl: float, answer: tuple[dict[str, Any], int]
) -> IdempotencyKey | None:
    """Insert the key row; return the existing row instead when the key is taken and live."""
    now = utcnow()
    values = key_row(workspace_id=workspace_id, key=key, request_hash=request_hash, ttl=ttl, answer=answer, now=now)
    if session.execute(insert_ignoring_conflicts(dialect_of(session), TABLE, TABLE.c.key), values).scalar():
        return None
    stored = session.scalar(
        select(IdempotencyKey).where(IdempotencyKey.workspace_id == workspace_id, IdempotencyKey.key == key)
    )
    if stored is not None and stored.expires_at < now:  # expired but not purged yet: start afresh
        session.delete(stored)
        session.flush()
        return _reserve(session, workspace_id, key, request_hash, ttl, answer)
    return stored


def _replay(stored: IdempotencyKey, request_hash: str) -> IdempotentResult:
    return replay(
        stored_hash=stored.request_hash,
        status_code=stored.status_code,
        response=stored.response,
        request_hash=request_hash,
    )
