from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import ForeignKey, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from ccm.db import Base, utcnow
from ccm.ids import new_id


class OutboxItem(Base):
    """A message delivered into the local outbox: for email, the exact bytes SMTP would carry."""

    __tablename__ = "outbox_item"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=lambda: new_id("obx"))
    workspace_id: Mapped[str] = mapped_column(ForeignKey("workspace.id", ondelete="CASCADE"), index=True)
    message_id: Mapped[str | None] = mapped_column(String(32), index=True)
    channel: Mapped[str] = mapped_column(String(20))
    to_address: Mapped[str] = mapped_column(String(320))
    raw: Mapped[str] = mapped_column(Text)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class ProviderAccount(Base):
    """A provider configured for a workspace: its kind (``twilio``, ``smtp`` …), the channel it
    serves, its place in the failover order, and its settings. Secret settings are kept sealed
    (see :mod:`ccm.crypto`) and never leave the server."""

    __tablename__ = "provider"
    __table_args__ = (UniqueConstraint("workspace_id", "label"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=lambda: new_id("prv"))
    workspace_id: Mapped[str] = mapped_column(ForeignKey("workspace.id", ondelete="CASCADE"), index=True)
    kind: Mapped[str] = mapped_column(String(50))
    channel: Mapped[str] = mapped_column(String(20))
    label: Mapped[str] = mapped_column(String(100))
    priority: Mapped[int] = mapped_column(default=100)
    enabled: Mapped[bool] = mapped_column(default=True)
    settings: Mapped[dict[str, Any]] = mapped_column(default=dict)
    sealed_secrets: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
