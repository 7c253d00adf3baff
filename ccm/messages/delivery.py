"""Delivering one message: claim it, check it, route it, render it, hand it to a provider, and
record the outcome — with at most one provider call per message, whatever crashes.

Three short transactions, so that a crash anywhere leaves a state the next run can read:

1. **claim**: lock the row, re-check everything (terminal? deadline? profile? route? render?),
   mark it ``sending`` with a fresh claim token. Skips and failures that need no provider call end
   here. Providers that write to the database (the local outbox) also send and finish here.
2. **commit point**: right before the irrevocable step of the provider call, insert the
   ``in_flight`` attempt — only if the claim token still matches (compare-and-set). A run that
   finds an ``in_flight`` attempt from a dead worker knows the provider *may* have the message and
   never calls it again.
3. **outcome**: record the attempt's result and the message's next state (compare-and-set on the
   claim token), and remove the job from the outbox.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import random
import secrets
import signal
from dataclasses import dataclass

from sqlalchemy import func, select, text, update
from sqlalchemy.orm import Session

from ccm import jobs
from ccm.channels.base import (
    DeliveryError, OutboundMessage, OutcomeUnknownError, Provider, ProviderConfigError, Receipt,
    TransientDeliveryError,
)
from ccm.db import utcnow
from ccm.messages.models import AttemptOutcome, DeliveryAttempt, Message, MessageStatus
from ccm.messages.outbound import NotSendable, prepare_outbound
from ccm.runtime import Runtime

log = logging.getLogger(__name__)

DELIVER = jobs.Job("messages.deliver", queue="deliveries", max_retries=5)

MAX_CLAIMS = 10
"""A message claimed this many times without reaching a terminal state fails (a bug or a poison
message must not loop forever)."""


class ClaimLost(Exception):
    """Another run owns this message now; this run must not call the provider."""


@dataclass(frozen=True)
class Claimed:
    """What the claim transaction hands to the provider call."""

    message_id: str
    token: str
    attempt_number: int
    provider: Provider
    outbound: OutboundMessage
    deadline_at: dt.datetime


def deliver_message(runtime: Runtime, message_id: str) -> None:
    """The body of the ``messages.deliver`` actor; safe to run any number of times."""
    claimed = claim(runtime, message_id)
    if claimed is None:
        return
    _failpoint(runtime, "after_claim")
    intent_recorded = False

    def commit_point() -> None:
        nonlocal intent_recorded
        record_intent(runtime, claimed)
        intent_recorded = True

    try:
        receipt = claimed.provider.send(claimed.outbound, commit_point=commit_point, session=None)  # type: ignore[arg-type]
    except ClaimLost:
        log.info("message %s: claim lost before sending; another run owns it", message_id)
        return
    except DeliveryError as error:
        record_failure(runtime, claimed, error, intent_recorded=intent_recorded)
        return
    except Exception:
        if not intent_recorded:
            release(runtime, claimed)
        raise
    _failpoint(runtime, "after_send")
    record_success(runtime, claimed, receipt)


def claim(runtime: Runtime, message_id: str) -> Claimed | None:
    """Transaction 1. Returns what to send, or None when there is nothing (more) to do."""
    with runtime.db.unit_of_work() as session:
        if not runtime.db.is_sqlite:  # losing a claim in a database crash only means redoing it
            session.execute(text("SET LOCAL synchronous_commit TO OFF"))
        message = session.get(Message, message_id, with_for_update=True)
        if message is None:
            raise LookupError(f"message {message_id} not found (not committed yet?)")
        if not _claimable(runtime, session, message):
            return None
        token = secrets.token_hex(8)
        now = utcnow()
        message.status, message.claim_token, message.claimed_at = MessageStatus.SENDING, token, now
        message.claims += 1
        message.updated_at = now
        try:
            provider, outbound = prepare_outbound(runtime, session, message)
        except NotSendable as stop:
            finish(session, message, stop.status, stop.reason)
            return None
        if provider.in_transaction:
            _send_in_transaction(session, message, provider, outbound)
            return None
        return Claimed(message.id, token, _next_attempt_number(session, message.id), provider, outbound,
                       message.deadline_at)


def _claimable(runtime: Runtime, session: Session, message: Message) -> bool:
    """Whether this run may claim the message; finishes it when that is the right answer."""
    now = utcnow()
    if MessageStatus(message.status).is_terminal:
        jobs.finish(session, DELIVER, message.id)
        return False
    if message.status == MessageStatus.SENDING:
        if message.claimed_at and message.claimed_at > now - dt.timedelta(seconds=runtime.settings.claim_timeout):
            return False  # a live run has it (or a redelivery raced a slow run)
        if _settle_in_flight(session, message):
            return False
    if message.status == MessageStatus.RETRYING and message.next_attempt_at and message.next_attempt_at > now + dt.timedelta(seconds=1):
        return False  # published early (by the relay); the delayed run will come
    if message.claims >= MAX_CLAIMS:
        finish(session, message, MessageStatus.FAILED, f"too_many_attempts: claimed {message.claims} times")
        return False
    if now >= message.deadline_at:
        finish(session, message, MessageStatus.FAILED, "deadline_exceeded: not sent before its deadline")
        return False
    return True


def _settle_in_flight(session: Session, message: Message) -> bool:
    """A dead worker left the message ``sending``. If it had reached the commit point, the provider
    may have the message: end it as sent with reason ``outcome_unknown`` rather than risk a duplicate."""
    attempt = session.scalar(select(DeliveryAttempt).where(
        DeliveryAttempt.message_id == message.id, DeliveryAttempt.outcome == AttemptOutcome.IN_FLIGHT))
    if attempt is None:
        return False
    attempt.outcome, attempt.finished_at = AttemptOutcome.UNKNOWN, utcnow()
    attempt.error = "the worker stopped during the provider call"
    finish(session, message, MessageStatus.SENT,
           "outcome_unknown: the worker stopped after handing the message to the provider; "
           "not retried, to avoid a duplicate")
    return True


def _send_in_transaction(session: Session, message: Message, provider: Provider, outbound: OutboundMessage) -> None:
    attempt = DeliveryAttempt(message_id=message.id, number=_next_attempt_number(session, message.id),
                              channel=outbound.channel, provider=provider.name, to_address=outbound.to)
    session.add(attempt)
    receipt = provider.send(outbound, commit_point=lambda: None, session=session)
    _apply_receipt(session, message, attempt, receipt)


def record_intent(runtime: Runtime, claimed: Claimed) -> None:
    """Transaction 2, the commit point: the attempt is ``in_flight`` from here on."""
    with runtime.db.unit_of_work() as session:
        owned = session.execute(
            update(Message).where(Message.id == claimed.message_id, Message.claim_token == claimed.token,
                                  Message.status == MessageStatus.SENDING).values(updated_at=utcnow())
        )
        if not owned.rowcount:  # type: ignore[attr-defined]
            raise ClaimLost(claimed.message_id)
        session.add(DeliveryAttempt(
            message_id=claimed.message_id, number=claimed.attempt_number, channel=claimed.outbound.channel,
            provider=claimed.provider.name, to_address=claimed.outbound.to,
        ))


def record_success(runtime: Runtime, claimed: Claimed, receipt: Receipt) -> None:
    """Transaction 3 after the provider took the message."""
    with runtime.db.unit_of_work() as session:
        message, attempt = _owned(session, claimed)
        if message is None or attempt is None:
            return
        _apply_receipt(session, message, attempt, receipt)


def record_failure(runtime: Runtime, claimed: Claimed, error: DeliveryError, *, intent_recorded: bool) -> None:
    """Transaction 3 after the provider refused: retry later, or end ``failed`` with the reason."""
    with runtime.db.unit_of_work() as session:
        message, attempt = _owned(session, claimed)
        if message is None:
            return
        if attempt is None:  # the provider failed before the commit point: nothing was handed over
            attempt = DeliveryAttempt(message_id=message.id, number=claimed.attempt_number,
                                      channel=claimed.outbound.channel, provider=claimed.provider.name,
                                      to_address=claimed.outbound.to)
            session.add(attempt)
        attempt.error, attempt.finished_at = f"{error.reason}: {error}", utcnow()
        if isinstance(error, OutcomeUnknownError):
            attempt.outcome = AttemptOutcome.UNKNOWN
            finish(session, message, MessageStatus.SENT, f"outcome_unknown: {error}; not retried, to avoid a duplicate")
            return
        if isinstance(error, TransientDeliveryError):
            _schedule_retry(runtime, session, message, attempt, error)
            return
        attempt.outcome = (AttemptOutcome.CONFIG_ERROR if isinstance(error, ProviderConfigError)
                           else AttemptOutcome.PERMANENT_ERROR)
        if isinstance(error, ProviderConfigError):
            log.error("message %s: provider %s is misconfigured: %s", message.id, claimed.provider.name, error)
        finish(session, message, MessageStatus.FAILED, f"{error.reason}: {error}")


def release(runtime: Runtime, claimed: Claimed) -> None:
    """Give the claim back after an unexpected error before the commit point, so a retry can run."""
    with runtime.db.unit_of_work() as session:
        session.execute(
            update(Message).where(Message.id == claimed.message_id, Message.claim_token == claimed.token,
                                  Message.status == MessageStatus.SENDING)
            .values(status=MessageStatus.RETRYING, claim_token=None, next_attempt_at=utcnow(), updated_at=utcnow())
        )


def finish(session: Session, message: Message, status: MessageStatus, reason: str | None) -> None:
    """Put the message in a terminal state and take its job off the outbox."""
    now = utcnow()
    message.status, message.reason, message.finished_at, message.updated_at = status, reason, now, now
    message.next_attempt_at = None
    jobs.finish(session, DELIVER, message.id)


def backoff(claims: int, *, base: float, cap: float) -> float:
    """Exponential backoff with full jitter on the upper half: ~base, 3×base, 9×base … ≤ cap."""
    ceiling = min(cap, base * 3 ** max(0, claims - 1))
    return ceiling / 2 + random.random() * ceiling / 2


def _schedule_retry(runtime: Runtime, session: Session, message: Message, attempt: DeliveryAttempt,
                    error: TransientDeliveryError) -> None:
    settings = runtime.settings
    attempt.outcome = AttemptOutcome.TRANSIENT_ERROR
    delay = max(error.retry_after or 0.0, backoff(message.claims, base=settings.retry_base, cap=settings.retry_max))
    retry_at = utcnow() + dt.timedelta(seconds=delay)
    if retry_at >= message.deadline_at:
        finish(session, message, MessageStatus.FAILED, f"deadline_exceeded: last error {error.reason}: {error}")
        return
    attempt.retry_at = retry_at
    message.status, message.reason, message.next_attempt_at = MessageStatus.RETRYING, f"{error.reason}: {error}", retry_at
    message.claim_token, message.updated_at = None, utcnow()
    jobs.reschedule(session, DELIVER, message.id, delay=delay, grace=settings.relay_grace)


def _owned(session: Session, claimed: Claimed) -> tuple[Message | None, DeliveryAttempt | None]:
    message = session.get(Message, claimed.message_id, with_for_update=True)
    if message is None or message.claim_token != claimed.token:
        log.warning("message %s: claim taken over before the outcome was recorded", claimed.message_id)
        return None, None
    attempt = session.scalar(select(DeliveryAttempt).where(
        DeliveryAttempt.message_id == message.id, DeliveryAttempt.number == claimed.attempt_number))
    return message, attempt


def _apply_receipt(session: Session, message: Message, attempt: DeliveryAttempt, receipt: Receipt) -> None:
    attempt.outcome = AttemptOutcome(receipt.status)
    attempt.provider_message_id, attempt.finished_at, attempt.error = receipt.provider_message_id, utcnow(), None
    message.provider_message_id = receipt.provider_message_id
    accepted = f"accepted by {attempt.provider}" + (f" as {receipt.provider_message_id}" if receipt.provider_message_id else "")
    finish(session, message, MessageStatus(receipt.status), accepted)


def _next_attempt_number(session: Session, message_id: str) -> int:
    latest = session.scalar(select(func.max(DeliveryAttempt.number)).where(DeliveryAttempt.message_id == message_id))
    return (latest or 0) + 1


def _failpoint(runtime: Runtime, name: str) -> None:
    """Fault injection for the crash tests: ``CCM_CRASH_AT=<name>`` kills this process here."""
    if runtime.settings.crash_at == name:
        os.kill(os.getpid(), signal.SIGKILL)
