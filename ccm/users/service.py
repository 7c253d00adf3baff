"""Users and their sessions: argon2 password hashes, and session tokens stored as a SHA-256 digest.

A password is something a person chose and may reuse, so it gets a slow hash (argon2id); a session
token is 256 random bits, for which a plain digest is enough and keeps every page view one lookup."""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets
from dataclasses import dataclass

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from ccm.access import USER_ROLES, Role
from ccm.audit.service import Target, record
from ccm.db import utcnow
from ccm.errors import Conflict, NotFound, ValidationFailed
from ccm.users.models import User, UserSession
from ccm.validation import normalize_email

MIN_PASSWORD_LENGTH = 12
_hasher = PasswordHasher()
# Verified against when the email is unknown, so that a wrong email costs as long as a wrong password.
_DUMMY_HASH = _hasher.hash(secrets.token_urlsafe(16))


@dataclass(frozen=True)
class SessionUser:
    """The user a session cookie belongs to."""

    session_id: str
    user_id: str
    workspace_id: str
    email: str
    role: str
    must_change_password: bool


def digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _checked_email(email: str) -> str:
    try:
        return normalize_email(email.strip())
    except ValueError as exc:
        raise ValidationFailed(f"email: {exc}", field="email") from None


def _checked_password(password: str, field: str = "password") -> str:
    if len(password) < MIN_PASSWORD_LENGTH:
        raise ValidationFailed(f"{field}: at least {MIN_PASSWORD_LENGTH} characters", field=field)
    if len(password) > 1000:
        raise ValidationFailed(f"{field}: at most 1000 characters", field=field)
    return password


def create_user(
    *,
    session: Session,
    workspace_id: str,
    email: str,
    role: str,
    password: str | None = None,
    actor: str = "system",
) -> tuple[User, str | None]:
    """Create a user, recorded in the audit log as ``user.create`` by ``actor``. Without
    ``password`` one is generated and the user must change it at first login.

    Returns:
      The user and the generated one-time password (None when ``password`` was given).
    """
    _checked_role(role)
    address = _checked_email(email)
    if session.scalar(select(User.id).where(User.email_key == address.lower())) is not None:
        raise Conflict(f"email: a user with the address {address} exists", field="email")
    one_time = None if password is not None else secrets.token_urlsafe(12)
    user = User(
        workspace_id=workspace_id,
        email=address,
        email_key=address.lower(),
        role=Role(role).value,
        password_hash=_hasher.hash(_checked_password(password) if password is not None else str(one_time)),
        must_change_password=password is None,
    )
    session.add(user)
    session.flush()
    _audit(session, user, "user.create", actor=actor, before=None)
    return user, one_time


def _checked_role(role: str) -> str:
    if role not in USER_ROLES:
        raise ValidationFailed(f"role: one of {', '.join(USER_ROLES)}", field="role")
    return role


def user_state(user: User) -> dict[str, object]:
    """What the audit log keeps of a user before and after a change."""
    return {"email": user.email, "role": user.role, "disabled": user.disabled_at is not None}


def _audit(session: Session, user: User, action: str, *, actor: str, before: dict[str, object] | None) -> None:
    record(
        session=session,
        workspace_id=user.workspace_id,
        actor=actor,
        action=action,
        target=Target("user", user.id),
        before=before,
        after=user_state(user),
    )


def get_user(*, session: Session, workspace_id: str, user_id: str) -> User:
    user = session.scalar(select(User).where(User.id == user_id, User.workspace_id == workspace_id))
    if user is None:
        raise NotFound(f"id: no user {user_id!r} in this workspace", field="id")
    return user


def find_user(*, session: Session, workspace_id: str, email: str) -> User:
    """The workspace's user with this address, whatever its case."""
    user = session.scalar(
        select(User).where(User.email_key == email.strip().lower(), User.workspace_id == workspace_id)
    )
    if user is None:
        raise NotFound(f"email: no user {email!r} in this workspace", field="email")
    return user


def _keep_an_admin(session: Session, user: User, field: str) -> None:
    """Refuse to take away the workspace's last enabled admin: nobody could manage it from the web."""
    others = session.scalar(
        select(User.id).where(
            User.workspace_id == user.workspace_id,
            User.role == Role.ADMIN.value,
            User.disabled_at.is_(None),
            User.id != user.id,
        )
    )
    if user.role == Role.ADMIN and user.disabled_at is None and others is None:
        raise Conflict(f"{field}: {user.email} is the workspace's last admin", field=field)


def change_role(*, session: Session, user: User, role: str, actor: str) -> User:
    """Give ``user`` another role (effective on their next request), audited as ``user.role``.

    Raises:
      ValidationFailed: not a user role. Conflict: it would leave the workspace without an admin.
    """
    if _checked_role(role) == user.role:
        return user
    if role != Role.ADMIN:
        _keep_an_admin(session, user, "role")
    before = user_state(user)
    user.role = Role(role).value
    session.flush()
    _audit(session, user, "user.role", actor=actor, before=before)
    return user


def set_disabled(*, session: Session, user: User, disabled: bool, actor: str) -> User:
    """Disable a user, which ends their sessions at once, or enable them again; audited as
    ``user.disable`` or ``user.enable``. Doing it twice changes nothing and records nothing.

    Raises:
      Conflict: disabling the workspace's last enabled admin.
    """
    if disabled == (user.disabled_at is not None):
        return user
    if disabled:
        _keep_an_admin(session, user, "id")
    before = user_state(user)
    user.disabled_at = utcnow() if disabled else None
    if disabled:
        revoke_sessions(session=session, user_id=user.id)
    session.flush()
    _audit(session, user, "user.disable" if disabled else "user.enable", actor=actor, before=before)
    return user


def list_users(*, session: Session, workspace_id: str | None = None) -> list[User]:
    query = select(User).order_by(User.workspace_id, User.email_key)
    if workspace_id is not None:
        query = query.where(User.workspace_id == workspace_id)
    return list(session.scalars(query))


def check_password(*, session: Session, email: str, password: str) -> User | None:
    """The enabled user with this email and password, or None (same cost whether or not the email exists)."""
    user = session.scalar(select(User).where(User.email_key == email.strip().lower()))
    try:
        _hasher.verify(user.password_hash if user else _DUMMY_HASH, password)
    except (VerificationError, InvalidHashError):
        return None
    return user if user is not None and user.disabled_at is None else None


def start_session(*, session: Session, user_id: str, hours: float) -> str:
    """A new session for the user; returns the cookie's token, of which only the digest is kept."""
    token = secrets.token_urlsafe(32)
    now = utcnow()
    session.add(
        UserSession(
            user_id=user_id,
            digest=digest(token),
            created_at=now,
            last_seen_at=now,
            expires_at=now + dt.timedelta(hours=hours),
        )
    )
    session.flush()
    return token


def session_user(*, session: Session, token: str) -> SessionUser | None:
    """The user of a live session (not expired, not revoked, user not disabled), or None; notes when
    it was last seen (at most once a minute, so that browsing does not write on every page)."""
    now = utcnow()
    row = session.execute(
        select(UserSession, User)
        .join(User, User.id == UserSession.user_id)
        .where(UserSession.digest == digest(token), UserSession.revoked_at.is_(None), User.disabled_at.is_(None))
    ).first()
    if row is None or row[0].expires_at <= now:
        return None
    user_session, user = row
    if now - user_session.last_seen_at > dt.timedelta(minutes=1):
        user_session.last_seen_at = now
    return SessionUser(user_session.id, user.id, user.workspace_id, user.email, user.role, user.must_change_password)


def revoke_session(*, session: Session, session_id: str) -> None:
    session.execute(
        update(UserSession)
        .where(UserSession.id == session_id, UserSession.revoked_at.is_(None))
        .values(revoked_at=utcnow())
    )


def revoke_sessions(*, session: Session, user_id: str, keep: str | None = None) -> int:
    """Revoke every live session of the user but ``keep``; returns how many."""
    query = update(UserSession).where(UserSession.user_id == user_id, UserSession.revoked_at.is_(None))
    if keep is not None:
        query = query.where(UserSession.id != keep)
    return session.execute(query.values(revoked_at=utcnow())).rowcount  # type: ignore[attr-defined]


def change_password(*, session: Session, user_id: str, current: str, new: str, keep_session: str | None) -> None:
    """Change a user's password after checking the current one; revokes their other sessions, since
    a password is changed mostly because someone else may know it."""
    user = session.get(User, user_id)
    if user is None:
        raise ValidationFailed("current_password: no such user", field="current_password")
    try:
        _hasher.verify(user.password_hash, current)
    except (VerificationError, InvalidHashError):
        raise ValidationFailed("current_password: not your current password", field="current_password") from None
    if new == current:
        raise ValidationFailed("new_password: the same as the current one", field="new_password")
    user.password_hash = _hasher.hash(_checked_password(new, "new_password"))
    user.must_change_password = False
    revoke_sessions(session=session, user_id=user_id, keep=keep_session)
