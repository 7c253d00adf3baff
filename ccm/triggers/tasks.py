"""Actors of the triggers domain."""

from __future__ import annotations

import datetime as dt

from ccm import jobs
from ccm.db import utcnow
from ccm.runtime import Runtime
from ccm.triggers.firing import purge_finished, release_due

RELEASE = jobs.Job("triggers.release", queue="maintenance", max_retries=0, every=60.0)
"""Periodic: firings whose due time came are marked released, which keeps the index of the
pending ones (what a cancel event reads) as small as what is actually waiting. Cancelling
never depends on it: a cancel event ignores firings already due. Finished firings older than
``trigger_fire_retention_days`` are deleted."""


def release(runtime: Runtime) -> None:
    now, days = utcnow(), runtime.settings.trigger_fire_retention_days
    with runtime.db.unit_of_work() as session:
        release_due(session=session, now=now)
        purge_finished(session=session, before=now - dt.timedelta(days=days))
