"""Recording engagement events: exactly once per dedupe key, folded into the profile rollups,
and announced to the workspace's webhooks."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy.orm import Session

from ccm.db import dialect_of, insert_ignoring_conflicts, utcnow
from ccm.engagement import rollups
from ccm.engagement.models import EngagementEvent
from ccm.ids import new_id
from ccm.webhooks.service import emit

_TABLE = EngagementEvent.__table__
ANNOUNCED = {
    "opened": "engagement.opened",
    "clicked": "engagement.clicked",
    "unsubscribed": "profile.unsubscribed",
    "replied": "conversation.replied",
}
"""Event kinds the workspace's webhooks hear about, and as what."""
FIELDS = (
    "workspace_id",
    "profile_id",
    "message_id",
    "channel",
    "kind",
    "machine",
    "source",
    "dedupe_key",
    "detail",
    "occurred_at",
)


def record_events(session: Session, events: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Insert events; the ones whose ``dedupe_key`` was seen before are dropped. Returns the new
    ones, after folding them into the rollups."""
    if not events:
        return []
    now = utcnow()
    rows = [
        {
            "id": new_id("evt"),
            "recorded_at": now,
            "machine": False,
            "detail": {},
            "profile_id": None,
            "message_id": None,
            "channel": None,
            "dedupe_key": None,
            "occurred_at": now,
            **{k: v for k, v in event.items() if k in FIELDS},
        }
        for event in events
    ]
    statement = insert_ignoring_conflicts(dialect_of(session), _TABLE, _TABLE.c.id)
    inserted = (
        {row.id for row in session.execute(statement, rows)}
        if len(rows) > 1
        else {session.execute(statement, rows[0]).scalar()} - {None}
    )
    new = [row for row in rows if row["id"] in inserted]
    rollups.apply(session, new)
    for event in new:
        if event["kind"] in ANNOUNCED:
            emit(
                session,
                event["workspace_id"],
                ANNOUNCED[event["kind"]],
                {
                    "event_id": event["id"],
                    "message_id": event["message_id"],
                    "channel": event["channel"],
                    "machine": event["machine"],
                    "occurred_at": event["occurred_at"].isoformat(),
                    **event["detail"],
                },
            )
    return new
