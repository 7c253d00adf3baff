"""What happened to each message of a campaign, as SQL: the building blocks that the results (one
row per variant) and the export (one row per recipient) both select from, so the two always agree.

Every expression here is set-based: engagement is folded per message with one ``GROUP BY``, the
send time per message with another, conversions are one ``EXISTS`` against the ingested events.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import ColumnElement, Integer, Subquery, and_, case, exists, func, literal, or_, select
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


def of_campaign(workspace_id: str, campaign_id: str) -> ColumnElement[bool]:
    """The messages of one campaign (``message.campaign_id``), within its workspace."""
    return and_(m.c.workspace_id == workspace_id, m.c.campaign_id == campaign_id)


def engagement(workspace_id: str, campaign_id: str) -> Subquery:
    """One row per engaged message of the campaign: a 0/1 flag per kind, and the first time of
    each. Opens count a human click too (images blocked, the person still read it); opens and
    clicks made by machines (mail privacy proxies, link scanners) are counted apart."""
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
        "reported_delivered": _e.c.kind == "delivered",
    }
    columns = [func.max(case((condition, 1), else_=0)).label(name) for name, condition in kinds.items()]
    firsts = [
        func.min(case((opened, _e.c.occurred_at))).label("opened_at"),
        func.min(case((kinds["clicked"], _e.c.occurred_at))).label("clicked_at"),
        func.min(case((kinds["reported_delivered"], _e.c.occurred_at))).label("delivered_at"),
    ]
    return (
        select(_e.c.message_id, *columns, *firsts)
        .join(m, m.c.id == _e.c.message_id)
        .where(of_campaign(workspace_id, campaign_id))
        .group_by(_e.c.message_id)
        .subquery("engagement")
    )


def send_times(workspace_id: str, campaign_id: str) -> Subquery:
    """When each message of the campaign was handed to its provider: its first attempt that got
    through (a message's own ``finished_at`` moves when a delivery report arrives)."""
    return (
        select(_a.c.message_id, func.min(_a.c.finished_at).label("sent_at"))
        .join(m, m.c.id == _a.c.message_id)
        .where(of_campaign(workspace_id, campaign_id), _a.c.outcome.in_(HANDED_OVER))
        .group_by(_a.c.message_id)
        .subquery("send_times")
    )


def sent_at(times: Subquery) -> ColumnElement[Any]:
    """The send time of a message (for one accepted without an attempt on record, its finish)."""
    return func.coalesce(times.c.sent_at, case((m.c.status.in_(ACCEPTED), m.c.finished_at)))


def converted(
    session: Session, *, workspace_id: str, profile: Any, since: Any, goal: dict[str, Any], until: Any = None
) -> ColumnElement[bool]:
    """Whether ``profile`` performed the goal event within ``goal["within_hours"]`` after
    ``since`` (and before ``until``, the launch-time lower bound that lets PostgreSQL read the
    events by name and time)."""
    hours, since = int(goal["within_hours"]), _bound(since)
    window = [
        _ev.c.occurred_at >= since,
        later_or_equal(session, plus_hours(session, since, hours), _ev.c.occurred_at),
    ]
    if until is not None:
        window.append(_ev.c.occurred_at >= until)
    return exists().where(
        _ev.c.workspace_id == workspace_id,
        _ev.c.profile_id == profile,
        _ev.c.name == goal["event"],
        *window,
    )


def plus_hours(session: Session, moment: Any, hours: int) -> ColumnElement[Any]:
    """``moment`` plus ``hours``, in the database (SQLite: as a Julian day number)."""
    if dialect_of(session) == "postgresql":
        return moment + func.make_interval(0, 0, 0, 0, literal(hours))
    return func.julianday(moment) + hours / 24.0


def later_or_equal(session: Session, bound: ColumnElement[Any], moment: Any) -> ColumnElement[bool]:
    """``moment <= bound``, where ``bound`` came from :func:`plus_hours`."""
    if dialect_of(session) == "postgresql":
        return moment <= bound
    return func.julianday(moment) <= bound


def reason_code(session: Session) -> ColumnElement[Any]:
    """A skip reason's code: the text before its first colon (``no_consent: email, marketing``)."""
    reason = func.coalesce(m.c.reason, "unknown")
    if dialect_of(session) == "postgresql":
        return func.split_part(reason, ":", 1)
    position = func.instr(reason, ":")
    return case((position > 0, func.substr(reason, 1, position - 1)), else_=reason)


def hours_since(session: Session, moment: Any, start: Any) -> ColumnElement[Any]:
    """Whole hours from ``start`` to ``moment`` (the chart's bucket)."""
    start = _bound(start)
    if dialect_of(session) == "postgresql":
        return func.floor(func.extract("epoch", moment - start) / 3600)
    return func.cast((func.julianday(moment) - func.julianday(start)) * 24, Integer())


def _bound(value: Any) -> Any:
    """A datetime given as a value, typed as the columns are (naive UTC)."""
    return literal(value, UTCDateTime()) if isinstance(value, dt.datetime) else value
