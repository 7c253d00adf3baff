from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from ccm.db import Base, utcnow


class IdempotencyKey(Base):
    """The stored answer to a request made with an ``Idempotency-Key`` header.

    Inserted in the same transaction as the work it guards, so a concurrent request with the same
    key waits on the primary key and then replays this answer.
    """

    __tablename__ = "idempotency_key"

    workspace_id: Mapped[str] = mapped_column(ForeignKey("workspace.id", ondelete="CASCADE"), primary_key=True)
    key: Mapped[str] = mapped_column(String(255), primary_key=True)
    request_hash: Mapped[str] = mapped_column(String(64))
    status_code: Mapped[int]
    response: Mapped[dict[str, Any]]
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[dt.datetime] = mapped_column(index=True)
