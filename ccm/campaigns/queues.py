"""The campaign jobs: the fan-out of one campaign, and the tick that schedules, paces and ends them."""

from __future__ import annotations

from ccm import jobs

FAN_OUT = jobs.Job("campaigns.fan_out", queue="campaigns", max_retries=20, time_limit_ms=30 * 60 * 1000)
"""Writes a campaign's messages, chunk after chunk from its checkpoint. Its outbox row stays until
the phase is written, so a worker killed mid-way has it published again (and it resumes)."""
TICK = jobs.Job("campaigns.tick", queue="campaigns", max_retries=0, every=0.5)
"""Periodic: starts scheduled campaigns that are due, and for each running one releases the next
messages at its rate, applies back-pressure and breakers, decides an A/B winner, notices the end.
Every worker's relay publishes it; a campaign ticks at most once a :data:`TICK_SECONDS`."""
TICK_SECONDS = 0.9
