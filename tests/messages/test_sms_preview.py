"""Previews show an SMS body as delivery sends it: a marketing SMS with the workspace's opt-out
footer, its segments and encoding counted on that."""

from __future__ import annotations

import pytest

from ccm.messages.delivery import deliver_message
from tests.messages.test_send_api import send
from tests.support.factories import publish_template, put_profile

FOOTER = "Reply STOP to opt out"
BODY = "A" * 150  # one GSM-7 segment alone; two with the footer


def sms_template(api, category: str, body: str = BODY) -> None:
    publish_template(
        api, "promo", category=category, variables=[], variants=[{"channel": "sms", "locale": "en", "body": body}]
    )


def previewed(api) -> dict:
    preview = api.post("/v1/templates/promo/preview", json={"channel": "sms"})
    assert preview.status_code == 200, preview.json
    return preview.json


def test_a_marketing_sms_preview_shows_the_footer_and_counts_it(api):
    sms_template(api, "marketing")
    part = previewed(api)["parts"][0]
    assert part["body"] == f"{BODY}\n{FOOTER}"
    assert (part["segments"], part["encoding"]) == (2, "GSM-7")


def test_a_transactional_sms_preview_has_no_footer(api):
    sms_template(api, "transactional")
    part = previewed(api)["parts"][0]
    assert (part["body"], part["segments"]) == (BODY, 1)


def test_a_body_carrying_the_footer_already_gets_no_second_one(api):
    sms_template(api, "marketing", body=f"Sale today. {FOOTER.upper()}")
    assert previewed(api)["parts"][0]["body"] == f"Sale today. {FOOTER.upper()}"


def test_a_preview_says_when_the_footer_makes_an_sms_too_long(api):
    api.patch("/v1/workspace", json={"policy": {"sms_segment_cap": 1}})
    sms_template(api, "marketing")
    preview = previewed(api)
    assert preview["parts"][0]["segments"] == 2
    assert [(p["code"], p["message"]) for p in preview["problems"]] == [
        ("sms_too_long", "sms_too_long: 2 segments (GSM-7), the workspace allows 1")
    ]


@pytest.mark.settings(local_outbox="email,sms,chat")
def test_the_preview_is_what_delivery_sends(api, runtime):
    api.patch("/v1/workspace", json={"policy": {"quiet_hours": {"marketing": {}}}})  # any hour will do here
    sms_template(api, "marketing")
    put_profile(api, "u1", phone="+14155550100", channels=["sms"])
    message_id = send(api, template="promo").json["id"]
    deliver_message(runtime, message_id)
    sent = api.get(f"/v1/outbox?message_id={message_id}").json["items"]
    part = previewed(api)["parts"][0]
    assert [item["raw"] for item in sent] == [part["body"]]
    assert api.get(f"/v1/messages/{message_id}").json["segments"] == part["segments"]
