"""Actors of the ingestion domain."""

from __future__ import annotations

from ccm import jobs
from ccm.db import utcnow
from ccm.ingest import partitions
from ccm.runtime import Runtime

MAINTAIN = jobs.Job("ingest.maintain", queue="maintenance", max_retries=0, every=3600.0)
"""Periodic: event partitions made ahead, old ones dropped by retention, old message ids forgotten."""


def maintain(runtime: Runtime) -> None:
    settings, today = runtime.settings, utcnow().date()
    with runtime.db.unit_of_work() as session:
        partitions.create_ahead(session.connection(), today)
        partitions.drop_older(session, today, keep_months=settings.event_retention_months)
        partitions.purge_seen(session, days=settings.event_dedupe_days)
