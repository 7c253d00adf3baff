"""Making, changing and reading triggers. An edit never changes a version: it writes the next
one and makes it current, so an event is handled by the version current when it arrived (see
:mod:`ccm.triggers.firing`). An edit that changes nothing writes nothing."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, cast

from pydantic import ValidationError
from sqlalchemy import Row, Select, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from ccm.db import utcnow
from ccm.errors import Conflict, NotFound, ValidationFailed
from ccm.http import validation_failed
from ccm.message_templates.models import MessageTemplate
from ccm.message_templates.service import is_internal
from ccm.messages.models import Message
from ccm.pagination import PageQuery, paginate, split_page
from ccm.triggers.models import Trigger, TriggerFire, TriggerVersion
from ccm.triggers.schemas import TriggerDefinition, TriggerIn, TriggerPatch

KEPT_WHEN_NULL = ("event", "where", "template", "delay_seconds")
"""Fields of a PATCH for which null means "unchanged": a definition cannot be without them."""


@dataclass(frozen=True)
class Current:
    """A trigger with its current version."""

    trigger: Trigger
    version: TriggerVersion


def create_trigger(*, session: Session, workspace_id: str, data: TriggerIn) -> Current:
    """Make a trigger at version 1, active.

    Raises:
      Conflict: the workspace has a trigger with this key.
      NotFound: the template is not published.
      ValidationFailed: the template is marketing and the trigger asks for transactional.
    """
    _check_template(session, workspace_id, data)
    trigger = Trigger(workspace_id=workspace_id, key=data.key, name=data.name, current_version=1)
    try:
        with session.begin_nested():
            session.add(trigger)
    except IntegrityError:
        raise Conflict(f"key: the workspace has a trigger {data.key!r}", field="key") from None
    version = _version(trigger, 1, data)
    session.add(version)
    session.flush()
    return Current(trigger, version)


def get_trigger(*, session: Session, workspace_id: str, key: str) -> Current:
    """Raises NotFound: no trigger with this key in the workspace."""
    trigger = _trigger(session, workspace_id, key)
    return Current(trigger, _version_of(session, trigger))


def list_triggers(*, session: Session, workspace_id: str) -> list[Current]:
    """Every trigger of the workspace, by key, with its current version (one query)."""
    rows = session.execute(
        select(Trigger, TriggerVersion)
        .join(
            TriggerVersion,
            (TriggerVersion.trigger_id == Trigger.id) & (TriggerVersion.version == Trigger.current_version),
        )
        .where(Trigger.workspace_id == workspace_id)
        .order_by(Trigger.key)
    ).all()
    return [Current(trigger, version) for trigger, version in rows]


def replace_trigger(
    *, session: Session, workspace_id: str, key: str, definition: TriggerDefinition, name: str | None
) -> Current:
    """Make ``definition`` the trigger's next version, unless it is the current one.

    Raises:
      NotFound, ValidationFailed: as :func:`create_trigger`.
    """
    trigger = _trigger(session, workspace_id, key, lock=True)
    current = _version_of(session, trigger)
    if name is not None:
        trigger.name = name
    if definition_of(current) != definition:
        _check_template(session, workspace_id, definition)
        current = _version(trigger, trigger.current_version + 1, definition)
        session.add(current)
        trigger.current_version = current.version
    trigger.updated_at = utcnow()
    session.flush()
    return Current(trigger, current)


def edit_trigger(*, session: Session, workspace_id: str, key: str, patch: TriggerPatch) -> Current:
    """:func:`replace_trigger` with the current definition changed by the fields ``patch`` gives."""
    trigger = _trigger(session, workspace_id, key, lock=True)
    given = patch.model_dump(include=patch.model_fields_set - {"name"})
    for field in KEPT_WHEN_NULL:
        if given.get(field) is None:
            given.pop(field, None)
    try:
        definition = TriggerDefinition.model_validate(definition_of(_version_of(session, trigger)).model_dump() | given)
    except ValidationError as exc:
        raise validation_failed(exc) from None
    return replace_trigger(session=session, workspace_id=workspace_id, key=key, definition=definition, name=patch.name)


def set_active(*, session: Session, workspace_id: str, key: str, active: bool) -> Current:
    """Start or stop a trigger for the events that arrive from now on. Messages already waiting
    keep their due time and their cancel event."""
    trigger = _trigger(session, workspace_id, key, lock=True)
    if trigger.active != active:
        trigger.active, trigger.updated_at = active, utcnow()
    session.flush()
    return Current(trigger, _version_of(session, trigger))


def list_versions(*, session: Session, workspace_id: str, key: str) -> Sequence[TriggerVersion]:
    trigger = _trigger(session, workspace_id, key)
    return session.scalars(
        select(TriggerVersion).where(TriggerVersion.trigger_id == trigger.id).order_by(TriggerVersion.version.desc())
    ).all()


def list_fires(
    *, session: Session, workspace_id: str, key: str, page: PageQuery, status: str | None
) -> tuple[Sequence[Row[Any]], str | None]:
    """The trigger's firings, newest first, each with its version number and its message's status."""
    trigger = _trigger(session, workspace_id, key)
    statement = (
        select(TriggerFire, TriggerVersion.version, Message.status.label("message_status"))
        .join(TriggerVersion, TriggerVersion.id == TriggerFire.trigger_version_id)
        .outerjoin(Message, Message.id == TriggerFire.message_id)
        .where(TriggerFire.trigger_id == trigger.id)
    )
    if status:
        statement = statement.where(TriggerFire.status == status)
    rows = session.execute(paginate(cast(Select[Any], statement), TriggerFire.id, page)).all()
    return split_page(rows, page, lambda row: row.TriggerFire.id)


def definition_of(version: TriggerVersion) -> TriggerDefinition:
    """The definition a version was written from (validated again: it was valid when written)."""
    cancel = {"event": version.cancel_event, "match_property": version.cancel_match_property}
    return TriggerDefinition.model_validate(
        {
            "event": version.event,
            "where": version.filters,
            "template": version.template_key,
            "category": version.category,
            "topic": version.topic,
            "channels": version.channels,
            "delay_seconds": version.delay_seconds,
            "cancel": cancel if version.cancel_event else None,
        }
    )


def _version(trigger: Trigger, number: int, definition: TriggerDefinition) -> TriggerVersion:
    cancel = definition.cancel
    return TriggerVersion(
        trigger_id=trigger.id,
        version=number,
        event=definition.event,
        filters=[item.model_dump() for item in definition.where],
        template_key=definition.template,
        category=definition.category,
        topic=definition.topic,
        channels=list(definition.channels) if definition.channels else None,
        delay_seconds=definition.delay_seconds,
        cancel_event=cancel.event if cancel else None,
        cancel_match_property=cancel.match_property if cancel else None,
        created_at=utcnow(),
    )


def _check_template(session: Session, workspace_id: str, definition: TriggerDefinition) -> None:
    """The template must be published now, and may go in the trigger's category."""
    template = session.scalar(
        select(MessageTemplate).where(
            MessageTemplate.workspace_id == workspace_id, MessageTemplate.key == definition.template
        )
    )
    if template is None or template.latest_version is None or is_internal(definition.template):
        raise NotFound(f"template: no published template with key {definition.template!r}", field="template")
    if template.category == "marketing" and definition.category == "transactional":
        raise ValidationFailed("category: a marketing template cannot be sent as transactional", field="category")


def _trigger(session: Session, workspace_id: str, key: str, *, lock: bool = False) -> Trigger:
    statement = select(Trigger).where(Trigger.workspace_id == workspace_id, Trigger.key == key)
    if lock:
        statement = statement.with_for_update()  # one new version at a time (PostgreSQL; SQLite has one writer)
    trigger = session.scalar(statement)
    if trigger is None:
        raise NotFound(f"no trigger {key!r}", field="key")
    return trigger


def _version_of(session: Session, trigger: Trigger) -> TriggerVersion:
    return session.scalars(
        select(TriggerVersion).where(
            TriggerVersion.trigger_id == trigger.id, TriggerVersion.version == trigger.current_version
        )
    ).one()
