"""Recording how a delivery went: the attempt rows, and the decision on the message — ended,
retried, deferred, fallen back or released — which :mod:`ccm.messages.state` writes.

Each function runs inside the caller's transaction and only changes a message this run still owns
(compare-and-set on the claim token), so a run that lost its claim changes nothing. Once that
transaction commits, the outcome is logged at INFO with the message id (``message msg_… delivered
via smtp as …``, ``… failed(reason)``, ``… retrying at …``) and counted for the worker's throughput line.
"""

from __future__ import annotations

import datetime as dt
import logging
import random
from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy.orm import Session

from ccm import jobs
from ccm.channels.base import DeliveryError, OutboundMessage, OutcomeUnknownError, Receipt
from ccm.channels.registry import Configured
from ccm.consent.optout import OptOutReason, opt_out
from ccm.db import after_commit, utcnow
from ccm.logs import DELIVERY_OUTCOMES
from ccm.messages import attempts, state
from ccm.messages.claims import DELIVER, Claimed, Hops
from ccm.messages.models import AttemptOutcome, MessageStatus
from ccm.messages.outbound import Pending
from ccm.messages.rules import Deferred, NotSendable
from ccm.runtime import Runtime

log = logging.getLogger(__name__)


def record_success_many(
    session: Session,
    configured: Configured,
    taken: Sequence[tuple[Claimed, Receipt]],
    hops: Mapping[str, Hops],
) -> None:
    """:func:`record_success` for a batch, in three round trips whatever its size: the attempts,
    then the messages (by status reached), compare-and-set on each one's claim token."""
    if not taken:
        return
    provider = configured.provider.name
    attempts.finish_many(
        session,
        [(item, hops[item.message_id], AttemptOutcome(receipt.status), receipt) for item, receipt in taken],
        provider,
    )
    for status in {MessageStatus(receipt.status) for _, receipt in taken}:
        moves = {
            item.message_id: (
                state.Move(
                    item.message_id,
                    item.token,
                    _accepted(provider, receipt),
                    {"provider_message_id": receipt.provider_message_id},
                ),
                receipt,
            )
            for item, receipt in taken
            if receipt.status == status
        }
        moved = set(state.transition_each(session, [move for move, _ in moves.values()], expect=state.OWNED, to=status))
        for message_id, (move, receipt) in moves.items():
            if message_id in moved:
                _report(
                    session, message_id, status, _described(status, move.reason, provider, receipt.provider_message_id)
                )
            else:
                log.warning("message %s: claim taken over before the outcome was recorded", message_id)


def _accepted(provider: str, receipt: Receipt) -> str:
    return f"accepted by {provider}" + (f" as {receipt.provider_message_id}" if receipt.provider_message_id else "")


def record_success(session: Session, claimed: Claimed, configured: Configured, receipt: Receipt, hops: Hops) -> None:
    """The provider took the message: the attempt and the message end ``sent`` or ``delivered``."""
    reason = _accepted(configured.provider.name, receipt)
    attempts.finish(
        session,
        claimed,
        hops,
        AttemptOutcome(receipt.status),
        provider=configured.provider.name,
        provider_id=receipt.provider_message_id,
    )
    _finish_owned(
        session,
        claimed,
        MessageStatus(receipt.status),
        reason,
        provider_id=receipt.provider_message_id,
        via=configured.provider.name,
    )


def record_failure(
    runtime: Runtime, session: Session, claimed: Claimed, error: DeliveryError, hops: Hops, outbound: OutboundMessage
) -> None:
    """A provider refused for good, or may have the message: no other provider may try."""
    message = f"{error.reason}: {error}"
    provider = hops.items[-1]["provider"]
    attempts.ensure(session, claimed, provider)
    if isinstance(error, OutcomeUnknownError):
        attempts.finish(session, claimed, hops, AttemptOutcome.UNKNOWN, provider=provider, error=message)
        _finish_owned(session, claimed, MessageStatus.SENT, f"{message}; not retried, to avoid a duplicate")
        return
    attempts.finish(session, claimed, hops, AttemptOutcome.PERMANENT_ERROR, provider=provider, error=message)
    _opt_out_after(session, claimed, outbound, error)
    if claimed.can_fall_back and _fall_back(runtime, session, claimed, message):
        return
    _finish_owned(session, claimed, MessageStatus.FAILED, message)


OPTS_OUT = {"invalid_address": OptOutReason.INVALID_ADDRESS, "unsubscribed": OptOutReason.BLOCKED}
"""Permanent errors that say the address is dead, or that the person refused us at the provider."""


def _opt_out_after(session: Session, claimed: Claimed, outbound: OutboundMessage, error: DeliveryError) -> None:
    reason = OPTS_OUT.get(error.reason)
    if reason is not None:
        opt_out(
            session,
            workspace_id=outbound.workspace_id,
            profile_id=claimed.profile_id,
            channel=outbound.channel,
            address=outbound.to,
            reason=reason,
            source="provider_unsubscribe" if reason is OptOutReason.BLOCKED else "provider_error",
            actor="provider",
            proof={"message_id": claimed.message_id, "error": str(error)[:300]},
            detail=str(error),
        )


def _fall_back(runtime: Runtime, session: Session, claimed: Claimed, message: str) -> bool:
    """Queue the message again without this channel; the next run routes it to the next one (or
    fails it when none is left). False when the message is no longer ``sending`` (a takeover
    settled it meanwhile): it then fails here, with no new send."""
    channel = claimed.outbound.channel
    requeued = state.transition(
        session,
        claimed.message_id,
        expect=MessageStatus.SENDING,
        token=claimed.token,
        to=MessageStatus.QUEUED,
        reason=f"fallback: {channel} failed: {message}",
        failed_channels=[*claimed.failed_channels, {"channel": channel, "reason": message}],
        next_attempt_at=None,
    )
    if requeued:
        jobs.reschedule(session, DELIVER, claimed.message_id, delay=0.0, grace=runtime.settings.relay_grace)
        _report(session, claimed.message_id, "fell_back", f"falling back: {channel} failed ({message})")
    return requeued


def record_exhausted(
    runtime: Runtime, session: Session, claimed: Claimed, hops: Hops, *, pin: str | None = None
) -> None:
    """Every provider of the channel refused this time (transient errors, open circuits, rate
    limits, misconfiguration): retry later — unless all of them are misconfigured. ``pin`` keeps
    the retries on one account (it may already have the message)."""
    provider = hops.items[-1]["provider"] if hops.items else "none"
    attempts.ensure(session, claimed, provider)
    summary = "; ".join(f"{hop['label']}: {hop['error']}" for hop in hops.items) or "no provider"
    if hops.items and all(hop["outcome"] == AttemptOutcome.CONFIG_ERROR for hop in hops.items):
        attempts.finish(session, claimed, hops, AttemptOutcome.CONFIG_ERROR, provider=provider, error=summary)
        _finish_owned(session, claimed, MessageStatus.FAILED, f"provider_config_error: {summary}")
        return
    retry_after = getattr(hops.last_error, "retry_after", None)
    _retry_or_give_up(runtime, session, claimed, hops, provider, summary, retry_after, pin or claimed.pinned_account)


def release(session: Session, claimed: Claimed) -> None:
    """Give the claim back after an unexpected error before the commit point, so a retry can run."""
    state.transition(
        session,
        claimed.message_id,
        expect=MessageStatus.SENDING,
        token=claimed.token,
        to=MessageStatus.RETRYING,
        next_attempt_at=utcnow(),
    )


def finish_unsent(session: Session, pending: Pending, stop: NotSendable) -> None:
    """End a message that needs no provider call (skipped, or failed before sending)."""
    finish_message(session, pending, stop.status, stop.reason, route=stop.route)


def defer(runtime: Runtime, session: Session, pending: Pending, deferred: Deferred) -> None:
    """Keep the message queued until ``deferred.until`` and run it again then."""
    delay = max(0.0, (deferred.until - utcnow()).total_seconds())
    if state.transition(
        session,
        pending.id,
        expect=MessageStatus(pending.status),
        token=pending.claim_token,
        updated_at=pending.updated_at,
        to=MessageStatus.QUEUED,
        reason=deferred.reason,
        next_attempt_at=deferred.until,
        route=deferred.route,
    ):
        jobs.reschedule(session, DELIVER, pending.id, delay=delay, grace=runtime.settings.relay_grace)
        _report(session, pending.id, "deferred", deferred.reason)


def finish_message(
    session: Session, pending: Pending, status: MessageStatus, reason: str, *, via: str | None = None, **values: Any
) -> bool:
    """End a message as loaded in ``pending``; nothing happens if another run changed it since
    (compare-and-set on its status, claim token and last change). Returns whether it ended."""
    ended = state.transition(
        session,
        pending.id,
        expect=MessageStatus(pending.status),
        token=pending.claim_token,
        updated_at=pending.updated_at,
        to=status,
        reason=reason,
        **values,
    )
    if not ended:
        log.info("message %s changed while being decided; left to the run that changed it", pending.id)
        return False
    _report(session, pending.id, status, _described(status, reason, via, values.get("provider_message_id")))
    return True


def _report(session: Session, message_id: str, outcome: str, detail: str) -> None:
    """Once the transaction commits, log how this run left the message and count it (see the
    module docstring); a rolled-back outcome is never reported."""

    def log_outcome() -> None:
        DELIVERY_OUTCOMES.add(outcome)
        log.info("message %s %s", message_id, detail)

    after_commit(session, log_outcome)


def _described(status: MessageStatus, reason: str, via: str | None, provider_id: str | None) -> str:
    if via is None:
        return f"{status}({reason})"
    return f"{status} via {via}" + (f" as {provider_id}" if provider_id else "")


def settle_in_flight(session: Session, pending: Pending, number: int) -> None:
    """A dead worker left the message ``sending`` after its commit point: the provider may have
    the message, so it ends ``sent`` with reason ``outcome_unknown`` rather than risk a duplicate."""
    if finish_message(
        session,
        pending,
        MessageStatus.SENT,
        "outcome_unknown: the worker stopped after handing the message to the provider; "
        "not retried, to avoid a duplicate",
    ):
        attempts.mark_unknown(session, pending.id, number, "the worker stopped during the provider call")


def backoff(claims: int, *, base: float, cap: float) -> float:
    """Exponential backoff with jitter on the upper half: ~base, 3×base, 9×base … ≤ cap."""
    ceiling = min(cap, base * 3 ** max(0, claims - 1))
    return ceiling / 2 + random.random() * ceiling / 2


def _retry_or_give_up(
    runtime: Runtime,
    session: Session,
    claimed: Claimed,
    hops: Hops,
    provider: str,
    message: str,
    retry_after: float | None,
    pin: str | None,
) -> None:
    settings = runtime.settings
    delay = max(retry_after or 0.0, backoff(claimed.attempt_number, base=settings.retry_base, cap=settings.retry_max))
    retry_at = utcnow() + dt.timedelta(seconds=delay)
    if retry_at >= claimed.deadline_at:
        attempts.finish(session, claimed, hops, AttemptOutcome.TRANSIENT_ERROR, provider=provider, error=message)
        if pin:  # an earlier request may have reached the provider: it is not known to have failed
            _finish_owned(
                session, claimed, MessageStatus.SENT, f"outcome_unknown: deadline reached; last error {message}"
            )
        else:
            _finish_owned(session, claimed, MessageStatus.FAILED, f"deadline_exceeded: last error {message}")
        return
    attempts.finish(
        session, claimed, hops, AttemptOutcome.TRANSIENT_ERROR, provider=provider, error=message, retry_at=retry_at
    )
    if state.transition(
        session,
        claimed.message_id,
        expect=MessageStatus.SENDING,
        token=claimed.token,
        to=MessageStatus.RETRYING,
        reason=message,
        next_attempt_at=retry_at,
        pinned_account=pin,
    ):
        jobs.reschedule(session, DELIVER, claimed.message_id, delay=delay, grace=settings.relay_grace)
        _report(session, claimed.message_id, "retrying", f"retrying at {retry_at:%Y-%m-%dT%H:%M:%SZ} ({message})")


def _finish_owned(
    session: Session,
    claimed: Claimed,
    status: MessageStatus,
    reason: str,
    *,
    provider_id: str | None = None,
    via: str | None = None,
) -> None:
    """End the message if this run still owns it (a takeover after a long stall keeps the token,
    so a late but definite outcome still replaces ``outcome_unknown``; a report that overtook the
    run keeps its status)."""
    if state.transition(
        session,
        claimed.message_id,
        expect=state.OWNED,
        token=claimed.token,
        to=status,
        reason=reason,
        provider_message_id=provider_id,
    ):
        _report(session, claimed.message_id, status, _described(status, reason, via, provider_id))
    else:
        log.warning("message %s: claim taken over before the outcome was recorded", claimed.message_id)
