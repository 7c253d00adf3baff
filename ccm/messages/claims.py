"""The delivery job and what a claimed message carries from the claim to the provider call."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from ccm import jobs
from ccm.channels.base import OutboundMessage
from ccm.channels.registry import Configured

DELIVER = jobs.Job("messages.deliver", queue="deliveries", max_retries=5)
DELIVER_BATCH = jobs.Job("messages.deliver_batch", queue="deliveries", max_retries=5, batch_of=DELIVER)
"""Many ``messages.deliver`` jobs in one broker message (see :mod:`ccm.messages.batch`)."""

MAX_CLAIMS = 10
"""A message claimed this many times without reaching a terminal state fails (a bug or a poison
message must not loop forever)."""


@dataclass
class Hops:
    """The providers one attempt went through, in order, with how each one went."""

    items: list[dict[str, Any]] = field(default_factory=list)
    intent_recorded: bool = False
    last_error: Exception | None = None

    def add(self, configured: Configured, outcome: str, error: str | None = None) -> None:
        self.items.append(
            {
                "provider": configured.provider.name,
                "account": configured.key,
                "label": configured.label,
                "outcome": outcome,
                "error": error,
            }
        )


class ClaimLost(Exception):
    """Another run owns this message now; this run must not call the provider."""


@dataclass(frozen=True)
class Claimed:
    """A message this run owns, ready for its provider. ``attempt_number`` is the claim count:
    each claim makes at most one attempt."""

    message_id: str
    token: str
    attempt_number: int
    targets: tuple[tuple[Configured, str], ...]
    outbound: OutboundMessage
    deadline_at: dt.datetime
    can_fall_back: bool = False
    """The message may try another channel if this one fails permanently (no single-channel override)."""
    failed_channels: tuple[dict[str, str], ...] = ()
    pinned_account: str | None = None
    profile_id: str | None = None
    """Whose consent an opt-out the provider reports (a blocked bot, a carrier STOP) revokes."""
