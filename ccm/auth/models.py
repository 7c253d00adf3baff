from __future__ import annotations

import datetime as dt

from sqlalchemy import ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from ccm.access import Role
from ccm.db import Base, utcnow
from ccm.ids import new_id

ApiKeyRole = Role
"""A key's role: one of :class:`ccm.access.Role`, whose permissions are in ``ccm.access.ROLE_PERMISSIONS``.
Keys made before roles existed are ``admin``, since every key could do everything then."""


class ApiKey(Base):
    """A workspace's API key. Only the SHA-256 digest is stored; the key is shown once."""

    __tablename__ = "api_key"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=lambda: new_id("key"))
    workspace_id: Mapped[str] = mapped_column(ForeignKey("workspace.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(200), default="")
    prefix: Mapped[str] = mapped_column(String(16))
    digest: Mapped[str] = mapped_column(String(64), unique=True)
    role: Mapped[str] = mapped_column(String(20), default=ApiKeyRole.ADMIN, server_default=ApiKeyRole.ADMIN.value)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    revoked_at: Mapped[dt.datetime | None]
    last_used_at: Mapped[dt.datetime | None]
    """When the key last authenticated a request, to the minute (see :mod:`ccm.auth.usage`)."""
