"""What ingested events do to triggers: fire them and cancel the messages they left waiting.

Runs in the ingestion request's transaction, right after the events are stored (see
:mod:`ccm.ingest.api`), so an accepted event and its triggered message commit together — or
neither does, and the sender's retry makes both. Only fresh events get here: a retried one (the
same ``messageId``) was recognised by ingestion and fires nothing; past ingestion's dedupe window,
the message's send key ``trigger:{version id}:{messageId}`` still makes it once.

Per request, whatever it carries: one query for the workspace's active trigger versions named by
its events, one for the pending firings its events could cancel. Events are handled in the
order they came, so in one batch ``cart_abandoned`` then ``order_completed`` leaves nothing
waiting.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, Row, Select, and_, delete, literal_column, select, update
from sqlalchemy.orm import Session

from ccm.db import dialect_of, insert_ignoring_conflicts, rowcount
from ccm.ids import first_id_at, new_id
from ccm.message_templates.models import MessageTemplate, TemplateVersion
from ccm.messages.queued import ProfileSend, Queued, queue_message
from ccm.messages.service import skip_pending
from ccm.runtime import Runtime
from ccm.triggers.matching import match_value, passes
from ccm.triggers.models import FireStatus, Trigger, TriggerFire, TriggerVersion

FIRING_KINDS = frozenset({"track"})
"""The kinds of call that fire and cancel triggers: events a backend or app reports."""

_t, _v, _f = Trigger.__table__, TriggerVersion.__table__, TriggerFire.__table__
_tpl, _tplv = MessageTemplate.__table__, TemplateVersion.__table__
_PENDING: ColumnElement[str] = literal_column("'pending'")  # a literal, so PostgreSQL plans use the partial indexes

_LATEST_TEMPLATE = (
    select(_tplv.c.id)
    .join(_tpl, _tplv.c.template_id == _tpl.c.id)
    .where(_tpl.c.workspace_id == _t.c.workspace_id, _tpl.c.key == _v.c.template_key)
    .where(_tplv.c.version == _tpl.c.latest_version)
    .correlate(_t, _v)
    .scalar_subquery()
)


@dataclass(frozen=True)
class Reacted:
    fired: int
    cancelled: int


@dataclass(frozen=True)
class _Waiting:
    """A pending firing a later event may cancel."""

    fire_id: str
    profile_id: str
    cancel_event: str
    cancel_match: str | None
    match_property: str | None
    message_id: str | None
    due_at: dt.datetime


def react(
    *, session: Session, runtime: Runtime, workspace_id: str, events: Sequence[Mapping[str, Any]], now: dt.datetime
) -> Reacted:
    """Cancel and fire what the freshly stored ``events`` (ingestion's rows) call for.

    Returns how many triggers fired and how many waiting messages were cancelled.
    """
    tracks = [event for event in events if event["kind"] in FIRING_KINDS and event["name"]]
    if not tracks:
        return Reacted(0, 0)
    names = {event["name"] for event in tracks}
    versions = _active_versions(session, workspace_id, names)
    waiting = _waiting(session, workspace_id, {event["profile_id"] for event in tracks}, names, now)
    fired = cancelled = 0
    for event in tracks:
        cancelled += _cancel(session, event, _cancelled_by(event, waiting, now), now)
        for version in versions.get(event["name"], ()):
            if passes(version.filters, event["properties"]):
                fired += _fire(session, runtime, workspace_id, version, event, now, waiting)
    return Reacted(fired, cancelled)


def release_due(*, session: Session, now: dt.datetime, limit: int = 10_000) -> int:
    """Mark pending firings whose due time has come ``released``: their messages went to
    delivery and can no longer be cancelled. Returns how many."""
    due = due_query(now, limit).scalar_subquery()
    result = session.execute(
        update(_f).where(_f.c.id.in_(due), _f.c.status == _PENDING).values(status=FireStatus.RELEASED, updated_at=now)
    )
    return rowcount(result)


def purge_finished(*, session: Session, before: dt.datetime, limit: int = 10_000) -> int:
    """Delete up to ``limit`` finished firings made before ``before`` (a range of the primary
    key: ids are time-ordered); pending ones stay whatever their age. Returns how many."""
    old = (
        select(_f.c.id)
        .where(_f.c.id < first_id_at("fire", before), _f.c.status != _PENDING)
        .order_by(_f.c.id)
        .limit(limit)
        .scalar_subquery()
    )
    return rowcount(session.execute(delete(_f).where(_f.c.id.in_(old))))


def due_query(now: dt.datetime, limit: int) -> Select[Any]:
    """Pending firings whose due time has come (the partial index ``ix_trigger_fire_pending_due``)."""
    return select(_f.c.id).where(_f.c.status == _PENDING, _f.c.due_at <= now).limit(limit)


def active_versions_query(workspace_id: str, names: Collection[str]) -> Select[Any]:
    """The current versions of the workspace's active triggers for these event names, each with
    its trigger's key and its template's latest published version."""
    return (
        select(_v, _t.c.key.label("trigger_key"), _LATEST_TEMPLATE.label("template_version_id"))
        .join(_t, and_(_t.c.id == _v.c.trigger_id, _t.c.current_version == _v.c.version))
        .where(_t.c.workspace_id == workspace_id, _t.c.active.is_(True), _v.c.event.in_(list(names)))
        .order_by(_t.c.key)
    )


def waiting_query(
    workspace_id: str, profile_ids: Collection[str], names: Collection[str], now: dt.datetime
) -> Select[Any]:
    """The pending firings of these profiles that events with these names may cancel (the
    partial index ``ix_trigger_fire_pending_cancel``), with their version's match property."""
    return (
        select(_f.c.id, _f.c.profile_id, _f.c.cancel_event, _f.c.cancel_match, _f.c.message_id, _f.c.due_at)
        .add_columns(_v.c.cancel_match_property)
        .join(_v, _v.c.id == _f.c.trigger_version_id)
        .where(
            _f.c.workspace_id == workspace_id,
            _f.c.profile_id.in_(list(profile_ids)),
            _f.c.cancel_event.in_(list(names)),
            _f.c.status == _PENDING,
            _f.c.due_at > now,
        )
        .order_by(_f.c.id)
    )


def _active_versions(session: Session, workspace_id: str, names: Collection[str]) -> dict[str, list[Row[Any]]]:
    by_event: dict[str, list[Row[Any]]] = {}
    for row in session.execute(active_versions_query(workspace_id, names)):
        by_event.setdefault(row.event, []).append(row)
    return by_event


def _waiting(
    session: Session, workspace_id: str, profile_ids: Collection[str], names: Collection[str], now: dt.datetime
) -> list[_Waiting]:
    rows = session.execute(waiting_query(workspace_id, profile_ids, names, now))
    return [
        _Waiting(
            row.id,
            row.profile_id,
            row.cancel_event,
            row.cancel_match,
            row.cancel_match_property,
            row.message_id,
            row.due_at,
        )
        for row in rows
    ]


def _cancelled_by(event: Mapping[str, Any], waiting: list[_Waiting], now: dt.datetime) -> list[_Waiting]:
    """The waiting firings ``event`` cancels, taken off ``waiting``."""
    hits = [
        one
        for one in waiting
        if one.profile_id == event["profile_id"]
        and one.cancel_event == event["name"]
        and one.due_at > now
        and _matches(one, event["properties"])
    ]
    for one in hits:
        waiting.remove(one)
    return hits


def _matches(one: _Waiting, properties: Mapping[str, Any]) -> bool:
    """With a match property, the cancel event repeats the firing event's value (a firing
    event without one has nothing to match: only its delay ends it)."""
    if one.match_property is None:
        return True
    return one.cancel_match is not None and match_value(properties, one.match_property) == one.cancel_match


def _cancel(session: Session, event: Mapping[str, Any], hits: list[_Waiting], now: dt.datetime) -> int:
    """Skip the hits' messages (those not already on their way) and record how each firing ended."""
    if not hits:
        return 0
    reason = f"cancelled: {event['name']} arrived ({event['id']})"
    messages = [one.message_id for one in hits if one.message_id]
    skipped = set(skip_pending(session=session, message_ids=messages, reason=reason))
    for one in hits:
        cancelled = one.message_id in skipped
        session.execute(
            update(_f)
            .where(_f.c.id == one.fire_id, _f.c.status == _PENDING)
            .values(
                status=FireStatus.CANCELLED if cancelled else FireStatus.RELEASED,
                reason=reason if cancelled else f"not cancelled by {event['name']} ({event['id']}): already on its way",
                updated_at=now,
            )
        )
    return len(skipped)


def _fire(
    session: Session,
    runtime: Runtime,
    workspace_id: str,
    version: Row[Any],
    event: Mapping[str, Any],
    now: dt.datetime,
    waiting: list[_Waiting],
) -> bool:
    """Queue the version's message for the event and record the firing (added to ``waiting``
    when a later event may cancel it). False when the event's message was made before (a retry
    past ingestion's dedupe window)."""
    due_at = now + dt.timedelta(seconds=version.delay_seconds)
    send = _send(version, event, due_at)
    queued = queue_message(session=session, runtime=runtime, workspace_id=workspace_id, send=send)
    if not queued.made and queued.message_id is not None:
        return False
    row = _fire_row(workspace_id, version, event, queued, due_at, now)
    session.execute(insert_ignoring_conflicts(dialect_of(session), _f), row)
    if row["status"] is FireStatus.PENDING and version.cancel_event:
        waiting.append(
            _Waiting(
                row["id"],
                row["profile_id"],
                version.cancel_event,
                row["cancel_match"],
                version.cancel_match_property,
                queued.message_id,
                due_at,
            )
        )
    return True


def _fire_row(
    workspace_id: str,
    version: Row[Any],
    event: Mapping[str, Any],
    queued: Queued,
    due_at: dt.datetime,
    now: dt.datetime,
) -> dict[str, Any]:
    return {
        "id": new_id("fire"),
        "workspace_id": workspace_id,
        "trigger_id": version.trigger_id,
        "trigger_version_id": version.id,
        "profile_id": event["profile_id"],
        "event_id": event["id"],
        "event_message_id": event["message_id"],
        "message_id": queued.message_id,
        "due_at": due_at,
        "cancel_event": version.cancel_event,
        "cancel_match": match_value(event["properties"], version.cancel_match_property),
        "status": _status(version, queued),
        "reason": queued.refused,
        "created_at": now,
        "updated_at": now,
    }


def _status(version: Row[Any], queued: Queued) -> FireStatus:
    if queued.refused is not None:
        return FireStatus.SKIPPED
    return FireStatus.PENDING if version.delay_seconds else FireStatus.RELEASED


def _send(version: Row[Any], event: Mapping[str, Any], due_at: dt.datetime) -> ProfileSend:
    return ProfileSend(
        profile_id=event["profile_id"],
        template=version.template_key,
        template_version_id=version.template_version_id,
        data=dict(event["properties"]),
        send_key=f"trigger:{version.id}:{event['message_id']}",
        source="trigger",
        category=version.category,
        topic=version.topic,
        channels=version.channels,
        due_at=due_at if version.delay_seconds else None,
        triggered_by={
            "trigger": version.trigger_key,
            "version": version.version,
            "event": event["name"],
            "event_id": event["id"],
            "event_message_id": event["message_id"],
        },
    )
