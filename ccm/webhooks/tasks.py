"""Actors of the webhooks domain."""

from __future__ import annotations

from ccm.runtime import Runtime
from ccm.webhooks.delivery import deliver_webhook
from ccm.webhooks.service import DELIVER

__all__ = ["DELIVER", "deliver"]


def deliver(runtime: Runtime, delivery_id: str) -> None:
    deliver_webhook(runtime, delivery_id)
