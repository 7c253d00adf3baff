"""Triggers fed by the official Python client (segment-analytics-python) against a live server."""

from __future__ import annotations

import email
import email.policy
from typing import Any

import pytest

from tests.messages.test_send_api import finished
from tests.messages.test_smtp_delivery import received
from tests.triggers.conftest import make_trigger, messages, publish_cart_template


@pytest.fixture
def segment(live_server, write_key):
    from segment.analytics import Client

    failures: list[Any] = []
    client = Client(write_key, host=live_server, gzip=True, sync_mode=True, on_error=lambda e, b: failures.append(e))
    yield client
    client.flush()
    assert failures == []


def test_a_track_from_the_client_arrives_as_an_email(api, segment, runtime, worker, smtp_server):
    publish_cart_template(api)
    make_trigger(api)

    segment.identify("u-1", {"email": "grace@example.com", "firstName": "Grace"})
    segment.track("u-1", "cart_abandoned", {"cart_id": "c-7", "total": 99})

    (mail,) = received(smtp_server)
    parsed = email.message_from_bytes(mail.raw, policy=email.policy.default)
    assert (mail.rcpt_tos, parsed["Subject"]) == (("grace@example.com",), "Still thinking about cart c-7?")
    (message,) = messages(runtime)
    assert finished(api, message.id)["triggered_by"]["trigger"] == "cart-reminder"


def test_the_clients_order_completed_cancels_the_waiting_reminder(api, segment, runtime):
    publish_cart_template(api)
    make_trigger(api, delay_seconds=3600, cancel={"event": "order_completed", "match_property": "cart_id"})

    segment.identify("u-1", {"email": "grace@example.com"})
    segment.track("u-1", "cart_abandoned", {"cart_id": "c-7", "total": 99})
    segment.track("u-1", "order_completed", {"cart_id": "c-7", "revenue": 99})

    (message,) = messages(runtime)
    shown = api.get(f"/v1/messages/{message.id}").json
    assert shown["status"] == "skipped"
    assert shown["reason"].startswith("cancelled: order_completed arrived (evt_")
    assert [fire["status"] for fire in api.get("/v1/triggers/cart-reminder/fires").json["items"]] == ["cancelled"]
