"""Choosing the channel a message goes out on, and recording why every other channel was not.

The candidates are the message's channel override, else the profile's ranking followed by the
workspace's default order. The first candidate with a template variant, an address and a provider
wins. When none qualifies, the message is skipped with the reason of its most preferred candidate.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ccm.channels.base import Provider
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
    provider: Provider | None = None

    @property
    def skip_reason(self) -> str:
        return next((hop.reason for hop in self.hops if hop.reason), "no_channel")


def candidate_channels(*, override: str | None, ranking: Sequence[str], workspace_order: Sequence[str]) -> list[str]:
    if override:
        return [override]
    return list(dict.fromkeys([*ranking, *workspace_order]))


def choose_route(*, candidates: Sequence[str], template: PublishedTemplate, locale: str | None,
                 addresses: Mapping[str, str | None], providers: Callable[[str], list[Provider]]) -> Route:
    hops: list[Hop] = []
    for channel in candidates:
        variant = template.variant_for(channel, locale)
        reason = _rejection(variant, addresses.get(channel), providers(channel))
        if reason:
            hops.append(Hop(channel, "rejected", reason))
            continue
        hops.append(Hop(channel, "chosen"))
        return Route(hops, channel, addresses[channel], variant, providers(channel)[0])
    return Route(hops)


def _rejection(variant: Mapping[str, Any] | None, address: str | None, providers: list[Provider]) -> str | None:
    if variant is None:
        return "no_variant"
    if not address:
        return "no_address"
    if not providers:
        return "no_provider"
    return None
