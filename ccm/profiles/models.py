from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import ForeignKey, Index, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from ccm.db import Base, utcnow
from ccm.ids import new_id


class Profile(Base):
    """A customer: addresses, attributes, and how they like to be reached."""

    __tablename__ = "profile"
    __table_args__ = (
        UniqueConstraint("workspace_id", "external_id"),
        Index("ix_profile_workspace_email", "workspace_id", "email"),
        Index("ix_profile_workspace_id", "workspace_id", "id"),  # a segment's audience, in keyset chunks
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=lambda: new_id("prf"))
    workspace_id: Mapped[str] = mapped_column(ForeignKey("workspace.id", ondelete="CASCADE"))
    external_id: Mapped[str | None] = mapped_column(String(255))
    email: Mapped[str | None] = mapped_column(String(320))
    phone: Mapped[str | None] = mapped_column(String(32))
    chat: Mapped[dict[str, Any]] = mapped_column(default=dict)
    attributes: Mapped[dict[str, Any]] = mapped_column(default=dict)
    timezone: Mapped[str | None] = mapped_column(String(64))
    locale: Mapped[str | None] = mapped_column(String(35))
    channels: Mapped[list[Any]] = mapped_column(default=list)
    preferences: Mapped[dict[str, Any]] = mapped_column(default=dict)
    """The person's own delivery preferences, e.g. ``{"quiet_hours": ["09:00", "20:00"]}``."""
    engagement: Mapped[dict[str, Any]] = mapped_column(default=dict)
    """Rollups per channel: counters by event kind (machine opens apart) and the last engagement."""
    engagement_score: Mapped[float] = mapped_column(default=0.0)
    best_channel: Mapped[str | None] = mapped_column(String(20))
    """The channel this person engages with most (see ccm.engagement.rollups); routing uses it
    when the profile ranks no channels itself."""
    merged_into_id: Mapped[str | None] = mapped_column(ForeignKey("profile.id", ondelete="CASCADE"), index=True)
    """Set on an anonymous profile merged into another (see ccm.identity): its history, consent
    and messages moved there; erasing that profile erases this one too."""
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow, onupdate=utcnow)
