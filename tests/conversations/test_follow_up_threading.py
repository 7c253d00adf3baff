"""An agent's email follow-up threads in the person's mail client: ``Re: <the thread's subject>``,
``In-Reply-To`` the last message of the thread (theirs or ours), ``References`` the chain — end to
end: send, reply through POST /v1/inbound/email, follow up through the API, run the worker, read
the raw email in the outbox."""

from __future__ import annotations

import email
import email.policy

from tests.messages.test_send_api import finished
from tests.support.factories import publish_template, put_profile


def reply(message_ids: list[str], own_id: str, subject: str, body: str) -> bytes:
    """A reply from u1 as a mail client writes it, to the last of ``message_ids`` (bracketed)."""
    return (
        f"From: Ada <u1@example.com>\r\nTo: CCM <noreply@localhost>\r\nSubject: {subject}\r\n"
        f"Message-ID: <{own_id}>\r\nIn-Reply-To: {message_ids[-1]}\r\nReferences: {' '.join(message_ids)}\r\n"
        f"Content-Type: text/plain; charset=utf-8\r\n\r\n{body}\r\n"
    ).encode()


def post_reply(api, raw: bytes) -> None:
    taken = api.request("POST", "/v1/inbound/email", data=raw, headers={"Content-Type": "message/rfc822"})
    assert (taken.status_code, taken.json) == (202, {"taken_as": "reply"}), taken.json


def sent_email(api, message_id: str) -> email.message.EmailMessage:
    assert finished(api, message_id)["status"] == "delivered"
    [item] = api.get(f"/v1/outbox?message_id={message_id}").json["items"]
    return email.message_from_string(item["raw"], policy=email.policy.default)


def follow_up(api, conversation_id: str, **body) -> str:
    answer = api.post(f"/v1/conversations/{conversation_id}/messages", json=body)
    assert answer.status_code == 202, answer.json
    return answer.json["id"]


def test_a_text_follow_up_threads_under_the_last_reply_with_the_original_subject(api, worker):
    publish_template(api)
    put_profile(api, "u1", channels=["email"])
    first = api.post("/v1/messages", json={"to": {"external_id": "u1"}, "template": "welcome"}).json["id"]
    original = sent_email(api, first)
    assert original["Subject"] == "Welcome, Ada"
    post_reply(api, reply([original["Message-ID"]], "r1@mail.example.com", "Re: Welcome, Ada", "Which plan?"))
    [conversation] = api.get("/v1/conversations").json["items"]

    answer = sent_email(api, follow_up(api, conversation["id"], text="The pro plan, since March."))
    assert answer["Subject"] == "Re: Welcome, Ada"
    assert answer["In-Reply-To"] == "<r1@mail.example.com>"
    assert answer["References"].split() == [original["Message-ID"], "<r1@mail.example.com>"]
    assert "The pro plan, since March." in answer.get_body(("plain",)).get_content()

    # They answer the follow-up; the next one points at that answer and keeps one "Re:".
    post_reply(
        api,
        reply(
            answer["References"].split() + [answer["Message-ID"]],
            "r2@mail.example.com",
            "RE: Re: Welcome, Ada",
            "Thanks!",
        ),
    )
    assert len(api.get("/v1/conversations").json["items"]) == 1
    again = sent_email(api, follow_up(api, conversation["id"], text="You are welcome."))
    assert again["Subject"] == "Re: Welcome, Ada"
    assert again["In-Reply-To"] == "<r2@mail.example.com>"
    assert again["References"].split() == [
        original["Message-ID"],
        "<r1@mail.example.com>",
        answer["Message-ID"],
        "<r2@mail.example.com>",
    ]


def test_a_follow_up_after_our_own_is_in_reply_to_ours(api, worker):
    publish_template(api)
    put_profile(api, "u1", channels=["email"])
    first = api.post("/v1/messages", json={"to": {"external_id": "u1"}, "template": "welcome"}).json["id"]
    original = sent_email(api, first)
    post_reply(api, reply([original["Message-ID"]], "r1@mail.example.com", "Re: Welcome, Ada", "Hello?"))
    [conversation] = api.get("/v1/conversations").json["items"]
    ours = sent_email(api, follow_up(api, conversation["id"], text="Hello!"))
    second = sent_email(api, follow_up(api, conversation["id"], text="Anything else?"))
    assert second["In-Reply-To"] == ours["Message-ID"]
    assert second["References"].split()[0] == original["Message-ID"]


def test_a_template_follow_up_keeps_its_subject_and_still_threads(api, worker):
    publish_template(api)
    publish_template(
        api,
        "survey",
        variables=[],
        variants=[{"channel": "email", "locale": "en", "subject": "How did we do?", "html": "<p>Tell us.</p>"}],
    )
    put_profile(api, "u1", channels=["email"])
    original = sent_email(
        api, api.post("/v1/messages", json={"to": {"external_id": "u1"}, "template": "welcome"}).json["id"]
    )
    post_reply(api, reply([original["Message-ID"]], "r1@mail.example.com", "Re: Welcome, Ada", "Solved, thanks"))
    [conversation] = api.get("/v1/conversations").json["items"]
    survey = sent_email(api, follow_up(api, conversation["id"], template="survey"))
    assert survey["Subject"] == "How did we do?"
    assert survey["In-Reply-To"] == "<r1@mail.example.com>"


def test_a_reply_whose_message_id_is_not_a_message_id_is_left_out_of_the_headers(api, worker):
    publish_template(api)
    put_profile(api, "u1", channels=["email"])
    original = sent_email(
        api, api.post("/v1/messages", json={"to": {"external_id": "u1"}, "template": "welcome"}).json["id"]
    )
    post_reply(api, reply([original["Message-ID"]], "\u00e9v\u00eel\u2028x@evil.example", "Re: Welcome, Ada", "Hi"))
    [conversation] = api.get("/v1/conversations").json["items"]
    answer = sent_email(api, follow_up(api, conversation["id"], text="Hello"))
    assert answer["In-Reply-To"] == original["Message-ID"]
    assert "evil" not in answer["References"]
