"""The lifecycle of a message: the only code that writes its status.

A message moves along :data:`TRANSITIONS` and nowhere else. Every move is one compare-and-set
``UPDATE`` on its status (and on its claim token and last change, when the caller read them), so
of two runs racing for a message one wins and the other changes nothing. A message that reaches a
final state is announced here, once: its delivery job is finished and the workspace's webhooks
hear ``message.sent``, ``.delivered``, ``.failed`` or ``.skipped``. (How a delivery run left the
message — including the moves that are not final — is logged and counted by
:mod:`ccm.messages.outcomes`, the run's own record.)

The statements are built once per shape (expected statuses, target, compared columns, written
fields) and cached. A move of many messages at once is either the same statement over a list of
ids (:func:`transition_many`) or one statement executed for each message in a single round trip
(:func:`claim_many`, :func:`hold_many`, :func:`transition_each`: a batch's claims, commit point
and outcomes); when fewer rows changed than were asked, one read tells which moved.
"""

from __future__ import annotations

import datetime as dt
import enum
import functools
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from sqlalchemy import Row, Update, bindparam, or_, select, update
from sqlalchemy.orm import Session

from ccm import jobs
from ccm.db import rowcount, utcnow
from ccm.messages.claims import DELIVER
from ccm.messages.models import Message, MessageStatus
from ccm.webhooks.service import emit

S = MessageStatus
TRANSITIONS: Final[Mapping[MessageStatus, frozenset[MessageStatus]]] = {
    S.QUEUED: frozenset({S.SENDING, S.QUEUED, S.SKIPPED, S.FAILED}),
    S.RETRYING: frozenset({S.SENDING, S.QUEUED, S.SKIPPED, S.FAILED}),
    S.SENDING: frozenset({S.SENDING, S.SENT, S.DELIVERED, S.FAILED, S.RETRYING, S.QUEUED, S.SKIPPED}),
    S.SENT: frozenset({S.SENT, S.DELIVERED, S.FAILED}),
    S.DELIVERED: frozenset(),
    S.FAILED: frozenset(),
    S.SKIPPED: frozenset(),
}
"""Where a message may go from each status. ``queued → queued`` is a deferral (quiet hours),
``sending → sending`` a stale claim taken over, ``sending → queued`` a fallback to the next
channel, ``sent → sent`` a definite outcome replacing ``outcome_unknown``."""
KEEPS: Final[Mapping[MessageStatus, frozenset[MessageStatus]]] = {
    S.DELIVERED: frozenset({S.SENT, S.DELIVERED, S.FAILED}),
    S.FAILED: frozenset({S.SENT, S.DELIVERED, S.FAILED}),
}
"""A provider's report can overtake the run that sent the message: the run's outcome, recorded
afterwards, is accepted (the run is over: its job is finished, its provider id written) but the
message keeps the report's status and reason, and nothing is announced again."""
REPORTABLE: Final = (S.SENDING, S.SENT)
"""The statuses a provider report may move a message out of: handed over, not yet final."""
OWNED: Final = (S.SENDING, S.SENT, *KEEPS)
"""Where a run may find the message it claimed when it records the outcome: still sending, settled
``outcome_unknown`` by a takeover, or already ended by a report."""
PENDING: Final = (S.QUEUED, S.RETRYING)

_m = Message.__table__
_RETURNED = (_m.c.id, _m.c.workspace_id, _m.c.channel, _m.c.status)
_DERIVED = frozenset({"status", "claim_token", "claimed_at", "claims", "updated_at", "finished_at"})
_HOLD = (
    update(_m)
    .where(_m.c.id == bindparam("b_id"), _m.c.claim_token == bindparam("b_token"), _m.c.status == S.SENDING)
    .values(updated_at=bindparam("b_now"))
)


class _Unset(enum.Enum):
    UNSET = "unset"


UNSET: Final = _Unset.UNSET
"""Not compared: any claim token or last change will do."""


class IllegalTransition(ValueError):
    """A caller asked for a move :data:`TRANSITIONS` does not allow (a bug, never a race)."""


def allowed(current: MessageStatus, to: MessageStatus) -> bool:
    """Whether a message in ``current`` may be moved to ``to`` (or, for :data:`KEEPS`, keeps ``current``)."""
    return to in TRANSITIONS[current] or to in KEEPS.get(current, ())


def claim(
    session: Session,
    message_id: str,
    *,
    expect: MessageStatus,
    token: str | None,
    updated_at: dt.datetime,
    new_token: str,
    **fields: Any,
) -> bool:
    """Take the message for a delivery run: ``sending`` with ``new_token``, the claim counted.
    ``fields`` are the route it was planned on (channel, address, locale …). False when anyone
    changed the message since it was read (status, token and last change are all compared)."""
    return message_id in claim_many(session, [Claim(message_id, expect, token, updated_at, new_token, fields)])


@dataclass(frozen=True)
class Claim:
    """One message of :func:`claim_many`: what was read (status, token, last change) and the new claim."""

    message_id: str
    expect: MessageStatus
    token: str | None
    updated_at: dt.datetime
    new_token: str
    fields: Mapping[str, Any] = field(default_factory=dict)


def claim_many(session: Session, claims: Sequence[Claim]) -> set[str]:
    """:func:`claim` for many messages, in one round trip; the ids taken. Every claim must write
    the same fields."""
    if not claims:
        return set()
    names = tuple(sorted(claims[0].fields))
    now, taken = utcnow(), set()
    for expect in {claim.expect for claim in claims}:
        _check_move((expect,), S.SENDING, {})
        group = [claim for claim in claims if claim.expect is expect]
        statement = _statement(_Shape(frozenset({expect}), S.SENDING, ("claim_token", *names), compare_updated=True))
        params = [
            {
                "b_id": claim.message_id,
                "b_token": claim.token,
                "b_updated": claim.updated_at,
                "b_now": now,
                "v_claim_token": claim.new_token,
                **{f"v_{name}": claim.fields[name] for name in names},
            }
            for claim in group
        ]
        moved = rowcount(session.execute(statement, params))
        tokens = {claim.message_id: claim.new_token for claim in group}
        taken |= set(tokens) if moved == len(group) else _holding(session, tokens, S.SENDING)
    return taken


def hold_many(session: Session, held: Mapping[str, str]) -> set[str]:
    """:func:`hold` for many messages (id → claim token), in one round trip; the ids still held."""
    if not held:
        return set()
    now = utcnow()
    params = [{"b_id": message_id, "b_token": token, "b_now": now} for message_id, token in held.items()]
    moved = rowcount(session.execute(_HOLD, params))
    return set(held) if moved == len(held) else _holding(session, held, S.SENDING)


def _holding(session: Session, tokens: Mapping[str, str], status: MessageStatus) -> set[str]:
    """Which of the messages (id → claim token) carry their token in ``status``."""
    rows = session.execute(
        select(_m.c.id, _m.c.claim_token).where(_m.c.id.in_(list(tokens)), _m.c.status == status)
    ).all()
    return {row.id for row in rows if row.claim_token == tokens[row.id]}


def hold(session: Session, message_id: str, token: str) -> bool:
    """The commit point's check: the run's claim still stands. Touching the last change makes a
    takeover that read the message earlier fail its compare-and-set."""
    held = session.execute(_HOLD, {"b_id": message_id, "b_token": token, "b_now": utcnow()})
    return bool(rowcount(held))


def transition(
    session: Session,
    message_id: str,
    *,
    expect: MessageStatus | Iterable[MessageStatus],
    to: MessageStatus,
    reason: str | None = None,
    token: str | None | _Unset = UNSET,
    updated_at: dt.datetime | _Unset = UNSET,
    **fields: Any,
) -> bool:
    """Move one message from one of the ``expect``\\ ed statuses to ``to``, compare-and-set.

    Parameters:
      reason: required for a final state; None leaves the current reason.
      token, updated_at: compared too when given (``token=None`` means "no claim").
      fields: other columns to write (route, next_attempt_at, provider_message_id …). The claim
        token, timestamps and claim count follow from the move and may not be given.

    Returns whether the message moved (False: it was changed meanwhile, by another run or a report).

    Raises:
      IllegalTransition: ``to`` is not reachable from one of the ``expect``\\ ed statuses.
    """
    if to is S.SENDING:
        raise IllegalTransition("a message goes to sending only by claim(), with a new claim token")
    statuses = (expect,) if isinstance(expect, MessageStatus) else tuple(expect)
    moving = tuple(status for status in statuses if status not in KEEPS)
    values, ids = _values(reason, fields), (message_id,)
    rows = _apply(session, ids, moving, to, token=token, updated_at=updated_at, values=values) if moving else []
    _announce(session, rows, to, reason)
    keeping = tuple(status for status in statuses if status in KEEPS)
    if not rows and keeping:
        rows = _apply(session, ids, keeping, to, token=token, updated_at=updated_at, values=values, keep=True)
        _announce(session, rows, to, reason, webhooks=False)
    return bool(rows)


def transition_many(
    session: Session,
    message_ids: Sequence[str],
    *,
    expect: Iterable[MessageStatus],
    to: MessageStatus,
    reason: str | None = None,
    token: str | None | _Unset = UNSET,
    announce: bool = True,
    **fields: Any,
) -> list[str]:
    """:func:`transition` for many messages in one statement; returns the ids that moved.
    ``announce=False`` ends them without webhooks (erasure withdraws every notification about
    the person anyway); their jobs are finished all the same."""
    if not message_ids:
        return []
    if to is S.SENDING:
        raise IllegalTransition("a message goes to sending only by claim(), with a new claim token")
    rows = _apply(
        session, tuple(message_ids), tuple(expect), to, token=token, updated_at=UNSET, values=_values(reason, fields)
    )
    _announce(session, rows, to, reason, webhooks=announce)
    return [row.id for row in rows]


@dataclass(frozen=True)
class Move:
    """One message of :func:`transition_each`: its claim token, its reason and its own fields."""

    message_id: str
    token: str | None
    reason: str
    fields: Mapping[str, Any] = field(default_factory=dict)


def transition_each(
    session: Session, moves: Sequence[Move], *, expect: Iterable[MessageStatus], to: MessageStatus
) -> list[str]:
    """:func:`transition` of each message with its own reason and fields, compare-and-set on its
    token, in one round trip; returns the ids that moved or, for :data:`KEEPS`, kept a report's
    status. Every move must write the same fields."""
    if not moves:
        return []
    if to is S.SENDING:
        raise IllegalTransition("a message goes to sending only by claim(), with a new claim token")
    statuses = tuple(expect)
    moving = frozenset(status for status in statuses if status not in KEEPS)
    names = tuple(sorted(_values(moves[0].reason, moves[0].fields)))
    _check_move(moving, to, {"reason": moves[0].reason})
    now = utcnow()
    params = [
        {"b_id": move.message_id, "b_token": move.token, "b_now": now, "v_reason": move.reason}
        | {f"v_{name}": value for name, value in move.fields.items()}
        for move in moves
    ]
    changed = rowcount(session.execute(_statement(_Shape(moving, to, names)), params))
    if changed == len(moves):
        moved = [move.message_id for move in moves]
    else:
        moved_now = _moved_at(session, [move.message_id for move in moves], to, now)
        moved = [move.message_id for move in moves if move.message_id in moved_now]
    rows = session.execute(select(*_RETURNED).where(_m.c.id.in_(moved))).all() if moved else []
    _announce(session, rows, to, {move.message_id: move.reason for move in moves})
    for move in moves:
        if move.message_id not in moved and transition(
            session,
            move.message_id,
            expect=[status for status in statuses if status in KEEPS],
            to=to,
            reason=move.reason,
            token=move.token,
            **move.fields,
        ):
            moved.append(move.message_id)
    return moved


def _moved_at(session: Session, ids: Sequence[str], to: MessageStatus, now: dt.datetime) -> set[str]:
    """Which of ``ids`` this transaction moved to ``to`` at ``now`` (the last change it wrote)."""
    rows = session.execute(
        select(_m.c.id).where(_m.c.id.in_(list(ids)), _m.c.status == to, _m.c.updated_at == now)
    ).all()
    return {row.id for row in rows}


def report(session: Session, message_id: str, *, to: MessageStatus, reason: str) -> bool:
    """A provider's report about a message (delivered, bounced): final states never go back."""
    return transition(session, message_id, expect=REPORTABLE, to=to, reason=reason)


def _values(reason: str | None, fields: Mapping[str, Any]) -> dict[str, Any]:
    refused = _DERIVED.intersection(fields)
    if refused:
        raise ValueError(f"{', '.join(sorted(refused))}: written by the move itself")
    return dict(fields) if reason is None else {"reason": reason, **fields}


def _check_move(expect: Iterable[MessageStatus], to: MessageStatus, values: Mapping[str, Any]) -> None:
    for current in expect:
        if not allowed(MessageStatus(current), to):
            raise IllegalTransition(f"a message may not go from {current} to {to}")
    if to.is_terminal and values.get("reason") is None:
        raise IllegalTransition(f"{to} needs a reason")


def _apply(
    session: Session,
    ids: tuple[str, ...],
    expect: tuple[MessageStatus, ...],
    to: MessageStatus,
    *,
    token: str | None | _Unset,
    updated_at: dt.datetime | _Unset,
    values: Mapping[str, Any],
    keep: bool = False,
) -> Sequence[Row[*tuple[Any, ...]]]:
    _check_move(expect, to, values)
    if keep:  # the report's status and reason stay
        values = {name: value for name, value in values.items() if name != "reason"}
    shape = _Shape(
        frozenset(expect),
        None if keep else to,
        tuple(sorted(values)),
        compare_token=token is not UNSET,
        compare_updated=updated_at is not UNSET,
        many=len(ids) > 1,
        returning=True,
    )
    statement = _statement(shape)
    params = {f"v_{name}": value for name, value in values.items()}
    params.update({"b_ids": list(ids)} if len(ids) > 1 else {"b_id": ids[0]}, b_now=utcnow())
    if token is not UNSET:
        params["b_token"] = token
    if updated_at is not UNSET:
        params["b_updated"] = updated_at
    return session.execute(statement, params).all()


@dataclass(frozen=True)
class _Shape:
    """Which compare-and-set ``UPDATE`` to build: from which statuses to which (None keeps a
    report's status), the columns it sets, what it compares besides the status, whether it
    takes many ids at once and returns the rows. Statements are cached by shape."""

    expect: frozenset[MessageStatus]
    to: MessageStatus | None
    names: tuple[str, ...]
    compare_token: bool = True
    compare_updated: bool = False
    many: bool = False
    returning: bool = False


@functools.lru_cache(maxsize=256)
def _statement(shape: _Shape) -> Update:
    to = shape.to
    where = [
        _m.c.id.in_(bindparam("b_ids", expanding=True)) if shape.many else _m.c.id == bindparam("b_id"),
        # One comparison per status, not IN: an IN list is an expanding parameter, which a
        # statement run once per message (executemany) may not have.
        or_(*(_m.c.status == status for status in sorted(shape.expect))),
    ]
    if shape.compare_token:
        where.append(_m.c.claim_token.is_not_distinct_from(bindparam("b_token")))
    if shape.compare_updated:
        where.append(_m.c.updated_at == bindparam("b_updated"))
    values: dict[str, Any] = {name: bindparam(f"v_{name}") for name in shape.names}
    values["updated_at"] = bindparam("b_now")
    if to is S.SENDING:
        values.update(status=str(to), claimed_at=bindparam("b_now"), claims=_m.c.claims + 1)
    elif to in PENDING:
        values.update(status=str(to), claim_token=None)
    elif to is not None:  # None: a run's outcome after a report, which keeps the report's status
        values.update(status=str(to), finished_at=bindparam("b_now"), next_attempt_at=None)
    statement = update(_m).where(*where).values(values)
    return statement.returning(*_RETURNED) if shape.returning else statement


def _announce(
    session: Session,
    rows: Sequence[Row[*tuple[Any, ...]]],
    to: MessageStatus,
    reason: str | None | Mapping[str, str],
    *,
    webhooks: bool = True,
) -> None:
    """Finish the jobs of messages that reached a final state and tell the workspace's webhooks.
    ``reason`` is the reason of every row, or each row's by id."""
    if not to.is_terminal or not rows:
        return
    jobs.finish_many(session, DELIVER, [(row.id,) for row in rows])
    if webhooks:
        for row in rows:
            said = reason.get(row.id) if isinstance(reason, Mapping) else reason
            emit(
                session,
                row.workspace_id,
                f"message.{to}",
                {"message_id": row.id, "status": str(to), "reason": said, "channel": row.channel},
            )
