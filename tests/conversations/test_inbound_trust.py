"""Inbound email cannot reach across workspaces or be forged into someone else's thread: reply
addresses carry a secret, message-id headers count only from the address the message went to, and
a bounce only for the recipient the message had."""

from __future__ import annotations

import email
import email.policy

import pytest

from ccm.auth.service import create_api_key
from ccm.messages.delivery import deliver_message
from ccm.workspaces.service import get_or_create_workspace
from tests.engagement.test_loop import DSN, REPLY, VARIANTS
from tests.support.api import ApiClient
from tests.support.factories import publish_template, put_profile


@pytest.fixture
def sent(api, runtime):
    """A message sent by email to u1@example.com in the first workspace."""
    publish_template(api, variables=["first_name"], variants=VARIANTS)
    put_profile(api, "u1", channels=["email"])
    message_id = api.post("/v1/messages", json={"to": {"external_id": "u1"}, "template": "welcome"}).json["id"]
    deliver_message(runtime, message_id)
    return message_id


@pytest.fixture
def intruder(app, runtime):
    """Another workspace's API client."""
    with runtime.db.unit_of_work() as session:
        other, _ = get_or_create_workspace(session=session, name="intruder")
        _, key = create_api_key(session=session, workspace_id=other.id)
    return ApiClient(app.test_client(), key)


def post_email(client, raw):
    return client.request("POST", "/v1/inbound/email", data=raw, headers={"Content-Type": "message/rfc822"})


def test_another_workspace_cannot_post_into_a_thread(api, sent, intruder):
    taken = post_email(intruder, REPLY % {b"message_id": sent.encode()})
    assert taken.json == {"taken_as": "reply"}  # kept, but as a new thread of the intruder's own
    assert api.get("/v1/conversations").json["items"] == []
    [theirs] = intruder.get("/v1/conversations").json["items"]
    thread = intruder.get(f"/v1/conversations/{theirs['id']}").json["entries"]
    assert [e["direction"] for e in thread] == ["in"]  # our message is not in their thread


def test_another_workspace_cannot_bounce_our_message(api, sent, intruder):
    assert post_email(intruder, DSN % {b"message_id": sent.encode()}).json == {"taken_as": "bounce"}
    assert api.get(f"/v1/messages/{sent}").json["status"] != "failed"
    assert api.get("/v1/suppressions").json["items"] == []


def test_headers_naming_our_message_count_only_from_its_recipient(api, sent):
    forged = (REPLY % {b"message_id": sent.encode()}).replace(b"<u1@example.com>", b"<mallory@example.net>")
    assert post_email(api, forged).json == {"taken_as": "reply"}
    [conversation] = api.get("/v1/conversations").json["items"]
    thread = api.get(f"/v1/conversations/{conversation['id']}").json["entries"]
    assert sent not in [e["id"] for e in thread]  # a thread of Mallory's own, not u1's
    assert api.get("/v1/profiles/u1").json["engagement"].get("email", {}).get("replied") is None


def test_a_bounce_for_another_recipient_suppresses_no_one(api, sent):
    forged = (DSN % {b"message_id": sent.encode()}).replace(b"rfc822; u1@example.com", b"rfc822; ceo@example.com")
    post_email(api, forged)
    assert api.get(f"/v1/messages/{sent}").json["status"] != "failed"
    assert api.get("/v1/suppressions").json["items"] == []


@pytest.mark.settings(inbound_domain="in.ccm.test")
def test_a_reply_address_with_a_wrong_signature_threads_nothing(api, runtime, sent):
    raw_sent = api.get(f"/v1/outbox?message_id={sent}").json["items"][0]["raw"]
    reply_to = email.message_from_string(raw_sent, policy=email.policy.default)["Reply-To"]
    local, _, domain = reply_to.partition("@")
    # Another character whatever the case: addresses are matched case-insensitively.
    tampered = f"{local[:-1]}{'a' if local[-1].lower() != 'a' else 'b'}@{domain}"
    raw = (
        b"From: mallory@example.net\r\nTo: " + tampered.encode() + b"\r\nSubject: hi\r\n"
        b"Message-ID: <m1@example.net>\r\n\r\nLet me in.\r\n"
    )
    assert post_email(api, raw).json == {"taken_as": "reply"}
    [conversation] = api.get("/v1/conversations").json["items"]
    assert sent not in [e["id"] for e in api.get(f"/v1/conversations/{conversation['id']}").json["entries"]]
    genuine = raw.replace(tampered.encode(), reply_to.upper().encode())  # an MTA may fold the case
    post_email(api, genuine.replace(b"<m1@", b"<m2@"))  # the right signature threads, whoever sends it
    threads = [api.get(f"/v1/conversations/{c['id']}").json for c in api.get("/v1/conversations").json["items"]]
    assert any(sent in [e["id"] for e in thread["entries"]] for thread in threads)


def test_reply_addresses_in_mail_sent_before_a_key_rotation_still_match():
    from ccm.engagement.tracking import LinkSigner

    mac = LinkSigner("old-secret-key").short_mac({"r": "msg_1"})
    rotated = LinkSigner("old-secret-key,new-secret-key")
    assert rotated.short_mac_matches({"r": "msg_1"}, mac.upper())  # whatever the MTA did to its case
    assert not rotated.short_mac_matches({"r": "msg_2"}, mac)
    assert not LinkSigner("new-secret-key").short_mac_matches({"r": "msg_1"}, mac)
