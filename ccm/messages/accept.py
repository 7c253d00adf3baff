"""Accepting messages from the API, one at a time or in batches, in the fewest statements that
keep the promise: the message, its delivery job and its ``Idempotency-Key`` answer are written in
one transaction, and the job is published right after it commits (the relay publishes whatever
that misses).

One message costs one lookup — the profile, the template's latest version and the key's stored
answer, in one statement — and, on PostgreSQL, one ``INSERT … WITH`` writing the key, the message
and the job (on SQLite, which has no data-modifying CTEs, three inserts). A batch
(:mod:`ccm.messages.bulk`) costs three lookups for all its items and one multi-row insert per
table. Both run Core statements on the
session's connection, built once: no ORM objects on this path (PostgreSQL prepares them after a
few uses). The stored answer is looked up before anything else is checked, so a repeated request
gets its first answer even when what it names has changed since.
"""

from __future__ import annotations

import datetime as dt
import functools
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, TextClause, and_, bindparam, literal_column, select, text
from sqlalchemy.dialects import postgresql
from sqlalchemy.orm import Session

from ccm import jobs
from ccm.db import insert_ignoring_conflicts, utcnow
from ccm.errors import CCMError, NotFound
from ccm.idempotency.service import TABLE as _keys
from ccm.idempotency.service import key_row, replay
from ccm.message_templates.models import MessageTemplate, TemplateVersion
from ccm.message_templates.rendering import PublishedTemplate
from ccm.message_templates.service import is_internal
from ccm.messages.admission import (
    LATEST_VERSION,
    Recipient,
    check_marketing_email,
    check_request,
    found_recipient,
    is_inline,
    template_of,
)
from ccm.messages.models import Message, MessageStatus
from ccm.messages.schemas import SendFields, SendIn
from ccm.messages.tasks import DELIVER
from ccm.profiles.models import Profile
from ccm.runtime import Runtime


@dataclass(frozen=True)
class Accepted:
    id: str
    status: str
    replayed: bool = False


@dataclass(frozen=True)
class Keyed:
    """An ``Idempotency-Key``, the fingerprint of the request it came with, and the field that
    names it in errors (the header, or a batch item's ``idempotency_key``)."""

    key: str
    request_hash: str
    field: str = "Idempotency-Key"


_profile, _template, _version, _message = (
    Profile.__table__,
    MessageTemplate.__table__,
    TemplateVersion.__table__,
    Message.__table__,
)
_jobs = jobs.PendingJob.__table__
TABLES = (_profile, _template, _version, _message, _jobs, _keys)

_one = select(literal_column("1").label("one")).subquery("one")
_LOOKUP = select(
    _profile.c.id.label("profile_id"),
    _profile.c.attributes,
    _profile.c.locale,
    LATEST_VERSION.scalar_subquery().label("version_id"),
    _keys.c.request_hash,
    _keys.c.status_code,
    _keys.c.response,
    _keys.c.expires_at,
).select_from(
    _one.outerjoin(
        _profile,
        and_(_profile.c.workspace_id == bindparam("workspace_id"), _profile.c.external_id == bindparam("external_id")),
    ).outerjoin(_keys, and_(_keys.c.workspace_id == bindparam("workspace_id"), _keys.c.key == bindparam("key")))
)
"""Everything one send needs to know before it writes, in one statement (PostgreSQL plans the
three parts as index lookups; see tests/test_postgres_plans.py)."""
_BY_SEND_KEY = select(_message.c.id, _message.c.status).where(
    _message.c.workspace_id == bindparam("workspace_id"), _message.c.send_key == bindparam("send_key")
)
_STORED_KEY = select(_keys.c.request_hash, _keys.c.status_code, _keys.c.response).where(
    _keys.c.workspace_id == bindparam("workspace_id"), _keys.c.key == bindparam("key")
)
DROP_EXPIRED_KEY = _keys.delete().where(
    _keys.c.workspace_id == bindparam("workspace_id"),
    _keys.c.key == bindparam("key"),
    _keys.c.expires_at < bindparam("now"),
)
_STORE_ANSWER = (
    _keys.update()
    .where(_keys.c.workspace_id == bindparam("workspace_id"), _keys.c.key == bindparam("b_key"))
    .values(response=bindparam("b_response"))
)


def accept_message(
    *,
    session: Session,
    runtime: Runtime,
    workspace_id: str,
    request: SendIn,
    keyed: Keyed | None,
    send_key: str | None = None,
    message_id: str,
) -> Accepted:
    """Accept one message: pin the template version, write the message and its delivery job, and
    with ``keyed`` the key's answer; publish the job after commit. A message already made with the
    same send key (default: the idempotency key's) is answered as it is.

    Raises:
      NotFound: the recipient or template does not exist.
      ValidationFailed: a declared variable missing from the data and the profile, or a channel the
        template has no variant for. Nothing is written.
      IdempotencyKeyReused: the key was used with another request.
      Conflict: the request that has the key is still in progress.
    """
    if is_internal(request.template):  # CCM's own templates do not exist for API users
        raise NotFound(f"template: no published template with key {request.template!r}", field="template")
    connection, now = session.connection(), utcnow()
    found = connection.execute(
        _LOOKUP,
        {
            "workspace_id": workspace_id,
            "external_id": None if is_inline(request) else request.to.external_id,
            "template": request.template,
            "key": keyed.key if keyed else None,
        },
    ).one()
    if keyed and found.request_hash is not None:
        if found.expires_at >= now:
            return replayed(keyed, found.request_hash, found.status_code, found.response)
        connection.execute(DROP_EXPIRED_KEY, {"workspace_id": workspace_id, "key": keyed.key, "now": now})
    recipient = found_recipient(session, workspace_id, request, found)
    template = template_of(session, runtime, request.template, found.version_id)
    check_request(template, recipient, data=request.data, channel=request.channel, category=request.category)
    check_marketing_email(session, workspace_id, template, recipient, request)
    send_key = send_key or (f"api:{keyed.key}" if keyed else f"api:{message_id}")
    message = message_row(runtime, workspace_id, message_id, recipient, template, request, send_key, now)
    job = jobs.outbox_row(DELIVER, message_id, grace=runtime.settings.relay_grace, now=now)
    key = key_row_for(runtime, workspace_id, keyed, message_id, now) if keyed else None
    key_taken, made = _insert_one(connection, message, job, key)
    if not key_taken:  # a request with the same key committed since the lookup (or still runs)
        assert keyed is not None
        stored = connection.execute(_STORED_KEY, {"workspace_id": workspace_id, "key": keyed.key}).one()
        return replayed(keyed, stored.request_hash, stored.status_code, stored.response)
    if not made:  # the send key was used before and its idempotency answer has expired
        existing = connection.execute(_BY_SEND_KEY, {"workspace_id": workspace_id, "send_key": send_key}).one()
        if keyed:
            store_answers(connection, workspace_id, {keyed.key: (existing.id, existing.status)})
        return Accepted(existing.id, existing.status)
    jobs.publish_after_commit(session, DELIVER, [(message_id,)])
    return Accepted(message_id, MessageStatus.QUEUED)


def message_row(
    runtime: Runtime,
    workspace_id: str,
    message_id: str,
    recipient: Recipient,
    template: PublishedTemplate,
    request: SendFields,
    send_key: str,
    now: dt.datetime,
) -> dict[str, Any]:
    """Every column of a queued message from the API (the PostgreSQL statement lists them all)."""
    return {
        "id": message_id,
        "workspace_id": workspace_id,
        "profile_id": recipient.id,
        "source": "api",
        "send_key": send_key,
        "category": request.category or template.category,
        "topic": request.topic,
        "conversation_id": None,
        "template_version_id": template.id,
        "template_key": request.template,
        "template_version": template.version,
        "channel_override": request.channel,
        "allowed_channels": request.channels,
        "pinned_account": None,
        "failed_channels": [],
        "channel": None,
        "locale": None,
        "to_address": None,
        "segments": None,
        "reply_to": request.reply_to,
        "headers": None,
        "data": request.data,
        "track": request.track,
        "route": [],
        "status": MessageStatus.QUEUED,
        "reason": None,
        "deadline_at": request.deadline or now + dt.timedelta(seconds=runtime.settings.default_send_window),
        "next_attempt_at": None,
        "claim_token": None,
        "claimed_at": None,
        "claims": 0,
        "provider_message_id": None,
        "created_at": now,
        "updated_at": now,
        "finished_at": None,
    }


def key_row_for(runtime: Runtime, workspace_id: str, keyed: Keyed, message_id: str, now: dt.datetime) -> dict[str, Any]:
    # Stored with the answer a new message gets; corrected in the rare case it turns out another.
    answer = ({"id": message_id, "status": MessageStatus.QUEUED.value}, 202)
    return key_row(
        workspace_id=workspace_id,
        key=keyed.key,
        request_hash=keyed.request_hash,
        ttl=runtime.settings.idempotency_ttl,
        answer=answer,
        now=now,
    )


def replayed(keyed: Keyed, stored_hash: str, status_code: int, response: dict[str, Any]) -> Accepted:
    result = replay(
        stored_hash=stored_hash,
        status_code=status_code,
        response=response,
        request_hash=keyed.request_hash,
        field=keyed.field,
    )
    return Accepted(result.body["id"], result.body["status"], replayed=True)


def store_answers(connection: Connection, workspace_id: str, answers: dict[str, tuple[str, str]]) -> None:
    connection.execute(
        _STORE_ANSWER,
        [
            {"workspace_id": workspace_id, "b_key": key, "b_response": {"id": id_, "status": status}}
            for key, (id_, status) in answers.items()
        ],
    )


def _insert_one(
    connection: Connection, message: dict[str, Any], job: dict[str, Any], key: dict[str, Any] | None
) -> tuple[bool, bool]:
    """Write the key (if any), the message and its job; returns (key taken, message made).
    Nothing is made when the key is taken, and no job when the message's send key is."""
    if connection.dialect.name == "postgresql":
        params = {**_prefixed("m_", message), **_prefixed("j_", job), **(_prefixed("k_", key) if key else {})}
        row = connection.execute(_pg_accept(tuple(message), tuple(job), tuple(key or ())), params).one()
        return bool(row.keyed), bool(row.made)
    if key is not None and connection.execute(insert_ignoring(_keys, _keys.c.key, "sqlite"), key).scalar() is None:
        return False, False
    if connection.execute(insert_ignoring(_message, _message.c.id, "sqlite"), message).scalar() is None:
        return True, False
    connection.execute(insert_ignoring(_jobs, None, "sqlite"), job)
    return True, True


def insert_ignoring(table: Any, returning: Any, dialect: str) -> Any:
    return insert_ignoring_conflicts(dialect, table, returning)


def _prefixed(prefix: str, row: dict[str, Any]) -> dict[str, Any]:
    return {prefix + name: value for name, value in row.items()}


_PG = postgresql.dialect()


@functools.cache
def _pg_accept(message: tuple[str, ...], job: tuple[str, ...], key: tuple[str, ...]) -> TextClause:
    """One PostgreSQL statement for :func:`_insert_one`: the key (when there is one), then the
    message only if the key was free, then the job only if the message was made."""

    def typed(prefix: str, table: Any, columns: tuple[str, ...]) -> tuple[str, list[Any]]:
        values = ", ".join(f"CAST(:{prefix}{name} AS {table.c[name].type.compile(dialect=_PG)})" for name in columns)
        return values, [bindparam(prefix + name, type_=table.c[name].type) for name in columns]

    message_values, binds = typed("m_", _message, message)
    job_values, job_binds = typed("j_", _jobs, job)
    parts, keyed, taken = [], "1", ""
    if key:
        key_values, key_binds = typed("k_", _keys, key)
        binds += key_binds
        parts.append(
            f"k AS (INSERT INTO idempotency_key ({', '.join(key)}) VALUES ({key_values})"
            " ON CONFLICT DO NOTHING RETURNING 1)"
        )
        keyed, taken = "(SELECT count(*) FROM k)", " WHERE EXISTS (SELECT FROM k)"
    parts.append(
        f"m AS (INSERT INTO message ({', '.join(message)}) SELECT {message_values}{taken}"
        " ON CONFLICT DO NOTHING RETURNING id)"
    )
    parts.append(f"j AS (INSERT INTO job_outbox ({', '.join(job)}) SELECT {job_values} FROM m RETURNING 1)")
    sql = f"WITH {', '.join(parts)} SELECT {keyed} AS keyed, (SELECT count(*) FROM m) AS made"
    return text(sql).bindparams(*binds, *job_binds)


def replay_error(keyed: Keyed) -> CCMError:
    """The error a request with ``keyed``'s key but another body gets."""
    try:
        replay(stored_hash="", status_code=0, response={}, request_hash=keyed.request_hash, field=keyed.field)
    except CCMError as error:
        return error
    raise AssertionError("a replay with another request hash always raises")
