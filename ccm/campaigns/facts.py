"""What happened to each message of a campaign, as SQL: the building blocks that the results (one
row per variant) and the export (one row per recipient) both select from, so the two always agree.

Every expression here is set-based: engagement is folded per message with one ``GROUP BY``, the
send time per message with another, conversions are one ``EXISTS`` against the ingested events.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Integer,
    Subquery,
    and_,
    case,
    exists,
    func,
    literal,
    or_,
    select,
    text,
)
from sqlalchemy.orm import Session

from ccm.db import UTCDateTime, dialect_of
from ccm.engagement.models import EngagementEvent
from ccm.ingest.models import Event
from ccm.messages.models import AttemptOutcome, DeliveryAttempt, Message, MessageStatus

m = Message.__table__
_e, _a, _ev = EngagementEvent.__table__, DeliveryAttempt.__table__, Event.__table__

HANDED_OVER = (AttemptOutcome.SENT, AttemptOutcome.DELIVERED, AttemptOutcome.UNKNOWN)
"""Attempt outcomes after which the provider has (or may have) the message: it was sent."""
PENDING = (MessageStatus.QUEUED, MessageStatus.RETRYING, MessageStatus.SENDING)
ACCEPTED = (MessageStatus.SENT, MessageStatus.DELIVERED)


def without_jit(session: Session) -> None:
    """Turn PostgreSQL's JIT compilation off for the rest of the transaction. These statements
    run once each over many rows; above ``jit_above_cost`` PostgreSQL compiles them first, which
    took a second here — longer than running them (bench/README.md, "Campaign results")."""
    if dialect_of(session) == "postgresql":
        session.execute(text("SET LOCAL jit = off"))


def of_campaign(workspace_id: str, campaign_id: str, as_of: dt.datetime | None = None) -> ColumnElement[bool]:
    """The messages of one campaign (``message.campaign_id``), within its workspace; with
    ``as_of``, only those written before it (an A/B test's sample, before its decision)."""
    condition = and_(m.c.workspace_id == workspace_id, m.c.campaign_id == campaign_id)
    return condition if as_of is None else and_(condition, m.c.created_at < as_of)


def id_range(session: Session, campaign_id: str) -> tuple[str, str] | None:
    """The campaign's first and last message id (two probes of ``ix_message_campaign``), None
    before it has a message. Every row of its messages, and every event or attempt of them,
    has a message id in that range: a query bounded by it in both tables reads the two in id
    order through their indexes, and PostgreSQL plans it from the range's true size (as
    values, not a subquery) instead of scanning every message of the workspace
    (bench/README.md, issue 11)."""
    first, last = session.execute(
        select(func.min(m.c.id), func.max(m.c.id)).where(m.c.campaign_id == campaign_id)
    ).one()
    return None if first is None else (first, last)


ENGAGEMENT: tuple[tuple[str, bool | None, str], ...] = (
    ("opened", False, "opened"),
    ("clicked", False, "opened"),  # images blocked: the person who clicked read it
    ("clicked", False, "clicked"),
    ("opened", True, "machine_opened"),
    ("clicked", True, "machine_clicked"),
    ("replied", None, "replied"),
    ("unsubscribed", None, "unsubscribed"),
    ("bounced", None, "bounced"),
    ("complained", None, "complaints"),
)
"""Which engagement events count a message as what: ``(kind, machine, count)``; ``machine``
None is either. Opens and clicks by machines (privacy proxies, link scanners) count apart."""


def engagement_conditions() -> dict[str, ColumnElement[bool]]:
    """:data:`ENGAGEMENT` as one condition on an engagement event per count it adds to (a count
    whose kinds are several is any of them)."""
    conditions: dict[str, list[ColumnElement[bool]]] = {}
    for kind, machine, counted in ENGAGEMENT:
        condition = _e.c.kind == kind if machine is None else and_(_e.c.kind == kind, _e.c.machine.is_(machine))
        conditions.setdefault(counted, []).append(condition)
    return {counted: or_(*each) for counted, each in conditions.items()}


def per_message(workspace_id: str, campaign_id: str) -> Subquery:
    """One row per message of the campaign: its own columns, when it was sent, a 0/1 flag per
    kind of engagement and the first time of some. Messages, their attempts and their events are
    joined once and grouped by message (repeated rows only repeat a ``max`` or a ``min``).

    - ``sent_at``: its first attempt that got through (a message's ``finished_at`` moves when a
      delivery report arrives); one accepted without an attempt on record: its finish.
    - ``opened`` counts a human click too (images blocked, the person still read it); opens and
      clicks by machines (mail privacy proxies, link scanners) are ``machine_*``, apart.
    """
    human = ~_e.c.machine
    opened = or_(and_(_e.c.kind == "opened", human), and_(_e.c.kind == "clicked", human))
    kinds: dict[str, ColumnElement[bool]] = {
        "opened": opened,
        "clicked": and_(_e.c.kind == "clicked", human),
        "machine_opened": and_(_e.c.kind == "opened", _e.c.machine),
        "machine_clicked": and_(_e.c.kind == "clicked", _e.c.machine),
        "replied": _e.c.kind == "replied",
        "unsubscribed": _e.c.kind == "unsubscribed",
        "bounced": _e.c.kind == "bounced",
        "complained": _e.c.kind == "complained",
    }
    flags = [func.max(case((condition, 1), else_=0)).label(name) for name, condition in kinds.items()]
    firsts = [
        func.min(case((opened, _e.c.occurred_at))).label("opened_at"),
        func.min(case((kinds["clicked"], _e.c.occurred_at))).label("clicked_at"),
        func.min(case((_e.c.kind == "delivered", _e.c.occurred_at))).label("delivered_at"),
    ]
    sent = func.coalesce(func.min(_a.c.finished_at), func.max(case((m.c.status.in_(ACCEPTED), m.c.finished_at))))
    own = (m.c.variant, m.c.status, m.c.reason, m.c.profile_id, m.c.to_address, m.c.channel, m.c.finished_at)
    return (
        select(m.c.id, *own, sent.label("sent_at"), *flags, *firsts)
        .select_from(
            m.outerjoin(_a, and_(_a.c.message_id == m.c.id, _a.c.outcome.in_(HANDED_OVER))).outerjoin(
                _e, _e.c.message_id == m.c.id
            )
        )
        .where(of_campaign(workspace_id, campaign_id))
        .group_by(m.c.id, *own)
        .subquery("per_message")
    )


def converted(
    session: Session,
    *,
    workspace_id: str,
    profile: Any,
    since: Any,
    goal: dict[str, Any],
    not_before: dt.datetime | None = None,
    as_of: dt.datetime | None = None,
) -> ColumnElement[bool]:
    """Whether ``profile`` performed the goal event within ``goal["within_hours"]`` after
    ``since``, and by ``as_of`` if given. ``not_before`` (the launch) is a constant lower bound
    that lets PostgreSQL read the goal events by name and time rather than by profile."""
    hours, since = float(goal["within_hours"]), _bound(since)
    window = [
        _ev.c.occurred_at >= since,
        later_or_equal(session, plus_hours(session, since, hours), _ev.c.occurred_at),
    ]
    if not_before is not None:
        window.append(_ev.c.occurred_at >= not_before)
    if as_of is not None:
        window.append(_ev.c.occurred_at <= as_of)
    return exists().where(
        _ev.c.workspace_id == workspace_id,
        _ev.c.profile_id == profile,
        _ev.c.name == goal["event"],
        *window,
    )


def plus_hours(session: Session, moment: Any, hours: float) -> ColumnElement[Any]:
    """``moment`` plus ``hours``, in the database (SQLite: as a Julian day number)."""
    if dialect_of(session) == "postgresql":
        return moment + func.make_interval(0, 0, 0, 0, 0, 0, literal(hours * 3600.0))
    return func.julianday(moment) + hours / 24.0


def later_or_equal(session: Session, bound: ColumnElement[Any], moment: Any) -> ColumnElement[bool]:
    """``moment <= bound``, where ``bound`` came from :func:`plus_hours`."""
    if dialect_of(session) == "postgresql":
        return moment <= bound
    return func.julianday(moment) <= bound


def hours_since(session: Session, moment: Any, start: Any) -> ColumnElement[Any]:
    """Whole hours from ``start`` to ``moment`` (the chart's bucket)."""
    start = _bound(start)
    if dialect_of(session) == "postgresql":
        return func.floor(func.extract("epoch", moment - start) / 3600)
    return func.cast((func.julianday(moment) - func.julianday(start)) * 24, Integer())


def _bound(value: Any) -> Any:
    """A datetime given as a value, typed as the columns are (naive UTC)."""
    return literal(value, UTCDateTime()) if isinstance(value, dt.datetime) else value
