"""Making, changing and reading segments, and their audience as SQL.

:func:`audience_query` is what campaigns call: ``select(profile.c.id)`` of every profile of the
workspace the segment matches now, merged profiles never, fit to be a subquery of an
``INSERT … SELECT`` or to be read in keyset chunks (``WHERE profile.id > :cursor ORDER BY
profile.id LIMIT n``).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from sqlalchemy import ColumnElement, FromClause, Select, String, cast, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from ccm.db import dialect_of, utcnow
from ccm.errors import Conflict, NotFound, ValidationFailed
from ccm.ids import new_id
from ccm.pagination import PageQuery, paginate, split_page
from ccm.profiles.models import Profile
from ccm.segments import rules
from ccm.segments.compiler import Context, compile_node, parse_stored, segment_condition
from ccm.segments.models import Segment, SegmentKind
from ccm.workspaces.service import workspace_policy

PROFILE = Profile.__table__


def get_segment(session: Session, workspace_id: str, segment_id_or_name: str) -> Segment:
    """A segment of the workspace, by id or by name.

    Raises:
      NotFound: none has that id or name in this workspace.
    """
    segment = find_segment(session, workspace_id, segment_id_or_name)
    if segment is None:
        raise NotFound(f"no segment {segment_id_or_name!r}", field="segment")
    return segment


def find_segment(session: Session, workspace_id: str, reference: str) -> Segment | None:
    return session.scalar(
        select(Segment).where(
            Segment.workspace_id == workspace_id, or_(Segment.id == reference, Segment.name == reference)
        )
    )


def audience_query(session: Session, workspace_id: str, segment_id: str, *, now: dt.datetime) -> Select[tuple[str]]:
    """``select(profile.c.id)`` of the segment's audience at ``now``: the profiles of the
    workspace its rules match (a static list: its members), never a merged profile. No ORDER BY
    or LIMIT: add them outside (keyset chunks), or use it as a subquery.

    Raises:
      NotFound: no segment ``segment_id`` in the workspace.
      ValidationFailed: its rules name a segment that no longer exists.
    """
    segment = get_segment(session, workspace_id, segment_id)
    ctx = context(session, workspace_id, now=now)
    return audience(ctx, segment_condition(segment, ctx))


def rules_query(session: Session, workspace_id: str, tree: Any, *, now: dt.datetime) -> Select[tuple[str]]:
    """:func:`audience_query` for a tree not saved (a live count while a segment is edited)."""
    ctx = context(session, workspace_id, now=now)
    return audience(ctx, compile_node(tree, ctx))


def context(session: Session, workspace_id: str, *, now: dt.datetime, profile: FromClause = PROFILE) -> Context:
    return Context(
        workspace_id=workspace_id,
        dialect=dialect_of(session),
        now=now,
        policy=workspace_policy(session=session, workspace_id=workspace_id),
        profile=profile,
        lookup=lambda reference: find_segment(session, workspace_id, reference),
    )


def audience(ctx: Context, condition: ColumnElement[bool]) -> Select[tuple[str]]:
    return select(ctx.col("id")).where(
        ctx.col("workspace_id") == ctx.workspace_id, ctx.col("merged_into_id").is_(None), condition
    )


def create_segment(*, session: Session, workspace_id: str, name: str, kind: SegmentKind, tree: Any | None) -> Segment:
    """Make a segment: rules (checked against the segments they name) or an empty static list.

    Raises:
      Conflict: the workspace has a segment with this name.
      ValidationFailed: the rules name an unknown segment, or make a cycle.
    """
    now = utcnow()
    segment = Segment(id=new_id("seg"), workspace_id=workspace_id, name=name, kind=kind, created_at=now, updated_at=now)
    segment.rules = _checked(session, segment, tree) if kind == SegmentKind.RULES else None
    try:
        with session.begin_nested():
            session.add(segment)
    except IntegrityError:
        raise Conflict(f"name: the workspace has a segment named {name!r}", field="name") from None
    return segment


def update_segment(
    *, session: Session, workspace_id: str, segment_id: str, name: str | None, tree: Any | None
) -> Segment:
    """Rename a segment and/or replace its rules.

    Raises:
      NotFound, Conflict: as :func:`create_segment`; Conflict also for rules on a static list.
    """
    segment = get_segment(session, workspace_id, segment_id)
    if tree is not None:
        if segment.kind != SegmentKind.RULES:
            raise Conflict("rules: a static list has no rules (add or remove members)", field="rules")
        segment.rules = _checked(session, segment, tree)
    if name is not None and name != segment.name:
        segment.name = name
        try:
            with session.begin_nested():
                session.flush()
        except IntegrityError:
            raise Conflict(f"name: the workspace has a segment named {name!r}", field="name") from None
    segment.updated_at = utcnow()
    session.flush()
    return segment


def delete_segment(*, session: Session, workspace_id: str, segment_id: str) -> None:
    """Raises Conflict: another segment's rules name it (``in_segment``)."""
    segment = get_segment(session, workspace_id, segment_id)
    user = session.scalar(
        select(Segment.name).where(
            Segment.workspace_id == workspace_id,
            Segment.id != segment.id,
            cast(Segment.rules, String).contains(f'"{segment.id}"', autoescape=True),
        )
    )
    if user is not None:
        raise Conflict(f"segment {user!r} uses this one (in_segment)", field="id")
    session.delete(segment)
    session.flush()


def list_segments(*, session: Session, workspace_id: str, page: PageQuery) -> tuple[Sequence[Segment], str | None]:
    statement = select(Segment).where(Segment.workspace_id == workspace_id)
    rows = session.scalars(paginate(statement, Segment.id, page)).all()
    return split_page(rows, page, lambda segment: segment.id)


def _checked(session: Session, segment: Segment, tree: Any) -> dict[str, Any]:
    """The tree as stored: ``in_segment`` names resolved to ids, compiled once to prove every
    segment it names exists and none leads back to this one."""
    stored = _resolved(
        session,
        segment.workspace_id,
        rules.NODE_ADAPTER.dump_python(tree, mode="json", by_alias=True, exclude_none=True),
    )
    ctx = context(session, segment.workspace_id, now=utcnow())
    compile_node(parse_stored(stored), replace(ctx, path=(segment.id,)))
    return stored


def _resolved(session: Session, workspace_id: str, node: Any) -> Any:
    if isinstance(node, list):
        return [_resolved(session, workspace_id, item) for item in node]
    if not isinstance(node, dict):
        return node
    if "in_segment" in node and isinstance(node["in_segment"], str):
        found = find_segment(session, workspace_id, node["in_segment"])
        if found is None:
            raise ValidationFailed(f"rules: in_segment names no segment {node['in_segment']!r}", field="rules")
        return {**node, "in_segment": found.id}
    return {key: _resolved(session, workspace_id, value) for key, value in node.items()}
