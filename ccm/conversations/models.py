from __future__ import annotations

import datetime as dt
import enum

from sqlalchemy import ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from ccm.db import Base, utcnow
from ccm.ids import new_id


class ConversationStatus(enum.StrEnum):
    """Where a thread stands for the support team: ``open`` (the person waits for us), ``pending``
    (we wait for them), ``resolved``. A new reply from the person makes it ``open`` again."""

    OPEN = "open"
    PENDING = "pending"
    RESOLVED = "resolved"


class Conversation(Base):
    """A thread with one person on one channel: the messages we sent in it and their replies.
    ``reply_token`` is the secret part of its reply address (``reply+c-<token>@<inbound domain>``)."""

    __tablename__ = "conversation"
    __table_args__ = (
        Index("ix_conversation_profile", "profile_id", "last_message_at"),
        Index("ix_conversation_workspace_assignee", "workspace_id", "assignee_id", "id"),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=lambda: new_id("cnv"))
    workspace_id: Mapped[str] = mapped_column(ForeignKey("workspace.id", ondelete="CASCADE"), index=True)
    profile_id: Mapped[str | None] = mapped_column(ForeignKey("profile.id", ondelete="SET NULL"))
    channel: Mapped[str] = mapped_column(String(20))
    subject: Mapped[str | None] = mapped_column(String(500))
    reply_token: Mapped[str] = mapped_column(String(40), unique=True)
    origin_message_id: Mapped[str | None] = mapped_column(String(32), unique=True)
    """The message whose reply opened this conversation, if it started that way."""
    status: Mapped[str] = mapped_column(String(10), default="open")
    assignee_id: Mapped[str | None] = mapped_column(ForeignKey("app_user.id", ondelete="SET NULL"))
    """The web app user (an agent) who answers it, if someone was assigned."""
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    last_message_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class InboundMessage(Base):
    """A message a person sent us: an SMS or chat reply, or an email reply."""

    __tablename__ = "inbound_message"
    __table_args__ = (
        UniqueConstraint("workspace_id", "channel", "provider_message_id"),
        Index("ix_inbound_message_profile", "profile_id", "received_at"),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=lambda: new_id("inb"))
    workspace_id: Mapped[str] = mapped_column(ForeignKey("workspace.id", ondelete="CASCADE"))
    conversation_id: Mapped[str | None] = mapped_column(ForeignKey("conversation.id", ondelete="SET NULL"), index=True)
    profile_id: Mapped[str | None] = mapped_column(ForeignKey("profile.id", ondelete="SET NULL"))
    channel: Mapped[str] = mapped_column(String(20))
    from_address: Mapped[str | None] = mapped_column(String(320))
    to_address: Mapped[str | None] = mapped_column(String(320))
    subject: Mapped[str | None] = mapped_column(String(500))
    body: Mapped[str] = mapped_column(Text, default="")
    provider_message_id: Mapped[str] = mapped_column(String(300))
    in_reply_to: Mapped[str | None] = mapped_column(String(32))
    """The id of our message this answers, when known."""
    automatic: Mapped[bool] = mapped_column(default=False)
    """An auto-reply (out of office): kept in the thread, not counted as the person replying."""
    keyword: Mapped[str | None] = mapped_column(String(20))
    received_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
