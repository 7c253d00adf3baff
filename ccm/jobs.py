"""Background jobs: the transactional job outbox, the relay that publishes it, and broker wiring.

A job is written as a :class:`PendingJob` row in the same transaction as the work that needs it,
and published to Dramatiq right after that transaction commits. The row stays until the job's
actor finishes the work (the actor deletes it in its own final transaction). Anything still there
when it falls due is published again by the relay — after a crash between commit and publish, a
Redis outage, or a Redis that lost its data. Actors are idempotent, so a second publish costs one
no-op run, never a second send.
"""

from __future__ import annotations

import datetime as dt
import functools
import logging
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import dramatiq
import redis
from dramatiq.brokers.redis import RedisBroker
from dramatiq.brokers.stub import StubBroker
from sqlalchemy import BigInteger, Integer, String, bindparam, delete, insert, select, update
from sqlalchemy.orm import Mapped, Session, mapped_column

from ccm.db import Base, after_commit, utcnow

if TYPE_CHECKING:
    from ccm.config import Settings
    from ccm.runtime import Runtime

log = logging.getLogger(__name__)

QUEUES = ("deliveries", "webhooks", "maintenance")


@dataclass(frozen=True)
class Job:
    """A kind of background work: the Dramatiq actor name and its queue."""

    name: str
    queue: str
    time_limit_ms: int = 5 * 60 * 1000
    max_retries: int = 20


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


def job_key(job: Job, *args: Any) -> str:
    return ":".join([job.name, *map(str, args)])


def enqueue(session: Session, job: Job, *args: Any, grace: float, delay: float = 0.0) -> None:
    """Ask for ``job(*args)`` to run once the current transaction commits.

    The outbox row becomes due (for the relay) ``delay + grace`` seconds from now; the fast path
    publishes right after commit. ``session.info["publisher"]`` is set by the runtime.
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
            "due_at": now + dt.timedelta(seconds=delay + grace),
            "publishes": 0,
            "created_at": now,
        },
    )
    publisher: Publisher = session.info["publisher"]
    after_commit(session, functools.partial(publisher.publish_after_commit, key, job, args, delay))


def reschedule(session: Session, job: Job, *args: Any, delay: float, grace: float) -> None:
    """Run ``job(*args)`` again in ``delay`` seconds (its outbox row moves with it)."""
    key = job_key(job, *args)
    due_at = utcnow() + dt.timedelta(seconds=delay + grace)
    found = session.execute(update(_JOBS).where(_JOBS.c.key == key).values(due_at=due_at))
    if not found.rowcount:  # type: ignore[attr-defined]
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
    publisher: Publisher = session.info["publisher"]
    after_commit(session, functools.partial(publisher.publish_after_commit, key, job, args, delay))


def finish(session: Session, job: Job, *args: Any) -> None:
    """Mark ``job(*args)`` done, in the transaction that records its result."""
    session.execute(_FINISH_JOB, {"b_key": job_key(job, *args)})


class Publisher:
    """Publishes jobs to the broker; on failure leaves them to the relay."""

    def __init__(self, broker: dramatiq.Broker, sessionmaker: Callable[[], Session]) -> None:
        self.broker = broker
        self.sessionmaker = sessionmaker
        self.relay_only = False
        """Set in processes whose in-process broker no worker reads (a CLI command beside
        ``ccm serve`` on the embedded default): jobs are made due at once for the server's relay."""

    def publish(self, actor: str, queue: str, args: Iterable[Any], delay: float = 0.0) -> None:
        message = dramatiq.Message(queue_name=queue, actor_name=actor, args=tuple(args), kwargs={}, options={})
        self.broker.enqueue(message, delay=int(delay * 1000) or None)

    def backlog(self, queue: str) -> int:
        """Messages in ``queue`` not yet acknowledged (waiting or being processed)."""
        if isinstance(self.broker, RedisBroker):
            return int(self.broker.client.hlen(f"{self.broker.namespace}:{queue}.msgs"))
        return self.broker.queues[queue].qsize()  # type: ignore[attr-defined]

    def publish_after_commit(self, key: str, job: Job, args: Iterable[Any], delay: float) -> None:
        if self.relay_only:
            self._make_due(key, delay)
            return
        try:
            self.publish(job.name, job.queue, args, delay)
        except Exception as exc:  # the broker is down: make the row due now for the relay
            log.warning("publishing %s failed (%s); the relay will publish it", key, exc)
            self._make_due(key, delay)

    def _make_due(self, key: str, delay: float) -> None:
        with self.sessionmaker() as session, session.begin():
            due_at = utcnow() + dt.timedelta(seconds=delay)
            session.execute(update(PendingJob).where(PendingJob.key == key).values(due_at=due_at))


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


def relay_once(runtime: Runtime, *, limit: int = 500) -> int:
    """Publish the outbox rows that are due; return how many were published.

    A queue with a backlog is skipped: its due jobs are most likely still waiting in it, and
    publishing them again would only add no-op runs behind them. They are published once the
    backlog falls under ``CCM_RELAY_BACKLOG_LIMIT`` — at once if Redis lost the queue.

    The broker is never called inside a transaction: a short one takes the due rows (moving their
    due time on, with backoff), they are published after it commits, and those the broker refused
    are made due again. A crash in between only delays them by their backoff.
    """
    try:
        busy = [queue for queue in QUEUES if runtime.publisher.backlog(queue) >= runtime.settings.relay_backlog_limit]
    except (redis.RedisError, OSError) as exc:
        log.warning("relay: broker unavailable (%s)", exc)
        return 0
    now = utcnow()
    due = (PendingJob.due_at <= now, PendingJob.queue.not_in(busy))
    with runtime.db.read_only() as session:  # the usual answer, "nothing", takes no write lock
        if session.execute(select(PendingJob.id).where(*due).limit(1)).first() is None:
            return 0
    with runtime.db.unit_of_work() as session:
        taken = _take_due(runtime, session, now, due, limit)
    published = _publish(runtime, taken)
    if published < len(taken):
        with runtime.db.unit_of_work() as session:
            _give_back(session, taken[published:])
    if published:
        log.info("relay: published %d due jobs", published)
    return published


def _take_due(runtime: Runtime, session: Session, now: dt.datetime, due: tuple[Any, ...], limit: int) -> list[_Taken]:
    """Lock the due rows (other relays skip them) and move their due time on: two statements,
    because this transaction holds the write lock."""
    rows = session.execute(
        select(_JOBS.c.key, _JOBS.c.actor, _JOBS.c.queue, _JOBS.c.args, _JOBS.c.due_at, _JOBS.c.publishes)
        .where(*due)
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
            now + dt.timedelta(seconds=runtime.settings.relay_grace * 2 ** min(row.publishes, 7)),
        )
        for row in rows
    ]
    if taken:
        session.execute(
            _PUSH_JOB, [{"b_key": job.key, "b_due": job.pushed_to, "b_publishes": job.publishes + 1} for job in taken]
        )
    return taken


def _publish(runtime: Runtime, taken: list[_Taken]) -> int:
    """Publish in order until the broker refuses; return how many went out."""
    for published, job in enumerate(taken):
        try:
            runtime.publisher.publish(job.actor, job.queue, job.args)
        except (redis.RedisError, OSError) as exc:
            log.warning("relay: broker unavailable (%s); %d jobs wait", exc, len(taken) - published)
            return published
    return len(taken)


def _give_back(session: Session, unpublished: list[_Taken]) -> None:
    """Make jobs the broker refused due again — unless their row changed meanwhile (finished,
    or rescheduled by its actor)."""
    for job in unpublished:
        session.execute(
            update(_JOBS)
            .where(_JOBS.c.key == job.key, _JOBS.c.due_at == job.pushed_to)
            .values(due_at=job.due_at, publishes=job.publishes)
        )


class Relay(threading.Thread):
    """Runs :func:`relay_once` and the periodic maintenance in the background of a process."""

    def __init__(self, runtime: Runtime) -> None:
        super().__init__(name="ccm-relay", daemon=True)
        self.runtime = runtime
        self.stopping = threading.Event()

    def run(self) -> None:
        from ccm.engagement.writer import drain_hits
        from ccm.idempotency.service import purge_expired

        ticks = 0
        while not self.stopping.wait(self.runtime.settings.relay_interval):
            try:
                while relay_once(self.runtime) == 500:
                    pass
                while drain_hits(self.runtime) == 1000:
                    pass
                ticks += 1
                if ticks % 600 == 1:
                    with self.runtime.db.unit_of_work() as session:
                        purge_expired(session=session)
            except Exception:
                log.exception("relay pass failed; retrying")

    def stop(self) -> None:
        self.stopping.set()
        self.join(timeout=10)


def build_broker(settings: Settings) -> dramatiq.Broker:
    """Redis when ``CCM_REDIS_URL`` is set, else the in-process stub broker."""
    if settings.redis_url is None:
        broker: dramatiq.Broker = StubBroker()
    else:
        client = redis.Redis.from_url(
            settings.redis_url, socket_connect_timeout=1.0, socket_timeout=10.0, health_check_interval=15
        )
        broker = RedisBroker(client=client, namespace=settings.redis_namespace)
    for queue in QUEUES:
        broker.declare_queue(queue)
    return broker


def check_redis_policy(broker: dramatiq.Broker) -> None:
    """Refuse a Redis that may evict keys: an evicted queue entry is a lost message until the
    relay notices, and an evicted ack set is a duplicate run."""
    if not isinstance(broker, RedisBroker):
        return
    try:
        policy = broker.client.config_get("maxmemory-policy").get("maxmemory-policy")
    except redis.ResponseError:  # CONFIG disabled (managed Redis): we cannot tell
        log.warning("cannot read Redis maxmemory-policy; make sure it is 'noeviction'")
        return
    if policy != "noeviction":
        raise RuntimeError(f"Redis maxmemory-policy is {policy!r}; CCM needs 'noeviction'")


def declare_actors(runtime: Runtime, tasks: dict[Job, Callable[..., None]]) -> None:
    """Declare every task as a Dramatiq actor on the runtime's broker, bound to the runtime."""
    for job, fn in tasks.items():
        bound = functools.wraps(fn)(functools.partial(fn, runtime))
        dramatiq.Actor(
            bound,
            actor_name=job.name,
            queue_name=job.queue,
            priority=0,
            broker=runtime.broker,
            options={"time_limit": job.time_limit_ms, "max_retries": job.max_retries},
        )
