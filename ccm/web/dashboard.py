"""The dashboard's charts: the workspace's messages of the last days (:mod:`ccm.messages.overview`)
drawn with :mod:`ccm.web.charts`."""

from __future__ import annotations

from typing import Any

from ccm.messages.models import MessageStatus
from ccm.messages.overview import Overview
from ccm.web import charts


def dashboard_charts(overview: Overview) -> dict[str, Any]:
    statuses = [str(s) for s in MessageStatus if overview.total(s)]
    channels = sorted({channel for channel, _ in overview.by_channel_status})
    by_day = {s: [overview.by_day_status.get((day, s), 0) for day in overview.days] for s in statuses}
    by_channel = {s: [overview.by_channel_status.get((c, s), 0) for c in channels] for s in statuses}
    return {
        "over_time": charts.time_series(
            "Messages by status, day by day",
            [day[5:] for day in overview.days],
            by_day,
            desc=f"Messages made each day of the last {len(overview.days)} days (UTC), by their status now",
        ),
        "by_channel": charts.grouped_bar_chart(
            "Messages by channel", channels, by_channel, desc="Messages of the window by channel and status"
        ),
        "skip_reasons": charts.bar_chart(
            "Skip reasons",
            sorted(overview.skipped_by_reason.items(), key=lambda item: (-item[1], item[0])),
            desc="Why messages of the window were not sent, most common first",
        ),
        "rates": overview.rates(),
        "total": sum(overview.by_day_status.values()),
    }
