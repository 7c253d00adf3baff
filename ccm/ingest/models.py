"""What ingestion stores: every accepted event, and the message ids already seen.

On PostgreSQL ``event`` is partitioned by month of ``received_at`` (declarative partitioning, see
migration 0006 and :mod:`ccm.ingest.partitions`); its keys lead with ``workspace_id``, and one
profile's history is read through ``(workspace_id, profile_id, occurred_at)``, never by scanning
the workspace. ``event_seen`` is the dedupe table: keyed by workspace + ``messageId`` alone, so it
keeps working whatever the events table is partitioned by, and purged after a retention window.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import ForeignKey, Index, PrimaryKeyConstraint, String
from sqlalchemy.orm import Mapped, mapped_column

from ccm.db import Base, utcnow
from ccm.ids import new_id


class Event(Base):
    """One Segment-spec call as accepted: ``kind`` is identify, track, page, screen, group or
    alias; ``name`` the event (track) or page/screen name; ``occurred_at`` the event's time with
    the sender's clock skew corrected; ``received_at`` when CCM stored it."""

    __tablename__ = "event"
    __table_args__ = (
        PrimaryKeyConstraint("workspace_id", "received_at", "id"),
        Index("ix_event_profile_occurred", "profile_id", "occurred_at", "id"),
        Index("ix_event_workspace_name_occurred", "workspace_id", "name", "occurred_at"),
    )

    id: Mapped[str] = mapped_column(String(32), default=lambda: new_id("evt"))
    workspace_id: Mapped[str] = mapped_column(ForeignKey("workspace.id", ondelete="CASCADE"))
    received_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    profile_id: Mapped[str] = mapped_column(ForeignKey("profile.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(16))
    name: Mapped[str | None] = mapped_column(String(200))
    message_id: Mapped[str] = mapped_column(String(100))
    user_id: Mapped[str | None] = mapped_column(String(255))
    anonymous_id: Mapped[str | None] = mapped_column(String(255))
    occurred_at: Mapped[dt.datetime]
    properties: Mapped[dict[str, Any]] = mapped_column(default=dict)
    context: Mapped[dict[str, Any]] = mapped_column(default=dict)
    notes: Mapped[list[Any]] = mapped_column(default=list)
    """What of the event was not applied to the profile, and why (``traits.email: not an email
    address``): the event is kept, nothing is dropped silently."""


class EventSeen(Base):
    """A ``messageId`` already accepted in a workspace: a retried event is stored once."""

    __tablename__ = "event_seen"
    __table_args__ = (PrimaryKeyConstraint("workspace_id", "message_id"),)

    workspace_id: Mapped[str] = mapped_column(String(32))
    message_id: Mapped[str] = mapped_column(String(100))
    event_id: Mapped[str] = mapped_column(String(32))
    seen_at: Mapped[dt.datetime] = mapped_column(default=utcnow, index=True)


class ProfileAnonymousId(Base):
    """An ``anonymousId`` (a device, a browser) and the one profile it belongs to."""

    __tablename__ = "profile_anonymous_id"
    __table_args__ = (PrimaryKeyConstraint("workspace_id", "anonymous_id"),)

    workspace_id: Mapped[str] = mapped_column(String(32))
    anonymous_id: Mapped[str] = mapped_column(String(255))
    profile_id: Mapped[str] = mapped_column(ForeignKey("profile.id", ondelete="CASCADE"), index=True)
    linked_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class Account(Base):
    """A group (company, organisation, account) named by ``group`` calls, with its latest traits."""

    __tablename__ = "account"
    __table_args__ = (PrimaryKeyConstraint("workspace_id", "group_id"),)

    workspace_id: Mapped[str] = mapped_column(ForeignKey("workspace.id", ondelete="CASCADE"))
    group_id: Mapped[str] = mapped_column(String(255))
    traits: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class AccountMember(Base):
    """A profile's membership of an account, from its first ``group`` call."""

    __tablename__ = "account_member"
    __table_args__ = (PrimaryKeyConstraint("workspace_id", "group_id", "profile_id"),)

    workspace_id: Mapped[str] = mapped_column(String(32))
    group_id: Mapped[str] = mapped_column(String(255))
    profile_id: Mapped[str] = mapped_column(ForeignKey("profile.id", ondelete="CASCADE"), index=True)
    joined_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
