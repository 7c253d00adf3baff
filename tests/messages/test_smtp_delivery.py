"""End to end over real SMTP: API → Dramatiq worker → a loopback SMTP server, then the received
MIME is parsed and checked."""

from __future__ import annotations

import email
import email.policy

import pytest

from tests.messages.test_send_api import finished, send
from tests.support.api import wait_for
from tests.support.factories import publish_template, put_profile


def received(smtp_server, count=1):
    return wait_for(
        lambda: smtp_server.messages if len(smtp_server.messages) >= count else None,
        message=f"{count} message(s) at the SMTP server",
    )


def test_email_is_delivered_over_smtp_with_proper_mime(api, worker, smtp_server):
    publish_template(api)
    put_profile(api, "u1", email="ada@example.com", attributes={"first_name": "Ada Lovelace", "plan": "pro"})
    accepted = send(api, reply_to="support@example.com", data={"plan": "<b>team</b>"})
    message = finished(api, accepted.json["id"])
    assert message["status"] == "sent"
    assert message["attempts"][0]["provider"] == "smtp"
    assert message["attempts"][0]["outcome"] == "sent"

    [mail] = received(smtp_server)
    assert mail.rcpt_tos == ("ada@example.com",)
    assert mail.mail_from == "noreply@localhost"
    parsed = email.message_from_bytes(mail.raw, policy=email.policy.default)
    assert parsed["To"] == "ada@example.com"
    assert parsed["Subject"] == "Welcome, Ada Lovelace"
    assert parsed["Reply-To"] == "support@example.com"
    assert parsed["Message-ID"] == f"<{message['id']}@localhost>"
    assert parsed.get_content_type() == "multipart/alternative"
    assert [part.get_content_type() for part in parsed.iter_parts()] == ["text/plain", "text/html"]
    html = parsed.get_body(("html",)).get_content()
    assert "Your plan: &lt;b&gt;team&lt;/b&gt;." in html  # escaped in HTML
    assert "Your plan: <b>team</b>." in parsed.get_body(("plain",)).get_content()  # verbatim in text
    assert "List-Unsubscribe" not in parsed  # transactional


def test_marketing_mail_carries_one_click_unsubscribe(api, worker, smtp_server, runtime):
    from ccm.tokens import UNSUBSCRIBE, UNSUBSCRIBE_MAX_AGE

    publish_template(api, category="marketing")
    put_profile(api, "u1")
    message = finished(api, send(api, topic="news").json["id"])
    parsed = email.message_from_bytes(received(smtp_server)[0].raw, policy=email.policy.default)
    assert parsed["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    url = parsed["List-Unsubscribe"].strip("<>")
    assert url.startswith("http://ccm.test/u/")
    payload = runtime.signer.verify(UNSUBSCRIBE, url.rsplit("/", 1)[1], max_age=UNSUBSCRIBE_MAX_AGE)
    assert payload["m"] == message["id"] and payload["t"] == "news" and payload["c"] == "email"


def test_smtp_5xx_fails_now_with_the_servers_reason(api, worker, smtp_server):
    smtp_server.set_reply("RCPT", "550 5.1.1 No such user here")
    publish_template(api)
    put_profile(api, "u1")
    message = finished(api, send(api).json["id"])
    assert message["status"] == "failed"
    assert "550" in message["reason"] and "No such user" in message["reason"]
    assert [a["outcome"] for a in message["attempts"]] == ["permanent_error"]
    assert smtp_server.messages == []


def test_smtp_4xx_is_retried_until_the_server_takes_it(api, worker, smtp_server):
    smtp_server.set_reply("RCPT", "451 4.3.0 Try again later")
    publish_template(api)
    put_profile(api, "u1")
    message_id = send(api).json["id"]
    retrying = wait_for(
        lambda: (m := api.get(f"/v1/messages/{message_id}").json)["status"] == "retrying" and m,
        message="a retry to be scheduled",
    )
    assert "451" in retrying["reason"] and retrying["next_attempt_at"]
    smtp_server.set_reply("RCPT", None)
    message = finished(api, message_id)
    assert message["status"] == "sent"
    outcomes = [a["outcome"] for a in message["attempts"]]
    assert outcomes[0] == "transient_error" and outcomes[-1] == "sent"
    assert len(smtp_server.messages) == 1


@pytest.mark.settings(retry_base=0.3, retry_max=0.3)
def test_retries_stop_at_the_deadline(api, worker, smtp_server):
    import datetime as dt

    smtp_server.set_reply("RCPT", "451 4.3.0 Try again later")
    publish_template(api)
    put_profile(api, "u1")
    deadline = (dt.datetime.now(dt.UTC) + dt.timedelta(seconds=1.5)).isoformat()
    message = finished(api, send(api, deadline=deadline).json["id"])
    assert message["status"] == "failed"
    assert message["reason"].startswith("deadline_exceeded")
    assert smtp_server.messages == []


def test_header_injection_through_data_is_refused_at_send_time(api, worker, smtp_server):
    publish_template(api)
    put_profile(api, "u1")
    message = finished(api, send(api, data={"first_name": "Ada\r\nBcc: victim@example.com"}).json["id"])
    assert message["status"] == "failed"
    assert message["reason"].startswith("invalid_header")
    assert message["attempts"] == []
    assert smtp_server.messages == []


@pytest.mark.settings(smtp_url="smtp://127.0.0.1:1?local_hostname=localhost")
def test_unreachable_smtp_server_is_transient(api, worker):
    publish_template(api)
    put_profile(api, "u1")
    message_id = send(api).json["id"]
    message = wait_for(
        lambda: (m := api.get(f"/v1/messages/{message_id}").json)["status"] == "retrying" and m,
        message="a retry after a refused connection",
    )
    assert message["attempts"][0]["outcome"] == "transient_error"
