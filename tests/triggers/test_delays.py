"""Delayed triggers: the message waits in the database (its outbox row is due later, nothing is
published), and a cancel event that comes first skips it — matched on a property when asked."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import update

from ccm.db import utcnow
from ccm.jobs import PendingJob
from ccm.messages.models import Message
from ccm.relay import relay_once
from ccm.triggers.firing import release_due
from ccm.triggers.models import TriggerFire
from tests.ingest.test_tracking_api import post
from tests.triggers.conftest import fires, identify, make_trigger, messages, outbox_row, publish_cart_template, track

HOUR = 3600
CANCEL = {"event": "order_completed", "match_property": "cart_id"}
CART = {"cart_id": "c-1", "total": 42}


@pytest.fixture
def published(runtime):
    """What the publisher sent to the broker, instead of sending it."""
    sent: list[tuple[str, tuple]] = []
    runtime.publisher.publish = lambda actor, queue, args: sent.append((actor, tuple(args)))  # type: ignore[method-assign]
    return sent


@pytest.fixture
def reminder(api, client, write_key):
    publish_cart_template(api)
    make_trigger(api, delay_seconds=HOUR, cancel=CANCEL)
    identify(client, write_key, "u-1")


def due_now(runtime):
    """As if the delay had gone by: every due time is a moment ago."""
    moment_ago = utcnow() - dt.timedelta(seconds=1)
    with runtime.db.unit_of_work() as session:
        session.execute(update(PendingJob).values(due_at=moment_ago))
        session.execute(update(TriggerFire).values(due_at=moment_ago))
        session.execute(update(Message).where(Message.next_attempt_at.is_not(None)).values(next_attempt_at=moment_ago))


def test_a_delayed_message_waits_in_the_database_not_in_the_broker(client, write_key, reminder, runtime, published):
    before = utcnow()
    track(client, write_key, "u-1", "cart_abandoned", CART)

    (message,) = messages(runtime)
    job = outbox_row(runtime, message.id)
    assert message.status == "queued"
    assert before + dt.timedelta(seconds=HOUR) <= job.due_at <= utcnow() + dt.timedelta(seconds=HOUR)
    assert message.next_attempt_at == fires(runtime)[0].due_at
    assert message.deadline_at > job.due_at + dt.timedelta(hours=23)  # the send window starts when it is due
    assert published == [] and relay_once(runtime) == 0

    due_now(runtime)

    assert relay_once(runtime) == 1 and published == [("messages.deliver", (message.id,))]


def test_the_cancel_event_with_the_same_cart_id_skips_the_waiting_message(client, write_key, reminder, runtime, api):
    track(client, write_key, "u-1", "cart_abandoned", CART)
    track(client, write_key, "u-1", "order_completed", {"cart_id": "c-2"})

    (message,) = messages(runtime)
    assert message.status == "queued"  # another cart's order cancels nothing

    completed = track(client, write_key, "u-1", "order_completed", {"cart_id": "c-1", "total": 42})

    (message,) = messages(runtime)
    (fire,) = fires(runtime)
    assert message.status == "skipped"
    assert message.reason.startswith("cancelled: order_completed arrived (evt_")
    assert completed.json["stored"] == 1
    assert outbox_row(runtime, message.id) is None  # nothing will publish it
    assert (fire.status, fire.reason) == ("cancelled", message.reason)
    assert api.get("/v1/triggers/cart-reminder/fires?status=cancelled").json["items"][0]["message_status"] == "skipped"


def test_a_cancel_event_for_another_profile_cancels_nothing(client, write_key, reminder, runtime):
    identify(client, write_key, "u-2")
    track(client, write_key, "u-1", "cart_abandoned", CART)

    track(client, write_key, "u-2", "order_completed", CART)

    assert [m.status for m in messages(runtime)] == ["queued"]


def test_a_firing_event_without_the_match_property_is_cancelled_by_nothing(api, client, write_key, reminder, runtime):
    make_trigger(
        api, key="basket", delay_seconds=HOUR, cancel={"event": "order_completed", "match_property": "basket.id"}
    )
    track(client, write_key, "u-1", "cart_abandoned", CART)  # fires both: no basket.id to match

    track(client, write_key, "u-1", "order_completed", {"cart_id": "c-9"})
    track(client, write_key, "u-1", "order_completed", {})

    assert [m.status for m in messages(runtime)] == ["queued", "queued"]


def test_without_a_match_property_any_cancel_event_of_the_profile_cancels(api, client, write_key, runtime):
    publish_cart_template(api)
    make_trigger(api, delay_seconds=HOUR, cancel={"event": "order_completed"})
    identify(client, write_key, "u-1")
    track(client, write_key, "u-1", "cart_abandoned", CART)

    track(client, write_key, "u-1", "order_completed", {"cart_id": "c-9"})

    assert [m.status for m in messages(runtime)] == ["skipped"]


def test_a_cancel_event_in_the_same_batch_leaves_nothing_waiting(client, write_key, reminder, runtime):
    batch = [
        {"type": "track", "userId": "u-1", "event": "cart_abandoned", "properties": CART},
        {"type": "track", "userId": "u-1", "event": "order_completed", "properties": {"cart_id": "c-1"}},
        {"type": "track", "userId": "u-1", "event": "cart_abandoned", "properties": {**CART, "cart_id": "c-2"}},
    ]

    assert post(client, "/v1/batch", {"batch": batch}, write_key).status_code == 200

    assert [(m.data["cart_id"], m.status) for m in messages(runtime)] == [("c-1", "skipped"), ("c-2", "queued")]


def test_a_cancel_event_after_the_due_time_cancels_nothing(client, write_key, reminder, runtime):
    track(client, write_key, "u-1", "cart_abandoned", CART)
    due_now(runtime)

    track(client, write_key, "u-1", "order_completed", CART)

    assert [m.status for m in messages(runtime)] == ["queued"]  # due: delivery has it now
    with runtime.db.unit_of_work() as session:
        assert release_due(session=session, now=utcnow()) == 1
    assert [fire.status for fire in fires(runtime)] == ["released"]


def test_a_message_already_sending_is_not_cancelled(client, write_key, reminder, runtime):
    track(client, write_key, "u-1", "cart_abandoned", CART)
    with runtime.db.unit_of_work() as session:  # a worker took it (its due time came a moment ago)
        session.execute(update(Message).values(status="sending", claimed_at=utcnow()))

    track(client, write_key, "u-1", "order_completed", CART)

    assert [m.status for m in messages(runtime)] == ["sending"]
    (fire,) = fires(runtime)
    assert fire.status == "released"
    assert fire.reason.startswith("not cancelled by order_completed (evt_")


@pytest.mark.settings(trigger_fire_retention_days=30)
def test_finished_firings_past_the_retention_are_purged_and_waiting_ones_kept(client, write_key, reminder, runtime):
    from ccm.ids import first_id_at
    from ccm.triggers.tasks import release

    for cart in ("c-1", "c-2", "c-3"):
        track(client, write_key, "u-1", "cart_abandoned", {**CART, "cart_id": cart})
    track(client, write_key, "u-1", "order_completed", {**CART, "cart_id": "c-1"})  # c-1 finished: cancelled
    track(client, write_key, "u-1", "order_completed", {**CART, "cart_id": "c-2"})  # c-2 too, but recent
    old, young, waiting = fires(runtime)
    with runtime.db.unit_of_work() as session:  # as if c-1 and c-3 had fired 31 and 32 days ago
        for fire, days in ((old, 31), (waiting, 32)):
            made_then = first_id_at("fire", utcnow() - dt.timedelta(days=days))
            session.execute(update(TriggerFire).where(TriggerFire.id == fire.id).values(id=made_then))

    release(runtime)

    assert [(fire.event_id, fire.status) for fire in fires(runtime)] == [
        (waiting.event_id, "pending"),
        (young.event_id, "cancelled"),
    ]
    assert [m.data["cart_id"] for m in messages(runtime)] == ["c-1", "c-2", "c-3"]  # messages keep their history
