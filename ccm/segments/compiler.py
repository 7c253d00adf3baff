"""A validated rule tree (:mod:`ccm.segments.rules`) as one SQL condition on ``profile``.

Nothing is filtered in Python: every condition is SQLAlchemy Core, the same on PostgreSQL and
SQLite. Event and engagement conditions are ``profile.id [NOT] IN (SELECT profile_id … GROUP BY
profile_id HAVING count(*) …)`` over the workspace's rows of that name (the
``(workspace_id, name, occurred_at)`` and ``(workspace_id, kind, occurred_at)`` indexes), so the
database computes each set once rather than once per profile. Reachability reproduces
:func:`ccm.consent.service.allows` and the suppression list's address hash in SQL.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any, cast

from sqlalchemy import ColumnElement, FromClause, and_, func, literal, not_, or_, select, true
from sqlalchemy.sql.elements import KeyedColumnElement

from ccm.consent.models import ALL_TOPICS, ConsentRecord
from ccm.engagement.models import EngagementEvent
from ccm.errors import ValidationFailed
from ccm.ingest.models import Event
from ccm.segments import rules
from ccm.segments.compare import compare, days_ago, start_of_day
from ccm.segments.models import Segment, SegmentKind, SegmentMember
from ccm.segments.ops import PROFILE_FIELDS
from ccm.segments.values import ColumnValue, JsonValue, Value
from ccm.suppression.models import Suppression
from ccm.workspaces.schemas import WorkspacePolicy

_EVENT = Event.__table__
_ENGAGEMENT = EngagementEvent.__table__
_CONSENT = ConsentRecord.__table__
_SUPPRESSION = Suppression.__table__
_MEMBER = SegmentMember.__table__
_MACHINE_COUNTED = ("opened", "clicked")
"""The kinds a machine makes too (privacy proxies, link scanners): left out unless asked for."""


@dataclass(frozen=True)
class Context:
    """What compiling needs besides the tree: whose profiles, read how, evaluated when."""

    workspace_id: str
    dialect: str
    now: dt.datetime
    policy: WorkspacePolicy
    profile: FromClause
    lookup: Callable[[str], Segment | None]
    """A segment of the workspace by id or name (for ``in_segment``), or None."""
    path: tuple[str, ...] = ()
    """The segments being compiled, outermost first: meeting one again is a cycle."""

    def col(self, name: str) -> KeyedColumnElement[Any]:
        return self.profile.c[name]


def compile_node(node: Any, ctx: Context) -> ColumnElement[bool]:
    """The condition a profile of ``ctx.profile`` must meet to match ``node``."""
    if isinstance(node, rules.And):
        return and_(*(compile_node(child, ctx) for child in node.and_))
    if isinstance(node, rules.Or):
        return or_(*(compile_node(child, ctx) for child in node.or_))
    if isinstance(node, rules.Not):
        return not_(compile_node(node.not_, ctx))
    if isinstance(node, rules.EventCondition):
        return _event(node, ctx)
    if isinstance(node, rules.EngagementCondition):
        return _engagement(node, ctx)
    if isinstance(node, rules.ReachableCondition):
        return reachable(node.reachable, node.topic, ctx)
    if isinstance(node, rules.InSegmentCondition):
        return _in_segment(node.in_segment, ctx)
    return compare(_profile_value(node.attribute, ctx), node, now=ctx.now, zone=ctx.policy.timezone)


def segment_condition(segment: Segment, ctx: Context) -> ColumnElement[bool]:
    """The condition for membership of ``segment`` (its list, or its rules evaluated now).

    Raises:
      ValidationFailed: its rules reach themselves through ``in_segment``, or name a segment
        that no longer exists.
    """
    if segment.kind == SegmentKind.STATIC:
        members = select(_MEMBER.c.profile_id).where(_MEMBER.c.segment_id == segment.id)
        return ctx.col("id").in_(members)
    if segment.id in ctx.path:
        names = " → ".join((*ctx.path, segment.id))
        raise ValidationFailed(f"rules: in_segment makes a cycle ({names})", field="rules")
    tree = parse_stored(segment.rules or {})
    return compile_node(tree, replace(ctx, path=(*ctx.path, segment.id)))


def parse_stored(stored: dict[str, Any]) -> Any:
    """A tree as stored (it was valid when saved), validated again into its models."""
    return rules.NODE_ADAPTER.validate_json(json.dumps(stored))


def _profile_value(path: str, ctx: Context) -> Value:
    if path in PROFILE_FIELDS:
        return ColumnValue(ctx.col(path))
    return JsonValue(ctx.col("attributes"), tuple(path.split(".")[1:]), ctx.dialect)


def _in_segment(reference: str, ctx: Context) -> ColumnElement[bool]:
    segment = ctx.lookup(reference)
    if segment is None:
        raise ValidationFailed(f"rules: in_segment names no segment {reference!r}", field="rules")
    return segment_condition(segment, ctx)


def _window(node: rules._Windowed, column: Any, ctx: Context) -> list[ColumnElement[bool]]:
    zone = node.timezone or ctx.policy.timezone
    if node.within_last is not None:
        return [column >= days_ago(ctx.now, node.within_last.days, zone), column <= ctx.now]
    if node.between is not None:
        first, last = node.between
        start = first if isinstance(first, dt.datetime) else start_of_day(first, zone)
        if isinstance(last, dt.datetime):
            return [column >= start, column <= last]
        return [column >= start, column < start_of_day(last + dt.timedelta(days=1), zone)]
    return []


def _counted(ids: Any, count: rules.Count, ctx: Context) -> ColumnElement[bool]:
    """``profile.id`` in the set of ``ids`` (a grouped select of profile ids) whose count passes."""
    tally = func.count()
    wanted = count.value
    if count.op == "at_least":
        if wanted == 0:
            return true()
        return ctx.col("id").in_(ids if wanted == 1 else ids.having(tally >= wanted))
    if count.op == "at_most":
        return ctx.col("id").not_in(ids.having(tally > wanted))
    if wanted == 0:
        return ctx.col("id").not_in(ids)
    return ctx.col("id").in_(ids.having(tally == wanted))


def _event(node: rules.EventCondition, ctx: Context) -> ColumnElement[bool]:
    filters = [
        compare(
            JsonValue(_EVENT.c.properties, tuple(item.property.split(".")[1:]), ctx.dialect),
            item,
            now=ctx.now,
            zone=node.timezone or ctx.policy.timezone,
        )
        for item in cast(list[Any], node.where)  # property filters: comparisons with a "property"
    ]
    ids = (
        select(_EVENT.c.profile_id)
        .where(
            _EVENT.c.workspace_id == ctx.workspace_id,
            _EVENT.c.name == node.event,
            _EVENT.c.kind == "track",
            *_window(node, _EVENT.c.occurred_at, ctx),
            *filters,
        )
        .group_by(_EVENT.c.profile_id)
    )
    return _counted(ids, node.count, ctx)


def _engagement(node: rules.EngagementCondition, ctx: Context) -> ColumnElement[bool]:
    where = [
        _ENGAGEMENT.c.workspace_id == ctx.workspace_id,
        _ENGAGEMENT.c.kind == node.engagement,
        _ENGAGEMENT.c.profile_id.is_not(None),
        *_window(node, _ENGAGEMENT.c.occurred_at, ctx),
    ]
    if node.channel is not None:
        where.append(_ENGAGEMENT.c.channel == node.channel)
    if node.engagement in _MACHINE_COUNTED and not node.include_machine:
        where.append(_ENGAGEMENT.c.machine.is_(False))
    ids = select(_ENGAGEMENT.c.profile_id).where(*where).group_by(_ENGAGEMENT.c.profile_id)
    return _counted(ids, node.count, ctx)


def reachable(channel: str, topic: str | None, ctx: Context) -> ColumnElement[bool]:
    """A marketing message on ``channel`` about ``topic`` could go to the profile: it has an
    address, the address is not suppressed, and consent allows it (the SQL twin of
    :func:`ccm.consent.service.allows`)."""
    address = ctx.col("email" if channel == "email" else "phone")
    return and_(
        address.is_not(None), address != "", not_(_suppressed(channel, address, ctx)), _consents(channel, topic, ctx)
    )


def _suppressed(channel: str, address: Any, ctx: Context) -> ColumnElement[bool]:
    """The address's entry on the suppression list: ``sha256("channel:canonical address")``, the
    canonical form of a stored profile address being its lower-case text."""
    keyed = literal(f"{channel}:") + (func.lower(address) if channel == "email" else address)
    if ctx.dialect == "postgresql":
        hashed = func.encode(func.sha256(func.convert_to(keyed, "UTF8")), "hex")
    else:
        hashed = func.ccm_sha256(keyed)  # registered on every SQLite connection (ccm.db)
    entry = select(_SUPPRESSION.c.id).where(
        _SUPPRESSION.c.workspace_id == ctx.workspace_id,
        _SUPPRESSION.c.channel == channel,
        _SUPPRESSION.c.address_hash == hashed,
    )
    return entry.exists()


def _consents(channel: str, topic: str | None, ctx: Context) -> ColumnElement[bool]:
    """The latest record for the topic or for all topics decides; with none, the topic's mode.

    Set-based: the deciding record of every profile of the workspace is ranked once
    (``row_number()`` by profile, newest first) rather than looked up per profile."""
    topic = topic or ALL_TOPICS
    ranked = (
        select(
            _CONSENT.c.profile_id,
            _CONSENT.c.status,
            func.row_number()
            .over(partition_by=_CONSENT.c.profile_id, order_by=(_CONSENT.c.recorded_at.desc(), _CONSENT.c.id.desc()))
            .label("rank"),
        )
        .where(
            _CONSENT.c.workspace_id == ctx.workspace_id,
            _CONSENT.c.channel == channel,
            or_(_CONSENT.c.topic == topic, _CONSENT.c.topic == ALL_TOPICS),
        )
        .subquery()
    )
    deciding = select(ranked.c.profile_id).where(ranked.c.rank == 1)
    declared = ctx.policy.topics.get(topic)
    if (declared.mode if declared else ctx.policy.consent_default) == "opt_out":
        return ctx.col("id").not_in(deciding.where(ranked.c.status != "granted"))
    return ctx.col("id").in_(deciding.where(ranked.c.status == "granted"))
