"""``/v1/campaigns/{id}/results`` and friends: how a campaign went, per variant and against its
holdout; its engagement hour by hour; CSV exports; and the A/B winner chosen by hand."""

from __future__ import annotations

import datetime as dt

from flask import Blueprint, Response, current_app, stream_with_context

from ccm.access import Permission
from ccm.audit.api import audit_export
from ccm.audit.service import Target
from ccm.auth.api import current_workspace_id, require_api_key
from ccm.campaigns import export, results, winner
from ccm.campaigns.models import Campaign
from ccm.campaigns.results_schemas import (
    AbTestOut,
    CampaignId,
    ResultsOut,
    ResultsQuery,
    TimelineOut,
    TimelinePoint,
    TimelineQuery,
    WinnerIn,
)
from ccm.campaigns.results_view import ab_test_out, results_out
from ccm.db import utcnow
from ccm.errors import NotFound
from ccm.http import db_session, endpoint, permissions

bp = Blueprint("campaign_results", __name__, url_prefix="/v1/campaigns")
bp.before_request(require_api_key)
permissions(bp, writes=Permission.CAMPAIGNS)


def find_campaign(campaign_id: str, *, lock: bool = False) -> Campaign:
    """The campaign of the request's workspace, or a 404 (another workspace's is not there);
    ``lock``: taken ``FOR UPDATE``, so that the engine's tick waits (it skips a locked campaign)."""
    campaign = db_session().get(Campaign, campaign_id, with_for_update=lock or None, populate_existing=lock)
    if campaign is None or campaign.workspace_id != current_workspace_id():
        raise NotFound(f"campaign_id: no campaign {campaign_id}", field="campaign_id")
    return campaign


@endpoint(
    bp,
    "/<campaign_id>/results",
    method="GET",
    query=ResultsQuery,
    responses={200: ResultsOut},
    summary="How a campaign went, per variant and for its holdout: counts, rates, conversions, the A/B winner",
)
def get_results(campaign_id: CampaignId, query: ResultsQuery) -> ResultsOut:
    campaign = find_campaign(campaign_id)
    measured = results.campaign_results(db_session(), campaign)
    return results_out(db_session(), campaign, measured, metric=query.metric)


@endpoint(
    bp,
    "/<campaign_id>/results/timeline",
    method="GET",
    query=TimelineQuery,
    responses={200: TimelineOut},
    summary="Messages opened and clicked in each hour since the launch, per variant (for charts)",
)
def get_timeline(campaign_id: CampaignId, query: TimelineQuery) -> TimelineOut:
    campaign = find_campaign(campaign_id)
    buckets = results.hourly_engagement(db_session(), campaign, hours=query.hours)
    items: list[TimelinePoint] = []
    if campaign.launched_at is not None:
        keys = results.variant_keys(db_session(), campaign.id) or ["A"]
        last = min(query.hours, _hours_since(campaign.launched_at) + 1)
        items = [
            TimelinePoint(
                hour=hour,
                starts_at=campaign.launched_at + dt.timedelta(hours=hour),
                variant=key,
                **buckets.get((hour, key), {"opened": 0, "clicked": 0, "machine_opened": 0}),
            )
            for hour in range(max(last, 1))
            for key in keys
        ]
    return TimelineOut(campaign_id=campaign.id, launched_at=campaign.launched_at, items=items)


@endpoint(
    bp,
    "/<campaign_id>/results.csv",
    method="GET",
    responses={200: None},
    produces="text/csv",
    permission=Permission.CAMPAIGNS,
    summary="The results as CSV: a line per variant, the holdout and the total",
)
def get_results_csv(campaign_id: CampaignId) -> Response:
    campaign = find_campaign(campaign_id)
    audit_export("export.results_csv", Target("campaign", campaign.id))
    lines = export.summary_lines(results.campaign_results(db_session(), campaign))
    return _csv(list(lines), f"{campaign.id}-results.csv")


@endpoint(
    bp,
    "/<campaign_id>/export.csv",
    method="GET",
    responses={200: None},
    produces="text/csv",
    permission=Permission.CAMPAIGNS,
    summary="Every recipient as CSV (streamed): address, variant, channel, status, reason, times, converted",
)
def get_export_csv(campaign_id: CampaignId) -> Response:
    campaign = find_campaign(campaign_id)
    audit_export("export.recipients_csv", Target("campaign", campaign.id))
    db = current_app.extensions["ccm"].db
    lines = export.recipient_lines(db, workspace_id=campaign.workspace_id, campaign_id=campaign.id)
    return _csv(stream_with_context(lines), f"{campaign.id}-recipients.csv")


@endpoint(
    bp,
    "/<campaign_id>/winner",
    method="POST",
    body=WinnerIn,
    responses={200: AbTestOut},
    errors=(409,),
    summary="Choose the A/B test's winner by hand: the rest of the audience gets it on the next tick",
)
def post_winner(campaign_id: CampaignId, body: WinnerIn) -> AbTestOut:
    campaign = find_campaign(campaign_id, lock=True)
    winner.choose_winner(db_session(), campaign, body.variant)
    out = ab_test_out(db_session(), campaign, results.campaign_results(db_session(), campaign))
    if out is None:
        raise RuntimeError("choose_winner accepted a campaign without an A/B test")
    return out


def _csv(lines: object, filename: str) -> Response:
    return Response(
        lines,  # type: ignore[arg-type]
        mimetype="text/csv",
        headers={"Content-Disposition": f'attachment; filename="{filename}"', "Cache-Control": "no-store"},
    )


def _hours_since(moment: dt.datetime) -> int:
    return max(0, int((utcnow() - moment).total_seconds() // 3600))
