"""Triggers: "when event X arrives for a profile, send template Y (after a delay, unless event Z
comes first)".

A :class:`Trigger` is the stable identity (its key, its name, whether it is active); what it does
lives in immutable, numbered :class:`TriggerVersion` rows, and ``current_version`` names the one
events use. An edit writes the next version, so every event is handled by the version that was
current when it arrived, and every message says which version sent it. A :class:`TriggerFire` is
one firing — one event, one message — and, while a delayed message waits, what would cancel it.
"""

from __future__ import annotations

import datetime as dt
import enum
from typing import Any

from sqlalchemy import ForeignKey, Index, String, Text, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column

from ccm.db import Base, utcnow
from ccm.ids import new_id


class FireStatus(enum.StrEnum):
    """Where a firing stands. ``pending``: its message waits for its due time and may still be
    cancelled; ``released``: the due time came (or there was no delay) and the message went to
    delivery, whose own status says how it went; ``cancelled``: the cancel event came first and
    the message was skipped; ``skipped``: no message could be made (the reason says why)."""

    PENDING = "pending"
    RELEASED = "released"
    CANCELLED = "cancelled"
    SKIPPED = "skipped"


class Trigger(Base):
    __tablename__ = "trigger"
    __table_args__ = (UniqueConstraint("workspace_id", "key"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=lambda: new_id("trg"))
    workspace_id: Mapped[str] = mapped_column(ForeignKey("workspace.id", ondelete="CASCADE"))
    key: Mapped[str] = mapped_column(String(100))
    name: Mapped[str] = mapped_column(String(200), default="")
    active: Mapped[bool] = mapped_column(default=True)
    current_version: Mapped[int]
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class TriggerVersion(Base):
    """What a trigger does, as of one version; never changed once written."""

    __tablename__ = "trigger_version"
    __table_args__ = (UniqueConstraint("trigger_id", "version"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=lambda: new_id("trgv"))
    trigger_id: Mapped[str] = mapped_column(ForeignKey("trigger.id", ondelete="CASCADE"))
    version: Mapped[int]
    event: Mapped[str] = mapped_column(String(200))
    filters: Mapped[list[Any]] = mapped_column(default=list)
    """Property filters, all of which the event must pass: ``[{"property", "op", "value"/"values"}]``."""
    template_key: Mapped[str] = mapped_column(String(200))
    category: Mapped[str | None] = mapped_column(String(20))
    topic: Mapped[str | None] = mapped_column(String(100))
    channels: Mapped[list[Any] | None]
    delay_seconds: Mapped[int] = mapped_column(default=0)
    cancel_event: Mapped[str | None] = mapped_column(String(200))
    cancel_match_property: Mapped[str | None] = mapped_column(String(400))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class TriggerFire(Base):
    """One event that fired one trigger version, and the message it queued.

    A cancel event finds the pending firings of its profile through the partial index on
    ``(workspace_id, profile_id, cancel_event)``: only firings that can still be cancelled are in
    it, so it stays as small as the number of messages waiting.
    """

    __tablename__ = "trigger_fire"
    __table_args__ = (
        UniqueConstraint("trigger_version_id", "event_message_id"),
        Index(
            "ix_trigger_fire_pending_cancel",
            "workspace_id",
            "profile_id",
            "cancel_event",
            postgresql_where=text("status = 'pending'"),
            sqlite_where=text("status = 'pending'"),
        ),
        Index(
            "ix_trigger_fire_pending_due",
            "due_at",
            postgresql_where=text("status = 'pending'"),
            sqlite_where=text("status = 'pending'"),
        ),
        Index("ix_trigger_fire_trigger", "trigger_id", "id"),  # a trigger's firings, newest first
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=lambda: new_id("fire"))
    workspace_id: Mapped[str] = mapped_column(ForeignKey("workspace.id", ondelete="CASCADE"))
    trigger_id: Mapped[str] = mapped_column(ForeignKey("trigger.id", ondelete="CASCADE"))
    trigger_version_id: Mapped[str] = mapped_column(ForeignKey("trigger_version.id", ondelete="CASCADE"))
    profile_id: Mapped[str] = mapped_column(ForeignKey("profile.id", ondelete="CASCADE"), index=True)
    """Indexed for the profile's erasure (the cascade) and for an identity merge moving its rows."""
    event_id: Mapped[str] = mapped_column(String(32))
    event_message_id: Mapped[str] = mapped_column(String(100))
    message_id: Mapped[str | None] = mapped_column(ForeignKey("message.id", ondelete="CASCADE"), index=True)
    due_at: Mapped[dt.datetime]
    cancel_event: Mapped[str | None] = mapped_column(String(200))
    cancel_match: Mapped[str | None] = mapped_column(Text)
    """The firing event's value of the version's match property, as canonical JSON (None: it had none)."""
    status: Mapped[str] = mapped_column(String(20))
    reason: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
