"""Dramatiq entry point: ``dramatiq workers`` (production: PostgreSQL + Redis, or + RabbitMQ).

Builds the runtime from ``CCM_*`` settings, declares every actor on its broker and runs the
job relay and the throughput line in each worker process (see :class:`ccm.worker.RelayMiddleware`).
Actors live in each domain's ``tasks.py``; this is wiring only.
"""

from ccm import socket_writes
from ccm.brokers import check_redis_policy
from ccm.config import Settings
from ccm.logs import configure_logging
from ccm.runtime import create_runtime
from ccm.worker import RelayMiddleware, install, tune_allocator

settings = Settings.from_env()
configure_logging(settings.log_level)
tune_allocator(settings.worker_mmap_threshold)
socket_writes.USE_IO_URING = settings.io_uring
runtime = create_runtime(settings)
check_redis_policy(runtime.guards.client)  # rate limits, circuit breakers, tracking hits
check_redis_policy(runtime.broker)  # when the broker is another Redis
runtime.broker.add_middleware(RelayMiddleware(runtime))
install(runtime)
broker = runtime.broker
