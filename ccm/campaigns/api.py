"""``/v1/campaigns``: make, change, launch, pause, resume, cancel and watch campaigns."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Annotated

from flask import Blueprint, Response, current_app, request
from sqlalchemy.orm import Session

from ccm.access import Permission
from ccm.audit.api import audit
from ccm.audit.service import Target
from ccm.auth.api import current_workspace_id, require_api_key
from ccm.campaigns import service
from ccm.campaigns.models import Campaign, CampaignStatus
from ccm.campaigns.progress import read_progress
from ccm.campaigns.schemas import (
    CampaignIn,
    CampaignList,
    CampaignListQuery,
    CampaignOut,
    CampaignPatch,
    CampaignSummary,
    Counts,
    VariantOut,
)
from ccm.campaigns.state import ENDED
from ccm.db import utcnow
from ccm.errors import ValidationFailed
from ccm.http import db_session, declare_permission, endpoint, permissions
from ccm.runtime import Runtime
from ccm.validation import id_field

CampaignId = Annotated[str, id_field("cmp")]
STREAM_SECONDS = 600
"""The longest an event stream stays open; a client reconnects for more."""

bp = Blueprint("campaigns", __name__, url_prefix="/v1/campaigns")
bp.before_request(require_api_key)
permissions(bp, writes=Permission.CAMPAIGNS)


@endpoint(
    bp,
    "",
    method="POST",
    body=CampaignIn,
    responses={201: CampaignOut},
    errors=(404,),
    summary="Make a draft campaign: a template (or A/B variants) for a segment, when and how fast",
)
def create_campaign(body: CampaignIn) -> tuple[CampaignOut, int]:
    session = db_session()
    campaign = service.create_campaign(session=session, workspace_id=current_workspace_id(), data=body)
    return campaign_out(session, campaign), 201


@endpoint(
    bp, "", method="GET", query=CampaignListQuery, responses={200: CampaignList}, summary="List campaigns, newest first"
)
def list_campaigns(query: CampaignListQuery) -> CampaignList:
    session = db_session()
    rows, cursor = service.list_campaigns(
        session=session, workspace_id=current_workspace_id(), page=query, status=query.status
    )
    return CampaignList(items=[_summary(session, campaign) for campaign in rows], next_cursor=cursor)


@endpoint(
    bp,
    "/<campaign_id>",
    method="GET",
    responses={200: CampaignOut},
    summary="A campaign with its live progress: counts by status and skip reason, rate, time left",
)
def get_campaign(campaign_id: CampaignId) -> CampaignOut:
    session = db_session()
    campaign = service.get_campaign(session=session, workspace_id=current_workspace_id(), campaign_id=campaign_id)
    return campaign_out(session, campaign)


@endpoint(
    bp,
    "/<campaign_id>",
    method="PATCH",
    body=CampaignPatch,
    responses={200: CampaignOut},
    errors=(404, 409),
    summary="Change a draft or scheduled campaign",
)
def patch_campaign(campaign_id: CampaignId, body: CampaignPatch) -> CampaignOut:
    session = db_session()
    campaign = service.edit_campaign(
        session=session, workspace_id=current_workspace_id(), campaign_id=campaign_id, patch=body
    )
    return campaign_out(session, campaign)


@endpoint(
    bp,
    "/<campaign_id>/launch",
    method="POST",
    responses={200: CampaignOut},
    errors=(404, 409),
    summary="Launch a draft (now, or scheduled for schedule.at); a launched campaign is answered as it is",
)
def launch_campaign(campaign_id: CampaignId) -> CampaignOut:
    session = db_session()
    before = _status(session, campaign_id)
    runtime: Runtime = current_app.extensions["ccm"]
    campaign = service.launch(
        session=session, runtime=runtime, workspace_id=current_workspace_id(), campaign_id=campaign_id
    )
    _audit_transition("campaign.launch", campaign, before)
    return campaign_out(session, campaign)


@endpoint(
    bp,
    "/<campaign_id>/pause",
    method="POST",
    responses={200: CampaignOut},
    errors=(404, 409),
    summary="Pause a running campaign: nothing more is released (what was handed over in the last second goes)",
)
def pause_campaign(campaign_id: CampaignId) -> CampaignOut:
    session = db_session()
    before = _status(session, campaign_id)
    campaign = service.pause(session=session, workspace_id=current_workspace_id(), campaign_id=campaign_id)
    _audit_transition("campaign.pause", campaign, before)
    return campaign_out(session, campaign)


@endpoint(
    bp,
    "/<campaign_id>/resume",
    method="POST",
    responses={200: CampaignOut},
    errors=(404, 409),
    summary="Resume a paused campaign from where it stopped",
)
def resume_campaign(campaign_id: CampaignId) -> CampaignOut:
    session = db_session()
    before = _status(session, campaign_id)
    campaign = service.resume(session=session, workspace_id=current_workspace_id(), campaign_id=campaign_id)
    _audit_transition("campaign.resume", campaign, before)
    return campaign_out(session, campaign)


@endpoint(
    bp,
    "/<campaign_id>/cancel",
    method="POST",
    responses={200: CampaignOut},
    errors=(404, 409),
    summary="Cancel a campaign: its waiting messages are skipped (campaign_cancelled); those being sent finish",
)
def cancel_campaign(campaign_id: CampaignId) -> CampaignOut:
    session = db_session()
    before = _status(session, campaign_id)
    campaign = service.cancel(session=session, workspace_id=current_workspace_id(), campaign_id=campaign_id)
    _audit_transition("campaign.cancel", campaign, before)
    return campaign_out(session, campaign)


@bp.get("/<campaign_id>/events")
def campaign_events(campaign_id: str) -> Response:
    """A server-sent event stream of the campaign's progress (``event: progress``, the body of
    ``GET /v1/campaigns/{id}``) every second, until it ends (``event: end``) or
    ``?seconds=`` (default and most: 600) pass."""
    seconds = _stream_seconds(request.args.get("seconds"))
    session = db_session()
    workspace_id = current_workspace_id()
    service.get_campaign(session=session, workspace_id=workspace_id, campaign_id=campaign_id)
    runtime: Runtime = current_app.extensions["ccm"]
    headers = {"Cache-Control": "no-store", "X-Accel-Buffering": "no"}
    return Response(
        progress_events(runtime, workspace_id, campaign_id, seconds), mimetype="text/event-stream", headers=headers
    )


def _status(session: Session, campaign_id: str) -> str:
    return service.get_campaign(session=session, workspace_id=current_workspace_id(), campaign_id=campaign_id).status


def _audit_transition(action: str, campaign: Campaign, before: str) -> None:
    """Only a change is an action: launching a launched campaign answers it as it is, unrecorded."""
    if campaign.status != before:
        audit(action, Target("campaign", campaign.id), before={"status": before}, after={"status": campaign.status})


def _stream_seconds(given: str | None) -> float:
    if given is None:
        return STREAM_SECONDS
    if not given.isdigit() or not 1 <= int(given) <= STREAM_SECONDS:
        raise ValidationFailed(f"seconds: a whole number from 1 to {STREAM_SECONDS}", field="seconds")
    return float(given)


declare_permission(bp, "campaign_events", Permission.VIEW)


def progress_events(runtime: Runtime, workspace_id: str, campaign_id: str, seconds: float) -> Iterator[str]:
    """The event stream's text: the campaign as ``GET /v1/campaigns/{id}`` shows it, every second
    (each in a short read-only session), then ``end``; the web app's progress page reads it too."""
    ends = time.monotonic() + seconds
    while True:
        with runtime.db.read_only() as session:
            campaign = service.get_campaign(session=session, workspace_id=workspace_id, campaign_id=campaign_id)
            body = campaign_out(session, campaign).model_dump_json()
            over = campaign.status in ENDED
        yield f"event: progress\ndata: {body}\n\n"
        if over or time.monotonic() >= ends:
            yield f"event: end\ndata: {json.dumps({'status': campaign.status})}\n\n"
            return
        time.sleep(1.0)


def _summary(session: Session, campaign: Campaign) -> CampaignSummary:
    return CampaignSummary(**_summary_fields(session, campaign))


def _summary_fields(session: Session, campaign: Campaign) -> dict[str, object]:
    variants = service.variants_of(session, campaign.id)
    return {
        "id": campaign.id,
        "name": campaign.name,
        "status": CampaignStatus(campaign.status),
        "category": campaign.category,
        "topic": campaign.topic,
        "channels": campaign.channels,
        "segment": campaign.segment_id,
        "schedule": campaign.schedule or {},
        "calendar": campaign.calendar,
        "throttle": {"per_second": campaign.throttle_per_second} if campaign.throttle_per_second else None,
        "deadline": campaign.deadline_seconds,
        "holdout_percent": campaign.holdout_percent,
        "ab_test": campaign.ab_test,
        "goal": campaign.goal,
        "data": campaign.data or {},
        "variants": [
            VariantOut(key=v.key, template=v.template, weight=v.weight, template_version=v.template_version)
            for v in variants
        ],
        "paused_reason": campaign.paused_reason,
        "ended_reason": campaign.ended_reason,
        "created_at": campaign.created_at,
        "launched_at": campaign.launched_at,
        "started_at": campaign.started_at,
        "completed_at": campaign.completed_at,
        "cancelled_at": campaign.cancelled_at,
        "updated_at": campaign.updated_at,
    }


def campaign_out(session: Session, campaign: Campaign) -> CampaignOut:
    """The campaign with its progress, read now from its messages."""
    progress = read_progress(session, campaign, now=utcnow())
    return CampaignOut(
        **_summary_fields(session, campaign),
        counts=Counts(**{name: progress.counts.get(name, 0) for name in Counts.model_fields}),
        skipped_by_reason=progress.skipped_by_reason,
        failed_by_reason=progress.failed_by_reason,
        rate=progress.rate,
        eta_seconds=progress.eta_seconds,
        progress=progress.progress,
        release_rate=campaign.release_rate,
        throttled_by_provider=campaign.throttled_by_provider,
        fallback_timezone_count=campaign.fallback_timezone_count,
        fanout_phase=campaign.fanout_phase,
    )
