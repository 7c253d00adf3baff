"""Segments: a named audience of a workspace, either ``rules`` (a JSON rule tree, see
:mod:`ccm.segments.rules`, compiled to SQL whenever the audience is read) or ``static`` (a list of
profiles kept in ``segment_member``)."""

from __future__ import annotations

import datetime as dt
import enum
from typing import Any

from sqlalchemy import ForeignKey, PrimaryKeyConstraint, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from ccm.db import Base, utcnow
from ccm.ids import new_id


class SegmentKind(enum.StrEnum):
    RULES = "rules"
    STATIC = "static"


class Segment(Base):
    __tablename__ = "segment"
    __table_args__ = (UniqueConstraint("workspace_id", "name"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=lambda: new_id("seg"))
    workspace_id: Mapped[str] = mapped_column(ForeignKey("workspace.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(10))
    rules: Mapped[dict[str, Any] | None]
    """The validated rule tree (``rules`` segments); None for a static list."""
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class SegmentMember(Base):
    """A profile on a static list."""

    __tablename__ = "segment_member"
    __table_args__ = (PrimaryKeyConstraint("segment_id", "profile_id"),)

    segment_id: Mapped[str] = mapped_column(ForeignKey("segment.id", ondelete="CASCADE"))
    profile_id: Mapped[str] = mapped_column(ForeignKey("profile.id", ondelete="CASCADE"), index=True)
    """Indexed for the profile's erasure (the cascade) and for an identity merge moving its rows."""
    added_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
