"""``/v1/triggers``: make, change, stop and read triggers, and see what each one fired."""

from __future__ import annotations

from flask import Blueprint

from ccm.access import Permission
from ccm.auth.api import current_workspace_id, require_api_key
from ccm.http import db_session, endpoint, permissions
from ccm.triggers import service
from ccm.triggers.models import FireStatus, TriggerFire, TriggerVersion
from ccm.triggers.schemas import (
    CancelOut,
    FireList,
    FireOut,
    FireQuery,
    TriggerDefinition,
    TriggerIn,
    TriggerKey,
    TriggerList,
    TriggerOut,
    TriggerPatch,
    TriggerPut,
    VersionList,
    VersionOut,
)

bp = Blueprint("triggers", __name__, url_prefix="/v1/triggers")
bp.before_request(require_api_key)
permissions(bp, writes=Permission.CAMPAIGNS)


@endpoint(
    bp,
    "",
    method="POST",
    body=TriggerIn,
    responses={201: TriggerOut},
    errors=(404, 409),
    summary="Create a trigger: when an event arrives for a profile, send a template (its template must be published)",
)
def create_trigger(body: TriggerIn) -> tuple[TriggerOut, int]:
    current = service.create_trigger(session=db_session(), workspace_id=current_workspace_id(), data=body)
    return _out(current), 201


@endpoint(bp, "", method="GET", responses={200: TriggerList}, summary="List triggers, by key")
def list_triggers() -> TriggerList:
    items = service.list_triggers(session=db_session(), workspace_id=current_workspace_id())
    return TriggerList(items=[_out(current) for current in items])


@endpoint(bp, "/<key>", method="GET", responses={200: TriggerOut}, summary="Read a trigger's current version")
def get_trigger(key: TriggerKey) -> TriggerOut:
    return _out(service.get_trigger(session=db_session(), workspace_id=current_workspace_id(), key=key))


@endpoint(
    bp,
    "/<key>",
    method="PUT",
    body=TriggerPut,
    responses={200: TriggerOut},
    summary="Replace a trigger's definition: a change is its next version, used by the events that arrive after it",
)
def put_trigger(key: TriggerKey, body: TriggerPut) -> TriggerOut:
    definition = TriggerDefinition.model_validate(body.model_dump(exclude={"name"}))
    current = service.replace_trigger(
        session=db_session(), workspace_id=current_workspace_id(), key=key, definition=definition, name=body.name
    )
    return _out(current)


@endpoint(
    bp,
    "/<key>",
    method="PATCH",
    body=TriggerPatch,
    responses={200: TriggerOut},
    summary="Change some of a trigger's definition: a change is its next version, used by later events",
)
def patch_trigger(key: TriggerKey, body: TriggerPatch) -> TriggerOut:
    current = service.edit_trigger(session=db_session(), workspace_id=current_workspace_id(), key=key, patch=body)
    return _out(current)


@endpoint(
    bp,
    "/<key>/deactivate",
    method="POST",
    responses={200: TriggerOut},
    summary="Stop a trigger for the events that arrive from now on (messages already waiting keep going)",
)
def deactivate_trigger(key: TriggerKey) -> TriggerOut:
    return _out(service.set_active(session=db_session(), workspace_id=current_workspace_id(), key=key, active=False))


@endpoint(bp, "/<key>/activate", method="POST", responses={200: TriggerOut}, summary="Start a stopped trigger again")
def activate_trigger(key: TriggerKey) -> TriggerOut:
    return _out(service.set_active(session=db_session(), workspace_id=current_workspace_id(), key=key, active=True))


@endpoint(
    bp, "/<key>/versions", method="GET", responses={200: VersionList}, summary="A trigger's versions, newest first"
)
def list_versions(key: TriggerKey) -> VersionList:
    versions = service.list_versions(session=db_session(), workspace_id=current_workspace_id(), key=key)
    return VersionList(items=[_version_out(version) for version in versions])


@endpoint(
    bp,
    "/<key>/fires",
    method="GET",
    query=FireQuery,
    responses={200: FireList},
    summary="What a trigger fired, newest first: the event, the message, and whether it waits, went or was cancelled",
)
def list_fires(key: TriggerKey, query: FireQuery) -> FireList:
    rows, cursor = service.list_fires(
        session=db_session(), workspace_id=current_workspace_id(), key=key, page=query, status=query.status
    )
    return FireList(
        items=[_fire_out(row.TriggerFire, row.version, row.message_status) for row in rows], next_cursor=cursor
    )


def _out(current: service.Current) -> TriggerOut:
    trigger, version = current.trigger, current.version
    return TriggerOut(
        key=trigger.key,
        name=trigger.name,
        active=trigger.active,
        created_at=trigger.created_at,
        updated_at=trigger.updated_at,
        **_version_out(version).model_dump(exclude={"created_at"}),
    )


def _fire_out(fire: TriggerFire, version: int, message_status: str | None) -> FireOut:
    return FireOut(
        id=fire.id,
        version=version,
        profile_id=fire.profile_id,
        event_id=fire.event_id,
        event_message_id=fire.event_message_id,
        message_id=fire.message_id,
        message_status=message_status,
        status=FireStatus(fire.status),
        reason=fire.reason,
        due_at=fire.due_at,
        created_at=fire.created_at,
    )


def _version_out(version: TriggerVersion) -> VersionOut:
    cancel = None
    if version.cancel_event is not None:
        cancel = CancelOut(event=version.cancel_event, match_property=version.cancel_match_property)
    return VersionOut(
        version=version.version,
        event=version.event,
        where=version.filters,
        template=version.template_key,
        category=version.category,
        topic=version.topic,
        channels=version.channels,
        delay_seconds=version.delay_seconds,
        cancel=cancel,
        created_at=version.created_at,
    )
