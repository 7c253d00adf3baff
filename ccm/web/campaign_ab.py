"""A campaign's A/B test as its page shows it: the settings, the stage the test is at, who leads
while the sample is measured, the decision once made, and whether a winner may still be picked by
hand. When a winner may be picked is :mod:`ccm.campaigns.winner`'s rule, read here, not restated."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from sqlalchemy.orm import Session

from ccm.campaigns.models import Campaign, CampaignStatus, FanoutPhase
from ccm.campaigns.results import campaign_results
from ccm.campaigns.stats import Decision
from ccm.campaigns.winner import BEFORE_THE_REST, OPEN_FOR_A_WINNER, judge, wait_ends_at

S = CampaignStatus
NOT_STARTED = (S.DRAFT, S.SCHEDULED)


@dataclass(frozen=True)
class AbView:
    """What the page says about the test. ``stage`` is one of ``not_started``, ``sample`` (being
    sent), ``waiting`` (for the wait to end), ``decided`` (a winner, not yet sent to the rest),
    ``sending_winner``, ``sent`` and ``ended`` (cancelled)."""

    stage: str
    test: dict[str, Any]
    wait_ends_at: dt.datetime | None
    leader: Decision | None
    """Who leads now on the test's metric, while a winner may still be picked."""
    can_pick: bool


def ab_view(session: Session, campaign: Campaign, *, now: dt.datetime) -> AbView | None:
    """The campaign's test as its page shows it (None: no A/B test)."""
    test = campaign.ab_test
    if not test:
        return None
    can_pick = campaign.status in OPEN_FOR_A_WINNER and campaign.fanout_phase in BEFORE_THE_REST
    waiting = campaign.fanout_phase == FanoutPhase.WAITING
    return AbView(
        stage=_stage(campaign, test),
        test=test,
        wait_ends_at=wait_ends_at(campaign, now=now) if waiting else None,
        leader=judge(campaign_results(session, campaign), test["metric"]) if can_pick else None,
        can_pick=can_pick,
    )


def _stage(campaign: Campaign, test: dict[str, Any]) -> str:
    if campaign.status in NOT_STARTED:
        return "not_started"
    if campaign.status == S.CANCELLED:
        return "ended"
    if campaign.fanout_phase in BEFORE_THE_REST:
        if test.get("winner"):
            return "decided"
        return "sample" if campaign.fanout_phase == FanoutPhase.SAMPLE else "waiting"
    return "sending_winner" if campaign.fanout_phase == FanoutPhase.REST else "sent"
