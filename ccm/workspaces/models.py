from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import String
from sqlalchemy.orm import Mapped, mapped_column

from ccm.db import Base, utcnow
from ccm.ids import new_id


class Workspace(Base):
    """A tenant. Every other row belongs to exactly one workspace."""

    __tablename__ = "workspace"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=lambda: new_id("ws"))
    name: Mapped[str] = mapped_column(String(200), unique=True)
    mail_from: Mapped[str | None] = mapped_column(String(320))
    default_locale: Mapped[str] = mapped_column(String(35), default="en")
    settings: Mapped[dict[str, Any]] = mapped_column(default=dict)
    """The delivery policy (:class:`ccm.workspaces.schemas.WorkspacePolicy`), validated on write."""
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
