"""Choosing the channel a message goes out on, and recording why every other channel was not.

The candidates are the message's channel override, else the profile's ranking followed by the
workspace's default order. The first candidate with a template variant, an address and a provider
wins. When none qualifies, the message is skipped with the reason of its most preferred candidate.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ccm.channels.base import InvalidAddress
from ccm.channels.registry import Configured
from ccm.message_templates.rendering import PublishedTemplate


@dataclass(frozen=True)
class Hop:
    channel: str
    decision: str  # "chosen" | "rejected"
    reason: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"channel": self.channel, "decision": self.decision, "reason": self.reason}


@dataclass(frozen=True)
class Route:
    hops: list[Hop] = field(default_factory=list)
    channel: str | None = None
    address: str | None = None
    variant: Mapping[str, Any] | None = None
    providers: list[Configured] = field(default_factory=list)

    @property
    def skip_reason(self) -> str:
        """The reason of the most preferred channel (invalid_address, no_consent … win over
        no_variant and no_address, which only say the channel was never an option)."""
        reasons = [hop.reason for hop in self.hops if hop.reason]
        meaningful = [reason for reason in reasons if reason not in ("no_variant", "no_address")]
        return (meaningful or reasons or ["no_channel"])[0]


def candidate_channels(*, override: str | None, ranking: Sequence[str], workspace_order: Sequence[str],
                       allowed: Sequence[str] | None = None, failed: Sequence[str] = ()) -> list[str]:
    """The override alone; else the ranking then the workspace order, limited to the allowed
    channels, without those that already failed permanently for this message."""
    if override:
        return [] if override in failed else [override]
    ordered = dict.fromkeys([*ranking, *workspace_order])
    return [c for c in ordered if (allowed is None or c in allowed) and c not in failed]


def choose_route(*, candidates: Sequence[str], template: PublishedTemplate, locale: str | None,
                 addresses: Mapping[str, str | None], providers: Callable[[str], list[Configured]],
                 blocked: Callable[[str, str], str | None] = lambda channel, address: None) -> Route:
    """The first candidate channel with a template variant, a valid address, a provider and no
    block (``blocked(channel, address)`` returns a reason such as ``no_consent``)."""
    hops: list[Hop] = []
    for channel in candidates:
        variant = template.variant_for(channel, locale)
        serving = providers(channel)
        address, reason = _qualify(variant, addresses.get(channel), serving)
        reason = reason or blocked(channel, address or "")
        if reason:
            hops.append(Hop(channel, "rejected", reason))
            continue
        hops.append(Hop(channel, "chosen"))
        return Route(hops, channel, address, variant, serving)
    return Route(hops)


def _qualify(variant: Mapping[str, Any] | None, address: str | None,
             serving: list[Configured]) -> tuple[str | None, str | None]:
    """The address as the first provider sends to it, or why this channel cannot be used."""
    if variant is None:
        return None, "no_variant"
    if not address:
        return None, "no_address"
    if not serving:
        return None, "no_provider"
    try:
        return serving[0].provider.normalize_address(address), None
    except InvalidAddress:
        return None, "invalid_address"
