"""When a campaign's message to a recipient is due: the schedule's start, the next occurrence of
its local time in the recipient's time zone, then the first moment the sending calendar allows.

Everyone in one time zone is due at the same moment, so the fan-out computes it once per zone of
a chunk (:func:`due_by_zone`) and joins it to the profiles in SQL. A zone that is missing or not a
valid IANA name is replaced by the workspace's own time zone, and the recipient is counted as a
fallback — never dropped.
"""

from __future__ import annotations

import datetime as dt
import functools
import zoneinfo
from collections.abc import Iterable
from dataclasses import dataclass

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


@dataclass(frozen=True)
class Timing:
    """What decides a recipient's due time: the earliest moment, a local time of day, a calendar."""

    start: dt.datetime
    local_time: dt.time | None = None
    days: frozenset[int] | None = None
    """Weekdays allowed (0 is Monday); None: every day."""
    hours: tuple[dt.time, dt.time] | None = None
    """The allowed hours of a day, ``[start, end)``; None: all day."""

    @property
    def by_zone(self) -> bool:
        """Whether due times differ between time zones (else everyone is due at ``start``)."""
        return self.local_time is not None or self.days is not None or self.hours is not None


def parse_hhmm(value: str) -> dt.time:
    """``"09:30"`` as a time of day.

    Raises:
      ValueError: not ``HH:MM`` with 00–23 and 00–59.
    """
    hours, sep, minutes = value.partition(":")
    if not (sep and len(hours) == 2 and len(minutes) == 2 and hours.isdigit() and minutes.isdigit()):
        raise ValueError(f"{value!r} is not HH:MM")
    return dt.time(int(hours), int(minutes))


@functools.lru_cache(maxsize=2048)
def zone_of(name: str | None) -> zoneinfo.ZoneInfo | None:
    """The time zone named ``name``, or None when it is missing or not a valid IANA name."""
    if not name or len(name) > 64:
        return None
    try:
        return zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError, OSError):
        return None


def due_at(timing: Timing, zone: zoneinfo.ZoneInfo) -> dt.datetime:
    """When a recipient in ``zone`` is due (UTC)."""
    moment = timing.start.astimezone(zone)
    if timing.local_time is not None:
        moment = _next_local(moment, timing.local_time, zone)
    if timing.days is not None or timing.hours is not None:
        moment = _next_allowed(moment, timing, zone)
    return moment.astimezone(dt.UTC)


def due_by_zone(
    timing: Timing, zones: Iterable[str | None], fallback: str
) -> tuple[dict[str, dt.datetime], dt.datetime]:
    """The due time of each valid zone among ``zones``, and the fallback zone's (for the rest)."""
    fallback_zone = zone_of(fallback) or zoneinfo.ZoneInfo("UTC")
    valid = {name: zone for name in set(zones) if name and (zone := zone_of(name)) is not None}
    return {name: due_at(timing, zone) for name, zone in valid.items()}, due_at(timing, fallback_zone)


def _next_local(moment: dt.datetime, at: dt.time, zone: zoneinfo.ZoneInfo) -> dt.datetime:
    """The first ``at`` o'clock in ``zone`` at or after ``moment`` (a time skipped by a DST change
    falls on the moment after the gap)."""
    candidate = dt.datetime.combine(moment.date(), at, tzinfo=zone)
    if _utc(candidate) < _utc(moment):
        candidate = dt.datetime.combine(moment.date() + dt.timedelta(days=1), at, tzinfo=zone)
    return candidate


def _next_allowed(moment: dt.datetime, timing: Timing, zone: zoneinfo.ZoneInfo) -> dt.datetime:
    """The first moment at or after ``moment`` inside the calendar (allowed day and hours)."""
    start, end = timing.hours or (dt.time(0, 0), None)
    for offset in range(8):
        day = moment.date() + dt.timedelta(days=offset)
        if timing.days is not None and day.weekday() not in timing.days:
            continue
        opens = dt.datetime.combine(day, start, tzinfo=zone)
        closes = dt.datetime.combine(day, end, tzinfo=zone) if end else None
        if offset == 0 and _utc(opens) <= _utc(moment) and (closes is None or _utc(moment) < _utc(closes)):
            return moment
        if _utc(opens) >= _utc(moment):
            return opens
    raise ValueError("the calendar allows no day")  # refused when the campaign is made


def _utc(moment: dt.datetime) -> dt.datetime:
    return moment.astimezone(dt.UTC)
