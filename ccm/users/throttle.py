"""Login throttling: failed logins are rows in ``login_failure``, counted per email and per IP over a
sliding window. In the database, so that the embedded default (no Redis) throttles too, and one
limit holds across every web process."""

from __future__ import annotations

import datetime as dt
import math

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from ccm.db import utcnow
from ccm.users.models import LoginFailure

IP_FACTOR = 10
"""An IP may fail this many times the per-email limit: an office behind one address has many users."""


def _scopes(email: str, ip: str) -> list[tuple[str, int]]:
    return [(f"email:{email.strip().lower()}", 1), (f"ip:{ip}", IP_FACTOR)]


def retry_after(*, session: Session, email: str, ip: str, max_failures: int, window: float) -> int | None:
    """Seconds until a login for ``email`` from ``ip`` may be tried again, or None when it may now."""
    now = utcnow()
    since = now - dt.timedelta(seconds=window)
    waits = []
    for scope, factor in _scopes(email, ip):
        count, oldest = session.execute(
            select(func.count(), func.min(LoginFailure.at)).where(LoginFailure.scope == scope, LoginFailure.at > since)
        ).one()
        if count >= max_failures * factor and oldest is not None:
            waits.append(max(1, math.ceil((oldest - since).total_seconds())))
    return max(waits) if waits else None


def record_failure(*, session: Session, email: str, ip: str, window: float) -> None:
    """Note a failed login, and forget the failures older than the window (so the table stays small)."""
    now = utcnow()
    session.execute(delete(LoginFailure).where(LoginFailure.at <= now - dt.timedelta(seconds=window)))
    session.add_all(LoginFailure(scope=scope, at=now) for scope, _ in _scopes(email, ip))
    session.flush()


def clear_failures(*, session: Session, email: str) -> None:
    """A successful login forgets the email's failures (not the IP's: one good password does not
    excuse guessing at other accounts)."""
    session.execute(delete(LoginFailure).where(LoginFailure.scope == f"email:{email.strip().lower()}"))
