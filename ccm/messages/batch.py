"""Delivering B messages in one job, with the guarantees of :mod:`ccm.messages.delivery`.

1. **claim** all B: one read-only transaction plans them, they render with none open, one write
   transaction takes them (each by its own compare-and-set, all in one round trip;
   :func:`delivery.claim_many`).
2. Messages whose first provider can send a batch (SMTP) go out together, one connection each:
   every body is written with its final dot held back, then **one intent transaction** marks all
   of them ``in_flight`` (only those still owned), then every final dot is written before any
   reply is read. A crash before the intent re-sends nothing and loses nothing (the claims go
   stale and are taken again); a crash after it leaves exactly those messages
   ``sent(outcome_unknown)``, never re-sent. A worker killed once its ``COMMIT`` is on the wire
   but before a message's dot loses that message (PostgreSQL commits what the dead worker sent;
   the server discards a body without its dot): that window is the ``COMMIT``'s round trip plus
   the dots, so the intent transaction does not wait for the WAL flush
   (``synchronous_commit = off``: on this machine 3.3 ms → 0.1 ms median, 12.5 → 2.0 ms p90,
   bench/README.md). What that costs: should PostgreSQL itself crash (or its machine lose power)
   within the WAL writer's delay (≤ 3 × ``wal_writer_delay``, 0.6 s by default) after an intent
   committed and before a later synchronous commit flushed it — the batch's own outcome
   transaction, a few milliseconds later, does — the intent is lost while the dots went out:
   the claims go stale and those messages are sent again. A database crash at that instant can
   thus duplicate one batch per delivering thread; a worker kill, far more frequent, loses less.
3. **One outcome transaction** records every message the provider took (the attempts, the
   messages and their jobs: a few round trips for the whole batch). A message it refused
   takes the single-message path from there (failover to the next provider, retry, fallback to
   the next channel): per-recipient errors stay per recipient.

Messages whose provider has no batch API, or is rate-limited, go one by one as in
:func:`delivery.deliver_claimed` — the claim and its transaction are still shared.
"""

from __future__ import annotations

import functools
import logging
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import replace

from sqlalchemy import text

from ccm.channels.base import DeliveryError, OutboundMessage, Receipt, SendsBatches
from ccm.channels.registry import Configured
from ccm.messages import attempts, delivery, outcomes, state
from ccm.messages.claims import Claimed, Hops
from ccm.runtime import Runtime

log = logging.getLogger(__name__)
_NO_WAL_FLUSH_WAIT = text("SET LOCAL synchronous_commit = off")


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
    return _sends_batches(type(configured.provider)) and not configured.provider.limits.rate_per_second


@functools.cache
def _sends_batches(kind: type) -> bool:
    # A runtime Protocol check inspects the class's attributes every time (~20 µs, per message).
    return issubclass(kind, SendsBatches)


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

    def commit_point(ids: Sequence[str]) -> list[str]:
        owned = record_intents(runtime, [by_id[i] for i in ids], configured, outbound, hops)
        delivery.failpoint(runtime, "batch_after_intent")
        return owned

    try:
        results = provider.send_batch([outbound[i] for i in by_id], commit_point=commit_point)
    except Exception:
        for item in group:
            delivery.release_before_intent(runtime, item, hops[item.message_id])
        raise
    delivery.failpoint(runtime, "batch_after_send")
    _record(runtime, configured, [by_id[i] for i in by_id], outbound, hops, results)


def record_intents(
    runtime: Runtime,
    items: Sequence[Claimed],
    configured: Configured,
    outbound: dict[str, OutboundMessage],
    hops: dict[str, Hops],
) -> list[str]:
    """The batch's commit point, one transaction: each message still owned is ``in_flight``
    with this provider from here on. Returns the ids owned; the others must not be finished.
    It commits without waiting for the WAL flush (see the module docstring for why and the cost)."""
    with runtime.db.unit_of_work() as session:
        if session.get_bind().dialect.name == "postgresql":
            session.execute(_NO_WAL_FLUSH_WAIT)
        held = state.hold_many(session, {item.message_id: item.token for item in items})
        owned = [item.message_id for item in items if item.message_id in held]
        attempts.mark_in_flight_many(
            session, [item for item in items if item.message_id in held], configured, outbound, hops
        )
    for message_id in owned:
        hops[message_id].intent_recorded = True
    return owned


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
