from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from ccm.db import Base, utcnow
from ccm.ids import new_id

ALL_TOPICS = "*"


class ConsentRecord(Base):
    """One consent decision, never changed afterwards (the ledger is append-only). The current
    consent for a channel and topic is the latest record for that topic or for all topics (``*``)."""

    __tablename__ = "consent_record"
    __table_args__ = (Index("ix_consent_record_profile_channel", "profile_id", "channel", "recorded_at"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=lambda: new_id("cns"))
    workspace_id: Mapped[str] = mapped_column(ForeignKey("workspace.id", ondelete="CASCADE"), index=True)
    profile_id: Mapped[str] = mapped_column(ForeignKey("profile.id", ondelete="CASCADE"))
    channel: Mapped[str] = mapped_column(String(20))
    topic: Mapped[str] = mapped_column(String(100), default=ALL_TOPICS)
    status: Mapped[str] = mapped_column(String(10))
    source: Mapped[str] = mapped_column(String(50))
    actor: Mapped[str | None] = mapped_column(String(100))
    ip: Mapped[str | None] = mapped_column(String(64))
    user_agent: Mapped[str | None] = mapped_column(String(500))
    proof: Mapped[dict[str, Any]] = mapped_column(default=dict)
    recorded_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
