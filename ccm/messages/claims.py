"""The delivery job and what a claimed message carries from the claim to the provider call."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from ccm import jobs
from ccm.channels.base import OutboundMessage, Provider

DELIVER = jobs.Job("messages.deliver", queue="deliveries", max_retries=5)

MAX_CLAIMS = 10
"""A message claimed this many times without reaching a terminal state fails (a bug or a poison
message must not loop forever)."""


class ClaimLost(Exception):
    """Another run owns this message now; this run must not call the provider."""


@dataclass(frozen=True)
class Claimed:
    """A message this run owns, ready for its provider. ``attempt_number`` is the claim count:
    each claim makes at most one attempt."""

    message_id: str
    token: str
    attempt_number: int
    provider: Provider
    outbound: OutboundMessage
    deadline_at: dt.datetime
