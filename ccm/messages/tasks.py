"""Actors of the messages domain. Thin: take ids, delegate, return."""

from __future__ import annotations

from ccm.messages.batch import deliver_batch as deliver_many
from ccm.messages.claims import DELIVER, DELIVER_BATCH
from ccm.messages.delivery import deliver_message
from ccm.runtime import Runtime

__all__ = ["DELIVER", "DELIVER_BATCH", "deliver", "deliver_batch"]


def deliver(runtime: Runtime, message_id: str) -> None:
    deliver_message(runtime, message_id)


def deliver_batch(runtime: Runtime, message_ids: list[str]) -> None:
    deliver_many(runtime, message_ids)
