"""Turning buffered tracking hits into engagement events, in batches (the ``engagement.record_hits``
actor, :mod:`ccm.engagement.tasks`, runs it every second)."""

from __future__ import annotations

import datetime as dt
import logging
from typing import TYPE_CHECKING, Any

from sqlalchemy import select

from ccm.engagement.service import record_events
from ccm.engagement.tracking import Hit, is_machine
from ccm.messages.models import Message

if TYPE_CHECKING:
    from ccm.runtime import Runtime

log = logging.getLogger(__name__)
_m = Message.__table__
BATCH = 1000
"""Hits recorded in one transaction."""


def drain_hits(runtime: Runtime, *, limit: int = BATCH) -> int:
    """Record one batch of hits; returns how many were taken."""
    buffer = runtime.hits
    hits = buffer.take(limit)
    if not hits:
        return 0
    try:
        with runtime.db.unit_of_work() as session:
            messages = {
                row.id: row
                for row in session.execute(
                    select(_m.c.id, _m.c.workspace_id, _m.c.profile_id, _m.c.channel, _m.c.finished_at).where(
                        _m.c.id.in_({hit.message_id for hit in hits})
                    )
                )
            }
            record_events(
                session, [_event(hit, messages[hit.message_id]) for hit in hits if hit.message_id in messages]
            )
    except Exception:
        buffer.release()
        raise
    buffer.done()
    return len(hits)


def _event(hit: Hit, message: Any) -> dict[str, Any]:
    at = dt.datetime.fromtimestamp(hit.at, dt.UTC)
    since_send = (at - message.finished_at).total_seconds() if message.finished_at else None
    detail = {"user_agent": hit.user_agent[:300], "ip": hit.ip}
    if hit.url:
        detail["url"] = hit.url
    return {
        "workspace_id": message.workspace_id,
        "profile_id": message.profile_id,
        "message_id": message.id,
        "channel": message.channel,
        "kind": hit.kind,
        "machine": is_machine(hit, seconds_after_send=since_send),
        "source": "tracking",
        "dedupe_key": f"hit:{hit.id}",
        "detail": detail,
        "occurred_at": at,
    }
