"""Delivering one message: claim it, check it, route it, render it, hand it to a provider, and
record the outcome — with at most one provider call per message, whatever crashes.

Three short transactions, so that a crash anywhere leaves a state the next run can read:

1. **claim**, in three phases, so that no transaction is open while a template renders:
   a. *read* (a read-only transaction, no write lock): load the message with its profile and
      workspace, re-check it (terminal? due? deadline? profile?), route it and check consent,
      suppression, frequency caps and quiet hours;
   b. *prepare* (no transaction at all): render the pinned version and build the MIME;
   c. *take* (a short write transaction): check suppression, consent and caps again (an opt-out
      committed during the render still counts), then mark the message ``sending`` with a fresh
      claim token by compare-and-set on its status, previous token and last change — so a
      change made by anyone since the read makes this run a no-op. (The last change is compared
      too because a stale claim being taken over may have reached its commit point, which
      touches it, while this run was rendering.)
   Skips, deferrals and failures found in a or b are written in their own short transaction,
   compare-and-set the same way. Providers that write to the database (the local outbox) send in
   the transaction of c, exactly once.
2. **commit point**: right before the irrevocable step of the provider call, insert the
   ``in_flight`` attempt — only if the claim token still matches. A run that finds an
   ``in_flight`` attempt left by a dead worker knows the provider *may* have the message and never
   calls it again.
3. **outcome**: record the attempt's result and the message's next state (compare-and-set on the
   claim token), and take the job off the outbox.
"""

from __future__ import annotations

import datetime as dt
import functools
import logging
import os
import secrets
import signal
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import replace

from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from ccm import jobs
from ccm.channels.base import (
    DeliveryError,
    OutboundMessage,
    OutcomeUnknownError,
    ProviderConfigError,
    Receipt,
    Release,
    TransientDeliveryError,
)
from ccm.channels.registry import Configured
from ccm.db import utcnow
from ccm.messages import attempts, intents, outcomes, state
from ccm.messages.claims import DELIVER, MAX_CLAIMS, Claimed, ClaimLost, Hops
from ccm.messages.models import AttemptOutcome, MessageStatus
from ccm.messages.outbound import (
    Pending,
    Plan,
    Prepared,
    load_pending,
    load_pending_many,
    plan,
    prepare,
    read_ahead,
    recheck,
)
from ccm.messages.rules import Deferred, NotSendable, ReadAhead
from ccm.runtime import Runtime

log = logging.getLogger(__name__)


def deliver_message(runtime: Runtime, message_id: str) -> None:
    """The body of the ``messages.deliver`` actor; safe to run any number of times."""
    claimed = claim(runtime, message_id)
    if claimed is None:
        return
    failpoint(runtime, "after_claim")
    deliver_claimed(runtime, claimed, claimed.targets, Hops())


def deliver_claimed(
    runtime: Runtime, claimed: Claimed, targets: tuple[tuple[Configured, str], ...], hops: Hops
) -> None:
    """Hand a claimed message to each of ``targets`` in turn until one attempt is over."""
    for configured, address in targets:
        if _try_provider(runtime, claimed, configured, replace(claimed.outbound, to=address), hops):
            return
    with runtime.db.unit_of_work() as session:
        outcomes.record_exhausted(runtime, session, claimed, hops)


def _try_provider(
    runtime: Runtime, claimed: Claimed, configured: Configured, outbound: OutboundMessage, hops: Hops
) -> bool:
    """Hand the message to one provider. True when the attempt is over (sent, or failed in a way
    no other provider may retry); False to fail over to the next provider of the channel."""
    if refused_by_guard(runtime, configured, hops):
        return False
    try:
        receipt = _send(runtime, claimed, configured, outbound, hops)
    except ClaimLost:
        log.info("message %s: claim lost before sending; another run owns it", claimed.message_id)
        return True
    except DeliveryError as error:
        return after_error(runtime, claimed, configured, outbound, hops, error)
    except Exception:
        release_before_intent(runtime, claimed, hops)
        raise
    runtime.guards.succeeded(configured.key)
    _record_sent(runtime, claimed, configured, receipt, hops)
    return True


def after_error(
    runtime: Runtime,
    claimed: Claimed,
    configured: Configured,
    outbound: OutboundMessage,
    hops: Hops,
    error: DeliveryError,
) -> bool:
    """Record what a provider's error means for the message. True when the attempt is over;
    False to fail over to the next provider of the channel."""
    if isinstance(error, TransientDeliveryError | ProviderConfigError):
        return _not_taken(runtime, claimed, configured, hops, error)
    _record_no_failover(runtime, claimed, configured, outbound, hops, error)
    return True


def refused_by_guard(runtime: Runtime, configured: Configured, hops: Hops) -> bool:
    """Whether the provider's guards (open circuit, rate limit) turn it away; a skipped hop if so."""
    refused = runtime.guards.admit(configured.key, configured.provider.limits.rate_per_second)
    if refused:
        hops.add(configured, "skipped", refused)
    return bool(refused)


def _send(runtime: Runtime, claimed: Claimed, configured: Configured, outbound: OutboundMessage, hops: Hops) -> Receipt:
    """The provider call, with transaction 2 as its commit point: :func:`record_intent`, or for a
    provider that finishes messages with writes of its own (SMTP's final dot) a batch of one
    whose ``COMMIT`` leaves with that write (:mod:`ccm.messages.intents`)."""
    provider = configured.provider
    if intents.sends_batches(provider):
        message_id = claimed.message_id

        def batch_commit_point(ids: Sequence[str], release: Release) -> list[str]:
            owned = intents.record(runtime, [claimed], configured, {message_id: outbound}, {message_id: hops}, release)
            if not owned:
                raise ClaimLost(message_id)
            return owned

        result = provider.send_batch([outbound], commit_point=batch_commit_point)[message_id]
        if isinstance(result, DeliveryError):
            raise result
        return result

    def commit_point() -> None:
        record_intent(runtime, claimed, configured, outbound, hops)

    return provider.send(outbound, commit_point=commit_point)


def _not_taken(
    runtime: Runtime,
    claimed: Claimed,
    configured: Configured,
    hops: Hops,
    error: TransientDeliveryError | ProviderConfigError,
) -> bool:
    """This provider did not take the message (transient or configuration error). True when the
    attempt is over because only this account may try again; False to fail over."""
    runtime.guards.failed(configured.key)
    if getattr(error, "may_have_been_sent", False):
        _retry_pinned(runtime, claimed, configured, hops, error)
        return True
    _record_failover(configured, hops, error)
    return False


def _retry_pinned(runtime: Runtime, claimed: Claimed, configured: Configured, hops: Hops, error: DeliveryError) -> None:
    """The provider may have the message after all: retry later on this account only."""
    hops.add(configured, AttemptOutcome.TRANSIENT_ERROR, f"{error.reason}: {error}")
    hops.last_error = error
    with runtime.db.unit_of_work() as session:
        outcomes.record_exhausted(runtime, session, claimed, hops, pin=configured.key)


def _record_failover(configured: Configured, hops: Hops, error: TransientDeliveryError | ProviderConfigError) -> None:
    """Note the failed hop; the next provider of the channel gets the message."""
    misconfigured = isinstance(error, ProviderConfigError)
    hops.add(
        configured,
        AttemptOutcome.CONFIG_ERROR if misconfigured else AttemptOutcome.TRANSIENT_ERROR,
        f"{error.reason}: {error}",
    )
    if misconfigured:
        log.error("provider %s (%s) is misconfigured: %s", configured.label, configured.key, error)
    hops.last_error = error


def _record_no_failover(
    runtime: Runtime,
    claimed: Claimed,
    configured: Configured,
    outbound: OutboundMessage,
    hops: Hops,
    error: DeliveryError,
) -> None:
    """The provider refused for good, or may have accepted the message: no other provider may try."""
    hops.add(
        configured,
        AttemptOutcome.UNKNOWN if isinstance(error, OutcomeUnknownError) else AttemptOutcome.PERMANENT_ERROR,
        f"{error.reason}: {error}",
    )
    with runtime.db.unit_of_work() as session:
        outcomes.record_failure(runtime, session, claimed, error, hops, outbound)


def release_before_intent(runtime: Runtime, claimed: Claimed, hops: Hops) -> None:
    """After an unexpected error, give the claim back unless the commit point was passed."""
    if not hops.intent_recorded:
        with runtime.db.unit_of_work() as session:
            outcomes.release(session, claimed)


def _record_sent(runtime: Runtime, claimed: Claimed, configured: Configured, receipt: Receipt, hops: Hops) -> None:
    hops.add(configured, receipt.status)
    failpoint(runtime, "after_send")
    with runtime.db.unit_of_work() as session:
        outcomes.record_success(session, claimed, configured, receipt, hops)


class _Ended(Exception):
    """The claim stops here: nothing to send. ``write``, when given, records why in its own short
    transaction (a compare-and-set: a change made meanwhile by another run wins)."""

    def __init__(self, write: Callable[[Session], object] | None = None) -> None:
        super().__init__()
        self.write = write


def claim(runtime: Runtime, message_id: str) -> Claimed | None:
    """Transaction 1, in three phases (see the module docstring). Returns what to send, or None
    when there is nothing (more) to do."""
    try:
        with runtime.db.read_only() as session:
            pending = load_pending(session, message_id)
            if pending is None:  # the job retries: the transaction that made it may not be visible yet
                raise LookupError(f"message {message_id} not found (not committed yet?)")
            planned = _plan(runtime, session, pending)
        with _ending_unsent(runtime, planned.pending):
            prepared = prepare(runtime, planned)
    except _Ended as ended:
        if ended.write is not None:
            with runtime.db.unit_of_work() as session:
                ended.write(session)
        return None
    with runtime.db.unit_of_work() as session:
        return _take(session, planned, prepared)


def claim_many(runtime: Runtime, message_ids: Sequence[str]) -> list[Claimed]:
    """Transaction 1 for several messages at once: one read-only transaction plans them all,
    they are rendered with no transaction open, and one write transaction records the ones that
    ended, checks the rest once more and takes them (each by its own compare-and-set, all in one
    round trip). Returns those to send."""
    ended: list[Callable[[Session], object]] = []
    plans = []
    with runtime.db.read_only() as session:
        pendings = load_pending_many(session, message_ids)
        known = read_ahead(session, pendings.values())
        for message_id in message_ids:
            pending = pendings.get(message_id)
            if pending is None:  # not committed yet: its own job (the relay) will bring it again
                log.warning("message %s: not found for its batch; left to its own job", message_id)
                continue
            try:
                plans.append(_plan(runtime, session, pending, known))
            except _Ended as stop:
                ended += [stop.write] if stop.write is not None else []
    ready = []
    for planned in plans:
        try:
            with _ending_unsent(runtime, planned.pending):
                ready.append((planned, prepare(runtime, planned)))
        except _Ended as stop:
            ended += [stop.write] if stop.write is not None else []
    with runtime.db.unit_of_work() as session:
        for write in ended:
            write(session)
        known = read_ahead(session, (planned.pending for planned, _ in ready))
        checked = [
            (planned.pending, rechecked)
            for planned, prepared in ready
            if (rechecked := _rechecked(session, planned, prepared, known)) is not None
        ]
        tokens = {pending.id: secrets.token_hex(8) for pending, _ in checked}
        taken = state.claim_many(
            session, [_claim(pending, prepared, tokens[pending.id]) for pending, prepared in checked]
        )
    claimed = []
    for pending, prepared in checked:
        if pending.id in taken:
            claimed.append(_claimed(pending, prepared, tokens[pending.id]))
        else:
            log.info("message %s changed while it was prepared; left to the run that changed it", pending.id)
    return claimed


def _plan(runtime: Runtime, session: Session, pending: Pending, known: ReadAhead | None = None) -> Plan:
    """Phase a, reads only: whether this run may claim the message, and where it goes."""
    _check_claimable(runtime, session, pending)
    with _ending_unsent(runtime, pending):
        return plan(runtime, session, pending, known)


@contextmanager
def _ending_unsent(runtime: Runtime, pending: Pending) -> Iterator[None]:
    """Turn a refusal (skip, failure, quiet-hours deferral) into the write that records it."""
    try:
        yield
    except NotSendable as stop:
        raise _Ended(functools.partial(outcomes.finish_unsent, pending=pending, stop=stop)) from None
    except Deferred as deferred:
        raise _Ended(functools.partial(outcomes.defer, runtime, pending=pending, deferred=deferred)) from None
    except SQLAlchemyError:
        raise  # the database is unwell: retry the job later
    except Exception as exc:  # a bug: end the message with a reason instead of retrying it forever
        log.exception("message %s: preparing it failed", pending.id)
        raise _Ended(
            functools.partial(
                outcomes.finish_unsent,
                pending=pending,
                stop=NotSendable(
                    MessageStatus.FAILED, f"internal_error: {type(exc).__name__} while preparing the message"
                ),
            )
        ) from None


def _take(session: Session, planned: Plan, prepared: Prepared) -> Claimed | None:
    """Phase c, the short write transaction: the last checks, then the compare-and-set."""
    pending = planned.pending
    rechecked = _rechecked(session, planned, prepared)
    if rechecked is None:
        return None
    token = secrets.token_hex(8)
    if not state.claim_many(session, [_claim(pending, rechecked, token)]):
        log.info("message %s changed while it was prepared; left to the run that changed it", pending.id)
        return None
    return _claimed(pending, rechecked, token)


def _rechecked(session: Session, planned: Plan, prepared: Prepared, known: ReadAhead | None = None) -> Prepared | None:
    """Suppression, consent and caps once more; None (the message ended) when they refuse now."""
    try:
        return recheck(session, planned, prepared, known)
    except NotSendable as stop:
        outcomes.finish_unsent(session, planned.pending, stop)
        return None


def _claim(pending: Pending, prepared: Prepared, token: str) -> state.Claim:
    """The compare-and-set that claims the message: it fails when anyone changed the message
    since it was read (status, token and last change are all compared)."""
    return state.Claim(
        pending.id,
        MessageStatus(pending.status),
        pending.claim_token,
        pending.updated_at,
        token,
        {
            "channel": prepared.channel,
            "locale": prepared.locale,
            "to_address": prepared.to_address,
            "route": prepared.route,
            "segments": prepared.segments,
        },
    )


def _claimed(pending: Pending, prepared: Prepared, token: str) -> Claimed:
    """What the run sends, once claimed."""
    return Claimed(
        pending.id,
        token,
        pending.claims + 1,
        tuple(prepared.targets),
        prepared.outbound,
        pending.deadline_at,
        can_fall_back=pending.channel_override is None,
        failed_channels=tuple(pending.failed_channels),
        pinned_account=pending.pinned_account,
        profile_id=pending.profile_id,
    )


def _check_claimable(runtime: Runtime, session: Session, pending: Pending) -> None:
    """Reads only. Raises `_Ended` when this run may not claim the message, with the write that
    ends it when that is the right answer."""
    now = utcnow()
    if MessageStatus(pending.status).is_terminal:
        raise _Ended(lambda write: jobs.finish(write, DELIVER, pending.id))
    if pending.status == MessageStatus.SENDING:
        stale_before = now - dt.timedelta(seconds=runtime.settings.claim_timeout)
        if pending.claimed_at and pending.claimed_at > stale_before:
            raise _Ended()  # a live run has it (or a redelivery raced a slow run)
        number = attempts.in_flight_attempt(session, pending.id)
        if number is not None:
            raise _Ended(lambda write: outcomes.settle_in_flight(write, pending, number))
    if pending.next_attempt_at and pending.next_attempt_at > now + dt.timedelta(seconds=1):
        raise _Ended()  # published early (by the relay) for a retry or a deferral; the delayed run will come
    # Claims the provider answered "later" (back-pressure) are retries, which the deadline ends;
    # only claims that ended no other way count towards a message that keeps crashing its run.
    if pending.claims >= MAX_CLAIMS and pending.claims - attempts.answered_transient(session, pending.id) >= MAX_CLAIMS:
        raise _Ended(
            lambda write: outcomes.finish_message(
                write, pending, MessageStatus.FAILED, f"too_many_attempts: claimed {pending.claims} times"
            )
        )
    if now >= pending.deadline_at:
        raise _Ended(
            lambda write: outcomes.finish_message(
                write, pending, MessageStatus.FAILED, "deadline_exceeded: not sent before its deadline"
            )
        )


def record_intent(
    runtime: Runtime, claimed: Claimed, configured: Configured, outbound: OutboundMessage, hops: Hops
) -> None:
    """Transaction 2, the commit point: the attempt is ``in_flight`` with this provider from here on."""
    with runtime.db.unit_of_work() as session:
        if not state.hold(session, claimed.message_id, claimed.token):
            raise ClaimLost(claimed.message_id)
        attempts.mark_in_flight(session, claimed, configured, outbound, hops)
    hops.intent_recorded = True


def failpoint(runtime: Runtime, name: str) -> None:
    """Fault injection for the crash tests: ``CCM_CRASH_AT=<name>`` kills this process here."""
    if runtime.settings.crash_at == name:
        os.kill(os.getpid(), signal.SIGKILL)
