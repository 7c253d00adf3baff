"""Accepting messages and reading their state. The API's accept path is :mod:`ccm.messages.accept`;
delivery itself is in :mod:`ccm.messages.delivery`."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from ccm import jobs
from ccm.db import utcnow
from ccm.errors import NotFound
from ccm.ids import new_id
from ccm.message_templates.models import MessageTemplate
from ccm.message_templates.schemas import ChatVariant, EmailVariant, SmsVariant, TemplateIn
from ccm.message_templates.service import create_template, publish
from ccm.messages import state
from ccm.messages.accept import Accepted, accept_message
from ccm.messages.admission import Recipient, check_request, latest_template
from ccm.messages.models import PENDING_STATUSES, Message, MessageStatus
from ccm.messages.schemas import SendIn
from ccm.messages.tasks import DELIVER
from ccm.pagination import PageQuery, paginate, split_page
from ccm.profiles.models import Profile
from ccm.profiles.service import get_profile
from ccm.runtime import Runtime

__all__ = ["Accepted", "send_message"]


def send_message(
    *,
    session: Session,
    runtime: Runtime,
    workspace_id: str,
    request: SendIn,
    idempotency_key: str | None,
    message_id: str | None = None,
) -> Accepted:
    """Accept a message from CCM itself (the demo seed, benchmarks): pin the template version,
    write the message and its delivery job. ``idempotency_key`` only names the send key, so a
    second call with it returns the first message as it is; the API stores its answers too
    (:func:`ccm.messages.accept.accept_message`).

    Raises:
      NotFound, ValidationFailed: unknown recipient or template, a declared variable missing from
        the data and the profile, or a channel the template has no variant for. Nothing is written.
    """
    message_id = message_id or new_id("msg")
    return accept_message(
        session=session,
        runtime=runtime,
        workspace_id=workspace_id,
        request=request,
        keyed=None,
        send_key=f"api:{idempotency_key}" if idempotency_key else None,
        message_id=message_id,
    )


def get_message(*, session: Session, workspace_id: str, message_id: str) -> Message:
    message = session.scalar(
        select(Message)
        .where(Message.id == message_id, Message.workspace_id == workspace_id)
        .options(selectinload(Message.attempts))
    )
    if message is None:
        raise NotFound(f"no message {message_id!r}", field="id")
    return message


def list_messages(
    *,
    session: Session,
    workspace_id: str,
    page: PageQuery,
    status: str | None,
    external_id: str | None,
    campaign_id: str | None = None,
) -> tuple[list[Message], str | None]:
    statement = select(Message).where(Message.workspace_id == workspace_id)
    if campaign_id:  # read through the campaign's (campaign_id, id) index
        statement = statement.where(Message.campaign_id == campaign_id)
    if status:
        statement = statement.where(Message.status == status)
    if external_id:
        profile = get_profile(session=session, workspace_id=workspace_id, external_id=external_id)
        statement = statement.where(Message.profile_id == profile.id)
    rows = session.scalars(paginate(statement, Message.id, page)).all()
    items, cursor = split_page(rows, page, lambda message: message.id)
    return list(items), cursor


def cancel_pending_messages(*, session: Session, profile_id: str, reason: str, announce: bool = True) -> int:
    """End every message still waiting to go to the profile as ``skipped(reason)``; a message
    claimed meanwhile is left to its run. ``announce=False``: no webhooks (see
    :func:`ccm.messages.state.transition_many`). Returns how many were cancelled."""
    waiting = session.scalars(
        select(Message.id).where(Message.profile_id == profile_id, Message.status.in_(PENDING_STATUSES))
    ).all()
    cancelled = state.transition_many(
        session, waiting, expect=PENDING_STATUSES, to=MessageStatus.SKIPPED, reason=reason, announce=announce
    )
    return len(cancelled)


def skip_pending(*, session: Session, message_ids: Sequence[str], reason: str) -> list[str]:
    """End the messages that are still waiting to go as ``skipped(reason)`` (a cancelled trigger,
    say); one that a run has claimed meanwhile goes on. Returns the ids that were skipped."""
    return state.transition_many(
        session, list(message_ids), expect=PENDING_STATUSES, to=MessageStatus.SKIPPED, reason=reason
    )


SYSTEM_TEMPLATE = "ccm.system-text"
"""A template every workspace gets when CCM first needs it: plain text for CCM's own messages."""
SYSTEM_TEXT = TemplateIn(
    key=SYSTEM_TEMPLATE,
    category="transactional",
    variables=["text"],
    description="CCM's own texts",
    variants=[
        SmsVariant(channel="sms", body="{{ text }}"),
        ChatVariant(channel="chat", body="{{ text }}"),
        EmailVariant(channel="email", subject="{{ text[:60] }}", text="{{ text }}", html="<p>{{ text }}</p>"),
    ],
)


def send_system_text(
    *,
    session: Session,
    runtime: Runtime,
    workspace_id: str,
    profile_id: str,
    channel: str,
    text: str,
    source: str = "keyword",
    conversation_id: str | None = None,
) -> str:
    """Queue a plain text (keyword confirmations, agents' replies) on one channel. Source
    ``keyword`` is answered even on a channel the person just stopped."""
    _system_template(session, runtime, workspace_id)
    return send_to_profile(
        session=session,
        runtime=runtime,
        workspace_id=workspace_id,
        profile_id=profile_id,
        template=SYSTEM_TEMPLATE,
        data={"text": text},
        channel=channel,
        source=source,
        conversation_id=conversation_id,
        track=False,
    )


def send_to_profile(
    *,
    session: Session,
    runtime: Runtime,
    workspace_id: str,
    profile_id: str,
    template: str,
    data: dict[str, Any],
    channel: str,
    source: str,
    conversation_id: str | None = None,
    track: bool = True,
) -> str:
    """Queue a message to a known profile on one channel (no API request behind it), in the
    template's category: a marketing template still needs the person's consent.

    Raises:
      ValidationFailed: no such published template, a variable missing from ``data`` and the
        profile, or no variant for ``channel``. Nothing is written.
    """
    published = latest_template(session, runtime, workspace_id, template)
    profile = session.get(Profile, profile_id)
    check_request(
        published,
        Recipient(profile_id, profile.attributes if profile else {}, profile.locale if profile else None),
        data=data,
        channel=channel,
    )
    message_id, now = new_id("msg"), utcnow()
    session.add(
        Message(
            id=message_id,
            workspace_id=workspace_id,
            profile_id=profile_id,
            source=source,
            send_key=f"{source}:{message_id}",
            category=published.category,
            template_version_id=published.id,
            template_key=template,
            template_version=published.version,
            channel_override=channel,
            data=data,
            route=[],
            status=MessageStatus.QUEUED,
            created_at=now,
            updated_at=now,
            failed_channels=[],
            track=track,
            conversation_id=conversation_id,
            deadline_at=now + dt.timedelta(seconds=runtime.settings.default_send_window),
        )
    )
    session.flush()
    jobs.enqueue(session, DELIVER, message_id, grace=runtime.settings.relay_grace)
    return message_id


def _system_template(session: Session, runtime: Runtime, workspace_id: str) -> str:
    exists = session.scalar(
        select(MessageTemplate.id).where(
            MessageTemplate.workspace_id == workspace_id, MessageTemplate.key == SYSTEM_TEMPLATE
        )
    )
    if exists is None:
        create_template(
            session=session,
            sandbox=runtime.sandbox,
            workspace_id=workspace_id,
            data=SYSTEM_TEXT,
            internal=True,
        )
        publish(session=session, sandbox=runtime.sandbox, workspace_id=workspace_id, key=SYSTEM_TEMPLATE, internal=True)
    return SYSTEM_TEMPLATE
