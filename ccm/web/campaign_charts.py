"""A campaign's results drawn for its results page: the numbers of :mod:`ccm.campaigns.results`
(those ``GET /v1/campaigns/{id}/results`` serves) put into :mod:`ccm.web.charts`."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from markupsafe import Markup
from sqlalchemy.orm import Session

from ccm.campaigns.models import Campaign
from ccm.campaigns.results import Group, campaign_results, hourly_engagement
from ccm.db import utcnow
from ccm.web import charts

FUNNEL = ("targeted", "sent", "delivered", "opened", "clicked")
COMPARED = ("sent", "delivered", "opened", "clicked")
MAX_HOURS = 72
"""The engagement chart's span: the first three days after the launch, hour by hour."""


@dataclass
class ResultCharts:
    funnel: Markup
    over_time: Markup
    by_channel: Markup
    by_variant: Markup
    skip_reasons: Markup
    rates: dict[str, float | None]
    total: dict[str, int]


def results_charts(session: Session, campaign: Campaign) -> ResultCharts:
    measured = campaign_results(session, campaign)
    total = measured.total
    return ResultCharts(
        funnel=charts.bar_chart(
            "Funnel", [(name, total.counts[name]) for name in FUNNEL], desc="Messages at each step, of those targeted"
        ),
        over_time=_over_time(session, campaign),
        by_channel=_compared("By channel", measured.channels),
        by_variant=_compared("By variant", measured.variants),
        skip_reasons=charts.bar_chart(
            "Skip reasons",
            sorted(total.skipped_by_reason.items(), key=lambda item: (-item[1], item[0])),
            desc="Why messages were not sent, most common first",
        ),
        rates=total.rates(),
        total=total.counts,
    )


def _compared(title: str, groups: dict[str, Group]) -> Markup:
    values = {name: [group.counts[name] for group in groups.values()] for name in COMPARED}
    what = title.lower().removeprefix("by ")
    return charts.grouped_bar_chart(
        title, list(groups), values, desc=f"Messages sent, delivered, opened and clicked by {what}"
    )


def _over_time(session: Session, campaign: Campaign) -> Markup:
    title = "Engagement over time"
    if campaign.launched_at is None:
        return charts.time_series(title, [], {}, desc="")
    hours = max(1, min(MAX_HOURS, int((utcnow() - campaign.launched_at).total_seconds() // 3600) + 1))
    buckets = hourly_engagement(session, campaign, hours=hours)
    values = {
        what: [sum(c[what] for (hour, _), c in buckets.items() if hour == h) for h in range(hours)]
        for what in ("opened", "clicked")
    }
    times = [(campaign.launched_at + dt.timedelta(hours=h)).strftime("%m-%d %H:00") for h in range(hours)]
    return charts.time_series(title, times, values, desc="Messages opened and clicked each hour since the launch (UTC)")
