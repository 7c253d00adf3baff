"""The ``delivery_attempt`` rows: one per claim of a message, inserted ``in_flight`` at the
commit point (or when the attempt ends before any provider reached it), finished with the
outcome. The message's own status is :mod:`ccm.messages.state`'s; these only say how each
attempt went, hop by hop.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import bindparam, func, insert, select, update
from sqlalchemy.orm import Session

from ccm.channels.base import OutboundMessage, Receipt
from ccm.channels.registry import Configured
from ccm.db import dialect_of, insert_ignoring_conflicts, utcnow
from ccm.ids import new_id
from ccm.messages.claims import Claimed, Hops
from ccm.messages.models import AttemptOutcome, DeliveryAttempt

_a = DeliveryAttempt.__table__
_FINISH_ATTEMPT = (
    update(_a)
    .where(_a.c.message_id == bindparam("b_id"), _a.c.number == bindparam("b_number"))
    .values(
        outcome=bindparam("b_outcome"),
        provider=bindparam("b_provider"),
        provider_message_id=bindparam("b_provider_id"),
        error=bindparam("b_error"),
        retry_at=bindparam("b_retry_at"),
        hops=bindparam("b_hops"),
        finished_at=bindparam("b_now"),
    )
)
_INSERT_ATTEMPT = insert(_a)


def attempt_row(
    message_id: str, number: int, provider: str, outbound: OutboundMessage, **values: Any
) -> dict[str, Any]:
    row = {
        "id": _attempt_id(),
        "message_id": message_id,
        "number": number,
        "channel": outbound.channel,
        "provider": provider,
        "to_address": outbound.to,
        "outcome": AttemptOutcome.IN_FLIGHT,
        "error": None,
        "provider_message_id": None,
        "retry_at": None,
        "hops": [],
        "started_at": utcnow(),
        "finished_at": None,
    }
    row.update(values)
    return row


def mark_in_flight(
    session: Session, claimed: Claimed, configured: Configured, outbound: OutboundMessage, hops: Hops
) -> None:
    """The attempt is in flight with this provider (inserted at the first hop, updated at later ones)."""
    if not hops.intent_recorded:
        session.execute(
            _INSERT_ATTEMPT,
            attempt_row(
                claimed.message_id, claimed.attempt_number, configured.provider.name, outbound, hops=list(hops.items)
            ),
        )
        return
    session.execute(
        update(_a)
        .where(_a.c.message_id == claimed.message_id, _a.c.number == claimed.attempt_number)
        .values(
            provider=configured.provider.name,
            outcome=AttemptOutcome.IN_FLIGHT,
            to_address=outbound.to,
            hops=list(hops.items),
        )
    )


def mark_in_flight_many(
    session: Session,
    items: Sequence[Claimed],
    configured: Configured,
    outbound: Mapping[str, OutboundMessage],
    hops: Mapping[str, Hops],
    *,
    ignoring_existing: bool = False,
) -> None:
    """:func:`mark_in_flight` for a batch's first hop: one multi-row insert (``ignoring_existing``:
    an attempt already there, from an earlier try of the same intent, is left as it is)."""
    rows = [
        attempt_row(
            item.message_id,
            item.attempt_number,
            configured.provider.name,
            outbound[item.message_id],
            hops=list(hops[item.message_id].items),
        )
        for item in items
    ]
    if rows:
        insert = insert_ignoring_conflicts(dialect_of(session), _a) if ignoring_existing else _INSERT_ATTEMPT
        session.execute(insert, rows)


def in_flight_attempt(session: Session, message_id: str) -> int | None:
    """The number of the attempt a worker left ``in_flight`` (it reached the commit point), if any."""
    return session.execute(
        select(_a.c.number).where(_a.c.message_id == message_id, _a.c.outcome == AttemptOutcome.IN_FLIGHT)
    ).scalar()


def answered_transient(session: Session, message_id: str) -> int:
    """How many of the message's attempts the provider answered with a transient error (back-pressure
    such as SMTP 4xx or HTTP 429): retries the deadline bounds, not a message that keeps crashing."""
    count = select(func.count()).where(_a.c.message_id == message_id, _a.c.outcome == AttemptOutcome.TRANSIENT_ERROR)
    return int(session.execute(count).scalar() or 0)


def ensure(session: Session, claimed: Claimed, provider: str) -> None:
    """No provider reached its commit point: the attempt row does not exist yet."""
    exists = session.execute(
        select(_a.c.id).where(_a.c.message_id == claimed.message_id, _a.c.number == claimed.attempt_number)
    ).first()
    if exists is None:
        session.execute(
            _INSERT_ATTEMPT, attempt_row(claimed.message_id, claimed.attempt_number, provider, claimed.outbound)
        )


def finish(
    session: Session,
    claimed: Claimed,
    hops: Hops,
    outcome: AttemptOutcome,
    *,
    provider: str,
    provider_id: str | None = None,
    error: str | None = None,
    retry_at: dt.datetime | None = None,
) -> None:
    session.execute(
        _FINISH_ATTEMPT,
        {
            "b_id": claimed.message_id,
            "b_number": claimed.attempt_number,
            "b_outcome": outcome,
            "b_provider": provider,
            "b_provider_id": provider_id,
            "b_error": error,
            "b_retry_at": retry_at,
            "b_hops": list(hops.items),
            "b_now": utcnow(),
        },
    )


def finish_many(
    session: Session, finished: Sequence[tuple[Claimed, Hops, AttemptOutcome, Receipt]], provider: str
) -> None:
    """:func:`finish` for a batch the provider took: one statement for all of them."""
    now = utcnow()
    session.execute(
        _FINISH_ATTEMPT,
        [
            {
                "b_id": claimed.message_id,
                "b_number": claimed.attempt_number,
                "b_outcome": outcome,
                "b_provider": provider,
                "b_provider_id": receipt.provider_message_id,
                "b_error": None,
                "b_retry_at": None,
                "b_hops": list(hops.items),
                "b_now": now,
            }
            for claimed, hops, outcome, receipt in finished
        ],
    )


def mark_unknown(session: Session, message_id: str, number: int, error: str) -> None:
    """The attempt's outcome cannot be known (its worker died past the commit point)."""
    session.execute(
        update(_a)
        .where(_a.c.message_id == message_id, _a.c.number == number)
        .values(outcome=AttemptOutcome.UNKNOWN, finished_at=utcnow(), error=error)
    )


def _attempt_id() -> str:
    return new_id("att")
