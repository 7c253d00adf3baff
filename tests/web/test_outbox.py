"""The development outbox page: what the local outbox "sent", by channel: an email in a sandboxed
iframe with its headers, an SMS with its segments, a chat payload as pretty JSON."""

from __future__ import annotations

import html
import json
import re

import pytest

from ccm.channels.base import OutboundMessage
from ccm.channels.local_outbox import LocalOutboxConfig, LocalOutboxProvider
from ccm.messages.delivery import deliver_message
from ccm.web.security import CSP, EMAIL_PREVIEW_CSP
from tests.messages.test_send_api import send
from tests.support.factories import publish_template, put_profile


def sent_email(api, runtime) -> str:
    publish_template(api)
    put_profile(api, "u1")
    message_id = send(api).json["id"]
    deliver_message(runtime, message_id)
    return message_id


def deliver_locally(runtime, workspace, channel, body, to):
    """Through the local outbox provider itself, as the delivery core hands it a message."""
    provider = LocalOutboxProvider(LocalOutboxConfig(channel=channel), db=runtime.db)
    message = OutboundMessage(message_id=f"msg_{channel}", workspace_id=workspace[0], channel=channel, to=to, body=body)
    return provider.send(message, commit_point=lambda: None).provider_message_id


def test_an_email_is_shown_in_a_sandboxed_iframe_with_its_headers(web_client, api, runtime):
    message_id = sent_email(api, runtime)
    client = web_client("viewer")
    listing = client.get("/outbox/")
    assert listing.status_code == 200 and "u1@example.com" in listing.text and "Welcome, Ada" in listing.text
    item_path = re.search(r'href="(/outbox/obx_[^"]+)"', listing.text).group(1)
    answer = client.get(item_path)
    assert answer.status_code == 200
    frame = re.search(r"<iframe ([^>]*)></iframe>", answer.text).group(1)
    assert re.search(r"\bsandbox srcdoc=", frame), frame  # an empty sandbox: no scripts, no same origin
    srcdoc = html.unescape(re.search(r'srcdoc="([^"]*)"', frame).group(1))
    assert "<h1>Welcome, Ada!</h1>" in srcdoc and "<script" not in answer.text.split("</head>")[1]
    for header in ('<th scope="row">Subject</th><td>Welcome, Ada</td>', f"<td>{message_id}</td>"):
        assert header in answer.text
    assert "Get started (https://example.com/start)" in answer.text  # the plain-text part
    assert answer.headers["Content-Security-Policy"] == EMAIL_PREVIEW_CSP
    assert "script-src 'self';" in EMAIL_PREVIEW_CSP and "img-src 'self' data:;" in EMAIL_PREVIEW_CSP


def test_an_email_with_a_script_cannot_run_it(web_client, runtime, workspace):
    raw = "Subject: Hi\r\nTo: a@example.com\r\nContent-Type: text/html\r\n\r\n<p>Hi</p><script>alert(1)</script>\"'"
    provider = LocalOutboxProvider(LocalOutboxConfig(channel="email"), db=runtime.db)
    message = OutboundMessage(
        message_id="msg_x", workspace_id=workspace[0], channel="email", to="a@example.com", raw=raw.encode()
    )
    item_id = provider.send(message, commit_point=lambda: None).provider_message_id
    page = web_client("viewer").get(f"/outbox/{item_id}").text
    assert "<script>alert(1)</script>" not in page  # escaped into srcdoc, where the sandbox refuses scripts anyway
    assert "&lt;script&gt;alert(1)&lt;/script&gt;&#34;&#39;" in page


@pytest.mark.settings(local_outbox="email,sms,chat")
def test_an_sms_shows_its_segments_and_a_chat_payload_is_pretty_json(web_client, runtime, workspace):
    long_emoji = "Your code is ready 🎉 " * 5  # UCS-2 (the emoji takes two units): 110 units, two segments
    sms_id = deliver_locally(runtime, workspace, "sms", long_emoji, "+14155550100")
    chat_id = deliver_locally(runtime, workspace, "chat", json.dumps({"text": "Hi", "blocks": [1]}), "U123")
    client = web_client("agent")
    sms = client.get(f"/outbox/{sms_id}").text
    assert "2 segments · UCS-2, 110 units" in sms
    chat = client.get(f"/outbox/{chat_id}").text
    assert "{\n  &#34;blocks&#34;: [\n    1\n  ],\n  &#34;text&#34;: &#34;Hi&#34;\n}" in chat
    assert client.get(f"/outbox/{chat_id}").headers["Content-Security-Policy"] == CSP
    listing = client.get("/outbox/").text
    assert "(2 segments)" in listing and "+14155550100" in listing and "U123" in listing


def test_the_outbox_filters_by_recipient_and_pages(web_client, runtime, workspace):
    for n in range(21):
        deliver_locally(runtime, workspace, "sms", "hi", f"+1415555{n:04d}")
    client = web_client("viewer")
    first = client.get("/outbox/").text
    assert first.count("<tr>") == 21  # the header row and a page of 20
    older = re.search(r'href="([^"]+)" rel="next"', first).group(1).replace("&amp;", "&")
    assert client.get(older).text.count("<tr>") == 2
    only = client.get("/outbox/?to=%2B14155550003").text
    assert only.count("<tr>") == 2 and "+14155550003" in only


def test_bad_outbox_input_is_a_4xx_naming_the_field(web_client):
    client = web_client("viewer")
    bad_cursor = client.get("/outbox/?cursor=not-a-cursor")
    assert bad_cursor.status_code == 422 and "cursor" in bad_cursor.text
    assert client.get("/outbox/?to=" + "x" * 400).status_code == 422
    for unstorable in ("/outbox/?to=a%00b", "/outbox/obx_%00"):
        assert client.get(unstorable).status_code == 422, unstorable
    missing = client.get("/outbox/obx_nope")
    assert missing.status_code == 404 and "id: no outbox item" in missing.text


def test_the_nav_shows_the_outbox_where_the_local_outbox_is_the_default(web_client):
    assert ">Outbox</a>" in web_client("viewer").get("/").text


@pytest.mark.settings(local_outbox="")
def test_the_nav_shows_the_outbox_only_once_the_workspace_uses_it(web_client, runtime, workspace):
    client = web_client("viewer")
    assert ">Outbox</a>" not in client.get("/").text
    assert client.get("/outbox/").status_code == 200  # the page itself says it is not in use
    assert "not in use" in client.get("/outbox/").text
    deliver_locally(runtime, workspace, "sms", "hi", "+14155550100")
    assert ">Outbox</a>" in client.get("/").text
