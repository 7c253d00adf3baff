"""Background jobs: the transactional job outbox and the relay that publishes it.

A job is written as a :class:`PendingJob` row in the same transaction as the work that needs it,
and published to Dramatiq right after that transaction commits. The row stays until the job's
actor finishes the work (the actor deletes it in its own final transaction). Whatever is still
there when it falls due is published again by the relay, whatever the broker holds — after a crash
between commit and publish, a broker outage, a broker that lost its data, or a worker that died
while running the job. Actors are idempotent, so a second publish costs one no-op run, never a
second send.

When a row falls due:

- *published*: ``CCM_RELAY_GRACE`` after it was written; each republish waits twice as long as
  the one before, up to ``CCM_RELAY_BACKOFF_MAX`` (a job waiting in a deep queue is published
  about log2(wait / grace) extra times, never more);
- *delayed* (a retry, a deferral): at its time — the timer is the row, not a broker message;
- *started*: a run leases its row for ``CCM_CLAIM_TIMEOUT + CCM_RELAY_GRACE``, so a job whose
  worker died is published again once the claim it may have taken is stale.

A domain's periodic work (tracking hits to record, expired keys to purge) is a job with
:attr:`Job.every` and no row, published by the relay on its own schedule. This module knows no
domain: the worker hands the relay its periodic jobs and binds the actors.
"""

from __future__ import annotations

import datetime as dt
import functools
import logging
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

import dramatiq
from sqlalchemy import BigInteger, Integer, String, bindparam, delete, insert, select, text, update
from sqlalchemy.orm import Mapped, Session, mapped_column

from ccm import brokers
from ccm.brokers import BROKER_ERRORS, build_broker, check_redis_policy  # noqa: F401  (re-exported)
from ccm.db import Base, Database, after_commit, rowcount, utcnow

if TYPE_CHECKING:
    from ccm.config import Settings

log = logging.getLogger(__name__)

RELAY_BATCH = 500
"""Rows one relay pass takes; a tick runs passes until one comes back short, at most RELAY_PASSES."""
RELAY_PASSES = 10


@dataclass(frozen=True)
class Job:
    """A kind of background work: the Dramatiq actor name and its queue."""

    name: str
    queue: str
    time_limit_ms: int = 5 * 60 * 1000
    max_retries: int = 20
    batch_of: Job | None = None
    """Set for a job that carries many jobs of another kind in one broker message: its one
    argument is their ids. It has no row of its own — each carried job keeps its row, leased
    and finished as if it ran alone, so a lost batch costs only speed: the relay publishes each
    carried job again when it falls due."""
    every: float | None = None
    """Set for a domain's periodic work (maintenance): the relay publishes the job every this many
    seconds. It has no row either: a run that is lost is made up by the next one."""


class PendingJob(Base):
    """A job that was asked for and is not finished yet (the transactional outbox)."""

    __tablename__ = "job_outbox"

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    key: Mapped[str] = mapped_column(String(300), unique=True)
    actor: Mapped[str] = mapped_column(String(100))
    queue: Mapped[str] = mapped_column(String(50))
    args: Mapped[list[Any]]
    due_at: Mapped[dt.datetime] = mapped_column(index=True)
    publishes: Mapped[int] = mapped_column(default=0)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


_JOBS = PendingJob.__table__
_INSERT_JOB = insert(_JOBS)
_FINISH_JOB = delete(_JOBS).where(_JOBS.c.key == bindparam("b_key"))
_PUSH_JOB = (
    update(_JOBS)
    .where(_JOBS.c.key == bindparam("b_key"))
    .values(due_at=bindparam("b_due"), publishes=bindparam("b_publishes"))
)
_LEASE_JOB = (
    update(_JOBS)
    .where(_JOBS.c.key == bindparam("b_key"), _JOBS.c.due_at < bindparam("b_due"))
    .values(due_at=bindparam("b_due"))
)
_ASYNC_COMMIT = text("SET LOCAL synchronous_commit = off")


class Context(Protocol):
    """What the outbox, the relay and the actors need of a process; :class:`ccm.runtime.Runtime`
    is one. Jobs sit below every domain, and so below the runtime that holds the domains' tools."""

    settings: Settings
    db: Database
    broker: dramatiq.Broker
    publisher: Publisher


def job_key(job: Job, *args: Any) -> str:
    return ":".join([job.name, *map(str, args)])


def enqueue(session: Session, job: Job, *args: Any, grace: float, delay: float = 0.0) -> None:
    """Ask for ``job(*args)`` to run once the current transaction commits, or ``delay`` seconds
    from now.

    Without a delay the job is published right after commit, and its row falls due for the relay
    ``grace`` seconds from now. With one, nothing is published: the row falls due at that time and
    the relay publishes it then. ``session.info["publisher"]`` is set by the runtime.
    """
    now = utcnow()
    key = job_key(job, *args)
    session.execute(
        _INSERT_JOB,
        {
            "key": key,
            "actor": job.name,
            "queue": job.queue,
            "args": list(args),
            "due_at": now + dt.timedelta(seconds=delay or grace),
            "publishes": 0,
            "created_at": now,
        },
    )
    _publish_after_commit(session, key, job, args, delay)


def reschedule(session: Session, job: Job, *args: Any, delay: float, grace: float) -> None:
    """Run ``job(*args)`` again in ``delay`` seconds (its outbox row moves with it; see :func:`enqueue`)."""
    key = job_key(job, *args)
    due_at = utcnow() + dt.timedelta(seconds=delay or grace)
    found = session.execute(update(_JOBS).where(_JOBS.c.key == key).values(due_at=due_at))
    if not rowcount(found):
        session.execute(
            _INSERT_JOB,
            {
                "key": key,
                "actor": job.name,
                "queue": job.queue,
                "args": list(args),
                "due_at": due_at,
                "publishes": 0,
                "created_at": utcnow(),
            },
        )
    _publish_after_commit(session, key, job, args, delay)


def _publish_after_commit(session: Session, key: str, job: Job, args: tuple[Any, ...], delay: float) -> None:
    if not delay:  # a delayed job waits in the database: the relay publishes it when it falls due
        after_commit(session, functools.partial(publisher_of(session).publish_after_commit, key, job, args))


def outbox_row(job: Job, *args: Any, grace: float, now: dt.datetime) -> dict[str, Any]:
    """The row :func:`enqueue` writes for ``job(*args)`` without a delay, for a caller that inserts
    outbox rows in its own statement (a multi-row insert, one ``INSERT … WITH`` with the work);
    it then calls :func:`publish_after_commit` for the same jobs."""
    return {
        "key": job_key(job, *args),
        "actor": job.name,
        "queue": job.queue,
        "args": list(args),
        "due_at": now + dt.timedelta(seconds=grace),
        "publishes": 0,
        "created_at": now,
    }


def publish_batches_after_commit(session: Session, batch: Job, ids: Sequence[str], *, size: int) -> None:
    """Publish the jobs of ``batch.batch_of`` for ``ids`` (their rows written in this
    transaction) as ``batch`` jobs of up to ``size`` ids each, once the transaction commits."""
    assert batch.batch_of is not None, f"{batch.name} carries no jobs"
    chunks = [(list(ids[start : start + size]),) for start in range(0, len(ids), size)]
    if chunks:
        publisher = publisher_of(session)
        keys = [job_key(batch.batch_of, one) for one in ids]
        after_commit(session, functools.partial(publisher.publish_many_after_commit, batch, chunks, keys=keys))


def publish_after_commit(session: Session, job: Job, args_list: list[tuple[Any, ...]]) -> None:
    """Publish ``job`` once per args right after the current transaction commits (one broker
    round trip for all on Redis); a failed publish leaves the rows to the relay."""
    publisher = publisher_of(session)
    if len(args_list) == 1:
        key = job_key(job, *args_list[0])
        after_commit(session, functools.partial(publisher.publish_after_commit, key, job, args_list[0]))
    elif args_list:
        after_commit(session, functools.partial(publisher.publish_many_after_commit, job, args_list))


def publisher_of(session: Session) -> Publisher:
    """The publisher of the runtime whose sessionmaker made ``session`` (``session.info["publisher"]``).

    Raises:
      RuntimeError: the session has none, so the jobs it asks for would never be published.
    """
    publisher: Publisher | None = session.info.get("publisher")
    if publisher is None:
        raise RuntimeError(
            'session.info["publisher"] is not set: jobs are enqueued on sessions of a runtime\'s '
            "sessionmaker (see ccm.runtime.create_runtime)"
        )
    return publisher


def lease(runtime: Context, job: Job, *args: Any) -> None:
    """A run of ``job(*args)`` starts: unless its row already falls due later, it falls due
    ``CCM_CLAIM_TIMEOUT + CCM_RELAY_GRACE`` from now. Should this run die, the relay publishes the
    job again then — when any claim the run took is stale and the next run may take it over."""
    settings = runtime.settings
    due = utcnow() + dt.timedelta(seconds=settings.claim_timeout + settings.relay_grace)
    keys = [job_key(job.batch_of, one) for one in args[0]] if job.batch_of else [job_key(job, *args)]
    with runtime.db.unit_of_work() as session:
        if session.get_bind().dialect.name == "postgresql":
            # The lease guards against this worker dying, not the database: it need not wait for
            # the WAL flush (a fifth of a second later), which would cost a disk sync per job.
            session.execute(_ASYNC_COMMIT)
        session.execute(_LEASE_JOB, [{"b_key": key, "b_due": due} for key in keys])


def finish(session: Session, job: Job, *args: Any) -> None:
    """Mark ``job(*args)`` done, in the transaction that records its result."""
    session.execute(_FINISH_JOB, {"b_key": job_key(job, *args)})


def finish_many(session: Session, job: Job, args: Sequence[tuple[Any, ...]]) -> None:
    """:func:`finish` for many jobs of one kind, in one round trip."""
    if args:
        session.execute(_FINISH_JOB, [{"b_key": job_key(job, *each)} for each in args])


class Publisher:
    """Publishes jobs to the broker; on failure leaves them to the relay."""

    def __init__(self, broker: dramatiq.Broker, sessionmaker: Callable[[], Session]) -> None:
        self.broker = broker
        self.sessionmaker = sessionmaker
        self.relay_only = False
        """Set in processes whose in-process broker no worker reads (a CLI command beside
        ``ccm serve`` on the embedded default): jobs are made due at once for the server's relay."""

    def publish(self, actor: str, queue: str, args: Iterable[Any]) -> None:
        message: dramatiq.Message[Any] = dramatiq.Message(
            queue_name=queue, actor_name=actor, args=tuple(args), kwargs={}, options={}
        )
        self.broker.enqueue(message)

    def publish_after_commit(self, key: str, job: Job, args: Iterable[Any]) -> None:
        if self.relay_only:
            self._make_due(key)
            return
        try:
            self.publish(job.name, job.queue, args)
        except Exception as exc:  # the broker is down: make the row due now for the relay
            log.warning("publishing %s failed (%s); the relay will publish it", key, exc)
            self._make_due(key)

    def publish_many_after_commit(
        self, job: Job, args_list: list[tuple[Any, ...]], *, keys: list[str] | None = None
    ) -> None:
        """``keys``: the rows behind the messages, made due for the relay if the publish fails
        (by default one row per message, keyed by its args)."""
        keys = keys if keys is not None else [job_key(job, *args) for args in args_list]
        if self.relay_only:
            self._make_due(*keys)
            return
        try:
            messages: list[dramatiq.Message[Any]] = [
                dramatiq.Message(queue_name=job.queue, actor_name=job.name, args=args, kwargs={}, options={})
                for args in args_list
            ]
            brokers.enqueue_many(self.broker, messages)
        except Exception as exc:  # the broker is down: make the rows due now for the relay
            log.warning("publishing %d %s jobs failed (%s); the relay will publish them", len(keys), job.name, exc)
            self._make_due(*keys)

    def _make_due(self, *keys: str) -> None:
        with self.sessionmaker() as session, session.begin():
            session.execute(update(PendingJob).where(PendingJob.key.in_(keys)).values(due_at=utcnow()))


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


def declare_actors(runtime: Context, tasks: dict[Job, Callable[..., None]]) -> None:
    """Declare every task as a Dramatiq actor on the runtime's broker, bound to the runtime; each
    run of a job with a row leases it first (see :func:`lease`)."""
    for job, fn in tasks.items():
        dramatiq.Actor(
            _leased(runtime, job, fn),
            actor_name=job.name,
            queue_name=job.queue,
            priority=0,
            broker=runtime.broker,
            options={"time_limit": job.time_limit_ms, "max_retries": job.max_retries},
        )


def _leased(runtime: Context, job: Job, fn: Callable[..., None]) -> Callable[..., None]:
    @functools.wraps(fn)
    def run(*args: Any) -> None:
        if not job.every:  # a periodic job has no row to lease
            lease(runtime, job, *args)
        fn(runtime, *args)

    return run
