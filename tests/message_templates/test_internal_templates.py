"""CCM's own templates (``ccm.system-text``, ``ccm.email-follow-up``) are not user objects: the API
behaves as if they did not exist, their keys cannot be taken, and agents' replies keep working."""

from __future__ import annotations

import pytest

from ccm.messages.service import SYSTEM_TEMPLATE, send_system_text
from tests.messages.test_send_api import finished
from tests.support.factories import put_profile, template_body


@pytest.fixture
def system_text(api, runtime, workspace):
    """A workspace where CCM has made its system template (as a keyword answer does)."""
    profile = put_profile(api, "u1", channels=["email"])
    with runtime.db.unit_of_work() as session:
        message_id = send_system_text(
            session=session,
            runtime=runtime,
            workspace_id=workspace[0],
            profile_id=profile["id"],
            channel="email",
            text="Hello from CCM",
        )
    return message_id


def test_internal_templates_are_not_listed(api, system_text):
    assert SYSTEM_TEMPLATE not in [t["key"] for t in api.get("/v1/templates").json["items"]]


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("GET", "/v1/templates/ccm.system-text", None),
        ("PATCH", "/v1/templates/ccm.system-text", {"description": "mine now"}),
        ("POST", "/v1/templates/ccm.system-text/publish", None),
        ("GET", "/v1/templates/ccm.system-text/versions/1", None),
        ("POST", "/v1/templates/ccm.system-text/preview", {"data": {"text": "x"}}),
    ],
)
def test_internal_templates_answer_as_if_absent(api, system_text, method, path, body):
    answer = api.request(method, path, json=body)
    assert answer.status_code == 404, answer.json
    assert answer.json["error"]["message"].startswith("no template")


def test_a_key_starting_with_ccm_cannot_be_created(api):
    answer = api.post("/v1/templates", json=template_body("ccm.system-text"))
    assert answer.status_code == 422
    assert answer.json["error"]["details"]["field"] == "key"
    assert api.post("/v1/templates", json=template_body("ccm.anything")).status_code == 422


def test_agents_text_replies_keep_working_after_attempts_to_edit(api, runtime, workspace, system_text, worker):
    api.patch(
        "/v1/templates/ccm.system-text",
        json={
            "variables": ["text", "ticket"],
            "variants": [
                {"channel": "email", "locale": "en", "subject": "Ticket {{ ticket }}", "html": "<p>{{ text }}</p>"}
            ],
        },
    )
    api.post("/v1/templates/ccm.system-text/publish")
    profile_id = api.get("/v1/profiles/u1").json["id"]
    with runtime.db.unit_of_work() as session:
        again = send_system_text(
            session=session,
            runtime=runtime,
            workspace_id=workspace[0],
            profile_id=profile_id,
            channel="email",
            text="Hello again",
        )
    assert finished(api, again)["status"] == "delivered"
    [item] = api.get(f"/v1/outbox?message_id={again}").json["items"]
    assert "Subject: Hello again" in item["raw"]


def test_a_follow_up_cannot_name_an_internal_template(api, system_text):
    from tests.conversations.test_follow_up_threading import post_reply, reply

    post_reply(api, reply([f"<{system_text}@localhost>"], "r1@mail.example.com", "Re: Hello", "Hi"))
    [conversation] = api.get("/v1/conversations").json["items"]
    path = f"/v1/conversations/{conversation['id']}/messages"
    absent = api.post(path, json={"template": "no-such-template", "data": {}})
    for key in (SYSTEM_TEMPLATE, "ccm.email-follow-up"):
        answer = api.post(path, json={"template": key, "data": {"text": "sneaky", "subject": "x"}})
        assert (answer.status_code, answer.json["error"]["details"]) == (absent.status_code, {"field": "template"})
        assert answer.status_code in (404, 422)


def test_an_internal_template_cannot_be_sent_through_the_api(api, system_text):
    absent = api.post("/v1/messages", json={"to": {"external_id": "u1"}, "template": "no-such-template"})
    answer = api.post(
        "/v1/messages", json={"to": {"external_id": "u1"}, "template": "ccm.system-text", "data": {"text": "spoofed"}}
    )
    assert answer.status_code == absent.status_code and answer.json["error"]["details"]["field"] == "template"
