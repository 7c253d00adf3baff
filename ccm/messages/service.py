"""Accepting messages and reading their state. Delivery itself is in :mod:`ccm.messages.delivery`."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session, selectinload

from ccm import jobs
from ccm.config import Settings
from ccm.db import utcnow
from ccm.errors import NotFound, ValidationFailed
from ccm.ids import new_id
from ccm.message_templates.models import MessageTemplate, TemplateVersion
from ccm.message_templates.rendering import missing_variables, pick_variant
from ccm.messages.models import PENDING_STATUSES, Message, MessageStatus
from ccm.messages.schemas import SendIn
from ccm.messages.tasks import DELIVER
from ccm.pagination import PageQuery, paginate, split_page
from ccm.profiles.models import Profile
from ccm.profiles.service import get_profile, resolve_recipient


def send_message(*, session: Session, settings: Settings, workspace_id: str, request: SendIn,
                 idempotency_key: str | None) -> Message:
    """Accept a message: pin the template version, write the message and its delivery job.

    Raises:
      ValidationFailed: unknown recipient or template, a declared variable missing from the data
        and the profile, or a channel the template has no variant for. Nothing is written.
    """
    send_key = f"api:{idempotency_key}" if idempotency_key else None
    if send_key:  # the key's stored answer may have expired; the message it made has not
        existing = session.scalar(select(Message).where(Message.workspace_id == workspace_id,
                                                        Message.send_key == send_key))
        if existing is not None:
            return existing
    inline = request.to if request.to.model_fields_set - {"external_id"} else None
    if inline is None and not request.to.external_id:
        raise ValidationFailed("to: give an external_id or an inline profile", field="to")
    profile = resolve_recipient(session=session, workspace_id=workspace_id,
                                external_id=request.to.external_id, inline=inline)
    version = _latest_version(session, workspace_id, request.template)
    _check_request(request, version, profile)
    message_id = new_id("msg")
    now = utcnow()
    message = Message(
        id=message_id, workspace_id=workspace_id, profile_id=profile.id, source="api",
        send_key=send_key or f"api:{message_id}", category=request.category or version.category,
        topic=request.topic, template_version_id=version.id, template_key=request.template,
        template_version=version.version, channel_override=request.channel, reply_to=request.reply_to,
        data=request.data, status=MessageStatus.QUEUED, created_at=now, updated_at=now,
        deadline_at=request.deadline or now + dt.timedelta(seconds=settings.default_send_window),
    )
    session.add(message)
    jobs.enqueue(session, DELIVER, message_id, grace=settings.relay_grace)
    return message


def get_message(*, session: Session, workspace_id: str, message_id: str) -> Message:
    message = session.scalar(
        select(Message).where(Message.id == message_id, Message.workspace_id == workspace_id)
        .options(selectinload(Message.attempts))
    )
    if message is None:
        raise NotFound(f"no message {message_id!r}", field="id")
    return message


def list_messages(*, session: Session, workspace_id: str, page: PageQuery, status: str | None,
                  external_id: str | None) -> tuple[list[Message], str | None]:
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
        update(Message).where(Message.profile_id == profile_id, Message.status.in_(PENDING_STATUSES))
        .values(status=MessageStatus.SKIPPED, reason=reason, finished_at=now, updated_at=now)
    )
    return result.rowcount  # type: ignore[attr-defined]


def _latest_version(session: Session, workspace_id: str, key: str) -> TemplateVersion:
    version = session.scalar(
        select(TemplateVersion).join(MessageTemplate, TemplateVersion.template_id == MessageTemplate.id)
        .where(MessageTemplate.workspace_id == workspace_id, MessageTemplate.key == key,
               TemplateVersion.version == MessageTemplate.latest_version)
    )
    if version is None:
        raise ValidationFailed(f"template: no published template with key {key!r}", field="template")
    return version


def _check_request(request: SendIn, version: TemplateVersion, profile: Profile) -> None:
    missing = missing_variables(version.variables, request.data, profile.attributes)
    if missing:
        raise ValidationFailed(
            f"data.{missing[0]}: the template needs {', '.join(missing)}; give it in data or as a profile attribute",
            field=f"data.{missing[0]}", details={"missing": missing})
    if request.channel and pick_variant(version.variants, request.channel, profile.locale,
                                        version.default_locale) is None:
        raise ValidationFailed(f"channel: template {request.template!r} has no {request.channel} variant",
                               field="channel")
    if version.category == "marketing" and request.category == "transactional":
        raise ValidationFailed("category: a marketing template cannot be sent as transactional", field="category")


def message_payload(message: Message) -> dict[str, Any]:
    return {"id": message.id, "status": message.status}
