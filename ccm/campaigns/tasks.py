"""Actors of the campaigns domain. Thin: take ids, delegate, return."""

from __future__ import annotations

from ccm.campaigns import engine, pump
from ccm.campaigns.queues import FAN_OUT, TICK
from ccm.runtime import Runtime

__all__ = ["FAN_OUT", "TICK", "fan_out", "tick"]


def fan_out(runtime: Runtime, campaign_id: str) -> None:
    engine.run_fanout(runtime, campaign_id)


def tick(runtime: Runtime) -> None:
    pump.tick(runtime)
