"""The lifecycle table, move by move: every allowed transition is made, every other refused, and
each write is a compare-and-set that loses quietly to a change made meanwhile."""

from __future__ import annotations

import datetime as dt
import itertools

import pytest
from sqlalchemy import select, update

from ccm.db import utcnow
from ccm.jobs import PendingJob
from ccm.messages import state
from ccm.messages.models import Message, MessageStatus
from ccm.messages.state import KEEPS, TRANSITIONS, IllegalTransition
from tests.messages.test_send_api import send
from tests.support.factories import publish_template, put_profile

S = MessageStatus
ALLOWED = sorted((current, to) for current, targets in TRANSITIONS.items() for to in targets if to is not S.SENDING)
CLAIMABLE = sorted(current for current, targets in TRANSITIONS.items() if S.SENDING in targets)
REFUSED = sorted(
    (current, to)
    for current, to in itertools.product(S, S)
    if to not in TRANSITIONS[current] | KEEPS.get(current, set())
)


@pytest.fixture
def message_id(api):
    publish_template(api)
    put_profile(api, "u1")
    return send(api).json["id"]


@pytest.fixture
def announced(monkeypatch):
    events: list[tuple[str, dict]] = []
    monkeypatch.setattr(state, "emit", lambda session, workspace_id, kind, data: events.append((kind, data)))
    return events


def put(runtime, message_id, status, *, token="t1", reason=None):
    with runtime.db.unit_of_work() as session:
        session.execute(
            update(Message)
            .where(Message.id == message_id)
            .values(status=status, claim_token=token, reason=reason, updated_at=utcnow())
        )


def row(runtime, message_id):
    with runtime.db.unit_of_work() as session:
        return session.get(Message, message_id)


def has_job(runtime, message_id):
    with runtime.db.unit_of_work() as session:
        return any(message_id in job.key for job in session.scalars(select(PendingJob)))


def move(runtime, message_id, **kwargs):
    with runtime.db.unit_of_work() as session:
        return state.transition(session, message_id, **kwargs)


def test_the_table_names_every_status():
    assert set(TRANSITIONS) == set(S)
    assert all(not TRANSITIONS[final] for final in (S.DELIVERED, S.FAILED, S.SKIPPED))


@pytest.mark.parametrize(("current", "to"), ALLOWED, ids=[f"{c}->{t}" for c, t in ALLOWED])
def test_every_allowed_move_is_made(runtime, message_id, announced, current, to):
    put(runtime, message_id, current)
    assert move(runtime, message_id, expect=current, token="t1", to=to, reason="why")
    moved = row(runtime, message_id)
    assert (moved.status, moved.reason) == (to, "why")
    if to.is_terminal:
        assert moved.finished_at is not None and moved.claim_token == "t1"  # a late outcome may still match it
        assert not has_job(runtime, message_id)
        assert announced == [
            (f"message.{to}", {"message_id": message_id, "status": str(to), "reason": "why", "channel": None})
        ]
    else:
        assert moved.claim_token is None and announced == []


@pytest.mark.parametrize("current", CLAIMABLE)
def test_a_claim_takes_a_fresh_token_and_counts_itself(runtime, message_id, current):
    put(runtime, message_id, current, token=None if current is not S.SENDING else "stale")
    before = row(runtime, message_id)
    with runtime.db.unit_of_work() as session:
        claimed = state.claim(
            session,
            message_id,
            expect=current,
            token=before.claim_token,
            updated_at=before.updated_at,
            new_token="t2",
            channel="email",
            to_address="u1@example.com",
        )
    after = row(runtime, message_id)
    assert claimed and (after.status, after.claim_token, after.claims) == ("sending", "t2", before.claims + 1)
    assert (after.channel, after.to_address, after.claimed_at is not None) == ("email", "u1@example.com", True)


@pytest.mark.parametrize(("current", "to"), REFUSED, ids=[f"{c}->{t}" for c, t in REFUSED])
def test_every_other_move_is_refused_before_anything_is_written(current, to):
    nothing = object()  # no session: the move is refused before any statement runs
    with pytest.raises(IllegalTransition):
        state.transition(nothing, "msg_x", expect=current, to=to, reason="why")  # type: ignore[arg-type]
    if to is S.SENDING:
        with pytest.raises(IllegalTransition):
            state.claim(nothing, "msg_x", expect=current, token=None, updated_at=utcnow(), new_token="t")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("current", "to"),
    [
        (S.SKIPPED, S.QUEUED),  # a final state never goes back
        (S.FAILED, S.SENDING),
        (S.DELIVERED, S.QUEUED),
        (S.SENT, S.QUEUED),  # a sent message is never sent again
        (S.SENT, S.RETRYING),
        (S.QUEUED, S.DELIVERED),  # only a message handed over can be delivered
        (S.QUEUED, S.SENT),
        (S.QUEUED, S.RETRYING),
    ],
)
def test_the_rules_that_matter_are_among_the_refused(current, to):
    assert (current, to) in REFUSED


@pytest.mark.parametrize("reported", sorted(KEEPS))
def test_a_run_finishing_after_a_report_keeps_the_reports_status(runtime, message_id, announced, reported):
    put(runtime, message_id, reported, reason=f"{reported}: reported by the provider")
    assert move(
        runtime, message_id, expect=state.OWNED, token="t1", to=S.SENT, reason="accepted", provider_message_id="p1"
    )
    kept = row(runtime, message_id)
    assert (kept.status, kept.reason, kept.provider_message_id) == (
        reported,
        f"{reported}: reported by the provider",
        "p1",
    )
    assert announced == [] and not has_job(runtime, message_id)  # announced when the report came


def test_a_compare_and_set_on_a_changed_message_changes_nothing(runtime, message_id, announced):
    put(runtime, message_id, S.SENDING, token="mine")
    changed_at = row(runtime, message_id).updated_at
    for expected in [
        {"expect": S.QUEUED, "token": "mine"},  # status changed
        {"expect": S.SENDING, "token": "theirs"},  # claim taken over
        {"expect": S.SENDING, "token": "mine", "updated_at": changed_at - dt.timedelta(seconds=1)},  # touched
    ]:
        assert not move(runtime, message_id, to=S.FAILED, reason="late", **expected)
    unchanged = row(runtime, message_id)
    assert (unchanged.status, unchanged.claim_token, unchanged.reason) == ("sending", "mine", None)
    assert announced == [] and has_job(runtime, message_id)


@pytest.mark.parametrize(
    ("current", "to", "moves"),
    [
        (S.SENT, S.DELIVERED, True),
        (S.SENDING, S.FAILED, True),  # a bounce overtaking the run's own record
        (S.DELIVERED, S.FAILED, False),  # a late bounce
        (S.FAILED, S.DELIVERED, False),  # out of order
        (S.QUEUED, S.DELIVERED, False),  # not handed over
        (S.RETRYING, S.FAILED, False),
        (S.SKIPPED, S.DELIVERED, False),
    ],
)
def test_a_report_only_moves_forward(runtime, message_id, current, to, moves):
    put(runtime, message_id, current)
    with runtime.db.unit_of_work() as session:
        assert state.report(session, message_id, to=to, reason="reported") is moves
    assert row(runtime, message_id).status == (to if moves else current)


def test_a_final_state_needs_a_reason_and_derived_columns_are_the_moves_own(runtime, message_id):
    with pytest.raises(IllegalTransition, match="needs a reason"):
        move(runtime, message_id, expect=S.QUEUED, to=S.SKIPPED)
    with pytest.raises(ValueError, match="claim_token"):
        move(runtime, message_id, expect=S.QUEUED, to=S.SKIPPED, reason="x", claim_token="mine")
    with pytest.raises(IllegalTransition, match="claim"):
        move(runtime, message_id, expect=S.QUEUED, to=S.SENDING)
    assert row(runtime, message_id).status == "queued"


def test_many_messages_move_in_one_statement_and_only_the_waiting_ones(api, runtime, message_id, announced):
    retrying, sending = send(api).json["id"], send(api).json["id"]
    put(runtime, retrying, S.RETRYING, token=None)
    put(runtime, sending, S.SENDING)
    with runtime.db.unit_of_work() as session:
        moved = state.transition_many(
            session, [message_id, retrying, sending], expect=state.PENDING, to=S.SKIPPED, reason="cancelled"
        )
    assert sorted(moved) == sorted([message_id, retrying])
    assert [row(runtime, m).status for m in (message_id, retrying, sending)] == ["skipped", "skipped", "sending"]
    assert sorted(data["message_id"] for _, data in announced) == sorted(moved)
    assert not has_job(runtime, message_id) and has_job(runtime, sending)


def test_a_quiet_move_of_many_finishes_their_jobs_without_webhooks(runtime, message_id, announced):
    with runtime.db.unit_of_work() as session:
        assert state.transition_many(
            session, [message_id], expect=state.PENDING, to=S.SKIPPED, reason="erased", announce=False
        ) == [message_id]
    assert announced == [] and not has_job(runtime, message_id)


def test_a_batch_outcome_moves_each_owned_message_and_keeps_a_reports_status(api, runtime, message_id, announced):
    """transition_each: one statement run per message; a report that overtook the run keeps its
    status (announced once, when it came), a taken-over claim changes nothing, and only the
    messages that moved are announced, each with its own reason."""
    reported, taken_over = send(api).json["id"], send(api).json["id"]
    put(runtime, message_id, S.SENDING, token="t1")
    put(runtime, reported, S.DELIVERED, token="t2", reason="delivered: reported by the provider")
    put(runtime, taken_over, S.SENDING, token="theirs")
    moves = [
        state.Move(message_id, "t1", "accepted as p1", {"provider_message_id": "p1"}),
        state.Move(reported, "t2", "accepted as p2", {"provider_message_id": "p2"}),
        state.Move(taken_over, "t3", "accepted as p3", {"provider_message_id": "p3"}),
    ]
    with runtime.db.unit_of_work() as session:
        moved = state.transition_each(session, moves, expect=state.OWNED, to=S.SENT)
    assert sorted(moved) == sorted([message_id, reported])
    sent, kept, other = (row(runtime, m) for m in (message_id, reported, taken_over))
    assert (sent.status, sent.reason, sent.provider_message_id) == ("sent", "accepted as p1", "p1")
    assert (kept.status, kept.reason, kept.provider_message_id) == (
        "delivered",
        "delivered: reported by the provider",
        "p2",
    )
    assert (other.status, other.claim_token, other.provider_message_id) == ("sending", "theirs", None)
    assert [(kind, data["message_id"], data["reason"]) for kind, data in announced] == [
        ("message.sent", message_id, "accepted as p1")
    ]
    assert not has_job(runtime, message_id) and not has_job(runtime, reported) and has_job(runtime, taken_over)


def test_a_batch_claim_takes_only_the_messages_unchanged_since_they_were_read(api, runtime, message_id):
    changed = send(api).json["id"]
    first, second = row(runtime, message_id), row(runtime, changed)
    put(runtime, changed, S.QUEUED, token=None)  # touched after it was read
    claims = [
        state.Claim(m.id, S.QUEUED, m.claim_token, m.updated_at, f"n{m.id[-8:]}", {"locale": "en"})
        for m in (first, second)
    ]
    with runtime.db.unit_of_work() as session:
        assert state.claim_many(session, claims) == {message_id}
    taken, left = row(runtime, message_id), row(runtime, changed)
    assert (taken.status, taken.claim_token, taken.claims) == ("sending", f"n{message_id[-8:]}", first.claims + 1)
    assert (left.status, left.claim_token) == ("queued", None)


def test_a_batch_commit_point_holds_only_the_claims_that_still_stand(api, runtime, message_id):
    lost = send(api).json["id"]
    put(runtime, message_id, S.SENDING, token="mine")
    put(runtime, lost, S.SENDING, token="theirs")
    with runtime.db.unit_of_work() as session:
        assert state.hold_many(session, {message_id: "mine", lost: "mine-too"}) == {message_id}
