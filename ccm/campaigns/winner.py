"""Choosing an A/B test's winner: automatically when the wait is over (the engine's tick calls
:func:`pick_winner`), or by hand (:func:`choose_winner`, ``POST /v1/campaigns/{id}/winner``).

The rule at the end of the wait: the variant with the best observed rate on the test's metric
wins, whether or not the difference is significant — the rest of the audience is waiting, and
the best estimate is the best bet — and the decision records whether it was significant (a
two-proportion z-test, :mod:`ccm.campaigns.stats`) and with what confidence, so the results can
say "B, not significant". Equal rates go to the first variant (the control). Only when no variant
has a single measured message (nothing delivered yet) is there no winner to pick.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy.orm import Session

from ccm.campaigns.models import Campaign, CampaignStatus, FanoutPhase
from ccm.campaigns.results import Results, campaign_results, variant_keys
from ccm.campaigns.stats import ALPHA, Decision, decide
from ccm.db import utcnow
from ccm.errors import Conflict, ValidationFailed

TEST = "two-proportion z-test, two-sided, 95 %; Bonferroni-corrected for more than two variants"
"""How the confidence is computed, as the decision records it."""
OPEN_FOR_A_WINNER = (CampaignStatus.RUNNING, CampaignStatus.PAUSED)
BEFORE_THE_REST = (FanoutPhase.SAMPLE, FanoutPhase.WAITING)
"""Fan-out phases in which the winner may still change: the rest has not been written."""


def judge(results: Results, metric: str) -> Decision:
    """The test on ``metric`` over the variants' current results."""
    return decide({key: group.proportion(metric) for key, group in results.variants.items()})


def pick_winner(session: Session, campaign: Campaign) -> str | None:
    """The variant the rest of the audience gets, once the test's wait is over, recorded in the
    campaign's ``ab_test`` (``decided_by: "auto"``). A winner already chosen (by hand) stands.

    Returns:
      The variant's key; None when the campaign has no A/B test or no variant has been measured.
    """
    test = campaign.ab_test
    if not test:
        return None
    if test.get("winner"):
        return str(test["winner"])
    decision = judge(campaign_results(session, campaign), test["metric"])
    if decision.best is None:
        return None
    _record(campaign, decision.best, by="auto", decision=decision)
    return decision.best


def winner_for_the_rest(session: Session, campaign: Campaign, *, control: str) -> str:
    """The variant the rest of the audience gets now that the wait is over: :func:`pick_winner`'s,
    or ``control`` when no variant has been measured — recorded here either way, with its evidence
    (this module is the one writer of the decision in ``ab_test``)."""
    picked = pick_winner(session, campaign)
    if picked is not None:
        return picked
    _record(campaign, control, by="auto", decision=Decision(None, False, 0.0, 1.0, ALPHA))
    return control


def wait_ends_at(campaign: Campaign, *, now: dt.datetime) -> dt.datetime:
    """When the A/B sample's wait is over: ``wait_hours`` after the sample was written (after
    ``now`` while it is still being written)."""
    test = campaign.ab_test or {}
    return (campaign.sample_done_at or now) + dt.timedelta(hours=float(test.get("wait_hours", 0)))


def choose_winner(session: Session, campaign: Campaign, variant: str) -> Campaign:
    """Override the test: ``variant`` is the winner (``decided_by: "manual"``); the engine's next
    tick sends it to the rest.

    Raises:
      Conflict: the campaign has no A/B test, is not running or paused, or its rest has already
        been sent a winner.
      ValidationFailed: ``variant`` is not one of the campaign's variants.
    """
    check_winner(session, campaign, variant)
    decision = judge(campaign_results(session, campaign), (campaign.ab_test or {})["metric"])
    _record(campaign, variant, by="manual", decision=decision)
    return campaign


def check_winner(session: Session, campaign: Campaign, variant: str) -> None:
    """Whether :func:`choose_winner` would take ``variant`` now (a confirmation asks before it).

    Raises:
      Conflict, ValidationFailed: as :func:`choose_winner`.
    """
    test = campaign.ab_test
    if not test:
        raise Conflict("this campaign has no A/B test: there is no winner to choose", field="variant")
    if campaign.status not in OPEN_FOR_A_WINNER:
        raise Conflict(f"the campaign is {campaign.status}: a winner can be chosen while it runs", field="variant")
    if campaign.fanout_phase in (FanoutPhase.REST, FanoutPhase.DONE) and test.get("winner"):
        raise Conflict(f"variant {test['winner']} was already sent to the rest of the audience", field="variant")
    keys = variant_keys(session, campaign.id)
    if variant not in keys:
        raise ValidationFailed(f"variant: no variant {variant!r}; this campaign has {', '.join(keys)}", field="variant")


def _record(campaign: Campaign, winner: str, *, by: str, decision: Decision) -> None:
    evidence: dict[str, Any] = {
        "best_observed": decision.best,
        "significant": decision.significant and decision.best == winner,
        "confidence": round(decision.confidence, 6),
        "p_value": round(decision.p_value, 6),
        "test": TEST,
    }
    # A new dict, so that the JSON column sees the change.
    campaign.ab_test = {
        **(campaign.ab_test or {}),
        "winner": winner,
        "decided_at": utcnow().isoformat(),
        "decided_by": by,
        **evidence,
    }
