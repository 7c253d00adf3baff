"""Actors of the triggers domain."""

from __future__ import annotations

from ccm import jobs
from ccm.db import utcnow
from ccm.runtime import Runtime
from ccm.triggers.firing import release_due

RELEASE = jobs.Job("triggers.release", queue="maintenance", max_retries=0, every=60.0)
"""Periodic: firings whose due time came are marked released, which keeps the index of the
pending ones (what a cancel event reads) as small as what is actually waiting. Cancelling
never depends on it: a cancel event ignores firings already due."""


def release(runtime: Runtime) -> None:
    with runtime.db.unit_of_work() as session:
        release_due(session=session, now=utcnow())
