"""Messages CCM sends on its own to a known profile — a trigger's today — in the caller's
transaction, so that what caused the message (an ingested event) and the message commit together.

A message may be due later. Its row is written ``queued`` at once (visible in the API and on the
timeline, ``next_attempt_at`` its due time) and its delivery job waits in the job outbox until
then, where the relay publishes it: the timer is a database row, never a broker message, so a
broker restart or a delay of weeks loses nothing. Its deadline runs from the due time.

A message the template cannot make (a variable missing from the data and the profile, a
marketing template asked to go as transactional), or marketing email from a workspace without a
postal address (reason ``no_postal_address``), is written and ended ``skipped`` with the
reason at once: the caller's work (the event) is not refused for it, and nothing is dropped
silently.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, replace
from typing import Any, Literal

from sqlalchemy import Connection, select
from sqlalchemy.orm import Session

from ccm import jobs
from ccm.db import insert_ignoring_conflicts, utcnow
from ccm.errors import NotFound, ValidationFailed
from ccm.ids import new_id
from ccm.message_templates.rendering import PublishedTemplate
from ccm.messages import state
from ccm.messages.accept import message_row
from ccm.messages.admission import Recipient, check_request, email_refusal, template_of
from ccm.messages.models import Message, MessageStatus
from ccm.messages.tasks import DELIVER
from ccm.profiles.models import Profile
from ccm.runtime import Runtime
from ccm.validation import Channel
from ccm.workspaces.compliance import NO_POSTAL_ADDRESS

_message = Message.__table__


@dataclass(frozen=True)
class ProfileSend:
    """One message to queue. ``template_version_id`` is the template's latest published version
    when the caller read it with its own query (None: no published version); ``send_key`` is
    unique per workspace, so a repeated cause makes no second message."""

    profile_id: str
    template: str
    template_version_id: str | None
    data: dict[str, Any]
    send_key: str
    source: str
    category: Literal["transactional", "marketing"] | None = None
    topic: str | None = None
    channels: list[Channel] | None = None
    due_at: dt.datetime | None = None
    triggered_by: dict[str, Any] | None = None
    deadline: dt.datetime | None = None
    """Default: the send window (``CCM_DEFAULT_SEND_WINDOW``) from the due time."""
    channel: Channel | None = None
    reply_to: str | None = None
    track: bool = True


@dataclass(frozen=True)
class Queued:
    """What became of a :class:`ProfileSend`. ``message_id`` is None only when there was no
    template to make a message of; ``made`` is False when the send key had its message already
    (then ``message_id`` is that one); ``refused`` says why the message was skipped at once."""

    message_id: str | None
    made: bool
    refused: str | None = None


def queue_message(*, session: Session, runtime: Runtime, workspace_id: str, send: ProfileSend) -> Queued:
    """Write the message and its delivery job (due at ``send.due_at``, or published after commit).

    Returns what became of it; raises nothing for a message the template cannot make (see the
    module docstring).
    """
    try:
        template = template_of(session, runtime, send.template, send.template_version_id)
    except NotFound as error:
        return Queued(None, made=False, refused=error.message)
    profile = session.get(Profile, send.profile_id)  # the caller's identity map has it, as a rule
    attributes, locale = (profile.attributes or {}, profile.locale) if profile else ({}, None)
    recipient = Recipient(send.profile_id, attributes, locale)
    refused = _refusal(template, recipient, send) or _postal_refusal(session, workspace_id, template, recipient, send)
    now = utcnow()
    message_id = new_id("msg")
    row = _row(runtime, workspace_id, message_id, recipient, template, send, now)
    connection = session.connection()
    if not _insert(connection, row):
        return Queued(_existing(connection, workspace_id, send.send_key), made=False)
    if refused is not None:
        state.transition(session, message_id, expect=MessageStatus.QUEUED, to=MessageStatus.SKIPPED, reason=refused)
        return Queued(message_id, made=True, refused=refused)
    delay = max((send.due_at - now).total_seconds(), 0.0) if send.due_at else 0.0
    jobs.enqueue(session, DELIVER, message_id, grace=runtime.settings.relay_grace, delay=delay)
    return Queued(message_id, made=True)


def _refusal(template: PublishedTemplate, recipient: Recipient, send: ProfileSend) -> str | None:
    try:
        check_request(template, recipient, data=send.data, channel=None, category=send.category)
    except ValidationFailed as error:
        return f"not_sendable: {error.message}"
    return None


def _postal_refusal(
    session: Session, workspace_id: str, template: PublishedTemplate, recipient: Recipient, send: ProfileSend
) -> str | None:
    """``no_postal_address`` for marketing email from a workspace without a postal address."""
    return NO_POSTAL_ADDRESS if email_refusal(session, workspace_id, template, recipient, send) else None


def _row(
    runtime: Runtime,
    workspace_id: str,
    message_id: str,
    recipient: Recipient,
    template: PublishedTemplate,
    send: ProfileSend,
    now: dt.datetime,
) -> dict[str, Any]:
    """The API's row for the same send, with this one's source, due time and cause."""
    window = dt.timedelta(seconds=runtime.settings.default_send_window)
    send = replace(send, deadline=send.deadline or (send.due_at or now) + window)
    row = message_row(runtime, workspace_id, message_id, recipient, template, send, send.send_key, now)
    return row | {"source": send.source, "triggered_by": send.triggered_by, "next_attempt_at": send.due_at}


def _insert(connection: Connection, row: dict[str, Any]) -> bool:
    """Insert the message unless its send key has one; whether it was made."""
    statement = insert_ignoring_conflicts(connection.dialect.name, _message, _message.c.id)
    return connection.execute(statement, row).scalar() is not None


def _existing(connection: Connection, workspace_id: str, send_key: str) -> str:
    return connection.execute(
        select(_message.c.id).where(_message.c.workspace_id == workspace_id, _message.c.send_key == send_key)
    ).scalar_one()
