"""The campaign tick: the scheduler, and the pump that hands each running campaign's messages to
delivery at its rate.

Every tick, for each running campaign (its row locked, ``SKIP LOCKED``: two ticks never pump one
campaign at once, and a campaign pumped less than :data:`TICK_SECONDS` ago is left alone):

1. **pace** — the last tick's batch tells how delivery is going: messages of it ``retrying`` are
   provider back-pressure (SMTP 4xx, HTTP 429), which halves the rate and is counted; many still
   unclaimed mean the workers are behind, which lowers it too; otherwise it grows back by a tenth
   of its ceiling (the throttle, or ``CCM_CAMPAIGN_MAX_RATE``) a tick;
2. **breakers** — failure, bounce or complaint rates over its recent messages above their
   thresholds pause it, saying which and how much;
3. **release** — the next ``rate × elapsed`` messages due within :data:`HORIZON`, after the
   durable release cursor, get their delivery jobs (outbox rows, published in batches after
   commit). Little is ever in the broker, so a pause stops sending within about a second, and a
   resume continues from the cursor. With a sending calendar, a recipient whose zone's window
   has closed since their message fell due is held instead, and released first once it opens
   again (:mod:`ccm.campaigns.windows`);
4. **A/B** — after the sample's wait (or once a winner was set by hand) the winner is fanned out
   to the rest;
5. **end** — once everything is written and released and no message is pending, it completes.
"""

from __future__ import annotations

import datetime as dt
import logging
import random

from sqlalchemy import Integer, func, select
from sqlalchemy.orm import Session

from ccm import jobs
from ccm.campaigns import breakers, engine, state, windows
from ccm.campaigns.models import Campaign, CampaignStatus, FanoutPhase
from ccm.campaigns.progress import final_counts, read_progress
from ccm.campaigns.queues import TICK_SECONDS
from ccm.campaigns.winner import wait_ends_at, winner_for_the_rest
from ccm.db import insert_many, utcnow
from ccm.ids import first_id_at
from ccm.messages.models import Message, MessageStatus
from ccm.messages.tasks import DELIVER, DELIVER_BATCH
from ccm.runtime import Runtime

log = logging.getLogger(__name__)
_m = Message.__table__
_jobs = jobs.PendingJob.__table__
S = CampaignStatus
HORIZON = dt.timedelta(seconds=1)
"""How far ahead of its due time a message may be handed to delivery."""
MAX_RELEASE = 20_000
SETTLE_SCAN = 20_000


def tick(runtime: Runtime) -> None:
    """The body of ``campaigns.tick``."""
    start_due(runtime, utcnow())
    with runtime.db.read_only() as session:
        running = session.scalars(select(Campaign.id).where(Campaign.status == S.RUNNING)).all()
        cancelled = session.scalars(
            select(Campaign.id).where(Campaign.status == S.CANCELLED, Campaign.counts.is_(None))
        ).all()
    for campaign_id in running:
        with runtime.db.unit_of_work() as session:
            pump_campaign(session, runtime, campaign_id, now=utcnow())
    for campaign_id in cancelled:
        with runtime.db.unit_of_work() as session:
            wind_down(session, campaign_id)


def start_due(runtime: Runtime, now: dt.datetime) -> None:
    """Start the scheduled campaigns that are due; one missed by more than its deadline (the
    service was down) is cancelled with reason ``deadline_missed`` instead of starting late."""
    with runtime.db.read_only() as session:
        due = session.execute(
            select(Campaign.id, Campaign.due_at, Campaign.deadline_seconds).where(
                Campaign.status == S.SCHEDULED, Campaign.due_at <= now
            )
        ).all()
    for campaign_id, due_at, deadline in due:
        with runtime.db.unit_of_work() as session:
            late = (now - (due_at or now)).total_seconds()
            if deadline is not None and late > deadline:
                state.transition(
                    session,
                    campaign_id,
                    expect=S.SCHEDULED,
                    to=S.CANCELLED,
                    ended_reason="deadline_missed",
                    paused_reason=f"deadline_missed: {late:.0f} s late (deadline {deadline} s)",
                    cancelled_at=now,
                )
                log.warning("campaign %s: missed its start by %.0f s; cancelled", campaign_id, late)
            elif state.transition(session, campaign_id, expect=S.SCHEDULED, to=S.RUNNING, started_at=now, tick_at=now):
                engine.start_fanout(session, runtime, campaign_id)


def pump_campaign(session: Session, runtime: Runtime, campaign_id: str, *, now: dt.datetime) -> None:
    """One tick of one running campaign (see the module docstring)."""
    campaign = session.scalars(
        select(Campaign)
        .where(Campaign.id == campaign_id, Campaign.status == S.RUNNING)
        .with_for_update(skip_locked=True)
        .execution_options(populate_existing=True)
    ).first()
    # Every worker's relay publishes the tick: the lock and the last tick's time make it one pump.
    if campaign is None or (campaign.tick_at and (now - campaign.tick_at).total_seconds() < TICK_SECONDS):
        return
    elapsed = min(max((now - (campaign.tick_at or now)).total_seconds(), TICK_SECONDS), 2.0)
    tripped = breakers.tripped(session, runtime.settings, campaign)
    if tripped is not None:
        state.transition(session, campaign.id, expect=S.RUNNING, to=S.PAUSED, paused_reason=tripped, tick_at=now)
        log.warning("campaign %s paused: %s", campaign.id, tripped)
        return
    rate = _paced(session, runtime, campaign)
    if campaign.fanout_phase == FanoutPhase.WAITING:
        _decide(session, runtime, campaign, now)
    released = release(session, runtime, campaign, _quota(rate, elapsed), now=now)
    campaign.tick_at, campaign.release_rate, campaign.updated_at = now, rate, now
    if not released and campaign.fanout_phase == FanoutPhase.DONE and not _unreleased(session, campaign):
        _settle(session, campaign, now)


def _paced(session: Session, runtime: Runtime, campaign: Campaign) -> float:
    """The campaign's rate for this tick, from how its last batch is doing."""
    ceiling = campaign.throttle_per_second or runtime.settings.campaign_max_rate
    rate = min(campaign.release_rate or ceiling, ceiling)
    if campaign.release_cursor is None:
        return rate
    queued = (_m.c.status == MessageStatus.QUEUED) & (_m.c.claims == 0)
    if windows.calendar_of(campaign) is not None:  # held by the calendar: not the workers' delay
        queued = queued & ~windows.is_parked(_m.c.id)
    size, unclaimed, retrying = session.execute(
        select(
            func.count(),
            func.coalesce(func.sum(queued.cast(Integer)), 0),
            func.coalesce(func.sum((_m.c.status == MessageStatus.RETRYING).cast(Integer)), 0),
        ).where(
            _m.c.campaign_id == campaign.id,
            _m.c.id > (campaign.previous_cursor or ""),
            _m.c.id <= campaign.release_cursor,
        )
    ).one()
    floor = min(ceiling, 1.0)
    if retrying:
        campaign.throttled_by_provider += 1
        return max(rate / 2, floor)
    if unclaimed * 2 > size and unclaimed > 2 * runtime.settings.delivery_batch:
        # The workers are behind: release what they took of the last batch in a tick, so that
        # the broker's queue stays about a second long (a pause then stops sending within it).
        # A batch of a job or two not yet claimed is only the queue's latency: judged behind
        # for it, a slow rate would release too little to ever be judged again, and stay slow.
        return max(min(rate * 0.7, (size - unclaimed) / TICK_SECONDS), floor)
    return min(rate + ceiling / 10, ceiling)


def _quota(rate: float, elapsed: float) -> int:
    """Messages to release for ``elapsed`` seconds at ``rate``, the fraction rounded at random."""
    exact = rate * elapsed
    # Rounded at random rather than down: a throttle below one a tick still averages right.
    whole = int(exact)
    return min(whole + (1 if random.random() < exact - whole else 0), MAX_RELEASE)


def release(session: Session, runtime: Runtime, campaign: Campaign, limit: int, *, now: dt.datetime) -> int:
    """Hand the next ``limit`` due messages to delivery — first those the calendar held and whose
    window is open again, then those after the release cursor; how many."""
    if limit <= 0:
        return 0
    reopened = _reopened(session, campaign, limit, now=now)
    windows.unpark(session, reopened, due=now + dt.timedelta(seconds=runtime.settings.relay_grace))
    ids = _next_due(session, campaign, limit - len(reopened), now=now)
    ready, held = windows.split_by_window(session, campaign, ids, now=now, horizon=HORIZON)
    grace = runtime.settings.relay_grace
    rows = [jobs.outbox_row(DELIVER, one, grace=grace, now=now) for one in ready]
    rows += [{**jobs.outbox_row(DELIVER, one, grace=grace, now=now), "due_at": windows.PARKED} for one in held]
    if rows:
        insert_many(session.connection(), _jobs, rows)
    jobs.publish_batches_after_commit(session, DELIVER_BATCH, reopened + ready, size=runtime.settings.delivery_batch)
    if ids:
        campaign.previous_cursor, campaign.release_cursor = campaign.release_cursor, ids[-1]
    campaign.released += len(reopened) + len(ready)
    return len(reopened) + len(ready)


def _next_due(session: Session, campaign: Campaign, limit: int, *, now: dt.datetime) -> list[str]:
    if limit <= 0:
        return []
    return list(
        session.scalars(
            select(_m.c.id)
            .where(
                _m.c.campaign_id == campaign.id,
                _m.c.id > (campaign.release_cursor or ""),
                _m.c.id < first_id_at("msg", now + HORIZON),
            )
            .order_by(_m.c.id)
            .limit(limit)
        )
    )


def _reopened(session: Session, campaign: Campaign, limit: int, *, now: dt.datetime) -> list[str]:
    """Held messages whose recipient's window is open again, up to ``limit``."""
    if windows.calendar_of(campaign) is None:
        return []
    parked = windows.parked_ids(session, campaign, limit=limit)
    return windows.split_by_window(session, campaign, parked, now=now, horizon=HORIZON)[0]


def _unreleased(session: Session, campaign: Campaign) -> bool:
    after = select(_m.c.id).where(_m.c.campaign_id == campaign.id, _m.c.id > (campaign.release_cursor or ""))
    return session.execute(after.limit(1)).first() is not None


def _settle(session: Session, campaign: Campaign, now: dt.datetime) -> None:
    """Move the settled cursor past the messages that ended; complete the campaign when all have."""
    rows = session.execute(
        select(_m.c.id, _m.c.status)
        .where(_m.c.campaign_id == campaign.id, _m.c.id > (campaign.settled_cursor or ""))
        .order_by(_m.c.id)
        .limit(SETTLE_SCAN)
    ).all()
    for message_id, status in rows:
        if not MessageStatus(status).is_terminal:
            return
        campaign.settled_cursor = message_id
    if len(rows) == SETTLE_SCAN:
        return
    counts = final_counts(read_progress(session, campaign, now=now))
    if state.transition(session, campaign.id, expect=S.RUNNING, to=S.COMPLETED, completed_at=now, counts=counts):
        log.info("campaign %s completed: %s", campaign.id, counts["counts"])


def _decide(session: Session, runtime: Runtime, campaign: Campaign, now: dt.datetime) -> None:
    """After the A/B sample's wait (or a winner set by hand), fan the winner out to the rest."""
    test = campaign.ab_test or {}
    winner = test.get("winner")
    if not winner:
        if now < wait_ends_at(campaign, now=now):
            return
        control = engine.plan_of(session, campaign, now).variants[0].key
        winner = winner_for_the_rest(session, campaign, control=control)
    campaign.fanout_phase, campaign.fanout_cursor = FanoutPhase.REST, None
    engine.start_fanout(session, runtime, campaign.id)
    log.info("campaign %s: variant %s won; sending it to the rest", campaign.id, winner)


def wind_down(session: Session, campaign_id: str) -> None:
    """Skip the next waiting messages of a cancelled campaign; keep its counts once none is left."""
    campaign = session.get(Campaign, campaign_id, with_for_update={"skip_locked": True}, populate_existing=True)
    if campaign is None or campaign.status != S.CANCELLED or campaign.counts is not None:
        return
    if engine.skip_waiting(session, campaign):
        return
    campaign.counts = final_counts(read_progress(session, campaign, now=utcnow()))
