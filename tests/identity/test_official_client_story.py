"""What a backend gets when it points its Segment client at CCM: the official Python client,
against a live server — anonymous activity, then identify and alias (a merge), a triggered email
at a loopback SMTP server, retried events, an oversize one."""

from __future__ import annotations

from typing import Any

import pytest

from tests.identity.test_merge import anonymous_profile
from tests.ingest.test_tracking_api import events, profile
from tests.messages.test_smtp_delivery import received
from tests.support.factories import put_profile
from tests.triggers.conftest import make_trigger, messages, publish_cart_template


def test_a_visitor_becomes_a_customer_and_gets_the_triggered_email(api, live_server, write_key, runtime, smtp_server):
    from segment.analytics import Client

    from ccm.worker import InProcessWorker

    publish_cart_template(api)
    make_trigger(api)
    put_profile(api, "u-1", email="grace@example.com", attributes={})
    failures: list[Any] = []
    segment = Client(write_key, host=live_server, gzip=True, on_error=lambda e, b: failures.append(e))
    segment.page(anonymous_id="dev-1", name="Pricing", message_id="p-1")
    segment.track(anonymous_id="dev-2", event="Viewed Cart", properties={"cart_id": "c-7"}, message_id="t-1")
    segment.identify("u-1", {"firstName": "Grace"}, anonymous_id="dev-1", message_id="i-1")  # merges dev-1
    segment.alias("dev-2", "u-1", message_id="a-1")  # merges dev-2
    abandoned = {"cart_id": "c-7", "total": 99}
    segment.track("u-1", "cart_abandoned", abandoned, message_id="t-2")
    segment.track("u-1", "cart_abandoned", abandoned, message_id="t-2")  # a retry: stored and sent once
    with pytest.raises(RuntimeError, match="exceeds"):  # the client itself keeps an event to 32 KB, as CCM does
        segment.track("u-1", "cart_abandoned", {"cart_id": "c-8", "blob": "x" * 40_000}, message_id="t-3")
    segment.flush()

    worker = InProcessWorker(runtime, threads=2)
    worker.start()
    try:
        (mail,) = received(smtp_server)
    finally:
        worker.stop()
    known = profile(runtime, "u-1")
    assert failures == []
    assert mail.rcpt_tos == ("grace@example.com",)
    assert {anonymous_profile(runtime, device).id for device in ("dev-1", "dev-2")} == {known.id}
    assert [event.message_id for event in events(runtime, profile_id=known.id)] == ["p-1", "t-1", "i-1", "a-1", "t-2"]
    assert known.attributes == {"first_name": "Grace"}
    assert [merge["call"]["kind"] for merge in api.get("/v1/merges?profile=u-1").json["items"]] == ["alias", "identify"]
    assert [message.data["cart_id"] for message in messages(runtime)] == ["c-7"]
