"""The commit point of a provider that finishes its messages with writes of its own (SMTP: each
connection's final dot), for one message or a batch: one transaction marks every message still
owned ``in_flight`` with the provider, and its ``COMMIT`` leaves in the same instant as those
writes (:func:`ccm.db_commit.commit_writing`: one system call where it can). A worker killed at
any moment either sent neither — the claims go stale and the messages are sent once, later — or
both: the messages end ``sent(outcome_unknown)``, delivered and never re-sent.

Should the ``COMMIT`` fail or go unanswered after the writes (PostgreSQL crashed or the connection
broke at that instant), the intent is written again in a new transaction (a no-op where the first
one did commit); only if that fails too — the database still down — can those messages be sent
again once their claims go stale, and that is logged with their ids.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TypeGuard

from sqlalchemy.orm import Session

from ccm.channels.base import FinalWrites, OutboundMessage, Provider, Release, SendsBatches
from ccm.channels.registry import Configured
from ccm.db_commit import CommitUnconfirmed, commit_writing
from ccm.messages import attempts, state
from ccm.messages.claims import Claimed, Hops
from ccm.runtime import Runtime

log = logging.getLogger(__name__)


def sends_batches(provider: Provider) -> TypeGuard[SendsBatches]:
    """Whether the provider finishes messages through a batch commit point (:class:`SendsBatches`)."""
    return _sends_batches(type(provider))


@functools.cache
def _sends_batches(kind: type) -> bool:
    # A runtime Protocol check inspects the class's attributes every time (~20 µs, per message).
    return issubclass(kind, SendsBatches)


def record(
    runtime: Runtime,
    items: Sequence[Claimed],
    configured: Configured,
    outbound: dict[str, OutboundMessage],
    hops: dict[str, Hops],
    release: Release,
) -> list[str]:
    """The commit point: each message still owned is ``in_flight`` with this provider from here
    on, and the writes of ``release(owned)`` leave with the ``COMMIT``. Returns the ids owned; the
    others must not be finished."""
    intent = _Intent(configured, outbound, hops)
    owned: list[str] = []
    finals: FinalWrites | None = None
    try:
        with runtime.db.unit_of_work() as session:
            owned = intent.write(session, items)
            finals = release(owned)
            finals.done(commit_writing(session, finals.writes))
    except CommitUnconfirmed as exc:
        assert finals is not None  # only commit_writing raises it
        finals.done(exc.write_failures)
        _confirm(runtime, intent, [item for item in items if item.message_id in owned], exc)
    for message_id in owned:
        hops[message_id].intent_recorded = True
    return owned


@dataclass(frozen=True)
class _Intent:
    """What the messages are handed to: the provider account, each message as it goes out, and
    its hops so far (by message id)."""

    configured: Configured
    outbound: dict[str, OutboundMessage]
    hops: dict[str, Hops]

    def write(self, session: Session, items: Sequence[Claimed], *, again: bool = False) -> list[str]:
        """Hold every message still owned and mark its attempt ``in_flight`` (a new attempt at
        its first hop, the same one at a later hop); the ids held."""
        held = state.hold_many(session, {item.message_id: item.token for item in items})
        mine = [item for item in items if item.message_id in held]
        first = [item for item in mine if not self.hops[item.message_id].intent_recorded]
        attempts.mark_in_flight_many(session, first, self.configured, self.outbound, self.hops, ignoring_existing=again)
        for item in mine:
            hops = self.hops[item.message_id]
            if hops.intent_recorded:  # failed over: this attempt's row is there already
                attempts.mark_in_flight(session, item, self.configured, self.outbound[item.message_id], hops)
        return [item.message_id for item in mine]


def _confirm(runtime: Runtime, intent: _Intent, items: Sequence[Claimed], cause: CommitUnconfirmed) -> None:
    """The writes went out but the intent's ``COMMIT`` was not confirmed: write it again, in a new
    transaction (a no-op where the first one did commit). If that fails too, these messages may
    be sent a second time once their claims go stale: said loudly, with their ids."""
    ids = [item.message_id for item in items]
    log.warning("intent of %d messages not confirmed after their final writes (%s); writing it again", len(ids), cause)
    try:
        with runtime.db.unit_of_work() as session:
            held = intent.write(session, items, again=True)
    except Exception:
        log.exception("intent lost after the final writes: messages %s may be sent twice", ids)
        return
    if len(held) < len(ids):
        log.error("intent lost after the final writes: messages %s may be sent twice", sorted(set(ids) - set(held)))
