from __future__ import annotations

import datetime as dt
import enum
from typing import Any

from sqlalchemy import ForeignKey, Index, String, Text, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from ccm.db import Base, utcnow
from ccm.ids import new_id


class MessageStatus(enum.StrEnum):
    QUEUED = "queued"
    SENDING = "sending"
    RETRYING = "retrying"
    SENT = "sent"
    DELIVERED = "delivered"
    FAILED = "failed"
    SKIPPED = "skipped"

    @property
    def is_terminal(self) -> bool:
        return self in TERMINAL_STATUSES


TERMINAL_STATUSES = frozenset(
    {MessageStatus.SENT, MessageStatus.DELIVERED, MessageStatus.FAILED, MessageStatus.SKIPPED}
)
PENDING_STATUSES = (MessageStatus.QUEUED, MessageStatus.RETRYING)

MESSAGE_FILLFACTOR = 70
"""Percent of a message page filled by inserts; the rest takes the new row versions of its
deliveries (claim, outcome, report), which PostgreSQL then writes in the same page (HOT)."""
ATTEMPT_FILLFACTOR = 90


class AttemptOutcome(enum.StrEnum):
    IN_FLIGHT = "in_flight"
    SENT = "sent"
    DELIVERED = "delivered"
    TRANSIENT_ERROR = "transient_error"
    PERMANENT_ERROR = "permanent_error"
    CONFIG_ERROR = "config_error"
    UNKNOWN = "unknown"


class Message(Base):
    """One message to one profile. Its row is the source of truth for whether it was sent."""

    __tablename__ = "message"
    # Indexed only on columns that never change after the insert, so that every delivery's updates
    # can be HOT (heap-only: no index entry rewritten), with room for them in the page: a fill
    # factor leaves 30 % of each page free. Provider reports find a message through its attempts.
    __table_args__ = (
        UniqueConstraint("workspace_id", "send_key"),
        Index("ix_message_workspace_id", "workspace_id", "id"),  # the message list, newest first
        # The timeline; the list of one profile and its frequency caps (a profile's messages are
        # few: sorted by id after the lookup); erasure.
        Index("ix_message_profile_created", "profile_id", "created_at", "id"),
        # A campaign's messages, in release order (their ids encode their due time); only campaign
        # messages are in it.
        Index(
            "ix_message_campaign",
            "campaign_id",
            "id",
            postgresql_where=text("campaign_id IS NOT NULL"),
            sqlite_where=text("campaign_id IS NOT NULL"),
        ),
        # A support follow-up's conversation; other messages (a campaign's) add no entry.
        Index(
            "ix_message_conversation_id",
            "conversation_id",
            postgresql_where=text("conversation_id IS NOT NULL"),
            sqlite_where=text("conversation_id IS NOT NULL"),
        ),
        {"postgresql_with": {"fillfactor": MESSAGE_FILLFACTOR}},
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=lambda: new_id("msg"))
    workspace_id: Mapped[str] = mapped_column(String(32))
    """No foreign key, like ``template_version_id`` (migration 0022): every writer copies it from a row
    that has one (the API key's, the campaign's), and a foreign key checked per row made two fan-out
    lanes share one lock on the workspace row for every message. A workspace's deletion still takes
    its messages, by a trigger on ``workspace``."""
    profile_id: Mapped[str | None] = mapped_column(ForeignKey("profile.id", ondelete="SET NULL"))
    source: Mapped[str] = mapped_column(String(20))
    send_key: Mapped[str] = mapped_column(String(300))
    category: Mapped[str] = mapped_column(String(20))
    topic: Mapped[str | None] = mapped_column(String(100))
    conversation_id: Mapped[str | None] = mapped_column(String(32))
    """The conversation this message was sent in (a support follow-up), if any."""
    campaign_id: Mapped[str | None] = mapped_column(String(32))
    """The campaign that sent this message, if any; never changes after the insert (it is indexed)."""
    variant: Mapped[str | None] = mapped_column(String(20))
    """The campaign variant (``"A"``, ``"B"`` …) this message is; never changes after the insert."""
    template_version_id: Mapped[str] = mapped_column(String(32))
    """The published version rendered; versions are immutable and never deleted but with their
    workspace (no foreign key: see ``workspace_id``)."""
    template_key: Mapped[str] = mapped_column(String(200))
    template_version: Mapped[int]
    channel_override: Mapped[str | None] = mapped_column(String(20))
    allowed_channels: Mapped[list[Any] | None]
    """The channels this message may use (None: any); it falls back among them on a permanent failure."""
    pinned_account: Mapped[str | None] = mapped_column(String(100))
    """The only provider account this message may still go to: one that may already have it and
    dedupes retries (a request that went out and got no answer)."""
    failed_channels: Mapped[list[Any]] = mapped_column(default=list)
    """Channels that failed permanently for this message, with the reason: ``[{"channel", "reason"}]``."""
    channel: Mapped[str | None] = mapped_column(String(20))
    locale: Mapped[str | None] = mapped_column(String(35))
    to_address: Mapped[str | None] = mapped_column(String(320))
    segments: Mapped[int | None]
    """SMS segments the body takes (what the carrier bills)."""
    reply_to: Mapped[str | None] = mapped_column(String(320))
    headers: Mapped[dict[str, Any] | None]
    """Extra email headers, such as a follow-up's ``In-Reply-To`` and ``References``; their values
    are checked for line breaks before they are stored."""
    data: Mapped[dict[str, Any]] = mapped_column(default=dict)
    triggered_by: Mapped[dict[str, Any] | None]
    """For a message a trigger sent: which trigger version and which event (``{"trigger",
    "version", "event", "event_id", "event_message_id"}``), written once with the row, so that the
    message and the timeline show it without reading the triggers' tables."""
    track: Mapped[bool] = mapped_column(default=True)
    """Whether this message's email may carry the open pixel and tracked links (the workspace
    policy must allow them too)."""
    route: Mapped[list[Any]] = mapped_column(default=list)
    status: Mapped[str] = mapped_column(String(20), default=MessageStatus.QUEUED)
    reason: Mapped[str | None] = mapped_column(Text)
    deadline_at: Mapped[dt.datetime]
    next_attempt_at: Mapped[dt.datetime | None]
    claim_token: Mapped[str | None] = mapped_column(String(32))
    claimed_at: Mapped[dt.datetime | None]
    claims: Mapped[int] = mapped_column(default=0)
    provider_message_id: Mapped[str | None] = mapped_column(String(300))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    finished_at: Mapped[dt.datetime | None]

    attempts: Mapped[list[DeliveryAttempt]] = relationship(
        order_by="DeliveryAttempt.number", lazy="raise", passive_deletes=True
    )


class DeliveryAttempt(Base):
    """One provider call for a message: written as ``in_flight`` just before the call (the commit
    point), then given its outcome. An ``in_flight`` row whose worker died means "maybe sent"."""

    __tablename__ = "delivery_attempt"
    __table_args__ = (
        UniqueConstraint("message_id", "number"),
        # Provider reports name the provider's id: the attempt that got it leads to the message.
        Index(
            "ix_delivery_attempt_provider_message_id",
            "provider_message_id",
            postgresql_where=text("provider_message_id IS NOT NULL"),
            sqlite_where=text("provider_message_id IS NOT NULL"),
        ),
        {"postgresql_with": {"fillfactor": ATTEMPT_FILLFACTOR}},
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=lambda: new_id("att"))
    message_id: Mapped[str] = mapped_column(ForeignKey("message.id", ondelete="CASCADE"))
    number: Mapped[int]
    channel: Mapped[str] = mapped_column(String(20))
    provider: Mapped[str] = mapped_column(String(50))
    to_address: Mapped[str | None] = mapped_column(String(320))
    outcome: Mapped[str] = mapped_column(String(20), default=AttemptOutcome.IN_FLIGHT)
    error: Mapped[str | None] = mapped_column(Text)
    provider_message_id: Mapped[str | None] = mapped_column(String(300))
    hops: Mapped[list[Any]] = mapped_column(default=list)
    """Every provider this attempt went to, in failover order, and how each one went."""
    retry_at: Mapped[dt.datetime | None]
    started_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    finished_at: Mapped[dt.datetime | None]


class MessageDayCount(Base):
    """The dashboard's count of one closed day (UTC) of a workspace's messages, by status, channel
    and skip reason, as of ``computed_at``; :mod:`ccm.messages.day_counts` keeps it. Nothing on the
    send path writes it: a message's later change of status reaches it when it is counted again."""

    __tablename__ = "message_day_count"

    workspace_id: Mapped[str] = mapped_column(ForeignKey("workspace.id", ondelete="CASCADE"), primary_key=True)
    day: Mapped[str] = mapped_column(String(10), primary_key=True)
    """``YYYY-MM-DD``: the messages made that day."""
    counts: Mapped[list[Any]]
    """``[[status, channel, skip reason, count], …]``: channel and skip reason may be null."""
    engagement: Mapped[dict[str, Any] | None]
    """On the row of the day that was today when counted: ``{"days": n, "opened": …, "clicked": …}``,
    people's opens and clicks of the n days ending it (messages opened on two days count once, so
    they are not a sum of days)."""
    computed_at: Mapped[dt.datetime]
