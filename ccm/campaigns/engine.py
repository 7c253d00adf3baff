"""Running a campaign's fan-out: its plan, its chunks in their transactions, its phases; and the
skipping of a cancelled campaign's waiting messages."""

from __future__ import annotations

import datetime as dt
import logging

from sqlalchemy import select
from sqlalchemy.orm import Session

from ccm import jobs
from ccm.campaigns import fanout
from ccm.campaigns.models import Campaign, CampaignStatus, CampaignVariant, FanoutPhase
from ccm.campaigns.queues import FAN_OUT
from ccm.campaigns.timing import DAYS, Timing, parse_hhmm
from ccm.db import utcnow
from ccm.messages.models import PENDING_STATUSES, Message
from ccm.messages.service import skip_pending
from ccm.runtime import Runtime
from ccm.workspaces.service import workspace_policy

log = logging.getLogger(__name__)
_m = Message.__table__
S = CampaignStatus
WRITING = (FanoutPhase.ALL, FanoutPhase.SAMPLE, FanoutPhase.REST)
"""Phases in which the fan-out has rows to write."""
SKIP_CHUNK = 5_000
CANCELLED_REASON = "campaign_cancelled"


def start_fanout(session: Session, runtime: Runtime, campaign_id: str) -> None:
    """Ask for the campaign's fan-out job once this transaction commits (its outbox row keeps it
    until the phase is written)."""
    jobs.reschedule(session, FAN_OUT, campaign_id, delay=0, grace=runtime.settings.relay_grace)


def run_fanout(runtime: Runtime, campaign_id: str) -> None:
    """The body of ``campaigns.fan_out``: chunks until the current phase is written."""
    written = 0
    while True:
        with runtime.db.unit_of_work() as session:
            more, count = _next_chunk(session, runtime, campaign_id)
        written += count
        if not more:
            break
    with runtime.db.unit_of_work() as session:
        jobs.finish(session, FAN_OUT, campaign_id)
    log.info("campaign %s: fan-out wrote %d messages", campaign_id, written)


def _next_chunk(session: Session, runtime: Runtime, campaign_id: str) -> tuple[bool, int]:
    """One chunk in the caller's transaction: whether there is more, and the messages written."""
    campaign = session.scalars(
        select(Campaign).where(Campaign.id == campaign_id).with_for_update().execution_options(populate_existing=True)
    ).first()
    if campaign is None or campaign.status not in (S.RUNNING, S.PAUSED) or campaign.fanout_phase not in WRITING:
        return False, 0
    now = utcnow()
    if campaign.fanout_started_at is None:
        campaign.fanout_started_at = now
    plan = plan_of(session, campaign, now)
    written = fanout.write_chunk(session, plan, size=runtime.settings.campaign_chunk, now=now)
    campaign.updated_at = now
    if written.last_id is None:
        _end_phase(campaign, now)
        return False, 0
    campaign.fanout_cursor = written.last_id
    campaign.fanout_chunks += 1
    campaign.holdout_count += written.holdout
    campaign.fallback_timezone_count += written.fallback
    return True, written.messages


def _end_phase(campaign: Campaign, now: dt.datetime) -> None:
    if campaign.fanout_phase == FanoutPhase.SAMPLE:
        campaign.fanout_phase, campaign.sample_done_at = FanoutPhase.WAITING, now
    else:
        campaign.fanout_phase = FanoutPhase.DONE
    campaign.fanout_cursor = None


def plan_of(session: Session, campaign: Campaign, now: dt.datetime) -> fanout.Plan:
    """What the campaign's current phase writes."""
    variants = list(
        session.scalars(
            select(CampaignVariant).where(CampaignVariant.campaign_id == campaign.id).order_by(CampaignVariant.key)
        )
    )
    policy = workspace_policy(session=session, workspace_id=campaign.workspace_id)
    deadline = campaign.deadline_seconds or 24 * 3600
    winner = (campaign.ab_test or {}).get("winner") if campaign.fanout_phase == FanoutPhase.REST else None
    return fanout.Plan(
        campaign=campaign,
        variants=variants,
        phase=FanoutPhase(campaign.fanout_phase),
        timing=timing_of(campaign, now),
        deadline=dt.timedelta(seconds=deadline),
        fallback_zone=policy.timezone,
        winner=winner,
    )


def timing_of(campaign: Campaign, now: dt.datetime) -> Timing:
    """When the campaign's recipients are due, from its schedule and calendar."""
    schedule, calendar = campaign.schedule or {}, campaign.calendar or {}
    start = max(campaign.started_at or now, dt.datetime.fromisoformat(schedule["at"]) if schedule.get("at") else now)
    if campaign.fanout_phase == FanoutPhase.REST:
        start = max(start, now)
    hours = calendar.get("hours")
    days = calendar.get("days")
    return Timing(
        start=start,
        local_time=parse_hhmm(schedule["local_time"]) if schedule.get("local_time") else None,
        days=frozenset(DAYS.index(day) for day in days) if days else None,
        hours=(parse_hhmm(hours[0]), parse_hhmm(hours[1])) if hours else None,
    )


def skip_waiting(session: Session, campaign: Campaign, *, limit: int = SKIP_CHUNK) -> int:
    """Skip up to ``limit`` of a cancelled campaign's waiting messages, in release order (those
    handed to delivery first); returns how many were skipped."""
    waiting = session.scalars(
        select(_m.c.id)
        .where(_m.c.campaign_id == campaign.id, _m.c.status.in_([str(s) for s in PENDING_STATUSES]))
        .order_by(_m.c.id)
        .limit(limit)
    ).all()
    return len(skip_pending(session=session, message_ids=waiting, reason=CANCELLED_REASON))
