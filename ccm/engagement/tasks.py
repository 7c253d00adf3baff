"""Actors of the engagement domain. Thin: take ids (or nothing), delegate, return."""

from __future__ import annotations

from ccm import jobs
from ccm.engagement.writer import BATCH, drain_hits
from ccm.runtime import Runtime

RECORD_HITS = jobs.Job("engagement.record_hits", queue="maintenance", max_retries=0, every=1.0)
"""Periodic: the tracking hits buffered since the last run become engagement events."""


def record_hits(runtime: Runtime) -> None:
    """Record every buffered hit, a batch at a time (a run that loses the buffer's lock to another
    process records nothing: that one is writing)."""
    while drain_hits(runtime) == BATCH:
        pass
