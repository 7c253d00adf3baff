"""The consent ledger: record decisions, derive the current consent, decide per message.

Marketing messages need consent for their channel and topic: the latest record for that topic or
for all topics (``*``) decides; with none, the topic's mode does (``opt_out`` topics may be sent
until revoked, ``opt_in`` topics need a grant). Transactional messages bypass topic consent (but
never the suppression list).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection, Mapping
from typing import Any

from sqlalchemy import ARRAY, ColumnElement, String, any_, bindparam, or_, select
from sqlalchemy.orm import Session

from ccm.consent.models import ALL_TOPICS, ConsentRecord
from ccm.consent.schemas import ConsentIn, ConsentState
from ccm.db import dialect_of, insert_many, utcnow
from ccm.ids import new_id
from ccm.workspaces.schemas import WorkspacePolicy

_TABLE = ConsentRecord.__table__
_LATEST = (  # prebuilt: runs for every marketing message and candidate channel
    select(_TABLE.c.status)
    .where(
        _TABLE.c.profile_id == bindparam("b_profile"),
        _TABLE.c.channel == bindparam("b_channel"),
        or_(_TABLE.c.topic == bindparam("b_topic"), _TABLE.c.topic == ALL_TOPICS),
    )
    .order_by(_TABLE.c.recorded_at.desc(), _TABLE.c.id.desc())
    .limit(1)
)


def record_consent(
    *, session: Session, workspace_id: str, profile_id: str, data: ConsentIn, actor: str | None
) -> ConsentRecord:
    record = ConsentRecord(
        workspace_id=workspace_id,
        profile_id=profile_id,
        channel=data.channel,
        topic=data.topic,
        status=data.status,
        source=data.source,
        actor=actor,
        ip=data.ip,
        user_agent=data.user_agent,
        proof=data.proof,
        recorded_at=utcnow(),
    )
    session.add(record)
    session.flush()
    return record


def record_many(*, session: Session, workspace_id: str, records: list[dict[str, Any]], actor: str | None) -> None:
    """Append many decisions in one statement (a file import). Each record gives ``profile_id``,
    ``channel``, ``topic``, ``status``, ``source`` and ``proof``."""
    if not records:
        return
    now = utcnow()
    rows = [
        {
            "id": new_id("cns"),
            "workspace_id": workspace_id,
            "actor": actor,
            "ip": None,
            "user_agent": None,
            "recorded_at": now,
            **record,
        }
        for record in records
    ]
    insert_many(session.connection(), _TABLE, rows, ignoring=False)


def latest_statuses(*, session: Session, profile_ids: Collection[str]) -> dict[tuple[str, str, str], str]:
    """The latest status per (profile id, channel, topic) of these profiles, in one query."""
    if not profile_ids:
        return {}
    rows = session.execute(
        select(_TABLE.c.profile_id, _TABLE.c.channel, _TABLE.c.topic, _TABLE.c.status)
        .where(_among(session))
        .order_by(_TABLE.c.recorded_at, _TABLE.c.id),
        {"ids": list(profile_ids)},
    )
    return {(row.profile_id, row.channel, row.topic): row.status for row in rows}


_Latest = tuple[dt.datetime, str, str]
Known = Mapping[str, Mapping[tuple[str, str], _Latest]]
"""Consent read ahead for a batch of messages: profile id → (channel, topic) → the latest
record's (recorded at, id, status); a profile read with no records maps to an empty mapping."""


def read_ahead(*, session: Session, profile_ids: Collection[str]) -> dict[str, dict[tuple[str, str], _Latest]]:
    """Every decision :func:`allows` needs about these profiles, in one read: the ``known`` it
    takes in the same transaction instead of a query per message and channel."""
    known: dict[str, dict[tuple[str, str], _Latest]] = {profile_id: {} for profile_id in profile_ids}
    if not known:
        return known
    rows = session.execute(
        select(_TABLE.c.profile_id, _TABLE.c.channel, _TABLE.c.topic, _TABLE.c.recorded_at, _TABLE.c.id)
        .add_columns(_TABLE.c.status)
        .where(_among(session))
        .order_by(_TABLE.c.recorded_at, _TABLE.c.id),
        {"ids": list(known)},
    )
    for profile_id, channel, topic, recorded_at, record_id, status in rows:
        known[profile_id][channel, topic] = (recorded_at, record_id, status)
    return known


def _among(session: Session) -> ColumnElement[bool]:
    """``profile_id`` is one of the ``ids`` parameter."""
    column = _TABLE.c.profile_id
    if dialect_of(session) == "postgresql":  # one array parameter: one statement whatever the count
        return column == any_(bindparam("ids", type_=ARRAY(String)))
    return column.in_(bindparam("ids", expanding=True))


def history(*, session: Session, profile_id: str) -> list[ConsentRecord]:
    return list(
        session.scalars(
            select(ConsentRecord)
            .where(ConsentRecord.profile_id == profile_id)
            .order_by(ConsentRecord.recorded_at.desc(), ConsentRecord.id.desc())
        )
    )


def current(records: list[ConsentRecord]) -> list[ConsentState]:
    """The latest record per (channel, topic), from a newest-first history."""
    latest: dict[tuple[str, str], ConsentRecord] = {}
    for record in records:
        latest.setdefault((record.channel, record.topic), record)
    return [
        ConsentState(channel=r.channel, topic=r.topic, status=r.status, since=r.recorded_at, source=r.source)
        for r in sorted(latest.values(), key=lambda r: (r.channel, r.topic))
    ]


def latest_status(*, session: Session, profile_id: str, channel: str, topic: str | None) -> str | None:
    """The status of the record that decides ``topic`` on ``channel`` (the latest for the topic or
    for all topics), or None when there is none."""
    return session.execute(
        _LATEST, {"b_profile": profile_id, "b_channel": channel, "b_topic": topic or ALL_TOPICS}
    ).scalar()


def allows(
    *,
    session: Session,
    profile_id: str,
    channel: str,
    topic: str | None,
    policy: WorkspacePolicy,
    known: Known | None = None,
) -> bool:
    """Whether a marketing message on ``channel`` about ``topic`` may go to the profile now. A
    profile ``known`` answers for (:func:`read_ahead` in this transaction) is not read again."""
    topic = topic or ALL_TOPICS
    if known is not None and profile_id in known:
        latest = _latest_known(known[profile_id], channel, topic)
    else:
        latest = latest_status(session=session, profile_id=profile_id, channel=channel, topic=topic)
    if latest is not None:
        return bool(latest == "granted")
    declared = policy.topics.get(topic)
    return (declared.mode if declared else policy.consent_default) == "opt_out"


def _latest_known(records: Mapping[tuple[str, str], _Latest], channel: str, topic: str) -> str | None:
    """What :func:`latest_status` would read: the later of the topic's and all topics' records."""
    found = [record for record in (records.get((channel, topic)), records.get((channel, ALL_TOPICS))) if record]
    return max(found)[2] if found else None
