from __future__ import annotations

import datetime as dt
import enum

from sqlalchemy import ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from ccm.db import Base, utcnow
from ccm.ids import new_id


class ApiKeyRole(enum.StrEnum):
    """What a key may do. ``standard`` keys do everything in their workspace except manage API
    keys; ``admin`` keys manage them too; ``write`` keys only send events to the ingestion
    endpoints (the Segment-spec "write key" of a source: it may sit in a browser or an app, so it
    can neither read profiles nor send messages). Keys made before roles existed are ``admin``,
    since every key could do everything then."""

    ADMIN = "admin"
    STANDARD = "standard"
    WRITE = "write"


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
