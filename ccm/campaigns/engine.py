"""Running a campaign's fan-out: its plan, its chunks in their transactions, its phases; and the
skipping of a cancelled campaign's waiting messages.

The fan-out runs in lanes, one connection each (on PostgreSQL the work is in the backend, one
core per connection: two lanes use both cores). A lane claims the next chunk — a profile-id range
of the audience after the checkpoint, recorded as a :class:`FanoutChunk` row — in a short
transaction under the campaign's row lock, then writes a claimed chunk no other lane holds
(``SKIP LOCKED``) in a transaction of its own that deletes the claim with the rows. So the chunks
are disjoint ranges; a crash anywhere leaves the checkpoint and exactly the claims whose rows did
not commit, which the next run writes; and the unique send key still makes a recipient written
twice impossible. The last lane to find nothing to claim and no claim left ends the phase."""

from __future__ import annotations

import datetime as dt
import enum
import logging
from concurrent.futures import ThreadPoolExecutor

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from ccm import jobs
from ccm.campaigns import fanout
from ccm.campaigns.models import Campaign, CampaignStatus, CampaignVariant, FanoutChunk, FanoutPhase
from ccm.campaigns.queues import FAN_OUT
from ccm.campaigns.timing import DAYS, Timing, parse_hhmm
from ccm.db import utcnow
from ccm.messages.models import PENDING_STATUSES, Message
from ccm.messages.service import skip_pending
from ccm.runtime import Runtime
from ccm.workspaces.service import workspace_policy

log = logging.getLogger(__name__)
_m, _c, _chunks = Message.__table__, Campaign.__table__, FanoutChunk.__table__
S = CampaignStatus
WRITING = (FanoutPhase.ALL, FanoutPhase.SAMPLE, FanoutPhase.REST)
"""Phases in which the fan-out has rows to write."""
SKIP_CHUNK = 5_000
RAMP = 4
"""Claims smaller than ``CCM_CAMPAIGN_CHUNK`` a fan-out starts with (see :func:`_chunk_size`)."""
CANCELLED_REASON = "campaign_cancelled"


def start_fanout(session: Session, runtime: Runtime, campaign_id: str) -> None:
    """Ask for the campaign's fan-out job once this transaction commits (its outbox row keeps it
    until the phase is written)."""
    jobs.reschedule(session, FAN_OUT, campaign_id, delay=0, grace=runtime.settings.relay_grace)


def run_fanout(runtime: Runtime, campaign_id: str) -> None:
    """The body of ``campaigns.fan_out``: the current phase written by ``CCM_CAMPAIGN_FANOUT_LANES``
    lanes at once (one on SQLite, whose writers take turns), each on its own connection."""
    lanes = 1 if runtime.db.is_sqlite else runtime.settings.campaign_fanout_lanes
    if lanes == 1:
        written = _run_lane(runtime, campaign_id)
    else:
        with ThreadPoolExecutor(lanes, thread_name_prefix=f"fanout-{campaign_id}") as pool:
            running = [pool.submit(_run_lane, runtime, campaign_id) for _ in range(lanes)]
            written = sum(lane.result() for lane in running)  # a lane's error fails the job (retried)
    with runtime.db.unit_of_work() as session:
        jobs.finish(session, FAN_OUT, campaign_id)
    log.info("campaign %s: fan-out wrote %d chunks on %d lanes", campaign_id, written, lanes)


class _Step(enum.Enum):
    CLAIMED = "claimed"
    DRAIN = "drain"
    """Nothing left to claim, but claimed chunks are still to write (some maybe by other lanes)."""
    STOP = "stop"


class _Stopped(Exception):
    """The campaign stopped (cancelled, or its phase over) while a chunk was written: roll it back."""


def _run_lane(runtime: Runtime, campaign_id: str) -> int:
    """One lane: claim a chunk, write a chunk, until the phase is written; the chunks it wrote.
    A lane writes any claimed chunk no other lane holds, so a crash's leftovers are written too."""
    written = 0
    while True:
        with runtime.db.unit_of_work() as session:
            step = _claim(session, runtime, campaign_id)
        if step is _Step.STOP:
            return written
        try:
            with runtime.db.unit_of_work() as session:
                written += _write(session, campaign_id, wait=step is _Step.DRAIN)
        except _Stopped:
            return written


def _claim(session: Session, runtime: Runtime, campaign_id: str) -> _Step:
    """Claim the next chunk after the checkpoint, or end the phase when nothing is left to claim
    or to write. ``FOR NO KEY UPDATE``: the lanes' writes hold ``KEY SHARE`` on the campaign for
    a whole chunk (see :func:`_write`), which a ``FOR UPDATE`` would wait for."""
    campaign = session.scalars(
        select(Campaign)
        .where(Campaign.id == campaign_id)
        .with_for_update(key_share=True)
        .execution_options(populate_existing=True)
    ).first()
    if campaign is None or not _writing(campaign):
        return _Step.STOP
    now = utcnow()
    if campaign.fanout_started_at is None:
        campaign.fanout_started_at = now
    size = _chunk_size(runtime.settings.campaign_chunk, campaign.fanout_chunks)
    upto = fanout.next_boundary(session, campaign, after=campaign.fanout_cursor or "", size=size, now=now)
    if upto is not None:
        campaign.fanout_chunks += 1
        session.add(
            FanoutChunk(
                campaign_id=campaign.id, number=campaign.fanout_chunks, after=campaign.fanout_cursor or "", upto=upto
            )
        )
        campaign.fanout_cursor, campaign.updated_at = upto, now
        return _Step.CLAIMED
    if session.scalar(select(_chunks.c.number).where(_chunks.c.campaign_id == campaign.id).limit(1)) is not None:
        return _Step.DRAIN
    _end_phase(campaign, now)
    campaign.updated_at = now
    return _Step.STOP


def _chunk_size(chunk: int, claimed: int) -> int:
    """The size of the next claim: the first ones smaller (1/16, 1/8, 1/4, 1/2 of ``chunk``, at
    least 1,000), so that an audience of a few chunks is still shared by the lanes."""
    return chunk if claimed >= RAMP else max(chunk >> (RAMP - claimed), min(chunk, 1_000))


def _writing(campaign: Campaign) -> bool:
    return campaign.status in (S.RUNNING, S.PAUSED) and campaign.fanout_phase in WRITING


def _write(session: Session, campaign_id: str, *, wait: bool) -> int:
    """Write the first claimed chunk no other lane holds (with ``wait``: the first, once its
    holder is done with it) in the caller's transaction, and drop its claim; 1 if there was one."""
    claimed = (
        select(FanoutChunk)
        .where(FanoutChunk.campaign_id == campaign_id)
        .order_by(FanoutChunk.number)
        .limit(1)
        .with_for_update(skip_locked=not wait)
    )
    chunk = session.scalars(claimed).first()
    if chunk is None:
        return 0
    # KEY SHARE, held to the commit: the pump's tick (FOR UPDATE SKIP LOCKED) skips the campaign
    # until the chunk's rows are in, so that it never releases past ids still being written; it
    # lets the other lanes, the claims and a cancel (FOR NO KEY UPDATE) through. ``now`` after it.
    campaign = session.scalars(
        select(Campaign)
        .where(Campaign.id == campaign_id)
        .with_for_update(read=True, key_share=True)
        .execution_options(populate_existing=True)
    ).one()
    if not _writing(campaign):
        raise _Stopped
    now = utcnow()
    range_ = fanout.Chunk(after=chunk.after, upto=chunk.upto, number=chunk.number)
    written = fanout.write_chunk(session, plan_of(session, campaign, now), range_, now=now)
    if written.full and written.last_id is not None:  # more of the range joined the audience than one write takes
        chunk.after, chunk.number = written.last_id, _renumber(session, campaign_id)
    else:
        session.delete(chunk)
    _count(session, campaign, written, now)
    return 1


def _count(session: Session, campaign: Campaign, written: fanout.Written, now: dt.datetime) -> None:
    """Add the chunk's counts to the campaign, if it is still being written — else roll back: a
    cancel committed meanwhile has skipped what it found, and must find no message after it."""
    counted = session.execute(
        update(_c)
        .where(
            _c.c.id == campaign.id,
            _c.c.status.in_([S.RUNNING, S.PAUSED]),
            _c.c.fanout_phase == campaign.fanout_phase,
        )
        .values(
            holdout_count=_c.c.holdout_count + written.holdout,
            fallback_timezone_count=_c.c.fallback_timezone_count + written.fallback,
            updated_at=now,
        )
        .returning(_c.c.id)
    ).first()
    if counted is None:
        raise _Stopped


def _renumber(session: Session, campaign_id: str) -> int:
    """A new chunk number (the rest of a range must not reuse the ids its first part took)."""
    number = session.execute(
        update(_c)
        .where(_c.c.id == campaign_id)
        .values(fanout_chunks=_c.c.fanout_chunks + 1)
        .returning(_c.c.fanout_chunks)
    ).scalar_one()
    return int(number)


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
    if campaign.fanout_phase == FanoutPhase.REST:  # the winner goes when it is chosen, not back in time
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
