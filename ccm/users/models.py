from __future__ import annotations

import datetime as dt

from sqlalchemy import ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from ccm.db import Base, utcnow
from ccm.ids import new_id


class User(Base):
    """A person who logs in to the web app. ``email_key`` is the lower-cased address: two spellings of
    one mailbox are one user, whatever case it was typed in."""

    __tablename__ = "app_user"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=lambda: new_id("usr"))
    workspace_id: Mapped[str] = mapped_column(ForeignKey("workspace.id", ondelete="CASCADE"), index=True)
    email: Mapped[str] = mapped_column(String(320))
    email_key: Mapped[str] = mapped_column(String(320), unique=True)
    role: Mapped[str] = mapped_column(String(20))
    password_hash: Mapped[str] = mapped_column(String(200))
    must_change_password: Mapped[bool] = mapped_column(default=True)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    disabled_at: Mapped[dt.datetime | None]


class UserSession(Base):
    """A logged-in browser. Only the SHA-256 digest of the cookie's token is stored, as for API keys."""

    __tablename__ = "user_session"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=lambda: new_id("ses"))
    user_id: Mapped[str] = mapped_column(ForeignKey("app_user.id", ondelete="CASCADE"), index=True)
    digest: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[dt.datetime]
    last_seen_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    revoked_at: Mapped[dt.datetime | None]


class LoginFailure(Base):
    """A failed login, counted per email and per IP (``scope`` is ``email:…`` or ``ip:…``) to throttle
    guessing; in the database so that the embedded default throttles without Redis."""

    __tablename__ = "login_failure"
    __table_args__ = (Index("ix_login_failure_scope_at", "scope", "at"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=lambda: new_id("lgf"))
    scope: Mapped[str] = mapped_column(String(400))
    at: Mapped[dt.datetime] = mapped_column(default=utcnow)
