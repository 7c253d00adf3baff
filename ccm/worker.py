"""Running actors: the task registry, the Dramatiq worker-process boot, and the in-process worker
of the embedded default."""

from __future__ import annotations

import logging
from collections.abc import Callable

import dramatiq

from ccm import jobs
from ccm.jobs import Job, Relay
from ccm.messages import tasks as message_tasks
from ccm.runtime import Runtime
from ccm.webhooks import tasks as webhook_tasks

log = logging.getLogger(__name__)

TASKS: dict[Job, Callable[..., None]] = {
    message_tasks.DELIVER: message_tasks.deliver,
    webhook_tasks.DELIVER: webhook_tasks.deliver,
}
"""Every actor CCM has. Adding one means adding it here, nowhere else."""


def install(runtime: Runtime) -> None:
    """Declare the actors on the runtime's broker and make it Dramatiq's global broker."""
    dramatiq.set_broker(runtime.broker)
    jobs.declare_actors(runtime, TASKS)


class RelayMiddleware(dramatiq.Middleware):
    """Runs the job relay inside every Dramatiq worker process, next to its worker threads."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self.relay: Relay | None = None

    def after_worker_boot(self, broker: dramatiq.Broker, worker: dramatiq.Worker) -> None:
        self.relay = Relay(self.runtime)
        self.relay.start()

    def before_worker_shutdown(self, broker: dramatiq.Broker, worker: dramatiq.Worker) -> None:
        if self.relay is not None:
            self.relay.stop()
        self.runtime.providers.close()


class InProcessWorker:
    """The embedded default's worker: Dramatiq worker threads and the relay, inside ``ccm serve``."""

    def __init__(self, runtime: Runtime, *, threads: int) -> None:
        self.runtime = runtime
        self.worker = dramatiq.Worker(runtime.broker, worker_threads=threads, worker_timeout=100)
        self.relay = Relay(runtime)

    def start(self) -> None:
        self.worker.start()
        self.relay.start()

    def stop(self) -> None:
        self.relay.stop()
        self.worker.stop(timeout=30_000)
