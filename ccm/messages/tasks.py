"""Actors of the messages domain. Thin: take ids, delegate, return."""

from __future__ import annotations

from ccm import jobs
from ccm.db import utcnow
from ccm.messages import overview
from ccm.messages.batch import deliver_batch as deliver_many
from ccm.messages.claims import DELIVER, DELIVER_BATCH
from ccm.messages.delivery import deliver_message
from ccm.runtime import Runtime

__all__ = ["COUNT_DAYS", "DELIVER", "DELIVER_BATCH", "count_days", "deliver", "deliver_batch"]

COUNT_DAYS = jobs.Job("messages.count_days", queue="maintenance", max_retries=0, every=30.0)
"""Periodic: the dashboard's cached day counts are counted again when they reach their age, so
that a view finds them counted (:func:`ccm.messages.overview.refresh_day_counts`)."""


def deliver(runtime: Runtime, message_id: str) -> None:
    deliver_message(runtime, message_id)


def deliver_batch(runtime: Runtime, message_ids: list[str]) -> None:
    deliver_many(runtime, message_ids)


def count_days(runtime: Runtime) -> None:
    overview.refresh_day_counts(runtime.db, now=utcnow())
