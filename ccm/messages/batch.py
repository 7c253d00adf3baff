"""Delivering B messages in one job, with the guarantees of :mod:`ccm.messages.delivery`.

1. **claim** all B: one read-only transaction plans them, they render with none open, one write
   transaction takes them (each by its own compare-and-set, all in one round trip;
   :func:`delivery.claim_many`).
2. Messages whose first provider can send a batch (SMTP) go out together, one connection each:
   every body is written with its final dot held back, then **one intent transaction** marks all
   of them ``in_flight`` (only those still owned), and its ``COMMIT`` and every final dot leave in
   one system call (:mod:`ccm.messages.intents`, which says what a crash at any moment leaves)
   — then every reply is read.
3. **One outcome transaction** records every message the provider took (the attempts, the
   messages and their jobs: a few round trips for the whole batch). A message it refused
   takes the single-message path from there (failover to the next provider, retry, fallback to
   the next channel): per-recipient errors stay per recipient.

Messages whose provider has no batch API, or is rate-limited, go one by one as in
:func:`delivery.deliver_claimed` — the claim and its transaction are still shared.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import replace

from ccm.channels.base import DeliveryError, OutboundMessage, Receipt, Release, SendsBatches
from ccm.channels.registry import Configured
from ccm.messages import delivery, intents, outcomes
from ccm.messages.claims import Claimed, Hops
from ccm.messages.intents import sends_batches
from ccm.runtime import Runtime

log = logging.getLogger(__name__)


def deliver_batch(runtime: Runtime, message_ids: Sequence[str]) -> None:
    """The body of the ``messages.deliver_batch`` actor; safe to run any number of times."""
    claimed = delivery.claim_many(runtime, message_ids)
    delivery.failpoint(runtime, "batch_after_claim")
    groups: dict[str, list[Claimed]] = defaultdict(list)
    for item in claimed:
        configured = item.targets[0][0]
        if _batchable(configured):
            groups[configured.key].append(item)
        else:
            delivery.deliver_claimed(runtime, item, item.targets, Hops())
    for group in groups.values():
        _send_group(runtime, group)


def _batchable(configured: Configured) -> bool:
    # A rate-limited account takes its messages one at a time, each admitted by the shared limiter.
    return not configured.provider.limits.rate_per_second and sends_batches(configured.provider)


def _send_group(runtime: Runtime, group: list[Claimed]) -> None:
    """Messages whose first target is the same provider account, handed to it in one batch."""
    configured = group[0].targets[0][0]
    provider = configured.provider
    assert isinstance(provider, SendsBatches)  # grouped by _batchable
    hops = {item.message_id: Hops() for item in group}
    refused = runtime.guards.admit(configured.key, None)  # an open circuit
    if refused:
        for item in group:
            hops[item.message_id].add(configured, "skipped", refused)
            delivery.deliver_claimed(runtime, item, item.targets[1:], hops[item.message_id])
        return
    by_id = {item.message_id: item for item in group}
    outbound = {item.message_id: replace(item.outbound, to=item.targets[0][1]) for item in group}

    def commit_point(ids: Sequence[str], release: Release) -> list[str]:
        return intents.record(runtime, [by_id[i] for i in ids], configured, outbound, hops, release)

    try:
        results = provider.send_batch([outbound[i] for i in by_id], commit_point=commit_point)
    except Exception:
        for item in group:
            delivery.release_before_intent(runtime, item, hops[item.message_id])
        raise
    delivery.failpoint(runtime, "batch_after_send")
    _record(runtime, configured, [by_id[i] for i in by_id], outbound, hops, results)


def _record(
    runtime: Runtime,
    configured: Configured,
    items: list[Claimed],
    outbound: dict[str, OutboundMessage],
    hops: dict[str, Hops],
    results: dict[str, Receipt | DeliveryError],
) -> None:
    """One transaction for everything the provider took; the rest, one by one."""
    taken = [(item, result) for item in items if isinstance(result := results.get(item.message_id), Receipt)]
    if taken:
        runtime.guards.succeeded(configured.key)
        for item, receipt in taken:
            hops[item.message_id].add(configured, receipt.status)
        with runtime.db.unit_of_work() as session:
            outcomes.record_success_many(session, configured, taken, hops)
    for item in items:
        result = results.get(item.message_id)
        if result is None:
            log.info("message %s: claim lost before sending; another run owns it", item.message_id)
        elif isinstance(result, DeliveryError):
            item_hops = hops[item.message_id]
            over = delivery.after_error(runtime, item, configured, outbound[item.message_id], item_hops, result)
            if not over:
                delivery.deliver_claimed(runtime, item, item.targets[1:], item_hops)
