"""The audit record of identity merges: which profile was folded into which, by which call, and
every row that moved — enough to undo it."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from ccm.db import Base, utcnow
from ccm.ids import new_id


class ProfileMerge(Base):
    """``source`` (an anonymous profile) merged into ``target``. ``moved`` names, per table, the
    keys of the rows that were repointed; ``source_before`` and ``target_before`` hold the fields
    the merge changed, as they were. A reverted merge keeps its record, with ``reverted_at``."""

    __tablename__ = "profile_merge"
    __table_args__ = (Index("ix_profile_merge_target_merged", "target_id", "merged_at", "id"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=lambda: new_id("mrg"))
    workspace_id: Mapped[str] = mapped_column(ForeignKey("workspace.id", ondelete="CASCADE"))
    source_id: Mapped[str] = mapped_column(ForeignKey("profile.id", ondelete="CASCADE"), index=True)
    target_id: Mapped[str] = mapped_column(ForeignKey("profile.id", ondelete="CASCADE"))
    call: Mapped[dict[str, Any]]
    """The call that merged: ``{"kind", "message_id", "event_id", "user_id", "anonymous_id",
    "previous_id"}``."""
    moved: Mapped[dict[str, Any]]
    source_before: Mapped[dict[str, Any]]
    target_before: Mapped[dict[str, Any]]
    merged_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    reverted_at: Mapped[dt.datetime | None]
    reverted_by: Mapped[str | None] = mapped_column(String(100))
