"""The relay: what publishes the job outbox (:mod:`ccm.jobs`) — every due row, whatever the broker
holds, with backoff — and the periodic jobs of the domains, from a thread in every worker process
(and in the embedded server). It knows no domain: the worker hands it the periodic jobs."""

from __future__ import annotations

import datetime as dt
import logging
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy import bindparam, select, update
from sqlalchemy.orm import Session

from ccm import brokers
from ccm.brokers import BROKER_ERRORS
from ccm.db import utcnow
from ccm.jobs import TABLE as _JOBS
from ccm.jobs import Context, Job, PendingJob, Publisher

if TYPE_CHECKING:
    from ccm.config import Settings

log = logging.getLogger(__name__)

RELAY_BATCH = 500
"""Rows one relay pass takes; a tick runs passes until one comes back short, at most RELAY_PASSES."""
RELAY_PASSES = 10


_PUSH_JOB = (
    update(_JOBS)
    .where(_JOBS.c.key == bindparam("b_key"))
    .values(due_at=bindparam("b_due"), publishes=bindparam("b_publishes"))
)


@dataclass(frozen=True)
class _Taken:
    """An outbox row the relay is about to publish, with what to restore if publishing fails."""

    key: str
    actor: str
    queue: str
    args: list[Any]
    due_at: dt.datetime
    publishes: int
    pushed_to: dt.datetime


def relay_once(runtime: Context, *, limit: int = RELAY_BATCH) -> int:
    """Publish up to ``limit`` outbox rows that are due, oldest first; return how many went out.

    Every due row is published, whatever the broker holds: a job still waiting in its queue costs
    one no-op run, and the backoff keeps those few (see the module docstring), while a job the
    broker lost — or that a dead worker was running — is never left behind.

    The broker is never called inside a transaction: a short one takes the due rows (moving their
    due time on, with backoff), they are published after it commits, and those the broker refused
    are made due again. A crash in between only delays them by their backoff.
    """
    now = utcnow()
    with runtime.db.read_only() as session:  # the usual answer, "nothing", takes no write lock
        # Ordered, so that even a generic plan of this prepared statement reads the index's first entry.
        anything_due = select(PendingJob.id).where(PendingJob.due_at <= now).order_by(PendingJob.due_at).limit(1)
        if session.execute(anything_due).first() is None:
            return 0
    with runtime.db.unit_of_work() as session:
        taken = _take_due(runtime, session, now, limit)
    published = _publish(runtime, taken)
    if published < len(taken):
        with runtime.db.unit_of_work() as session:
            _give_back(session, taken[published:])
    if published:
        log.info("relay: published %d due jobs", published)
    return published


def next_publish_in(settings: Settings, publishes: int) -> float:
    """Seconds from a job's publish number ``publishes + 1`` until it falls due again."""
    return min(settings.relay_grace * 2 ** min(publishes, 32), settings.relay_backoff_max)


def _take_due(runtime: Context, session: Session, now: dt.datetime, limit: int) -> list[_Taken]:
    """Lock the due rows (other relays skip them) and move their due time on: two statements,
    because this transaction holds the write lock."""
    rows = session.execute(
        select(_JOBS.c.key, _JOBS.c.actor, _JOBS.c.queue, _JOBS.c.args, _JOBS.c.due_at, _JOBS.c.publishes)
        .where(_JOBS.c.due_at <= now)
        .order_by(_JOBS.c.due_at)
        .limit(limit)
        .with_for_update(skip_locked=True)
    ).all()
    taken = [
        _Taken(
            row.key,
            row.actor,
            row.queue,
            row.args,
            row.due_at,
            row.publishes,
            now + dt.timedelta(seconds=next_publish_in(runtime.settings, row.publishes)),
        )
        for row in rows
    ]
    if taken:
        session.execute(
            _PUSH_JOB, [{"b_key": job.key, "b_due": job.pushed_to, "b_publishes": job.publishes + 1} for job in taken]
        )
    return taken


def _publish(runtime: Context, taken: list[_Taken]) -> int:
    """Publish in order until the broker refuses; return how many went out."""
    for published, job in enumerate(taken):
        try:
            runtime.publisher.publish(job.actor, job.queue, job.args)
        except BROKER_ERRORS as exc:
            log.warning("relay: broker unavailable (%s); %d jobs wait", exc, len(taken) - published)
            return published
    return len(taken)


def _give_back(session: Session, unpublished: list[_Taken]) -> None:
    """Make jobs the broker refused due again — unless their row changed meanwhile (finished,
    leased by a run, or rescheduled by its actor)."""
    for job in unpublished:
        session.execute(
            update(_JOBS)
            .where(_JOBS.c.key == job.key, _JOBS.c.due_at == job.pushed_to)
            .values(due_at=job.due_at, publishes=job.publishes)
        )


class Relay(threading.Thread):
    """Runs, every ``CCM_RELAY_INTERVAL``, in the background of a process: the broker's
    dead-worker requeue (:func:`ccm.brokers.requeue_dead_workers`), :func:`relay_once` (at most
    ``RELAY_PASSES`` batches a tick), and the ``periodic`` jobs that are due (see :attr:`Job.every`).
    It only publishes: the periodic work itself is each domain's actor."""

    def __init__(self, runtime: Context, *, periodic: Sequence[Job] = ()) -> None:
        super().__init__(name="ccm-relay", daemon=True)
        self.runtime = runtime
        self.schedule = Schedule(periodic)
        self.stopping = threading.Event()

    def run(self) -> None:
        while not self.stopping.wait(self.runtime.settings.relay_interval):
            try:
                self.tick()
            except Exception:
                log.exception("relay pass failed; retrying")

    def tick(self) -> None:
        try:
            brokers.requeue_dead_workers(self.runtime.broker)
        except BROKER_ERRORS as exc:
            log.warning("relay: broker unavailable (%s)", exc)
        for _ in range(RELAY_PASSES):
            if relay_once(self.runtime) < RELAY_BATCH:
                break
        self.schedule.publish_due(self.runtime.publisher)

    def stop(self) -> None:
        self.stopping.set()
        self.join(timeout=10)


class Schedule:
    """When each periodic job is next due, in this process. The first run is due at once; a
    publish the broker refuses is tried again at the next tick. Every process with a relay keeps
    its own schedule, so periodic work must be safe to run in several processes at a time."""

    def __init__(self, periodic: Sequence[Job]) -> None:
        for job in periodic:
            if not job.every or job.every <= 0:
                raise ValueError(f"{job.name} is not periodic: give it every=<seconds>")
        self._next = dict.fromkeys(periodic, 0.0)

    def publish_due(self, publisher: Publisher, *, now: float | None = None) -> list[Job]:
        """Publish the periodic jobs that are due; returns them."""
        now = time.monotonic() if now is None else now
        published = []
        for job, due in list(self._next.items()):
            if due > now:
                continue
            try:
                publisher.publish(job.name, job.queue, ())
            except BROKER_ERRORS as exc:
                log.warning("relay: %s not published (%s); next tick", job.name, exc)
                continue
            self._next[job] = now + (job.every or 0.0)
            published.append(job)
        return published
