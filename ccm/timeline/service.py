"""One timeline per customer: every message sent to them (marketing, transactional, support),
every engagement event, every reply they sent, every call your systems sent about them (track,
page, identify …), every consent change, every identity merge into them — newest first, with a cursor."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import and_, or_, select
from sqlalchemy.orm import Session

from ccm.consent.models import ConsentRecord
from ccm.conversations.models import InboundMessage
from ccm.engagement.models import EngagementEvent
from ccm.identity.models import ProfileMerge
from ccm.ingest.models import Event
from ccm.messages.models import Message
from ccm.pagination import ID_PATTERN

After = tuple[dt.datetime, str] | None
Entries = list[dict[str, Any]]


@dataclass(frozen=True)
class Source:
    """One kind of entry: its table (with ``id``), the column that dates it, the fields an entry
    shows (entry key → column), and the column naming the profile it belongs to."""

    type: str
    model: Any
    at: str
    fields: Mapping[str, str]
    profile: str = "profile_id"

    def read(self, session: Session, profile_id: str, after: After, limit: int) -> Entries:
        """Up to ``limit`` of this profile's entries older than ``after``, newest first."""
        model, at = self.model, getattr(self.model, self.at)
        statement = select(model).where(getattr(model, self.profile) == profile_id)
        if after is not None:
            statement = statement.where(or_(at < after[0], and_(at == after[0], model.id < after[1])))
        rows = session.scalars(statement.order_by(at.desc(), model.id.desc()).limit(limit))
        return [
            {"type": self.type, "id": row.id, "at": getattr(row, self.at)}
            | {key: getattr(row, column) for key, column in self.fields.items()}
            for row in rows
        ]


SOURCES: tuple[Source, ...] = (
    Source(
        "message",
        Message,
        "created_at",
        {
            "status": "status",
            "reason": "reason",
            "channel": "channel",
            "category": "category",
            "topic": "topic",
            "template": "template_key",
            "source": "source",
            "triggered_by": "triggered_by",
        },
    ),
    Source(
        "event",
        EngagementEvent,
        "occurred_at",
        {
            "kind": "kind",
            "channel": "channel",
            "message_id": "message_id",
            "machine": "machine",
            "source": "source",
            "detail": "detail",
        },
    ),
    Source(
        "inbound",
        InboundMessage,
        "received_at",
        {
            "channel": "channel",
            "body": "body",
            "subject": "subject",
            "conversation_id": "conversation_id",
            "in_reply_to": "in_reply_to",
            "automatic": "automatic",
            "keyword": "keyword",
        },
    ),
    Source(
        "activity",
        Event,
        "occurred_at",
        {"kind": "kind", "name": "name", "properties": "properties", "notes": "notes"},
    ),
    Source(
        "merge",
        ProfileMerge,
        "merged_at",
        {"source_profile_id": "source_id", "call": "call", "reverted_at": "reverted_at"},
        profile="target_id",
    ),
    Source(
        "consent",
        ConsentRecord,
        "recorded_at",
        {"channel": "channel", "topic": "topic", "status": "status", "source": "source"},
    ),
)
"""Every kind of entry."""


def timeline(*, session: Session, profile_id: str, limit: int, cursor: str | None) -> tuple[Entries, str | None]:
    """Up to ``limit`` entries older than ``cursor``, newest first, and the cursor for the next page."""
    after = _decode(cursor) if cursor else None
    entries = [entry for source in SOURCES for entry in source.read(session, profile_id, after, limit + 1)]
    entries.sort(key=lambda entry: (entry["at"], entry["id"]), reverse=True)
    page = entries[:limit]
    following = _encode(page[-1]["at"], page[-1]["id"]) if len(entries) > limit else None
    return page, following


def _encode(at: dt.datetime, id_: str) -> str:
    micros = (at - _EPOCH) // dt.timedelta(microseconds=1)
    return f"{micros}.{id_}"


def _decode(cursor: str) -> tuple[dt.datetime, str]:
    micros, _, id_ = cursor.partition(".")
    return _EPOCH + dt.timedelta(microseconds=int(micros)), id_


_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
CURSOR_PATTERN = rf"^[0-9]{{1,16}}\.{ID_PATTERN}$"
"""Microseconds since 1970 and an id: every string of this shape is a valid cursor."""
