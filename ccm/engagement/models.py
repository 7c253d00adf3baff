from __future__ import annotations

import datetime as dt
import enum
from typing import Any

from sqlalchemy import ForeignKey, Index, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from ccm.db import Base, utcnow
from ccm.ids import new_id


class EventKind(enum.StrEnum):
    SENT = "sent"
    DELIVERED = "delivered"
    OPENED = "opened"
    CLICKED = "clicked"
    REPLIED = "replied"
    BOUNCED = "bounced"
    COMPLAINED = "complained"
    UNSUBSCRIBED = "unsubscribed"
    CONVERTED = "converted"
    READ = "read"
    FAILED = "failed"


class EngagementEvent(Base):
    """Something that happened to a message or a person: delivery reports, opens, clicks,
    replies, bounces, complaints, unsubscriptions, conversions. ``machine`` marks opens and clicks
    made by a machine (mail privacy proxies, link scanners): stored, but counted apart."""

    __tablename__ = "engagement_event"
    __table_args__ = (
        UniqueConstraint("workspace_id", "dedupe_key"),
        Index("ix_engagement_event_profile_time", "profile_id", "occurred_at"),
        Index("ix_engagement_event_workspace_kind_time", "workspace_id", "kind", "occurred_at"),  # segments
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=lambda: new_id("evt"))
    workspace_id: Mapped[str] = mapped_column(ForeignKey("workspace.id", ondelete="CASCADE"))
    profile_id: Mapped[str | None] = mapped_column(ForeignKey("profile.id", ondelete="SET NULL"))
    message_id: Mapped[str | None] = mapped_column(String(32), index=True)
    channel: Mapped[str | None] = mapped_column(String(20))
    kind: Mapped[str] = mapped_column(String(20))
    machine: Mapped[bool] = mapped_column(default=False)
    source: Mapped[str] = mapped_column(String(50))
    dedupe_key: Mapped[str | None] = mapped_column(String(200))
    detail: Mapped[dict[str, Any]] = mapped_column(default=dict)
    occurred_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    recorded_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
