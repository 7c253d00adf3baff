"""Accepting messages: validation, idempotency, and what a message shows once delivered."""

from __future__ import annotations

import email
import email.policy
import threading

from tests.support.api import wait_for
from tests.support.factories import publish_template, put_profile


def send(api, key=None, **body):
    payload = {"to": {"external_id": "u1"}, "template": "welcome", "data": {}, **body}
    headers = {"Idempotency-Key": key} if key else {}
    return api.post("/v1/messages", json=payload, headers=headers)


def finished(api, message_id, timeout=10.0):
    def probe():
        body = api.get(f"/v1/messages/{message_id}").json
        return body if body["status"] in ("delivered", "sent", "failed", "skipped") else None

    return wait_for(probe, timeout=timeout, message=f"message {message_id} to finish")


def test_send_is_accepted_and_lands_in_the_outbox(api, worker):
    publish_template(api)
    put_profile(api, "u1", attributes={"first_name": "Ada", "plan": "pro"})
    accepted = send(api, data={"plan": "team"})
    assert accepted.status_code == 202
    assert accepted.json["status"] == "queued"

    message = finished(api, accepted.json["id"])
    assert message["status"] == "delivered"
    assert message["reason"].startswith("accepted by local_outbox")
    assert (message["channel"], message["template"], message["template_version"], message["locale"]) == (
        "email",
        "welcome",
        1,
        "en",
    )
    assert [a["outcome"] for a in message["attempts"]] == ["delivered"]
    assert message["route"] == [{"channel": "email", "decision": "chosen", "reason": None}]

    outbox = api.get(f"/v1/outbox?message_id={message['id']}").json["items"]
    assert len(outbox) == 1 and outbox[0]["to"] == "u1@example.com"
    parsed = email.message_from_string(outbox[0]["raw"], policy=email.policy.default)
    assert parsed["Subject"] == "Welcome, Ada"
    html = parsed.get_body(("html",)).get_content()
    assert "Your plan: team." in html  # send data wins over the profile attribute
    assert 'style="color: #333' in html  # CSS inlined
    assert "Welcome, Ada!" in parsed.get_body(("plain",)).get_content()  # text part generated from the HTML


def test_locale_falls_back_from_region_to_language(api, worker):
    publish_template(api)
    put_profile(api, "u1", locale="es-MX")
    message = finished(api, send(api).json["id"])
    assert message["locale"] == "es"
    raw = api.get(f"/v1/outbox?message_id={message['id']}").json["items"][0]["raw"]
    assert email.message_from_string(raw, policy=email.policy.default)["Subject"] == "Bienvenido, Ada"


def test_inline_profile_is_created_and_reused(api, worker):
    publish_template(api)
    first = send(api, to={"email": "new@example.com", "attributes": {"first_name": "Bo", "plan": "free"}})
    assert first.status_code == 202
    second = send(api, to={"email": "new@example.com"})
    assert second.status_code == 202
    assert finished(api, first.json["id"])["profile_id"] == finished(api, second.json["id"])["profile_id"]
    profiles = api.get("/v1/profiles?email=new@example.com").json["items"]
    assert len(profiles) == 1


def test_sms_without_a_provider_is_skipped_not_pretended(api, worker):
    publish_template(api)
    put_profile(api, "u1", phone="+14155550100")
    message = finished(api, send(api, channel="sms").json["id"])
    assert message["status"] == "skipped"
    assert message["reason"] == "no_provider"
    assert message["route"] == [{"channel": "sms", "decision": "rejected", "reason": "no_provider"}]
    assert message["attempts"] == []
    assert api.get("/v1/outbox").json["items"] == []


def test_routing_follows_the_profile_ranking_and_records_rejections(api, worker):
    publish_template(api)
    put_profile(api, "u1", phone="+14155550100", channels=["sms", "email"])
    message = finished(api, send(api).json["id"])
    assert message["status"] == "delivered" and message["channel"] == "email"
    assert message["route"] == [
        {"channel": "sms", "decision": "rejected", "reason": "no_provider"},
        {"channel": "email", "decision": "chosen", "reason": None},
    ]


def test_profile_without_any_address_is_skipped(api, worker):
    publish_template(api)
    api.put("/v1/profiles/u1", json={"chat": {}, "attributes": {"first_name": "A", "plan": "p"}})
    message = finished(api, send(api).json["id"])
    assert (message["status"], message["reason"]) == ("skipped", "no_address")


def test_bad_sends_are_4xx_naming_the_field_and_create_nothing(api):
    publish_template(api)
    put_profile(api, "u1", attributes={})
    for body, field in [
        ({"template": "nope", "data": {"first_name": "A", "plan": "p"}}, "template"),
        ({"to": {"external_id": "ghost"}, "data": {"first_name": "A", "plan": "p"}}, "to.external_id"),
    ]:
        response = send(api, **body)  # what the request names does not exist: 404, like any other lookup
        assert (response.status_code, response.json["error"]["details"]["field"]) == (404, field), body
    cases = [
        ({"data": {"plan": "p"}}, "data.first_name"),
        ({"channel": "chat", "data": {"first_name": "A", "plan": "p"}}, "channel"),
        ({"channel": "fax"}, "channel"),
        ({"category": "urgent"}, "category"),
        ({"reply_to": "x@y.com\r\nBcc: victim@example.com"}, "reply_to"),
        ({"deadline": "2030-01-01T00:00:00"}, "deadline"),
        ({"surprise": 1}, "surprise"),
    ]
    for body, field in cases:
        response = send(api, **body)
        assert response.status_code == 422, (body, response.json)
        assert response.json["error"]["details"]["field"] == field, body
    assert api.get("/v1/messages").json["items"] == []


def test_unpublished_template_cannot_be_sent(api):
    api.post(
        "/v1/templates",
        json={
            "key": "draft-only",
            "category": "transactional",
            "variants": [{"channel": "email", "subject": "s", "html": "<p>h</p>"}],
        },
    )
    put_profile(api, "u1")
    response = send(api, template="draft-only")
    assert response.status_code == 404
    assert response.json["error"]["details"]["field"] == "template"


def test_same_idempotency_key_and_body_replays_the_answer(api, worker):
    publish_template(api)
    put_profile(api, "u1")
    first = send(api, key="order-42")
    again = send(api, key="order-42")
    assert first.status_code == again.status_code == 202
    assert again.json == first.json
    assert again.headers.get("Idempotent-Replayed") == "true"
    finished(api, first.json["id"])
    assert len(api.get("/v1/messages").json["items"]) == 1
    assert len(api.get("/v1/outbox").json["items"]) == 1


def test_same_idempotency_key_with_another_body_is_422(api):
    publish_template(api)
    put_profile(api, "u1")
    assert send(api, key="k1").status_code == 202
    response = send(api, key="k1", data={"plan": "other"})
    assert response.status_code == 422
    assert response.json["error"]["code"] == "idempotency_key_reused"
    assert len(api.get("/v1/messages").json["items"]) == 1


def test_concurrent_requests_with_one_key_create_one_message(app, api):
    publish_template(api)
    put_profile(api, "u1")
    answers = []

    def post():
        client = app.test_client()
        answers.append(
            client.post(
                "/v1/messages",
                json={"to": {"external_id": "u1"}, "template": "welcome"},
                headers={"Authorization": f"Bearer {api.key}", "Idempotency-Key": "same"},
            )
        )

    threads = [threading.Thread(target=post) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert {a.status_code for a in answers} <= {202, 409}
    ids = {a.json["id"] for a in answers if a.status_code == 202}
    assert len(ids) == 1
    assert len(api.get("/v1/messages").json["items"]) == 1


def test_a_message_pins_the_version_it_was_accepted_with(api, worker):
    publish_template(api)
    put_profile(api, "u1")
    accepted = send(api)
    api.patch(
        "/v1/templates/welcome",
        json={
            "variants": [
                {"channel": "email", "subject": "Version two", "html": "<p>v2 {{ first_name }} {{ plan }}</p>"}
            ]
        },
    )
    assert api.post("/v1/templates/welcome/publish").json["version"] == 2
    first = finished(api, accepted.json["id"])
    second = finished(api, send(api).json["id"])
    assert (first["template_version"], second["template_version"]) == (1, 2)
    raws = {i["message_id"]: i["raw"] for i in api.get("/v1/outbox").json["items"]}
    assert "Subject: Welcome, Ada" in raws[first["id"]]
    assert "Subject: Version two" in raws[second["id"]]


def test_another_workspaces_message_is_404(api, app, runtime):
    from ccm.auth.service import create_api_key
    from ccm.workspaces.service import get_or_create_workspace
    from tests.support.api import ApiClient

    publish_template(api)
    put_profile(api, "u1")
    message_id = send(api).json["id"]
    with runtime.db.unit_of_work() as session:
        other, _ = get_or_create_workspace(session=session, name="other")
        _, key = create_api_key(session=session, workspace_id=other.id)
    assert ApiClient(app.test_client(), key).get(f"/v1/messages/{message_id}").status_code == 404
