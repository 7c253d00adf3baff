"""Deleting a provider account through the API: refused (409) while it is the last enabled
provider of a channel that messages wait on; allowed once disabled, or when another provider
serves the channel; and a message that was waiting ends with a reason, never stuck or crashed."""

from __future__ import annotations

import pytest

from ccm.messages.delivery import deliver_message
from tests.channels.test_provider_accounts import add_provider
from tests.support.factories import publish_template, put_profile


@pytest.fixture
def sms(api):
    """The sms template and a person with a phone; ``queue()`` accepts one SMS, not yet sent."""
    publish_template(
        api,
        "ping",
        variables=["first_name"],
        variants=[{"channel": "sms", "locale": "en", "body": "Hi {{ first_name }}"}],
    )
    put_profile(api, "u1", phone="+14155550100", channels=["sms"])

    def queue():
        accepted = api.post("/v1/messages", json={"to": {"external_id": "u1"}, "template": "ping", "channel": "sms"})
        assert accepted.status_code == 202, accepted.json
        return accepted.json["id"]

    return queue


def box(api, label="Box"):
    return add_provider(api, "local_outbox", label, {"channel": "sms"})["id"]


def test_the_only_provider_of_a_channel_messages_wait_on_is_not_deleted(api, sms):
    account = box(api)
    sms()
    refused = api.delete(f"/v1/providers/{account}")
    assert refused.status_code == 409, refused.json
    error = refused.json["error"]
    assert error["details"]["field"] == "id"
    assert "only enabled sms provider" in error["message"] and "1 messages wait" in error["message"]
    assert "disable this one first" in error["message"]
    assert api.get(f"/v1/providers/{account}").status_code == 200


def test_a_disabled_provider_is_deleted_and_the_waiting_message_ends_with_a_reason(api, runtime, sms):
    account = box(api)
    message_id = sms()
    assert api.patch(f"/v1/providers/{account}", json={"enabled": False}).status_code == 200
    assert api.delete(f"/v1/providers/{account}").status_code == 204
    deliver_message(runtime, message_id)
    message = api.get(f"/v1/messages/{message_id}").json
    assert message["status"] in ("skipped", "failed") and "no_provider" in message["reason"], message


def test_a_provider_is_deleted_while_another_serves_its_channel(api, runtime, sms):
    first, _second = box(api, "Box 1"), box(api, "Box 2")
    message_id = sms()
    assert api.delete(f"/v1/providers/{first}").status_code == 204
    deliver_message(runtime, message_id)
    assert api.get(f"/v1/messages/{message_id}").json["status"] == "delivered"
    assert [p["label"] for p in api.get("/v1/providers").json["items"]] == ["Box 2"]


def test_the_only_provider_is_deleted_when_no_message_waits(api, runtime, sms):
    account = box(api)
    deliver_message(runtime, sms())  # sent: nothing waits any more
    assert api.delete(f"/v1/providers/{account}").status_code == 204
    assert api.delete(f"/v1/providers/{account}").status_code == 404
