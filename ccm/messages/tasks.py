"""Actors of the messages domain. Thin: take ids, delegate, return."""

from __future__ import annotations

from ccm.messages.claims import DELIVER
from ccm.messages.delivery import deliver_message
from ccm.runtime import Runtime

__all__ = ["DELIVER", "deliver"]


def deliver(runtime: Runtime, message_id: str) -> None:
    deliver_message(runtime, message_id)
