"""Measured results as the API shows them: each variant's counts and rates, compared with the
best other variant on the chosen metric and, for conversions, with the holdout group."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from ccm.campaigns.models import Campaign, CampaignVariant
from ccm.campaigns.results import Group, Results, campaign_results
from ccm.campaigns.results_schemas import (
    AbTestOut,
    ComparisonOut,
    Counts,
    Goal,
    GroupOut,
    Metric,
    Rates,
    ResultsOut,
    VariantOut,
)
from ccm.campaigns.stats import ALPHA, Comparison, compare
from ccm.campaigns.winner import TEST, judge
from ccm.db import utcnow

_v = CampaignVariant.__table__


def results_out(session: Session, campaign: Campaign, measured: Results, *, metric: Metric | None) -> ResultsOut:
    """The answer of ``GET /v1/campaigns/{id}/results``."""
    chosen: Metric = metric or (campaign.ab_test or {}).get("metric") or "opened"
    setup = {
        row.key: row
        for row in session.execute(select(_v.c.key, _v.c.template, _v.c.weight).where(_v.c.campaign_id == campaign.id))
    }
    variants = measured.variants
    level = ALPHA / max(1, len(variants) - 1)
    items = []
    for key, group in variants.items():
        others = {other: g for other, g in variants.items() if other != key}
        items.append(
            VariantOut(
                **group_out(group).model_dump(),
                template=setup[key].template if key in setup else None,
                weight=setup[key].weight if key in setup else None,
                comparison=_against_best(group, others, chosen, level),
                vs_holdout=_vs_holdout(group, measured.holdout) if campaign.goal else None,
            )
        )
    return ResultsOut(
        campaign_id=campaign.id,
        status=campaign.status,
        launched_at=campaign.launched_at,
        metric=chosen,
        goal=Goal(**campaign.goal) if campaign.goal else None,
        ab_test=ab_test_out(session, campaign, measured),
        total=group_out(measured.total),
        variants=items,
        holdout=group_out(measured.holdout) if measured.holdout else None,
        computed_at=utcnow(),
    )


def group_out(group: Group) -> GroupOut:
    return GroupOut(
        key=group.key,
        counts=Counts(**group.counts),
        skipped_by_reason=dict(sorted(group.skipped_by_reason.items())),
        rates=Rates(**group.rates()),
    )


def ab_test_out(session: Session, campaign: Campaign, measured: Results) -> AbTestOut | None:
    """The campaign's A/B test: its settings, the decision once made, and who leads now."""
    test: dict[str, Any] | None = campaign.ab_test
    if not test:
        return None
    now = judge(measured, test["metric"])
    significant, confidence = _evidence(session, campaign, test)
    return AbTestOut(
        metric=test["metric"],
        sample_percent=test.get("sample_percent"),
        wait_hours=test.get("wait_hours"),
        winner=test.get("winner"),
        decided_at=test.get("decided_at"),
        decided_by=test.get("decided_by"),
        significant=significant,
        confidence=confidence,
        leader=now.best,
        leader_significant=now.significant,
        leader_confidence=now.confidence,
        test=TEST,
    )


def _evidence(session: Session, campaign: Campaign, test: dict[str, Any]) -> tuple[bool | None, float | None]:
    """Whether the chosen winner beat the other variants, and how surely, on the sample as the
    decision saw it: the messages written before ``decided_at`` and what they did by then
    (recomputed, so it holds whoever wrote the decision, and the rest's messages, which all got
    the winner, do not weigh in)."""
    decided_at = _moment(test.get("decided_at"))
    if not test.get("winner") or decided_at is None:
        return None, None
    sample = judge(campaign_results(session, campaign, as_of=decided_at), test["metric"])
    return sample.significant and sample.best == test["winner"], round(sample.confidence, 6)


def _moment(value: Any) -> dt.datetime | None:
    try:
        moment = dt.datetime.fromisoformat(str(value))
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)


def _against_best(group: Group, others: dict[str, Group], metric: Metric, level: float) -> ComparisonOut | None:
    measured = {key: other for key, other in others.items() if other.proportion(metric).trials}
    if not measured:
        return None
    best_key = max(measured, key=lambda key: measured[key].proportion(metric).rate or 0.0)
    result = compare(group.proportion(metric), measured[best_key].proportion(metric), alpha=level)
    return _comparison(best_key, metric, result)


def _vs_holdout(group: Group, holdout: Group | None) -> ComparisonOut | None:
    if holdout is None:
        return None
    return _comparison("holdout", "converted", compare(group.proportion("converted"), holdout.proportion("converted")))


def _comparison(against: str, metric: Metric, result: Comparison) -> ComparisonOut:
    return ComparisonOut(
        against=against,
        metric=metric,
        rate=result.rate,
        other_rate=result.other_rate,
        lift=result.lift,
        z=result.z,
        p_value=result.p_value,
        confidence=result.confidence,
        significant=result.significant,
    )
