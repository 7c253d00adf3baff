"""Running actors: the task registry, the periodic jobs, the Dramatiq worker-process boot, and the
in-process worker of the embedded default. Every worker process logs each delivery's outcome (see
:mod:`ccm.messages.outcomes`) and, once a minute when anything happened, its throughput.

An entry point: it imports every domain's actors (and :mod:`ccm.models`, so that every mapper is
registered), which nothing below may do."""

from __future__ import annotations

import ctypes
import logging
import sys
import threading
from collections.abc import Callable

import dramatiq

from ccm import jobs
from ccm import models as _models  # noqa: F401  (registers every mapper)
from ccm.campaigns import tasks as campaign_tasks
from ccm.engagement import tasks as engagement_tasks
from ccm.idempotency import tasks as idempotency_tasks
from ccm.imports import tasks as import_tasks
from ccm.ingest import tasks as ingest_tasks
from ccm.jobs import Job
from ccm.logs import DELIVERY_OUTCOMES, OutcomeCounts, throughput_line
from ccm.messages import tasks as message_tasks
from ccm.relay import Relay
from ccm.runtime import Runtime
from ccm.triggers import tasks as trigger_tasks
from ccm.webhooks import tasks as webhook_tasks

log = logging.getLogger(__name__)

TASKS: dict[Job, Callable[..., None]] = {
    message_tasks.DELIVER: message_tasks.deliver,
    message_tasks.DELIVER_BATCH: message_tasks.deliver_batch,
    message_tasks.COUNT_DAYS: message_tasks.count_days,
    webhook_tasks.DELIVER: webhook_tasks.deliver,
    engagement_tasks.RECORD_HITS: engagement_tasks.record_hits,
    idempotency_tasks.PURGE_EXPIRED: idempotency_tasks.purge_expired,
    ingest_tasks.MAINTAIN: ingest_tasks.maintain,
    trigger_tasks.RELEASE: trigger_tasks.release,
    import_tasks.RUN: import_tasks.run,
    campaign_tasks.FAN_OUT: campaign_tasks.fan_out,
    campaign_tasks.TICK: campaign_tasks.tick,
}
"""Every actor CCM has. Adding one means adding it here, nowhere else."""
PERIODIC: tuple[Job, ...] = tuple(job for job in TASKS if job.every)
"""The jobs every relay publishes on their schedule (:attr:`ccm.jobs.Job.every`)."""


_M_MMAP_THRESHOLD = -3  # glibc's mallopt parameter (malloc.h)


def tune_allocator(mmap_threshold: int) -> bool:
    """Set glibc's mmap threshold for this process (see ``Settings.worker_mmap_threshold``); False
    where it is 0 or the C library is not glibc."""
    if mmap_threshold <= 0:
        return False
    mallopt = getattr(ctypes.CDLL(None), "mallopt", None)
    return mallopt is not None and bool(mallopt(_M_MMAP_THRESHOLD, mmap_threshold))


def install(runtime: Runtime) -> None:
    """Declare the actors on the runtime's broker and make it Dramatiq's global broker."""
    dramatiq.set_broker(runtime.broker)
    jobs.declare_actors(runtime, TASKS)


class ThroughputLog(threading.Thread):
    """Every ``interval`` seconds, when anything happened: ``delivered 1,234 messages in the last
    60 s (20.6/s); 3 failed, 10 skipped``. The last, partial period is logged on :meth:`stop`."""

    def __init__(self, counts: OutcomeCounts = DELIVERY_OUTCOMES, *, interval: float = 60.0) -> None:
        super().__init__(name="ccm-throughput", daemon=True)
        self.counts, self.interval = counts, interval
        self.stopping = threading.Event()

    def start(self) -> None:
        self.counts.take()  # count from the start of this worker
        super().start()

    def run(self) -> None:
        while not self.stopping.wait(self.interval):
            self.report()

    def report(self) -> None:
        line = throughput_line(*self.counts.take())
        if line:
            log.info(line)

    def stop(self) -> None:
        self.stopping.set()
        self.join(timeout=5)
        self.report()


def set_prefetch(worker: dramatiq.Worker, prefetch: int) -> None:
    """Fetch ``prefetch`` messages ahead per queue (``CCM_WORKER_PREFETCH``) unless Dramatiq's own
    ``dramatiq_queue_prefetch`` says otherwise.

    Dramatiq's default, 2 × threads, starves a Redis consumer: it fetches again only once its
    prefetched messages are done and otherwise sleeps 5, 10, 20 … ms, which caps a process near
    1,000 short jobs a second (8–13 k with 64). Messages a dead worker had fetched come back
    within ``CCM_BROKER_HEARTBEAT_TIMEOUT`` on Redis, at once on RabbitMQ, so a deeper prefetch
    costs no recovery time worth speaking of.
    """
    if not dramatiq.worker.QUEUE_PREFETCH:
        worker.queue_prefetch = prefetch


class RelayMiddleware(dramatiq.Middleware):
    """Runs the job relay and the throughput line inside every Dramatiq worker process, next to
    its worker threads, and sets the process's prefetch before its consumers start."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self.relay: Relay | None = None
        self.throughput: ThroughputLog | None = None

    def before_worker_boot(self, broker: dramatiq.Broker, worker: dramatiq.Worker) -> None:
        set_prefetch(worker, self.runtime.settings.worker_prefetch)

    def after_worker_boot(self, broker: dramatiq.Broker, worker: dramatiq.Worker) -> None:
        self.relay, self.throughput = Relay(self.runtime, periodic=PERIODIC), ThroughputLog()
        self.relay.start()
        self.throughput.start()

    def before_worker_shutdown(self, broker: dramatiq.Broker, worker: dramatiq.Worker) -> None:
        if self.relay is not None:
            self.relay.stop()
        if self.throughput is not None:
            self.throughput.stop()
        self.runtime.providers.close()


SWITCH_INTERVAL = 0.001
"""Seconds a thread may hold the GIL while others wait, in a process running the in-process worker."""


class InProcessWorker:
    """The embedded default's worker: Dramatiq worker threads and the relay, inside ``ccm serve``."""

    def __init__(self, runtime: Runtime, *, threads: int, throughput_interval: float = 60.0) -> None:
        self.runtime = runtime
        self.worker = dramatiq.Worker(runtime.broker, worker_threads=threads, worker_timeout=100)
        set_prefetch(self.worker, runtime.settings.worker_prefetch)
        self.relay = Relay(runtime, periodic=PERIODIC)
        self.throughput = ThroughputLog(interval=throughput_interval)
        self._switch_interval = sys.getswitchinterval()

    def start(self) -> None:
        # Renders are CPU-bound Python in these threads. After each database call a request thread
        # waits for the GIL up to the switch interval, and a transaction holding SQLite's write
        # lock is stretched as many times over: 1 ms instead of 5 keeps the API responsive while
        # templates render, for slightly more thread switches.
        self._switch_interval = sys.getswitchinterval()
        sys.setswitchinterval(min(self._switch_interval, SWITCH_INTERVAL))
        self.throughput.start()
        self.worker.start()
        self.relay.start()

    def stop(self) -> None:
        self.relay.stop()
        self.worker.stop(timeout=30_000)
        self.throughput.stop()
        sys.setswitchinterval(self._switch_interval)
