"""Background jobs: the transactional job outbox, and the actors that lease its rows; the relay
that publishes it is :mod:`ccm.relay`.

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
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

import dramatiq
from sqlalchemy import BigInteger, Integer, String, bindparam, case, delete, insert, text, update
from sqlalchemy.orm import Mapped, Session, mapped_column

from ccm import brokers
from ccm.brokers import BROKER_ERRORS, build_broker, check_redis_policy  # noqa: F401  (re-exported)
from ccm.db import Base, Database, after_commit, rowcount, utcnow

if TYPE_CHECKING:
    from ccm.config import Settings

log = logging.getLogger(__name__)


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
TABLE = _JOBS
"""The outbox table, for the relay (:mod:`ccm.relay`)."""
_INSERT_JOB = insert(_JOBS)
_FINISH_JOB = delete(_JOBS).where(_JOBS.c.key == bindparam("b_key"))
_LEASE_JOB = (
    update(_JOBS)
    .where(_JOBS.c.key == bindparam("b_key"))
    # The later of the two, not ``WHERE due_at < :due``, which PostgreSQL could read through the
    # index on ``due_at`` (every row falls due before a lease's time) filtering by key: a scan of
    # the whole outbox per lease, with a campaign's thousands of released rows in it.
    .values(due_at=case((_JOBS.c.due_at < bindparam("b_due"), bindparam("b_due")), else_=_JOBS.c.due_at))
)
_ASYNC_COMMIT = text("SET LOCAL synchronous_commit = off")
_CUSTOM_PLANS = text("SET LOCAL plan_cache_mode = force_custom_plan")
_CACHED_PLANS = text("SET LOCAL plan_cache_mode TO DEFAULT")


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
        with _planned_now(session):
            session.execute(_LEASE_JOB, [{"b_key": key, "b_due": due} for key in keys])


def finish(session: Session, job: Job, *args: Any) -> None:
    """Mark ``job(*args)`` done, in the transaction that records its result."""
    finish_many(session, job, [args])


def finish_many(session: Session, job: Job, args: Sequence[tuple[Any, ...]]) -> None:
    """:func:`finish` for many jobs of one kind, in one round trip."""
    if args:
        with _planned_now(session):
            session.execute(_FINISH_JOB, [{"b_key": job_key(job, *each)} for each in args])


@contextmanager
def _planned_now(session: Session) -> Iterator[None]:
    """The outbox's statements by key planned at every run, for the outbox's size then. A plan
    made once and kept by the connection (a prepared statement's generic plan, after five runs)
    may date from a moment the outbox held a page: a sequential scan, kept while a campaign
    releases thousands of rows into it — for every job of every batch (3 of 16 backends were busy
    on leases through a campaign, until this). Two ``SET LOCAL`` around the statement, as the
    transaction's other statements keep their cached plans."""
    if session.get_bind().dialect.name != "postgresql":
        yield
        return
    session.execute(_CUSTOM_PLANS)
    yield
    session.execute(_CACHED_PLANS)


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
