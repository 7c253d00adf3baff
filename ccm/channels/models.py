from __future__ import annotations

import datetime as dt

from sqlalchemy import ForeignKey, String, Text
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
