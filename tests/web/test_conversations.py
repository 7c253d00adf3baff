"""The inbox through the Flask test client: conversations by status, the thread with the person's
reply (and the fragment the page polls), status changes, and an answer sent once per form;
read-only roles read and change nothing."""

from __future__ import annotations

import email
import email.policy
import re

import pytest
from sqlalchemy import select

from ccm.conversations.models import Conversation
from ccm.messages.delivery import deliver_message
from ccm.messages.models import Message
from ccm.users.models import User
from tests.conversations.test_follow_up_threading import post_reply, reply
from tests.messages.test_send_api import finished
from tests.support.factories import publish_template, put_profile
from tests.web.conftest import csrf_of

ROLES = ("admin", "agent", "marketer", "viewer")


def outbox_email(api, message_id):
    [item] = api.get(f"/v1/outbox?message_id={message_id}").json["items"]
    return email.message_from_string(item["raw"], policy=email.policy.default)


def start_conversation(api, runtime, body="Which plan am I on?"):
    """Ada got our welcome email and replied to it: the conversation's id."""
    publish_template(api)
    put_profile(api, "u1", channels=["email"])
    first = api.post("/v1/messages", json={"to": {"external_id": "u1"}, "template": "welcome"}).json["id"]
    deliver_message(runtime, first)
    assert finished(api, first)["status"] == "delivered"  # here, or by a running worker that claimed it first
    original = outbox_email(api, first)
    post_reply(api, reply([original["Message-ID"]], "r1@mail.example.com", "Re: Welcome, Ada", body))
    [conversation] = api.get("/v1/conversations").json["items"]
    return conversation["id"]


def reply_again(api, body):
    """Ada answers once more, in the same thread (her mail client references our first email)."""
    [first] = [m for m in api.get("/v1/messages").json["items"] if m["template"] == "welcome"]
    original = outbox_email(api, first["id"])
    post_reply(
        api,
        reply(
            [original["Message-ID"], "<r1@mail.example.com>"],
            f"r-{len(body)}@mail.example.com",
            "Re: Welcome, Ada",
            body,
        ),
    )


def status_of(runtime, conversation_id):
    with runtime.db.read_only() as session:
        return session.get(Conversation, conversation_id).status


def answers(runtime, conversation_id):
    with runtime.db.read_only() as session:
        return session.scalars(select(Message.id).where(Message.conversation_id == conversation_id)).all()


def form_of(client, conversation_id, **fields):
    page = client.get(f"/conversations/{conversation_id}").text
    key = re.search(r'name="idempotency_key" value="([^"]+)"', page)
    return {"csrf_token": csrf_of(page), "idempotency_key": key.group(1) if key else "k", **fields}


@pytest.mark.parametrize("role", ROLES)
def test_every_role_reads_the_inbox_and_the_thread(web_client, api, runtime, role):
    conversation_id = start_conversation(api, runtime)
    client = web_client(role)
    inbox = client.get("/conversations/")
    assert inbox.status_code == 200 and ">Inbox</a>" in inbox.text and f"/conversations/{conversation_id}" in inbox.text
    shown = client.get(f"/conversations/{conversation_id}").text
    assert "Which plan am I on?" in shown and "They wrote" in shown and "We sent" in shown
    writes = role in ("admin", "agent")
    assert ("Send answer" in shown) == writes and ("Change status" in shown) == writes


def test_the_inbox_filters_by_status(web_client, api, runtime):
    conversation_id = start_conversation(api, runtime)
    client = web_client("agent")
    listed = {
        f: f"/conversations/{conversation_id}" in client.get(f"/conversations/?status={f}").text
        for f in ("open", "pending", "resolved", "all")
    }
    assert listed == {"open": True, "pending": False, "resolved": False, "all": True}
    client.post(
        f"/conversations/{conversation_id}/status", data={**form_of(client, conversation_id), "status": "resolved"}
    )
    assert status_of(runtime, conversation_id) == "resolved"
    assert f"/conversations/{conversation_id}" in client.get("/conversations/?status=resolved").text
    assert f"/conversations/{conversation_id}" not in client.get("/conversations/").text


def test_a_reply_reopens_a_resolved_conversation(web_client, api, runtime):
    conversation_id = start_conversation(api, runtime)
    client = web_client("agent")
    client.post(
        f"/conversations/{conversation_id}/status", data={**form_of(client, conversation_id), "status": "resolved"}
    )
    reply_again(api, "One more thing")
    assert status_of(runtime, conversation_id) == "open"


def test_an_answer_is_sent_once_and_threads_in_the_mail_client(web_client, api, runtime):
    conversation_id = start_conversation(api, runtime)
    client = web_client("agent")
    form = form_of(client, conversation_id, text="You are on the pro plan.")
    first = client.post(f"/conversations/{conversation_id}/messages", data=form)
    again = client.post(f"/conversations/{conversation_id}/messages", data=form)
    assert first.status_code == again.status_code == 303
    [answer] = answers(runtime, conversation_id)
    deliver_message(runtime, answer)
    sent = outbox_email(api, answer)
    assert sent["Subject"] == "Re: Welcome, Ada" and sent["In-Reply-To"] == "<r1@mail.example.com>"
    assert "You are on the pro plan." in client.get(f"/conversations/{conversation_id}").text


def test_the_polled_thread_shows_a_new_reply(web_client, api, runtime):
    conversation_id = start_conversation(api, runtime)
    client = web_client("viewer")
    assert "Second question" not in client.get(f"/conversations/{conversation_id}/thread").text
    reply_again(api, "Second question")
    fragment = client.get(f"/conversations/{conversation_id}/thread", headers={"HX-Request": "true"})
    assert fragment.status_code == 200 and "Second question" in fragment.text and "<html" not in fragment.text
    assert 'hx-trigger="every 3s"' in client.get(f"/conversations/{conversation_id}").text


@pytest.mark.parametrize(
    ("path", "fields", "field"),
    [
        ("status", {"status": "closed"}, "status"),
        ("messages", {"text": "  "}, "text"),
        ("messages", {"text": "x" * 10001}, "text"),
        ("messages", {"text": "hi", "idempotency_key": ""}, "idempotency_key"),
    ],
)
def test_bad_input_is_a_4xx_naming_the_field_and_changes_nothing(web_client, api, runtime, path, fields, field):
    conversation_id = start_conversation(api, runtime)
    client = web_client("agent")
    answer = client.post(
        f"/conversations/{conversation_id}/{path}", data={**form_of(client, conversation_id), **fields}
    )
    assert answer.status_code == 422 and f"{field}:" in answer.text
    assert status_of(runtime, conversation_id) == "open" and answers(runtime, conversation_id) == []


@pytest.mark.parametrize(
    ("url", "status", "field"),
    [("/conversations/?status=closed", 422, "status"), ("/conversations/?cursor=x", 422, "cursor")],
)
def test_bad_filters_are_a_4xx_naming_the_field(web_client, url, status, field):
    answer = web_client("viewer").get(url)
    assert answer.status_code == status and f"{field}:" in answer.text


def test_an_unknown_conversation_is_a_404(web_client):
    client = web_client("agent")
    for url in ("/conversations/cnv_01JDOESNOTEXIST00000000000", "/conversations/nope/thread"):
        assert client.get(url).status_code == 404
    csrf = csrf_of(client.get("/conversations/").text)
    assert client.post("/conversations/nope/status", data={"csrf_token": csrf, "status": "open"}).status_code == 404


@pytest.mark.parametrize("role", ("marketer", "viewer"))
def test_a_read_only_role_cannot_force_an_answer_or_a_status(web_client, api, runtime, role):
    conversation_id = start_conversation(api, runtime)
    client = web_client(role)
    form = form_of(client, conversation_id)
    assert client.post(f"/conversations/{conversation_id}/messages", data={**form, "text": "hi"}).status_code == 403
    assert (
        client.post(f"/conversations/{conversation_id}/status", data={**form, "status": "resolved"}).status_code == 403
    )
    assert status_of(runtime, conversation_id) == "open" and answers(runtime, conversation_id) == []


def assignee_of(runtime, conversation_id):
    with runtime.db.read_only() as session:
        return session.get(Conversation, conversation_id).assignee_id


def user_id(runtime, address):
    with runtime.db.read_only() as session:
        return session.scalar(select(User.id).where(User.email == address))


def test_an_agent_takes_a_conversation_and_finds_it_under_mine(web_client, api, runtime, make_user):
    conversation_id = start_conversation(api, runtime)
    make_user("admin", email="lead@example.com")
    client = web_client("agent")
    page = client.get(f"/conversations/{conversation_id}").text
    assert "agent@example.com (me)</option>" in page and "lead@example.com</option>" in page
    assert "Nobody" in page and '<label for="assignee">' in page
    assert f'/conversations/{conversation_id}"' not in client.get("/conversations/?mine=1").text

    mine = user_id(runtime, "agent@example.com")
    taken = client.post(
        f"/conversations/{conversation_id}/assignee", data={**form_of(client, conversation_id), "assignee": mine}
    )
    assert taken.status_code == 303 and assignee_of(runtime, conversation_id) == mine
    assert f'/conversations/{conversation_id}"' in client.get("/conversations/?mine=1").text
    assert "<td>agent@example.com</td>" in client.get("/conversations/").text

    handed = client.post(
        f"/conversations/{conversation_id}/assignee",
        data={**form_of(client, conversation_id), "assignee": user_id(runtime, "lead@example.com")},
    )
    assert (
        handed.status_code == 303
        and f'/conversations/{conversation_id}"' not in client.get("/conversations/?mine=1").text
    )
    client.post(f"/conversations/{conversation_id}/assignee", data={**form_of(client, conversation_id), "assignee": ""})
    assert assignee_of(runtime, conversation_id) is None


def test_only_someone_who_answers_conversations_can_be_assigned(web_client, api, runtime, make_user):
    conversation_id = start_conversation(api, runtime)
    make_user("viewer", email="reader@example.com")
    client = web_client("agent")
    assert "reader@example.com" not in client.get(f"/conversations/{conversation_id}").text
    for assignee in (user_id(runtime, "reader@example.com"), "usr_01JDOESNOTEXIST00000000000", "x" * 300):
        refused = client.post(
            f"/conversations/{conversation_id}/assignee",
            data={**form_of(client, conversation_id), "assignee": assignee},
        )
        assert refused.status_code == 422 and "assignee:" in refused.text
    assert assignee_of(runtime, conversation_id) is None


@pytest.mark.parametrize("role", ("marketer", "viewer"))
def test_a_read_only_role_cannot_force_an_assignment(web_client, api, runtime, role, make_user):
    conversation_id = start_conversation(api, runtime)
    make_user("agent")
    client = web_client(role)
    forced = client.post(
        f"/conversations/{conversation_id}/assignee",
        data={**form_of(client, conversation_id), "assignee": user_id(runtime, "agent@example.com")},
    )
    assert forced.status_code == 403 and assignee_of(runtime, conversation_id) is None
