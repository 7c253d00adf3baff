"""One timeline per customer: every message sent to them (marketing, transactional, support),
every event, every reply they sent, every consent change — newest first, with a cursor."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

from sqlalchemy import Select, and_, or_, select
from sqlalchemy.orm import Session

from ccm.consent.models import ConsentRecord
from ccm.conversations.models import InboundMessage
from ccm.engagement.models import EngagementEvent
from ccm.messages.models import Message
from ccm.pagination import ID_PATTERN

After = tuple[dt.datetime, str] | None
Entries = list[dict[str, Any]]
Source = Callable[[Session, str, After, int], Entries]


def timeline(*, session: Session, profile_id: str, limit: int, cursor: str | None) -> tuple[Entries, str | None]:
    """Up to ``limit`` entries older than ``cursor``, newest first, and the cursor for the next page."""
    after = _decode(cursor) if cursor else None
    entries = [entry for source in SOURCES for entry in source(session, profile_id, after, limit + 1)]
    entries.sort(key=lambda entry: (entry["at"], entry["id"]), reverse=True)
    page = entries[:limit]
    following = _encode(page[-1]["at"], page[-1]["id"]) if len(entries) > limit else None
    return page, following


def _older(statement: Select[Any], at: Any, id_: Any, after: After, limit: int) -> Select[Any]:
    if after is not None:
        statement = statement.where(or_(at < after[0], and_(at == after[0], id_ < after[1])))
    return statement.order_by(at.desc(), id_.desc()).limit(limit)


def _messages(session: Session, profile_id: str, after: After, limit: int) -> Entries:
    rows = session.scalars(
        _older(select(Message).where(Message.profile_id == profile_id), Message.created_at, Message.id, after, limit)
    )
    return [
        {
            "type": "message",
            "id": m.id,
            "at": m.created_at,
            "status": m.status,
            "reason": m.reason,
            "channel": m.channel,
            "category": m.category,
            "topic": m.topic,
            "template": m.template_key,
            "source": m.source,
        }
        for m in rows
    ]


def _events(session: Session, profile_id: str, after: After, limit: int) -> Entries:
    rows = session.scalars(
        _older(
            select(EngagementEvent).where(EngagementEvent.profile_id == profile_id),
            EngagementEvent.occurred_at,
            EngagementEvent.id,
            after,
            limit,
        )
    )
    return [
        {
            "type": "event",
            "id": e.id,
            "at": e.occurred_at,
            "kind": e.kind,
            "channel": e.channel,
            "message_id": e.message_id,
            "machine": e.machine,
            "source": e.source,
            "detail": e.detail,
        }
        for e in rows
    ]


def _consent(session: Session, profile_id: str, after: After, limit: int) -> Entries:
    rows = session.scalars(
        _older(
            select(ConsentRecord).where(ConsentRecord.profile_id == profile_id),
            ConsentRecord.recorded_at,
            ConsentRecord.id,
            after,
            limit,
        )
    )
    return [
        {
            "type": "consent",
            "id": r.id,
            "at": r.recorded_at,
            "channel": r.channel,
            "topic": r.topic,
            "status": r.status,
            "source": r.source,
        }
        for r in rows
    ]


def _inbound(session: Session, profile_id: str, after: After, limit: int) -> Entries:
    rows = session.scalars(
        _older(
            select(InboundMessage).where(InboundMessage.profile_id == profile_id),
            InboundMessage.received_at,
            InboundMessage.id,
            after,
            limit,
        )
    )
    return [
        {
            "type": "inbound",
            "id": m.id,
            "at": m.received_at,
            "channel": m.channel,
            "body": m.body,
            "subject": m.subject,
            "conversation_id": m.conversation_id,
            "in_reply_to": m.in_reply_to,
            "automatic": m.automatic,
            "keyword": m.keyword,
        }
        for m in rows
    ]


SOURCES: list[Source] = [_messages, _events, _inbound, _consent]
"""Every kind of entry."""


def _encode(at: dt.datetime, id_: str) -> str:
    micros = (at - _EPOCH) // dt.timedelta(microseconds=1)
    return f"{micros}.{id_}"


def _decode(cursor: str) -> tuple[dt.datetime, str]:
    micros, _, id_ = cursor.partition(".")
    return _EPOCH + dt.timedelta(microseconds=int(micros)), id_


_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
CURSOR_PATTERN = rf"^[0-9]{{1,16}}\.{ID_PATTERN}$"
"""Microseconds since 1970 and an id: every string of this shape is a valid cursor."""
