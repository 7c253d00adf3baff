"""Accepting a batch of messages (``POST /v1/messages/batch``): every item checked as a single send
would be and answered on its own, the accepted ones written in one transaction with one
multi-row statement per table, their jobs published together after commit."""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ARRAY, BindParameter, Column, Connection, String, and_, any_, bindparam, select
from sqlalchemy.orm import Session

from ccm import jobs
from ccm.db import insert_many, utcnow
from ccm.errors import CCMError, Conflict, IdempotencyKeyReused, NotFound, ValidationFailed
from ccm.ids import new_id
from ccm.message_templates.rendering import PublishedTemplate
from ccm.message_templates.service import is_internal
from ccm.messages.accept import (
    DROP_EXPIRED_KEY,
    Accepted,
    Keyed,
    key_row_for,
    message_row,
    replay_error,
    replayed,
    store_answers,
)
from ccm.messages.accept import TABLES as _TABLES
from ccm.messages.admission import (
    Recipient,
    check_marketing_email,
    check_request,
    found_recipient,
    is_inline,
    template_of,
)
from ccm.messages.models import MessageStatus
from ccm.messages.schemas import SendIn
from ccm.messages.tasks import DELIVER, DELIVER_BATCH
from ccm.runtime import Runtime

_profile, _template, _version, _message, _jobs, _keys = _TABLES


@dataclass(frozen=True)
class Item:
    """One message of a batch, with its idempotency key (if any)."""

    request: SendIn
    keyed: Keyed | None


Answer = Accepted | CCMError
"""What one item of a batch got: accepted (or replayed), or the error a single send would have."""
ITEM_ERRORS = (NotFound, ValidationFailed, Conflict, IdempotencyKeyReused)
"""The errors that refuse one item of a batch (404, 422, 409); any other fails the whole request."""

_Rows = tuple[dict[str, Any], dict[str, Any] | None]
"""A batch item's message row and its key row (if it has a key)."""


def accept_batch(*, session: Session, runtime: Runtime, workspace_id: str, items: Sequence[Item]) -> list[Answer]:
    """Accept every item that a single send would accept, in one transaction: three lookups for
    all items, one multi-row insert per table, the jobs published together after commit.

    Each item is answered on its own, in order — accepted, replayed from its key, or the error a
    single send of it would get — as if the items had been sent one after another: an item with
    the key of an earlier accepted item is a repeat of that request (its answer, or a 422 when
    the body differs).
    """
    connection, now = session.connection(), utcnow()
    lookups = _batch_lookups(connection, workspace_id, items)
    answers: list[Answer | None] = [None] * len(items)
    rows: dict[int, _Rows] = {}
    first: dict[str, int] = {}
    repeats: dict[int, int] = {}
    for index, item in enumerate(items):
        earlier = first.get(item.keyed.key) if item.keyed else None
        if earlier is not None and not isinstance(answers[earlier], CCMError):
            repeats[index] = earlier
            continue
        if item.keyed:
            first[item.keyed.key] = index
        try:
            answers[index] = _stored_answer(connection, workspace_id, item, lookups, now)
            if answers[index] is None:
                rows[index] = _prepared(session, runtime, workspace_id, item, lookups, now)
        except ITEM_ERRORS as error:
            answers[index] = error
    made = _insert_batch(connection, runtime, workspace_id, items, rows, answers)
    for index, earlier in repeats.items():
        answers[index] = _repeat(items[index], items[earlier], answers[earlier])
    # A single job for one message; else the rows go to the workers in batches.
    if len(made) == 1:
        jobs.publish_after_commit(session, DELIVER, [(made[0],)])
    else:
        jobs.publish_batches_after_commit(session, DELIVER_BATCH, made, size=runtime.settings.delivery_batch)
    return [answer for answer in answers if answer is not None]


@dataclass
class _Lookups:
    workspace_id: str
    profiles: dict[str, Any]
    versions: dict[str, str]
    stored: dict[str, Any]


def _among(column: Any, name: str, dialect: str) -> Any:
    """``column IN (the list bound as name)``: one array parameter on PostgreSQL (one prepared
    statement whatever the count), an expanding list on SQLite."""
    if dialect == "postgresql":
        return column == any_(bindparam(name, type_=ARRAY(String)))
    return column.in_(bindparam(name, expanding=True))


@functools.cache
def _batch_statement(kind: str, dialect: str) -> Any:
    workspace: BindParameter[str] = bindparam("workspace_id")
    columns: tuple[Column[Any], ...]
    if kind == "profiles":
        columns = (_profile.c.external_id, _profile.c.id, _profile.c.attributes, _profile.c.locale)
        return select(*columns).where(
            _profile.c.workspace_id == workspace, _among(_profile.c.external_id, "names", dialect)
        )
    if kind == "versions":
        latest = and_(_version.c.template_id == _template.c.id, _version.c.version == _template.c.latest_version)
        return (
            select(_template.c.key, _version.c.id)
            .join(_version, latest)
            .where(_template.c.workspace_id == workspace, _among(_template.c.key, "names", dialect))
        )
    if kind == "keys":
        columns = (_keys.c.key, _keys.c.request_hash, _keys.c.status_code, _keys.c.response, _keys.c.expires_at)
        return select(*columns).where(_keys.c.workspace_id == workspace, _among(_keys.c.key, "names", dialect))
    assert kind == "send_keys"
    columns = (_message.c.send_key, _message.c.id, _message.c.status)
    return select(*columns).where(_message.c.workspace_id == workspace, _among(_message.c.send_key, "names", dialect))


def _rows_named(connection: Connection, kind: str, workspace_id: str, names: Sequence[str]) -> dict[str, Any]:
    if not names:
        return {}
    statement = _batch_statement(kind, connection.dialect.name)
    return {row[0]: row for row in connection.execute(statement, {"workspace_id": workspace_id, "names": list(names)})}


def _batch_lookups(connection: Connection, workspace_id: str, items: Sequence[Item]) -> _Lookups:
    by_id = {i.request.to.external_id for i in items if i.request.to.external_id and not is_inline(i.request)}
    profiles = _rows_named(connection, "profiles", workspace_id, sorted(by_id))
    versions = _rows_named(connection, "versions", workspace_id, sorted({i.request.template for i in items}))
    stored = _rows_named(connection, "keys", workspace_id, sorted({i.keyed.key for i in items if i.keyed}))
    return _Lookups(workspace_id, profiles, {key: row.id for key, row in versions.items()}, stored)


def _stored_answer(
    connection: Connection, workspace_id: str, item: Item, lookups: _Lookups, now: dt.datetime
) -> Accepted | None:
    """The stored answer of the item's key, or None when the item is new work.

    Raises:
      IdempotencyKeyReused, Conflict: as for a single send.
    """
    stored = lookups.stored.get(item.keyed.key) if item.keyed else None
    if stored is None:
        return None
    assert item.keyed is not None
    if stored.expires_at >= now:
        return replayed(item.keyed, stored.request_hash, stored.status_code, stored.response)
    connection.execute(DROP_EXPIRED_KEY, {"workspace_id": workspace_id, "key": item.keyed.key, "now": now})
    return None


def _prepared(
    session: Session, runtime: Runtime, workspace_id: str, item: Item, lookups: _Lookups, now: dt.datetime
) -> _Rows:
    """The item's rows, once it passes the checks a single send makes.

    Raises:
      NotFound, ValidationFailed: as for a single send; nothing of the item is written.
    """
    request = item.request
    if is_internal(request.template):
        raise NotFound(f"template: no published template with key {request.template!r}", field="template")
    if is_inline(request):
        with session.begin_nested():  # the inline profile is written only if its item is accepted
            recipient = found_recipient(session, workspace_id, request, None)
            template = _checked(session, runtime, request, recipient, lookups)
    else:
        row = lookups.profiles.get(request.to.external_id or "")
        found = _Found(row.id, row.attributes, row.locale) if row is not None else _Found(None, {}, None)
        recipient = found_recipient(session, workspace_id, request, found)
        template = _checked(session, runtime, request, recipient, lookups)
    message_id = new_id("msg")
    send_key = f"api:{item.keyed.key}" if item.keyed else f"api:{message_id}"
    message = message_row(runtime, workspace_id, message_id, recipient, template, request, send_key, now)
    return message, key_row_for(runtime, workspace_id, item.keyed, message_id, now) if item.keyed else None


@dataclass(frozen=True)
class _Found:
    profile_id: str | None
    attributes: dict[str, Any]
    locale: str | None


def _checked(
    session: Session, runtime: Runtime, request: SendIn, recipient: Recipient, lookups: _Lookups
) -> PublishedTemplate:
    template = template_of(session, runtime, request.template, lookups.versions.get(request.template))
    check_request(template, recipient, data=request.data, channel=request.channel, category=request.category)
    check_marketing_email(session, lookups.workspace_id, template, recipient, request)
    return template


def _insert_batch(
    connection: Connection,
    runtime: Runtime,
    workspace_id: str,
    items: Sequence[Item],
    rows: dict[int, _Rows],
    answers: list[Answer | None],
) -> list[str]:
    """Write the prepared items — keys first, one multi-row statement per table, in key order so
    that concurrent batches lock alike and cannot deadlock — and answer each. Returns the ids of
    the messages made, in item order."""
    dialect = connection.dialect.name
    _insert_keys(connection, dialect, workspace_id, items, rows, answers)
    if not rows:
        return []
    order = sorted(rows, key=lambda i: rows[i][0]["send_key"])
    inserted = insert_many(connection, _message, [rows[i][0] for i in order], "id")
    made = {row[0] for row in inserted}
    existing = [i for i in order if rows[i][0]["id"] not in made]
    if existing:  # their send keys were used before, and their idempotency answers have expired
        found = _rows_named(connection, "send_keys", workspace_id, [rows[i][0]["send_key"] for i in existing])
        stored: dict[str, tuple[str, str]] = {}
        for index in existing:
            message, key = rows[index]
            row = found[message["send_key"]]
            answers[index] = Accepted(row.id, row.status)
            if key is not None:
                stored[key["key"]] = (row.id, row.status)
        if stored:
            store_answers(connection, workspace_id, stored)
    ids = [rows[i][0]["id"] for i in sorted(rows) if rows[i][0]["id"] in made]
    if ids:
        now, grace = rows[order[0]][0]["created_at"], runtime.settings.relay_grace
        insert_many(connection, _jobs, [jobs.outbox_row(DELIVER, id_, grace=grace, now=now) for id_ in ids], None)
    for index, (message, _) in rows.items():
        if message["id"] in made:
            answers[index] = Accepted(message["id"], MessageStatus.QUEUED)
    return ids


def _insert_keys(
    connection: Connection,
    dialect: str,
    workspace_id: str,
    items: Sequence[Item],
    rows: dict[int, _Rows],
    answers: list[Answer | None],
) -> None:
    """Reserve the prepared items' keys; an item whose key a concurrent request took since the
    lookup gets that request's answer instead (and is dropped from ``rows``)."""
    key_rows = {i: key_row for i, (_, key_row) in rows.items() if key_row is not None}
    keyed = sorted(key_rows, key=lambda i: key_rows[i]["key"])
    if not keyed:
        return
    inserted = insert_many(connection, _keys, [key_rows[i] for i in keyed], "key")
    taken = {row[0] for row in inserted}
    lost = [i for i in keyed if key_rows[i]["key"] not in taken]
    stored = _rows_named(connection, "keys", workspace_id, [key_rows[i]["key"] for i in lost])
    for index in lost:
        keyed_item = items[index].keyed
        assert keyed_item is not None
        row = stored[keyed_item.key]
        try:
            answers[index] = replayed(keyed_item, row.request_hash, row.status_code, row.response)
        except ITEM_ERRORS as error:
            answers[index] = error
        del rows[index]


def _repeat(item: Item, first: Item, first_answer: Answer | None) -> Answer:
    """An item with the key of an earlier item of the batch: the same request gets that item's
    answer (replayed), another request a 422."""
    assert item.keyed is not None and first.keyed is not None and first_answer is not None
    if item.keyed.request_hash != first.keyed.request_hash:
        return replay_error(item.keyed)
    if isinstance(first_answer, Accepted):
        return Accepted(first_answer.id, first_answer.status, replayed=True)
    return first_answer
