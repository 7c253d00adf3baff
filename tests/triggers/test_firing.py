"""Events firing triggers: one message per event, property filters, versions, and the rules
every message goes through (consent, quiet hours) — delivered by the real worker where it counts."""

from __future__ import annotations

import datetime as dt
import email
import email.policy

import pytest
from sqlalchemy import delete, select

from ccm.ingest.models import EventSeen
from ccm.messages import rules
from ccm.messages.delivery import deliver_message
from tests.ingest.test_tracking_api import post
from tests.messages.test_send_api import finished
from tests.messages.test_smtp_delivery import received
from tests.triggers.conftest import fires, identify, make_trigger, messages, publish_cart_template, track

CART = {"cart_id": "c-1", "total": 42}


@pytest.fixture
def template(api):
    publish_cart_template(api)


def test_an_event_sends_the_triggered_email_over_smtp(api, client, write_key, template, worker, smtp_server):
    make_trigger(api)
    identify(client, write_key, "u-1", "ada@example.com")

    track(client, write_key, "u-1", "cart_abandoned", CART)

    (mail,) = received(smtp_server)
    assert mail.rcpt_tos == ("ada@example.com",)
    parsed = email.message_from_bytes(mail.raw, policy=email.policy.default)
    assert parsed["Subject"] == "Still thinking about cart c-1?"
    assert "You left cart c-1 behind: 42 EUR." in parsed.get_body(("html",)).get_content()
    (message,) = messages(api.client.application.extensions["ccm"])
    assert finished(api, message.id)["status"] == "sent"


def test_the_message_and_the_timeline_show_the_trigger_and_the_event(api, client, write_key, template):
    make_trigger(api)
    identify(client, write_key, "u-1")
    track(client, write_key, "u-1", "cart_abandoned", CART, messageId="evt-from-shop-1")

    timeline = api.get("/v1/profiles/u-1/timeline").json["items"]
    (activity,) = [item for item in timeline if item["type"] == "activity" and item["kind"] == "track"]
    (entry,) = [item for item in timeline if item["type"] == "message"]
    shown = api.get(f"/v1/messages/{entry['id']}").json

    expected = {
        "trigger": "cart-reminder",
        "version": 1,
        "event": "cart_abandoned",
        "event_id": activity["id"],
        "event_message_id": "evt-from-shop-1",
    }
    assert shown["triggered_by"] == entry["triggered_by"] == expected
    assert entry["source"] == "trigger"
    assert (shown["template"], shown["status"]) == ("cart-reminder", "queued")


def test_a_retried_event_sends_one_message(api, client, write_key, template, runtime):
    make_trigger(api)
    identify(client, write_key, "u-1")

    track(client, write_key, "u-1", "cart_abandoned", CART, messageId="m-1")
    track(client, write_key, "u-1", "cart_abandoned", CART, messageId="m-1")
    with runtime.db.unit_of_work() as session:  # past the dedupe window, ingestion forgets the id
        session.execute(delete(EventSeen))
    again = track(client, write_key, "u-1", "cart_abandoned", CART, messageId="m-1")

    assert again.json["stored"] == 1  # stored as an event again, but it sends nothing new
    (message,) = messages(runtime)
    assert message.send_key.startswith("trigger:trgv_") and message.send_key.endswith(":m-1")
    assert len(fires(runtime)) == 1


def test_only_events_that_pass_the_property_filters_fire(api, client, write_key, template, runtime):
    make_trigger(
        api,
        where=[
            {"property": "total", "op": "in", "values": [42, 50]},
            {"property": "shop.country", "op": "equals", "value": "FR"},
            {"property": "cart_id", "op": "exists"},
        ],
    )
    identify(client, write_key, "u-1")
    passing = {"cart_id": "c-1", "total": 42.0, "shop": {"country": "FR"}}

    track(client, write_key, "u-1", "cart_abandoned", passing)
    track(client, write_key, "u-1", "cart_abandoned", {**passing, "total": 43})
    track(client, write_key, "u-1", "cart_abandoned", {**passing, "shop": {"country": "DE"}})
    track(client, write_key, "u-1", "cart_abandoned", {"total": 42, "shop": {"country": "FR"}})
    track(client, write_key, "u-1", "cart_abandoned", {**passing, "total": True})
    track(client, write_key, "u-1", "cart_abandoned", {**passing, "total": "42"})

    (message,) = messages(runtime)
    assert message.data == passing


def test_other_events_pages_and_stopped_triggers_fire_nothing(api, client, write_key, template, runtime):
    make_trigger(api)
    identify(client, write_key, "u-1")

    track(client, write_key, "u-1", "order_completed", CART)
    post(client, "/v1/page", {"userId": "u-1", "name": "cart_abandoned", "properties": CART}, write_key)
    api.post("/v1/triggers/cart-reminder/deactivate")
    track(client, write_key, "u-1", "cart_abandoned", CART)

    assert messages(runtime) == []


def test_a_change_applies_to_the_events_that_arrive_after_it(api, client, write_key, template, runtime):
    publish_cart_template(api, "cart-reminder-v2")
    make_trigger(api)
    identify(client, write_key, "u-1")

    track(client, write_key, "u-1", "cart_abandoned", CART)
    assert api.patch("/v1/triggers/cart-reminder", json={"template": "cart-reminder-v2"}).json["version"] == 2
    track(client, write_key, "u-1", "cart_abandoned", {**CART, "cart_id": "c-2"})

    first, second = messages(runtime)
    assert (first.template_key, first.triggered_by["version"]) == ("cart-reminder", 1)
    assert (second.template_key, second.triggered_by["version"]) == ("cart-reminder-v2", 2)


def test_a_message_the_template_cannot_make_is_skipped_and_the_event_kept(api, client, write_key, template, runtime):
    make_trigger(api)
    identify(client, write_key, "u-1")

    answer = track(client, write_key, "u-1", "cart_abandoned", {"cart_id": "c-1"})  # no total

    assert answer.json["stored"] == 1
    (message,) = messages(runtime)
    assert message.status == "skipped"
    assert message.reason.startswith("not_sendable: data.total: the template needs total")
    (fire,) = fires(runtime)
    assert (fire.status, fire.reason, fire.message_id) == ("skipped", message.reason, message.id)


def test_one_event_can_fire_several_triggers_in_one_batch(api, client, write_key, template, runtime):
    make_trigger(api)
    make_trigger(api, key="cart-ping", delay_seconds=60)
    identify(client, write_key, "u-1")
    batch = [
        {"type": "track", "userId": "u-1", "event": "cart_abandoned", "properties": CART},
        {"type": "track", "userId": "u-2", "event": "cart_abandoned", "properties": CART},
    ]

    assert post(client, "/v1/batch", {"batch": batch}, write_key).status_code == 200

    assert len(messages(runtime)) == 4
    listed = api.get("/v1/triggers/cart-ping/fires").json["items"]
    assert [(fire["status"], fire["message_status"]) for fire in listed] == [("pending", "queued")] * 2


def test_a_marketing_trigger_to_a_profile_without_consent_is_skipped_with_the_reason(
    api, client, write_key, runtime, worker
):
    api.patch("/v1/workspace", json={"policy": {"consent_default": "opt_in", "quiet_hours": {"marketing": {}}}})
    publish_cart_template(api, "cart-deals", category="marketing")
    make_trigger(api, template="cart-deals", topic="carts")
    identify(client, write_key, "u-1")

    track(client, write_key, "u-1", "cart_abandoned", CART)

    (message,) = messages(runtime)
    shown = finished(api, message.id)
    assert (shown["status"], shown["reason"], shown["category"]) == ("skipped", "no_consent", "marketing")


def test_a_marketing_trigger_waits_for_the_recipients_quiet_hours(api, client, write_key, runtime, monkeypatch):
    api.patch("/v1/workspace", json={"policy": {"quiet_hours": {"marketing": {"email": ["08:00", "20:00"]}}}})
    publish_cart_template(api, "cart-deals", category="marketing")
    make_trigger(api, template="cart-deals")
    identify(client, write_key, "u-1", timezone="Europe/Paris")
    track(client, write_key, "u-1", "cart_abandoned", CART)
    (message,) = messages(runtime)
    night = dt.datetime.now(dt.UTC).replace(hour=23, minute=30, second=0, microsecond=0)  # 00:30 in Paris
    monkeypatch.setattr(rules, "utcnow", lambda: night)

    deliver_message(runtime, message.id)

    shown = api.get(f"/v1/messages/{message.id}").json
    assert shown["status"] == "queued"
    assert shown["reason"].startswith("deferred: quiet_hours on email in Europe/Paris until")


def test_an_anonymous_visitor_is_a_profile_too_but_gets_no_email(api, client, write_key, template, runtime, worker):
    make_trigger(api)

    post(client, "/v1/track", {"anonymousId": "dev-1", "event": "cart_abandoned", "properties": CART}, write_key)

    (message,) = messages(runtime)
    assert finished(api, message.id)["status"] == "skipped"  # no address: the reason says so
    with runtime.db.read_only() as session:
        assert session.scalar(select(type(message).reason).where(type(message).id == message.id))
