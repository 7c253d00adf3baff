"""When a message may go: quiet hours in the recipient's time zone (correct across DST changes),
and frequency caps over a rolling window."""

from __future__ import annotations

import datetime as dt
import zoneinfo
from collections.abc import Callable, Sequence

from ccm.validation import CHANNELS
from ccm.workspaces.schemas import FrequencyCap, WorkspacePolicy

Window = tuple[dt.time, dt.time]
_STEP = dt.timedelta(minutes=5)
_HORIZON = dt.timedelta(days=3)


def quiet_window(
    policy: WorkspacePolicy, *, category: str, channel: str, profile_window: Window | None
) -> Window | None:
    """The window a message may be sent in, or None for any time. A profile's own window replaces
    the workspace's; transactional messages bypass quiet hours unless the workspace says otherwise."""
    hours = policy.quiet_hours
    if category == "transactional" and hours.transactional_bypass:
        return None
    windows = hours.transactional if category == "transactional" else hours.marketing
    window = windows.get(channel) if channel in CHANNELS else None
    return profile_window or window


def next_allowed(now: dt.datetime, window: Window | None, zones: Sequence[str]) -> dt.datetime | None:
    """None when ``now`` is inside ``window`` in every one of ``zones``; otherwise the first later
    moment (to five minutes) when it is. One zone for a profile with a known time zone; an unknown
    zone is judged in all of the workspace's audience zones, the strictest reading."""
    if window is None:
        return None
    tzs = [zoneinfo.ZoneInfo(zone) for zone in zones]
    if _open_everywhere(now, window, tzs):
        return None
    candidate = _ceil(now)
    while candidate - now < _HORIZON:
        if _open_everywhere(candidate, window, tzs):
            return candidate
        candidate += _STEP
    raise ValueError(f"the window {window} is never open in all of {list(zones)} at once")


def inside(local: dt.time, window: Window) -> bool:
    start, end = window
    if start <= end:
        return start <= local < end
    return local >= start or local < end  # wraps midnight


SentHistory = Sequence[tuple[str | None, str | None, dt.datetime]]


def cap_exceeded(
    caps: Sequence[FrequencyCap],
    *,
    now: dt.datetime,
    channel: str,
    topic: str | None,
    sent: Callable[[dt.datetime], SentHistory],
) -> FrequencyCap | None:
    """The first cap this message would break. ``sent(since)`` lists the profile's marketing
    messages sent since then as (channel, topic, finished_at), fetched once for the widest cap."""
    applicable = [cap for cap in caps if cap.channel in ("*", channel) and cap.topic in ("*", topic or "*")]
    if not applicable:
        return None
    history = sent(now - dt.timedelta(days=max(cap.days for cap in applicable)))
    for cap in applicable:
        since = now - dt.timedelta(days=cap.days)
        count = sum(
            1
            for sent_channel, sent_topic, at in history
            if at >= since and cap.channel in ("*", sent_channel) and cap.topic in ("*", sent_topic)
        )
        if count >= cap.max:
            return cap
    return None


def _open_everywhere(moment: dt.datetime, window: Window, tzs: Sequence[zoneinfo.ZoneInfo]) -> bool:
    return all(inside(moment.astimezone(tz).time(), window) for tz in tzs)


def _ceil(moment: dt.datetime) -> dt.datetime:
    """The next five-minute boundary after ``moment`` (windows start on such boundaries)."""
    floor = moment.replace(minute=moment.minute - moment.minute % 5, second=0, microsecond=0)
    return floor + _STEP
