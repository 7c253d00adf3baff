from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import Index, String
from sqlalchemy.orm import Mapped, mapped_column

from ccm.db import Base, utcnow
from ccm.ids import new_id


class AuditEntry(Base):
    """One staff action. Rows are never updated nor deleted: triggers in the database refuse both
    (migration 0016), so not even a bug or a hand-typed SQL statement can rewrite history. Its ids
    are time-ordered, so ``id`` orders the log like ``at``."""

    __tablename__ = "audit_log"
    __table_args__ = (
        Index("ix_audit_log_workspace_at", "workspace_id", "at"),
        Index("ix_audit_log_workspace_action", "workspace_id", "action", "id"),
        Index("ix_audit_log_workspace_actor", "workspace_id", "actor", "id"),
        Index("ix_audit_log_workspace_target", "workspace_id", "target_type", "target_id", "id"),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=lambda: new_id("aud"))
    workspace_id: Mapped[str] = mapped_column(String(32))
    at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    actor: Mapped[str] = mapped_column(String(320))
    action: Mapped[str] = mapped_column(String(64))
    target_type: Mapped[str] = mapped_column(String(64))
    target_id: Mapped[str] = mapped_column(String(300))
    before: Mapped[dict[str, Any] | None]
    after: Mapped[dict[str, Any] | None]
    ip: Mapped[str | None] = mapped_column(String(64))
