"""Recording and reading the audit log. Low-level on purpose: it imports no domain; the API layer
of each domain calls :func:`record` in the request's own transaction, so a change rolled back
leaves no entry and an entry never describes a change that did not happen."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from ccm.audit.models import AuditEntry

SECRET_KEYS = ("secret", "password", "token", "api_key", "apikey", "auth", "credential", "private")
MASK = "***"


@dataclass(frozen=True)
class Target:
    """What an action was done to: ``Target("template", "welcome")``."""

    type: str
    id: str


@dataclass(frozen=True)
class AuditFilter:
    action: str | None = None
    actor: str | None = None
    target_type: str | None = None
    target_id: str | None = None
    since: dt.datetime | None = None
    until: dt.datetime | None = None
    cursor: str | None = None
    limit: int = 50


def masked(value: Any) -> Any:
    """``value`` with every secret-looking field (``secret``, ``auth_token``, ``password`` …) masked,
    at any depth: the log is read by admins and exported, never a place for credentials."""
    if isinstance(value, dict):
        return {key: MASK if _is_secret(str(key)) and item else masked(item) for key, item in value.items()}
    if isinstance(value, list):
        return [masked(item) for item in value]
    return value


def _is_secret(key: str) -> bool:
    lowered = key.lower()
    return any(word in lowered for word in SECRET_KEYS)


def record(
    *,
    session: Session,
    workspace_id: str,
    actor: str,
    action: str,
    target: Target,
    before: dict[str, Any] | None = None,
    after: dict[str, Any] | None = None,
    ip: str | None = None,
) -> AuditEntry:
    """Append an entry in the session's transaction (flushed, not committed)."""
    entry = AuditEntry(
        workspace_id=workspace_id,
        actor=actor[:320],
        action=action,
        target_type=target.type,
        target_id=target.id[:300],
        before=masked(before),
        after=masked(after),
        ip=ip,
    )
    session.add(entry)
    session.flush()
    return entry


def list_entries(*, session: Session, workspace_id: str, where: AuditFilter) -> tuple[list[AuditEntry], str | None]:
    """A page of entries, newest first, and the cursor of the next page (None on the last)."""
    statement = select(AuditEntry).where(AuditEntry.workspace_id == workspace_id)
    for column, value in (
        (AuditEntry.action, where.action),
        (AuditEntry.actor, where.actor),
        (AuditEntry.target_type, where.target_type),
        (AuditEntry.target_id, where.target_id),
    ):
        if value is not None:
            statement = statement.where(column == value)
    if where.since is not None:
        statement = statement.where(AuditEntry.at >= where.since)
    if where.until is not None:
        statement = statement.where(AuditEntry.at < where.until)
    if where.cursor is not None:
        statement = statement.where(AuditEntry.id < where.cursor)
    rows = list(session.scalars(statement.order_by(AuditEntry.id.desc()).limit(where.limit + 1)))
    if len(rows) <= where.limit:
        return rows, None
    return rows[: where.limit], rows[where.limit - 1].id
