"""Choosing the channel a message goes out on, and recording why every other channel was not.

The candidates are the message's channel override, else the profile's ranking followed by the
workspace's default order. The first candidate with a template variant, an address and a provider
wins. When none qualifies, the message is skipped with the reason of its most preferred candidate.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ccm.channels.addresses import chat_handle
from ccm.channels.base import InvalidAddress
from ccm.channels.registry import Configured
from ccm.message_templates.rendering import PublishedTemplate

Address = str | Mapping[str, str] | None
"""A profile's address on a channel: one string, or chat handles by provider."""


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
    targets: list[tuple[Configured, str]] = field(default_factory=list)
    """The providers that may carry the message, in failover order, each with its address."""

    @property
    def skip_reason(self) -> str:
        """The reason of the most preferred channel (invalid_address, no_consent … win over
        no_variant and no_address, which only say the channel was never an option)."""
        reasons = [hop.reason for hop in self.hops if hop.reason]
        meaningful = [reason for reason in reasons if reason not in ("no_variant", "no_address")]
        return (meaningful or reasons or ["no_channel"])[0]


def candidate_channels(
    *,
    override: str | None,
    ranking: Sequence[str],
    workspace_order: Sequence[str],
    allowed: Sequence[str] | None = None,
    failed: Sequence[str] = (),
) -> list[str]:
    """The override alone; else the ranking then the workspace order, limited to the allowed
    channels, without those that already failed permanently for this message."""
    if override:
        return [] if override in failed else [override]
    ordered = dict.fromkeys([*ranking, *workspace_order])
    return [c for c in ordered if (allowed is None or c in allowed) and c not in failed]


def choose_route(
    *,
    candidates: Sequence[str],
    template: PublishedTemplate,
    locale: str | None,
    addresses: Mapping[str, Address],
    providers: Callable[[str], list[Configured]],
    blocked: Callable[[str, str], str | None] = lambda channel, address: None,
) -> Route:
    """The first candidate channel with a template variant, and a provider with a valid address
    that is not blocked (``blocked(channel, address)`` gives a reason such as ``no_consent``)."""
    hops: list[Hop] = []
    for channel in candidates:
        variant = template.variant_for(channel, locale)
        targets, reason = _targets(variant, addresses.get(channel), providers(channel))
        if not reason:
            allowed = [(c, a) for c, a in targets if not blocked(channel, a)]
            reason = None if allowed else blocked(channel, targets[0][1])
            targets = allowed
        if reason:
            hops.append(Hop(channel, "rejected", reason))
            continue
        hops.append(Hop(channel, "chosen"))
        return Route(hops, channel, targets[0][1], variant, targets)
    return Route(hops)


def _targets(
    variant: Mapping[str, Any] | None, address: Address, serving: list[Configured]
) -> tuple[list[tuple[Configured, str]], str | None]:
    """Each serving provider with the address it sends to (chat providers each read their own
    handle), or why this channel cannot be used."""
    if variant is None:
        return [], "no_variant"
    if not address:
        return [], "no_address"
    if not serving:
        return [], "no_provider"
    targets, invalid = [], False
    for configured in serving:
        raw = address if isinstance(address, str) else chat_handle(configured.provider, address)
        if not raw:
            continue
        try:
            targets.append((configured, configured.provider.normalize_address(raw)))
        except InvalidAddress:
            invalid = True
    if targets:
        return targets, None
    return [], "invalid_address" if invalid else "no_address"
