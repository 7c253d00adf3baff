"""Delivering B messages in one job, with the guarantees of :mod:`ccm.messages.delivery`.

1. **claim** all B: one read-only transaction plans them, they render with none open, one write
   transaction takes them (each by its own compare-and-set, all in one round trip;
   :func:`delivery.claim_many`).
2. Messages whose first provider can send a batch (SMTP) go out together, one connection each:
   every body is written with its final dot held back, then **one intent transaction** marks all
   of them ``in_flight`` (only those still owned), and its ``COMMIT`` and every final dot leave in
   one system call (:func:`ccm.db_commit.commit_writing`) — then every reply is read. A crash
   before that call re-sends nothing and loses nothing (the claims go stale and are taken again);
   a crash after it leaves exactly those messages ``sent(outcome_unknown)``, delivered and never
   re-sent. A SIGKILL cannot fall between the ``COMMIT`` and a dot, so none is lost that way.
   Where that one call cannot be made (TLS, io_uring refused) the dots follow the ``COMMIT``'s
   bytes within about 15 µs each, with nothing else of the process in between, and a kill landing
   there loses the dots not yet written (bench/README.md). Should the ``COMMIT`` then fail or go
   unanswered (PostgreSQL crashed or the connection broke at that instant), the dots went out
   with no confirmed intent. The intent is then written again in a new transaction (a no-op where
   the first one did commit); only if that fails too — the database still down — can those
   messages be sent again once their claims go stale, and that is logged with their ids. The
   intent commits synchronously, so a database crash after the answer cannot lose it.
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

from sqlalchemy.orm import Session

from ccm.channels.base import DeliveryError, FinalWrites, OutboundMessage, Receipt, Release, SendsBatches
from ccm.channels.registry import Configured
from ccm.db_commit import CommitUnconfirmed, commit_writing
from ccm.messages import attempts, delivery, outcomes, state
from ccm.messages.claims import Claimed, Hops
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

    def commit_point(ids: Sequence[str], release: Release) -> list[str]:
        return record_intents(runtime, [by_id[i] for i in ids], configured, outbound, hops, release)

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
    release: Release,
) -> list[str]:
    """The batch's commit point, one transaction: each message still owned is ``in_flight``
    with this provider from here on. Returns the ids owned; the others must not be finished.
    The writes of ``release(owned)`` leave with the ``COMMIT`` (see the module docstring); should
    its answer not confirm it, the intent is written again (idempotent)."""
    owned: list[str] = []
    finals: FinalWrites | None = None
    try:
        with runtime.db.unit_of_work() as session:
            owned = _write_intents(session, items, configured, outbound, hops)
            finals = release(owned)
            finals.done(commit_writing(session, finals.writes))
    except CommitUnconfirmed as exc:
        assert finals is not None  # only commit_writing raises it
        finals.done(exc.write_failures)
        _confirm_intents(runtime, [item for item in items if item.message_id in owned], configured, outbound, hops, exc)
    for message_id in owned:
        hops[message_id].intent_recorded = True
    return owned


def _write_intents(
    session: Session,
    items: Sequence[Claimed],
    configured: Configured,
    outbound: dict[str, OutboundMessage],
    hops: dict[str, Hops],
    *,
    again: bool = False,
) -> list[str]:
    """Hold every message still owned and insert its ``in_flight`` attempt; the ids held."""
    held = state.hold_many(session, {item.message_id: item.token for item in items})
    mine = [item for item in items if item.message_id in held]
    attempts.mark_in_flight_many(session, mine, configured, outbound, hops, ignoring_existing=again)
    return [item.message_id for item in mine]


def _confirm_intents(
    runtime: Runtime,
    items: Sequence[Claimed],
    configured: Configured,
    outbound: dict[str, OutboundMessage],
    hops: dict[str, Hops],
    cause: CommitUnconfirmed,
) -> None:
    """The dots went out but the intent's ``COMMIT`` was not confirmed: write it again, in a new
    transaction (a no-op where the first one did commit). If that fails too, these messages may
    be sent a second time once their claims go stale: said loudly, with their ids."""
    ids = [item.message_id for item in items]
    log.warning("batch intent of %d messages not confirmed after their dots (%s); writing it again", len(ids), cause)
    try:
        with runtime.db.unit_of_work() as session:
            held = _write_intents(session, items, configured, outbound, hops, again=True)
    except Exception:
        log.exception("batch intent lost after the dots: messages %s may be sent twice", ids)
        return
    if len(held) < len(ids):
        log.error("batch intent lost after the dots: messages %s may be sent twice", sorted(set(ids) - set(held)))


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
