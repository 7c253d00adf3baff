"""The sending calendar at release time: a recipient whose zone's window has closed since their
message fell due is held, and released when the window opens again.

A message is due inside its window (:mod:`ccm.campaigns.timing`), but the pump may reach it
later: a throttle too slow for the audience, workers down, a pause across the window's end. The
pump then **parks** it: its delivery job is written with :data:`PARKED` as its due time, so the
relay never publishes it, and the release cursor moves on (the other zones are not held up
behind it). Every tick, parked messages whose window is open are released first, within the
rate; a paused campaign is not pumped, so a parked message never goes out during a pause, and
a cancelled one skips it (which ends its job). The message keeps its deadline: released past it,
delivery fails it with ``deadline_exceeded``.
"""

from __future__ import annotations

import datetime as dt
import zoneinfo
from collections.abc import Sequence

from sqlalchemy import ColumnElement, String, exists, func, literal, select, update
from sqlalchemy.orm import Session

from ccm.campaigns.models import Campaign
from ccm.campaigns.timing import DAYS, Timing, due_at, parse_hhmm, zone_of
from ccm.jobs import PendingJob, job_key
from ccm.messages.models import Message
from ccm.messages.tasks import DELIVER
from ccm.profiles.models import Profile
from ccm.workspaces.service import workspace_policy

PARKED = dt.datetime(9999, 1, 1, tzinfo=dt.UTC)
"""The due time of a held message's delivery job: never, until the pump releases it."""
_m, _p, _jobs = Message.__table__, Profile.__table__, PendingJob.__table__
_KEY_PREFIX = job_key(DELIVER, "")


def calendar_of(campaign: Campaign) -> Timing | None:
    """The campaign's sending calendar as a :class:`Timing` from ``now`` (None: no calendar)."""
    calendar = campaign.calendar or {}
    days, hours = calendar.get("days"), calendar.get("hours")
    if not days and not hours:
        return None
    return Timing(
        start=dt.datetime.min.replace(tzinfo=dt.UTC),
        days=frozenset(DAYS.index(day) for day in days) if days else None,
        hours=(parse_hhmm(hours[0]), parse_hhmm(hours[1])) if hours else None,
    )


def split_by_window(
    session: Session, campaign: Campaign, ids: Sequence[str], *, now: dt.datetime, horizon: dt.timedelta
) -> tuple[list[str], list[str]]:
    """``ids`` (in order) whose recipient's window is open within ``horizon``, and the others."""
    calendar = calendar_of(campaign)
    if calendar is None or not ids:
        return list(ids), []
    zones = dict(
        session.execute(
            select(_m.c.id, _p.c.timezone).join(_p, _p.c.id == _m.c.profile_id).where(_m.c.id.in_(list(ids)))
        ).all()
    )
    fallback = zone_of(workspace_policy(session=session, workspace_id=campaign.workspace_id).timezone)
    is_open = _open_zones(calendar, set(zones.values()), fallback or zoneinfo.ZoneInfo("UTC"), now + horizon)
    open_ids = [one for one in ids if is_open[zones.get(one)]]
    return open_ids, [one for one in ids if not is_open[zones.get(one)]]


def _open_zones(
    calendar: Timing, names: set[str | None], fallback: zoneinfo.ZoneInfo, moment: dt.datetime
) -> dict[str | None, bool]:
    """Whether the calendar allows ``moment`` in each zone (an invalid or missing one: ``fallback``)."""
    at = Timing(start=moment, days=calendar.days, hours=calendar.hours)
    return {name: due_at(at, zone_of(name) or fallback) <= moment for name in names | {None}}


def parked_ids(session: Session, campaign: Campaign, *, limit: int) -> list[str]:
    """Up to ``limit`` of the campaign's parked messages, oldest due first."""
    message_id = func.substr(_jobs.c.key, len(_KEY_PREFIX) + 1)
    rows = session.scalars(
        select(_m.c.id)
        .select_from(_jobs.join(_m, _m.c.id == message_id))
        .where(_jobs.c.due_at == PARKED, _m.c.campaign_id == campaign.id)
        .order_by(_m.c.id)
        .limit(limit)
    ).all()
    return list(rows)


def is_parked(message_id: ColumnElement[str]) -> ColumnElement[bool]:
    """True for a message whose delivery job is parked (for the pump's count of unclaimed ones)."""
    key = literal(_KEY_PREFIX, String) + message_id
    return exists().where(_jobs.c.key == key, _jobs.c.due_at == PARKED)


def unpark(session: Session, ids: Sequence[str], *, due: dt.datetime) -> None:
    """Make the parked delivery jobs of ``ids`` due (the caller publishes them after commit)."""
    if ids:
        keys = [job_key(DELIVER, one) for one in ids]
        session.execute(update(_jobs).where(_jobs.c.key.in_(keys)).values(due_at=due))
