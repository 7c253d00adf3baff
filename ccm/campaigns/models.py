"""Campaigns: a template (or A/B variants) sent to a segment's profiles, when and as fast as asked.

A :class:`Campaign`'s ``status`` moves only through :func:`ccm.campaigns.state.transition`. Its
messages are ordinary ``message`` rows (``source="campaign"``, ``campaign_id``, ``variant``,
``send_key = "campaign:<campaign>:<profile>"``), so the delivery core sends, retries and re-checks
them like any other. The fan-out writes them in keyset chunks, each committing its rows together
with its checkpoint (:class:`FanoutChunk`); the pump releases them to delivery at the campaign's
rate from its own durable cursor (``release_cursor``). A message's id encodes the time it is due
(see :mod:`ccm.campaigns.fanout`), so release order is id order, on the ``(campaign_id, id)`` index.
"""

from __future__ import annotations

import datetime as dt
import enum
from typing import Any

from sqlalchemy import ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from ccm.db import Base, utcnow
from ccm.ids import new_id


class CampaignStatus(enum.StrEnum):
    DRAFT = "draft"
    SCHEDULED = "scheduled"
    RUNNING = "running"
    PAUSED = "paused"
    COMPLETED = "completed"
    CANCELLED = "cancelled"


class FanoutPhase(enum.StrEnum):
    """Which part of the audience the fan-out writes: everyone (no A/B test), the A/B sample, or,
    once a winner is chosen, the rest; ``waiting`` between the sample and the winner, ``done``
    when nothing is left to write."""

    ALL = "all"
    SAMPLE = "sample"
    WAITING = "waiting"
    REST = "rest"
    DONE = "done"


class Campaign(Base):
    __tablename__ = "campaign"
    __table_args__ = (
        Index("ix_campaign_workspace", "workspace_id", "id"),
        Index("ix_campaign_status", "status"),  # the scheduler's and the pump's scans of live campaigns
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=lambda: new_id("cmp"))
    workspace_id: Mapped[str] = mapped_column(ForeignKey("workspace.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(200))
    status: Mapped[str] = mapped_column(String(20), default=CampaignStatus.DRAFT)
    category: Mapped[str] = mapped_column(String(20), default="marketing")
    topic: Mapped[str | None] = mapped_column(String(100))
    channels: Mapped[list[Any] | None]
    segment_id: Mapped[str] = mapped_column(String(32))
    schedule: Mapped[dict[str, Any]] = mapped_column(default=dict)
    """``{"at"?: ISO datetime, "local_time"?: "HH:MM"}``; empty: at launch."""
    calendar: Mapped[dict[str, Any] | None]
    """``{"days": ["mon", …], "hours": ["09:00", "18:00"]}`` in each recipient's time zone."""
    throttle_per_second: Mapped[float | None]
    deadline_seconds: Mapped[int | None]
    """A schedule missed by more than this never fires late; each message's deadline too."""
    holdout_percent: Mapped[float] = mapped_column(default=0.0)
    ab_test: Mapped[dict[str, Any] | None]
    """``{"sample_percent", "wait_hours", "metric", "winner", "decided_at", "decided_by"}``."""
    goal: Mapped[dict[str, Any] | None]
    """``{"event": "order_completed", "within_hours": 72}``: what counts as a conversion."""
    data: Mapped[dict[str, Any]] = mapped_column(default=dict)
    """Template variables every message of the campaign carries (the profile's fill the rest)."""
    due_at: Mapped[dt.datetime | None]
    """When a scheduled campaign starts (``schedule.at``)."""
    paused_reason: Mapped[str | None] = mapped_column(Text)
    ended_reason: Mapped[str | None] = mapped_column(Text)
    """Why a campaign was cancelled (``cancelled``, ``deadline_missed``)."""
    fanout_phase: Mapped[str] = mapped_column(String(20), default=FanoutPhase.ALL)
    fanout_cursor: Mapped[str | None] = mapped_column(String(32))
    """The last profile id the current phase has claimed for a chunk (the fan-out's checkpoint;
    the claimed chunks not yet written are :class:`FanoutChunk` rows)."""
    fanout_chunks: Mapped[int] = mapped_column(default=0)
    """Chunks claimed so far (every chunk's message ids carry its number)."""
    fanout_started_at: Mapped[dt.datetime | None]
    sample_done_at: Mapped[dt.datetime | None]
    release_cursor: Mapped[str | None] = mapped_column(String(32))
    """The last message id handed to delivery (the pump's checkpoint)."""
    previous_cursor: Mapped[str | None] = mapped_column(String(32))
    """The release cursor one tick earlier: the last tick's batch is ``(previous, release]``."""
    settled_cursor: Mapped[str | None] = mapped_column(String(32))
    """Every message up to this id has ended (the completion check moves it on)."""
    released: Mapped[int] = mapped_column(default=0)
    release_rate: Mapped[float | None]
    """The pump's current rate (messages/s), below the throttle while providers push back."""
    throttled_by_provider: Mapped[int] = mapped_column(default=0)
    """Ticks whose released messages met back-pressure (SMTP 4xx, HTTP 429)."""
    fallback_timezone_count: Mapped[int] = mapped_column(default=0)
    holdout_count: Mapped[int] = mapped_column(default=0)
    tick_at: Mapped[dt.datetime | None]
    id_seed: Mapped[str] = mapped_column(String(8), default="")
    """Random characters every message id of this campaign carries (ids unique across campaigns)."""
    counts: Mapped[dict[str, Any] | None]
    """Counts by status and skip reason when the campaign ended."""
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    launched_at: Mapped[dt.datetime | None]
    started_at: Mapped[dt.datetime | None]
    completed_at: Mapped[dt.datetime | None]
    cancelled_at: Mapped[dt.datetime | None]
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class CampaignVariant(Base):
    __tablename__ = "campaign_variant"
    __table_args__ = (UniqueConstraint("campaign_id", "key"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=lambda: new_id("cmv"))
    campaign_id: Mapped[str] = mapped_column(ForeignKey("campaign.id", ondelete="CASCADE"))
    key: Mapped[str] = mapped_column(String(20))
    template: Mapped[str] = mapped_column(String(200))
    template_version_id: Mapped[str | None] = mapped_column(ForeignKey("template_version.id"))
    """Pinned at launch: the template's latest published version then."""
    template_version: Mapped[int | None]
    weight: Mapped[float] = mapped_column(default=1.0)


class CampaignHoldout(Base):
    """A profile of the audience kept out of the campaign (the control group), never messaged."""

    __tablename__ = "campaign_holdout"

    campaign_id: Mapped[str] = mapped_column(ForeignKey("campaign.id", ondelete="CASCADE"), primary_key=True)
    profile_id: Mapped[str] = mapped_column(ForeignKey("profile.id", ondelete="CASCADE"), primary_key=True, index=True)
    added_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class FanoutChunk(Base):
    """A chunk of a campaign's fan-out claimed and not yet written: the audience's profile ids in
    ``(after, upto]``. Fan-out lanes claim chunks one after another under the campaign's lock
    and write them in parallel; a chunk's row goes in the transaction that writes its messages,
    so after a crash the rows left are exactly the chunks to write again."""

    __tablename__ = "campaign_fanout_chunk"

    campaign_id: Mapped[str] = mapped_column(ForeignKey("campaign.id", ondelete="CASCADE"), primary_key=True)
    number: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    after: Mapped[str] = mapped_column(String(32))
    """The profile id the chunk starts after ('' for the first)."""
    upto: Mapped[str] = mapped_column(String(32))
    """The chunk's last profile id, inclusive."""
