"""Accepting messages and reading their state. Delivery itself is in :mod:`ccm.messages.delivery`."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from sqlalchemy import bindparam, select, update
from sqlalchemy.orm import Session, selectinload

from ccm import jobs
from ccm.db import dialect_of, insert_ignoring_conflicts, utcnow
from ccm.errors import NotFound, ValidationFailed
from ccm.ids import new_id
from ccm.message_templates.models import MessageTemplate, TemplateVersion
from ccm.message_templates.rendering import PublishedTemplate, missing_variables
from ccm.message_templates.service import is_internal
from ccm.messages.models import PENDING_STATUSES, Message, MessageStatus
from ccm.messages.schemas import SendIn
from ccm.messages.tasks import DELIVER
from ccm.pagination import PageQuery, paginate, split_page
from ccm.profiles.models import Profile
from ccm.profiles.service import get_profile, resolve_recipient
from ccm.runtime import Runtime


@dataclass(frozen=True)
class Accepted:
    id: str
    status: str


@dataclass(frozen=True)
class Recipient:
    id: str
    attributes: dict[str, Any]
    locale: str | None


_profile, _template, _version, _message = (
    Profile.__table__,
    MessageTemplate.__table__,
    TemplateVersion.__table__,
    Message.__table__,
)
# Prebuilt Core statements: this is the hottest path of the API, and building ORM queries per
# request costs more than the database round trips themselves.
_RECIPIENT = select(_profile.c.id, _profile.c.attributes, _profile.c.locale).where(
    _profile.c.workspace_id == bindparam("workspace_id"), _profile.c.external_id == bindparam("external_id")
)
_LATEST_VERSION = (
    select(_version.c.id)
    .join(_template, _version.c.template_id == _template.c.id)
    .where(
        _template.c.workspace_id == bindparam("workspace_id"),
        _template.c.key == bindparam("key"),
        _version.c.version == _template.c.latest_version,
    )
)
_BY_SEND_KEY = select(_message.c.id, _message.c.status).where(
    _message.c.workspace_id == bindparam("workspace_id"), _message.c.send_key == bindparam("send_key")
)


def send_message(
    *,
    session: Session,
    runtime: Runtime,
    workspace_id: str,
    request: SendIn,
    idempotency_key: str | None,
    message_id: str | None = None,
) -> Accepted:
    """Accept a message: pin the template version, write the message and its delivery job.

    ``message_id`` may be chosen by the caller (to answer an idempotent request before the work).
    A message already made with the same idempotency key is returned as it is.

    Raises:
      ValidationFailed: unknown recipient or template, a declared variable missing from the data
        and the profile, or a channel the template has no variant for. Nothing is written.
    """
    if is_internal(request.template):  # CCM's own templates do not exist for API users
        raise NotFound(f"template: no published template with key {request.template!r}", field="template")
    recipient = _recipient(session, workspace_id, request)
    template = _latest_template(session, runtime, workspace_id, request.template)
    _check_request(template, recipient, data=request.data, channel=request.channel, category=request.category)
    message_id = message_id or new_id("msg")
    send_key = f"api:{idempotency_key}" if idempotency_key else f"api:{message_id}"
    now = utcnow()
    inserted = session.execute(
        insert_ignoring_conflicts(dialect_of(session), _message, _message.c.id),
        dict(
            id=message_id,
            workspace_id=workspace_id,
            profile_id=recipient.id,
            source="api",
            send_key=send_key,
            category=request.category or template.category,
            topic=request.topic,
            template_version_id=template.id,
            template_key=request.template,
            template_version=template.version,
            channel_override=request.channel,
            allowed_channels=request.channels,
            failed_channels=[],
            track=request.track,
            reply_to=request.reply_to,
            data=request.data,
            route=[],
            status=MessageStatus.QUEUED,
            claims=0,
            created_at=now,
            updated_at=now,
            deadline_at=request.deadline or now + dt.timedelta(seconds=runtime.settings.default_send_window),
            claim_token=None,
            claimed_at=None,
            next_attempt_at=None,
            locale=None,
            channel=None,
            to_address=None,
            reason=None,
            provider_message_id=None,
            finished_at=None,
        ),
    ).scalar()
    if inserted is None:  # the key was used before and its stored answer has expired
        existing = session.execute(_BY_SEND_KEY, {"workspace_id": workspace_id, "send_key": send_key}).one()
        return Accepted(existing.id, existing.status)
    jobs.enqueue(session, DELIVER, message_id, grace=runtime.settings.relay_grace)
    return Accepted(message_id, MessageStatus.QUEUED)


def _recipient(session: Session, workspace_id: str, request: SendIn) -> Recipient:
    inline = request.to if request.to.model_fields_set - {"external_id"} else None
    if inline is None:
        if not request.to.external_id:
            raise ValidationFailed("to: give an external_id or an inline profile", field="to")
        row = session.execute(_RECIPIENT, {"workspace_id": workspace_id, "external_id": request.to.external_id}).first()
        if row is None:
            raise NotFound(
                f"to.external_id: no profile with external_id {request.to.external_id!r}", field="to.external_id"
            )
        return Recipient(row.id, row.attributes, row.locale)
    profile = resolve_recipient(session=session, workspace_id=workspace_id, external_id=None, inline=inline)
    return Recipient(profile.id, profile.attributes, profile.locale)


def _latest_template(session: Session, runtime: Runtime, workspace_id: str, key: str) -> PublishedTemplate:
    version_id = session.execute(_LATEST_VERSION, {"workspace_id": workspace_id, "key": key}).scalar()
    if version_id is None:
        raise NotFound(f"template: no published template with key {key!r}", field="template")
    return runtime.templates.get(session, version_id, key, runtime.sandbox)


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
    *, session: Session, workspace_id: str, page: PageQuery, status: str | None, external_id: str | None
) -> tuple[list[Message], str | None]:
    statement = select(Message).where(Message.workspace_id == workspace_id)
    if status:
        statement = statement.where(Message.status == status)
    if external_id:
        profile = get_profile(session=session, workspace_id=workspace_id, external_id=external_id)
        statement = statement.where(Message.profile_id == profile.id)
    rows = session.scalars(paginate(statement, Message.id, page)).all()
    items, cursor = split_page(rows, page, lambda message: message.id)
    return list(items), cursor


def cancel_pending_messages(*, session: Session, profile_id: str, reason: str) -> int:
    """End every message still waiting to go to the profile as ``skipped(reason)``."""
    now = utcnow()
    result = session.execute(
        update(Message)
        .where(Message.profile_id == profile_id, Message.status.in_(PENDING_STATUSES))
        .values(status=MessageStatus.SKIPPED, reason=reason, finished_at=now, updated_at=now)
    )
    return result.rowcount  # type: ignore[attr-defined]


def _check_request(
    template: PublishedTemplate,
    recipient: Recipient,
    *,
    data: dict[str, Any],
    channel: str | None,
    category: str | None = None,
) -> None:
    missing = missing_variables(template.variables, data, recipient.attributes)
    if missing:
        raise ValidationFailed(
            f"data.{missing[0]}: the template needs {', '.join(missing)}; give it in data or as a profile attribute",
            field=f"data.{missing[0]}",
            details={"missing": missing},
        )
    if channel and template.variant_for(channel, recipient.locale) is None:
        raise ValidationFailed(f"channel: template {template.key!r} has no {channel} variant", field="channel")
    if template.category == "marketing" and category == "transactional":
        raise ValidationFailed("category: a marketing template cannot be sent as transactional", field="category")


SYSTEM_TEMPLATE = "ccm.system-text"
"""A template every workspace gets when CCM first needs it: plain text for CCM's own messages."""


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
    published = _latest_template(session, runtime, workspace_id, template)
    profile = session.get(Profile, profile_id)
    _check_request(
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
    from ccm.message_templates.schemas import TemplateIn
    from ccm.message_templates.service import create_template, publish

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
            data=TemplateIn(
                key=SYSTEM_TEMPLATE,
                category="transactional",
                variables=["text"],
                description="CCM's own texts",
                variants=[
                    {"channel": "sms", "body": "{{ text }}"},
                    {"channel": "chat", "body": "{{ text }}"},
                    {
                        "channel": "email",
                        "subject": "{{ text[:60] }}",
                        "text": "{{ text }}",
                        "html": "<p>{{ text }}</p>",
                    },
                ],
            ),
            internal=True,
        )  # type: ignore[list-item]
        publish(session=session, sandbox=runtime.sandbox, workspace_id=workspace_id, key=SYSTEM_TEMPLATE, internal=True)
    return SYSTEM_TEMPLATE
