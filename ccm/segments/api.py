"""``/v1/segments``: make, change and read segments, count them and look at a sample."""

from __future__ import annotations

from flask import Blueprint, current_app
from flask.blueprints import BlueprintSetupState
from sqlalchemy import select
from werkzeug.routing import BaseConverter

from ccm.access import Permission
from ccm.auth.api import current_workspace_id, require_api_key
from ccm.db import utcnow
from ccm.errors import ValidationFailed
from ccm.http import db_session, endpoint, permissions
from ccm.profiles.models import Profile
from ccm.profiles.schemas import ProfileOut
from ccm.segments import members, service
from ccm.segments.compiler import compile_node, segment_condition
from ccm.segments.counting import count_audience
from ccm.segments.models import Segment, SegmentKind
from ccm.segments.schemas import (
    CountOut,
    MembersIn,
    MembersOut,
    RulesIn,
    SampleOut,
    SampleQuery,
    SegmentId,
    SegmentIn,
    SegmentList,
    SegmentOut,
    SegmentPage,
    SegmentPatch,
)


class SegmentConverter(BaseConverter):
    """A segment's id or name in a path, except ``count``: ``/v1/segments/count`` is the live
    count alone (else its ``Allow`` would list the methods of ``/v1/segments/{id}`` too)."""

    regex = r"(?!count$)[^/]+"


bp = Blueprint("segments", __name__, url_prefix="/v1/segments")
bp.before_request(require_api_key)
permissions(bp, writes=Permission.SEGMENTS)


@bp.record_once
def _register_converter(state: BlueprintSetupState) -> None:
    state.app.url_map.converters["segment"] = SegmentConverter


@endpoint(
    bp,
    "",
    method="POST",
    body=SegmentIn,
    responses={201: SegmentOut},
    errors=(409,),
    summary="Create a segment: rules (who they match, evaluated whenever it is used) or a static list",
)
def create_segment(body: SegmentIn) -> tuple[SegmentOut, int]:
    kind = SegmentKind(body.kind)
    if (kind == SegmentKind.RULES) != (body.rules is not None):
        message = "a rules segment needs rules" if kind == SegmentKind.RULES else "a static list has no rules"
        raise ValidationFailed(f"rules: {message}", field="rules")
    segment = service.create_segment(
        session=db_session(), workspace_id=current_workspace_id(), name=body.name, kind=kind, tree=body.rules
    )
    return _out(segment), 201


@endpoint(bp, "", method="GET", query=SegmentPage, responses={200: SegmentList}, summary="List segments, newest first")
def list_segments(query: SegmentPage) -> SegmentList:
    items, cursor = service.list_segments(session=db_session(), workspace_id=current_workspace_id(), page=query)
    return SegmentList(items=[_out(segment) for segment in items], next_cursor=cursor)


@endpoint(
    bp, "/<segment:segment_id>", method="GET", responses={200: SegmentOut}, summary="Read a segment (by id or name)"
)
def get_segment(segment_id: SegmentId) -> SegmentOut:
    return _out(service.get_segment(db_session(), current_workspace_id(), segment_id))


@endpoint(
    bp,
    "/<segment:segment_id>",
    method="PATCH",
    body=SegmentPatch,
    responses={200: SegmentOut},
    errors=(409,),
    summary="Rename a segment or replace its rules",
)
def patch_segment(segment_id: SegmentId, body: SegmentPatch) -> SegmentOut:
    segment = service.update_segment(
        session=db_session(),
        workspace_id=current_workspace_id(),
        segment_id=segment_id,
        name=body.name,
        tree=body.rules,
    )
    return _out(segment)


@endpoint(
    bp,
    "/<segment:segment_id>",
    method="DELETE",
    responses={204: None},
    errors=(409,),
    summary="Delete a segment (refused while another segment's rules name it)",
)
def delete_segment(segment_id: SegmentId) -> tuple[None, int]:
    service.delete_segment(session=db_session(), workspace_id=current_workspace_id(), segment_id=segment_id)
    return None, 204


@endpoint(
    bp,
    "/<segment:segment_id>/members",
    method="POST",
    body=MembersIn,
    responses={200: MembersOut},
    errors=(409,),
    summary="Add profiles (by external id, up to 10,000 a call) to a static list; unknown ids are reported",
)
def add_members(segment_id: SegmentId, body: MembersIn) -> MembersOut:
    change = members.add_members(
        session=db_session(), workspace_id=current_workspace_id(), segment_id=segment_id, external_ids=body.profiles
    )
    return MembersOut(added=change.changed, unknown=change.unknown)


@endpoint(
    bp,
    "/<segment:segment_id>/members",
    method="DELETE",
    body=MembersIn,
    responses={200: MembersOut},
    errors=(409,),
    summary="Remove profiles (by external id) from a static list; unknown ids are reported",
)
def remove_members(segment_id: SegmentId, body: MembersIn) -> MembersOut:
    change = members.remove_members(
        session=db_session(), workspace_id=current_workspace_id(), segment_id=segment_id, external_ids=body.profiles
    )
    return MembersOut(removed=change.changed, unknown=change.unknown)


@endpoint(
    bp,
    "/<segment:segment_id>/count",
    method="GET",
    responses={200: CountOut},
    summary="How many profiles the segment has now; past CCM_SEGMENT_COUNT_BUDGET_MS an estimate (approximate: true)",
)
def count_segment(segment_id: SegmentId) -> CountOut:
    session, workspace_id = db_session(), current_workspace_id()
    segment = service.get_segment(session, workspace_id, segment_id)
    counted = count_audience(
        session, workspace_id, lambda ctx: segment_condition(segment, ctx), now=utcnow(), budget_ms=_budget()
    )
    return CountOut(count=counted.count, approximate=counted.approximate)


@endpoint(
    bp,
    "/count",
    method="POST",
    body=RulesIn,
    responses={200: CountOut},
    summary="Count the profiles rules not yet saved would match (a live count while a segment is edited)",
)
def count_rules(body: RulesIn) -> CountOut:
    workspace_id, tree = current_workspace_id(), body.rules
    with current_app.extensions["ccm"].db.read_only() as session:  # a count writes nothing: no write lock
        counted = count_audience(
            session, workspace_id, lambda ctx: compile_node(tree, ctx), now=utcnow(), budget_ms=_budget()
        )
    return CountOut(count=counted.count, approximate=counted.approximate)


@endpoint(
    bp,
    "/<segment:segment_id>/sample",
    method="GET",
    query=SampleQuery,
    responses={200: SampleOut},
    summary="Some of the segment's profiles, newest first (limit: 10 by default, 100 at most)",
)
def sample_segment(segment_id: SegmentId, query: SampleQuery) -> SampleOut:
    session, workspace_id = db_session(), current_workspace_id()
    ids = service.audience_query(session, workspace_id, segment_id, now=utcnow())
    profiles = session.scalars(
        select(Profile).where(Profile.id.in_(ids)).order_by(Profile.id.desc()).limit(query.limit)
    )
    return SampleOut(data=[ProfileOut.model_validate(profile) for profile in profiles])


def _budget() -> int:
    return int(current_app.extensions["ccm"].settings.segment_count_budget_ms)


def _out(segment: Segment) -> SegmentOut:
    return SegmentOut(
        id=segment.id,
        name=segment.name,
        kind=SegmentKind(segment.kind),
        rules=segment.rules,
        created_at=segment.created_at,
        updated_at=segment.updated_at,
    )
