from __future__ import annotations

import datetime as dt

from sqlalchemy import ForeignKey, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from ccm.db import Base, utcnow
from ccm.ids import new_id


class Suppression(Base):
    """An address that must not be sent to on a channel, whatever the message's category.

    Kept by the SHA-256 of the normalized address, so an erased person's entry still blocks
    re-imports and late events without holding their address (``address`` is cleared on erasure).
    """

    __tablename__ = "suppression"
    __table_args__ = (UniqueConstraint("workspace_id", "channel", "address_hash"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=lambda: new_id("sup"))
    workspace_id: Mapped[str] = mapped_column(ForeignKey("workspace.id", ondelete="CASCADE"))
    channel: Mapped[str] = mapped_column(String(20))
    address_hash: Mapped[str] = mapped_column(String(64))
    address: Mapped[str | None] = mapped_column(String(320))
    reason: Mapped[str] = mapped_column(String(30))
    detail: Mapped[str | None] = mapped_column(String(500))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
