"""Actors of the idempotency domain."""

from __future__ import annotations

from ccm import jobs
from ccm.idempotency import service
from ccm.runtime import Runtime

PURGE_EXPIRED = jobs.Job("idempotency.purge_expired", queue="maintenance", max_retries=0, every=600.0)
"""Periodic: keys older than ``CCM_IDEMPOTENCY_TTL`` are deleted."""


def purge_expired(runtime: Runtime) -> None:
    with runtime.db.unit_of_work() as session:
        service.purge_expired(session=session)
