"""The engagement loop driven by real traffic: provider status callbacks (signed, deduplicated,
monotonic), inbound SMS with keywords, email replies threaded into conversations, bounce emails,
the timeline, and outbound webhooks to a loopback server."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time

import pytest
from sqlalchemy import func, select

from ccm.channels.callbacks import sign_standard_webhook
from ccm.engagement.models import EngagementEvent
from ccm.messages.delivery import deliver_message
from ccm.suppression.models import Suppression
from tests.channels.test_provider_accounts import TWILIO_TOKEN, add_provider, twilio_config
from tests.messages.test_send_api import finished
from tests.support.api import wait_for
from tests.support.factories import publish_template, put_profile
from tests.support.http_server import HttpTestServer

PHONE = "+14155550100"
SMS_SID = "SM" + "b" * 32
VARIANTS = [
    {"channel": "sms", "locale": "en", "body": "Hi {{ first_name }}, news inside"},
    {"channel": "email", "locale": "en", "subject": "News", "html": "<p>Hi {{ first_name }}</p>"},
]
GATEWAY_SECRET = "whsec_" + base64.b64encode(b"gateway-signing-secret-16b").decode()


def twilio_signature(url, form):
    data = url + "".join(f"{key}{form[key]}" for key in sorted(form))
    return base64.b64encode(hmac.new(TWILIO_TOKEN.encode(), data.encode(), hashlib.sha1).digest()).decode()


def post_twilio(app, account_id, kind, form, *, forged=False):
    path = f"/hooks/{account_id}/{kind}"
    signature = twilio_signature(f"http://ccm.test{path}", form)
    if forged:
        signature = signature[::-1]
    return app.test_client().post(path, data=form, headers={"X-Twilio-Signature": signature})


def post_gateway(app, account_id, kind, payload, *, event_id):
    body = json.dumps(payload).encode()
    timestamp = int(time.time())
    signature = sign_standard_webhook(
        base64.b64decode(GATEWAY_SECRET.removeprefix("whsec_")), event_id, timestamp, body
    )
    return app.test_client().post(
        f"/hooks/{account_id}/{kind}",
        data=body,
        content_type="application/json",
        headers={"webhook-id": event_id, "webhook-timestamp": str(timestamp), "webhook-signature": signature},
    )


@pytest.fixture
def twilio(api):
    with HttpTestServer() as server:
        server.respond(
            f"/2010-04-01/Accounts/{twilio_config('x')['account_sid']}/Messages.json",
            201,
            json={"sid": SMS_SID, "status": "queued"},
        )
        yield server, add_provider(api, "twilio", "twilio", twilio_config(server.url))


@pytest.fixture
def sms_sent(api, runtime, twilio):
    api.patch("/v1/workspace", json={"policy": {"quiet_hours": {"marketing": {}}}})  # any hour will do here
    publish_template(api, variables=["first_name"], variants=VARIANTS, category="marketing")
    put_profile(api, "u1", phone=PHONE, channels=["sms"])
    accepted = api.post("/v1/messages", json={"to": {"external_id": "u1"}, "template": "welcome", "topic": "news"})
    deliver_message(runtime, accepted.json["id"])
    message = api.get(f"/v1/messages/{accepted.json['id']}").json
    assert (message["status"], message["attempts"][0]["provider_message_id"]) == ("sent", SMS_SID)
    return message["id"], twilio[1]["id"]


def status_form(status, **extra):
    return {"MessageSid": SMS_SID, "MessageStatus": status, "To": PHONE, "From": "+14155550199", **extra}


def events(runtime, **filters):
    with runtime.db.unit_of_work() as session:
        return session.scalar(select(func.count()).select_from(EngagementEvent).filter_by(**filters))


def test_a_genuine_delivery_report_moves_the_message_once(api, app, runtime, sms_sent):
    message_id, account_id = sms_sent
    for _ in range(3):  # Twilio retries; we answer each, once
        assert post_twilio(app, account_id, "status", status_form("delivered")).status_code == 200
    message = api.get(f"/v1/messages/{message_id}").json
    assert (message["status"], message["reason"]) == ("delivered", "delivered: reported by the provider")
    assert events(runtime, kind="delivered", message_id=message_id) == 1


def test_forged_callbacks_change_nothing(api, app, runtime, sms_sent):
    message_id, account_id = sms_sent
    forged = post_twilio(app, account_id, "status", status_form("delivered"), forged=True)
    assert forged.status_code == 401
    missing = app.test_client().post(f"/hooks/{account_id}/status", data=status_form("delivered"))
    assert missing.status_code == 401
    assert app.test_client().post("/hooks/prv_nope/status", data={}).status_code == 404
    assert api.get(f"/v1/messages/{message_id}").json["status"] == "sent"
    assert events(runtime, message_id=message_id) == 0


def test_a_late_bounce_never_regresses_but_still_suppresses(api, app, runtime, sms_sent):
    message_id, account_id = sms_sent
    post_twilio(app, account_id, "status", status_form("delivered"))
    for _ in range(50):
        post_twilio(app, account_id, "status", status_form("undelivered", ErrorCode="30003"))
    assert api.get(f"/v1/messages/{message_id}").json["status"] == "delivered"
    with runtime.db.unit_of_work() as session:
        assert session.scalar(select(func.count()).select_from(Suppression)) == 1
    assert api.get("/v1/suppressions").json["items"][0]["reason"] == "hard_bounce"
    assert events(runtime, kind="bounced", message_id=message_id) == 1


def test_a_bounce_before_delivery_fails_the_message(api, app, runtime, sms_sent):
    message_id, account_id = sms_sent
    post_twilio(app, account_id, "status", status_form("undelivered", ErrorCode="30005"))
    post_twilio(app, account_id, "status", status_form("delivered"))  # out of order: too late to matter
    message = api.get(f"/v1/messages/{message_id}").json
    assert message["status"] == "failed" and message["reason"].startswith("bounced")


@pytest.mark.parametrize(
    "text", ["STOP", "stop", "  Stop please ", "UNSUBSCRIBE", "revoke", "OptOut", "Cancel.", "end", "QUIT", "STOPALL"]
)
def test_every_stop_keyword_opts_out_before_the_next_send(api, app, runtime, sms_sent, twilio, text):
    message_id, account_id = sms_sent
    inbound = {
        "MessageSid": "SM" + "c" * 32,
        "From": PHONE,
        "To": "+14155550199",
        "Body": text,
        "SmsStatus": "received",
    }
    assert post_twilio(app, account_id, "inbound", inbound).status_code == 200
    assert post_twilio(app, account_id, "inbound", inbound).status_code == 200  # a retry changes nothing
    [entry] = api.get("/v1/suppressions").json["items"]
    assert (entry["channel"], entry["reason"]) == ("sms", "stop")
    confirmations = [m for m in api.get("/v1/messages").json["items"] if m["template"] == "ccm.system-text"]
    assert len(confirmations) == 1
    deliver_message(runtime, confirmations[0]["id"])  # the confirmation reaches the stopped number, once
    assert api.get(f"/v1/messages/{confirmations[0]['id']}").json["status"] == "sent"
    later = api.post("/v1/messages", json={"to": {"external_id": "u1"}, "template": "welcome", "topic": "news"})
    deliver_message(runtime, later.json["id"])
    routed = api.get(f"/v1/messages/{later.json['id']}").json
    assert routed["route"][0] == {"channel": "sms", "decision": "rejected", "reason": "suppressed:stop"}
    assert routed["channel"] != "sms"  # not by SMS any more (email still may)
    ledger = api.get("/v1/profiles/u1/consent").json["history"]
    assert ledger[0]["source"] == "keyword" and ledger[0]["status"] == "revoked"


def test_help_answers_and_start_resubscribes(api, app, runtime, sms_sent):
    message_id, account_id = sms_sent
    api.patch("/v1/workspace", json={"policy": {"help_text": "Acme support: help@acme.test. Reply STOP to stop."}})

    def text(body, n):
        form = {"MessageSid": f"SM{n:032d}", "From": PHONE, "To": "+14155550199", "Body": body}
        assert post_twilio(app, account_id, "inbound", form).status_code == 200

    text("help", 1)
    text("STOP", 2)
    text("START", 3)
    assert api.get("/v1/suppressions").json["items"] == []
    sent = [m for m in api.get("/v1/messages").json["items"] if m["template"] == "ccm.system-text"]
    bodies = []
    with runtime.db.unit_of_work() as session:
        from ccm.messages.models import Message

        bodies = sorted(session.get(Message, m["id"]).data["text"] for m in sent)
    assert bodies[0].startswith("Acme support") and len(bodies) == 3
    assert [r["status"] for r in api.get("/v1/profiles/u1/consent").json["history"][:2]] == ["granted", "revoked"]


def test_an_sms_reply_lands_in_a_conversation_and_on_the_timeline(api, app, runtime, sms_sent):
    message_id, account_id = sms_sent
    form = {"MessageSid": "SM" + "d" * 32, "From": PHONE, "To": "+14155550199", "Body": "Is it still on?"}
    post_twilio(app, account_id, "inbound", form)
    [conversation] = api.get("/v1/conversations?profile=u1").json["items"]
    thread = api.get(f"/v1/conversations/{conversation['id']}").json
    assert [(e["direction"], e["body"]) for e in thread["entries"]][-1] == ("in", "Is it still on?")
    agent = api.post(f"/v1/conversations/{conversation['id']}/messages", json={"text": "Yes, 6 pm."})
    assert agent.status_code == 202
    timeline = api.get("/v1/profiles/u1/timeline").json["items"]
    kinds = [(e["type"], e.get("kind") or e.get("status")) for e in timeline]
    assert ("inbound", None) in [(t, None) for t, _ in kinds if t == "inbound"]
    assert ("event", "replied") in kinds
    assert api.get("/v1/profiles/u1").json["engagement"]["sms"]["replied"] == 1


def test_generic_gateway_reports_and_replies(api, app, runtime):
    with HttpTestServer() as gateway:
        gateway.respond("/send", 200, json={"id": "gw-1"})
        account = add_provider(
            api, "webhook", "gateway", {"url": f"{gateway.url}/send", "secret": GATEWAY_SECRET, "channel": "sms"}
        )
        publish_template(api, variables=["first_name"], variants=VARIANTS)
        put_profile(api, "u1", phone=PHONE, channels=["sms"])
        accepted = api.post("/v1/messages", json={"to": {"external_id": "u1"}, "template": "welcome"})
        deliver_message(runtime, accepted.json["id"])
    status = {"type": "message.status", "data": {"id": "gw-1", "status": "delivered"}}
    assert post_gateway(app, account["id"], "status", status, event_id="evt-1").status_code == 200
    assert api.get(f"/v1/messages/{accepted.json['id']}").json["status"] == "delivered"
    replay = post_gateway(app, account["id"], "status", status, event_id="evt-1")
    assert replay.status_code == 200 and events(runtime, kind="delivered") == 1


REPLY = b"""From: Ada <u1@example.com>\r
To: Acme <noreply@localhost>\r
Subject: Completely different subject\r
Message-ID: <reply-1@mail.example.com>\r
In-Reply-To: <%(message_id)s@localhost>\r
Content-Type: text/plain; charset=utf-8\r
\r
Thanks, that works.\r
\r
On Mon, 1 Jan 2026, Acme wrote:\r
> Hi Ada\r
"""


def test_an_email_reply_threads_by_its_headers_even_with_a_new_subject(api, runtime):
    publish_template(api, variables=["first_name"], variants=VARIANTS)
    put_profile(api, "u1", channels=["email"])
    accepted = api.post("/v1/messages", json={"to": {"external_id": "u1"}, "template": "welcome"})
    deliver_message(runtime, accepted.json["id"])
    raw = REPLY % {b"message_id": accepted.json["id"].encode()}
    taken = api.request("POST", "/v1/inbound/email", data=raw, headers={"Content-Type": "message/rfc822"})
    assert (taken.status_code, taken.json) == (202, {"taken_as": "reply"})
    [conversation] = api.get("/v1/conversations").json["items"]
    thread = api.get(f"/v1/conversations/{conversation['id']}").json["entries"]
    assert [(e["direction"], e["id"] == accepted.json["id"]) for e in thread][0] == ("out", True)
    assert thread[-1]["body"] == "Thanks, that works."
    second = raw.replace(b"reply-1@", b"reply-2@").replace(b"In-Reply-To", b"References")
    api.request("POST", "/v1/inbound/email", data=second, headers={"Content-Type": "message/rfc822"})
    assert len(api.get("/v1/conversations").json["items"]) == 1


@pytest.mark.settings(inbound_domain="in.ccm.test")
def test_the_reply_address_threads_replies_and_auto_replies_do_not_count(api, runtime):
    import email
    import email.policy

    publish_template(api, variables=["first_name"], variants=VARIANTS)
    put_profile(api, "u1", channels=["email"])
    accepted = api.post("/v1/messages", json={"to": {"external_id": "u1"}, "template": "welcome"})
    deliver_message(runtime, accepted.json["id"])
    sent = api.get(f"/v1/outbox?message_id={accepted.json['id']}").json["items"][0]["raw"]
    reply_to = email.message_from_string(sent, policy=email.policy.default)["Reply-To"]
    assert reply_to.startswith("reply+m-") and reply_to.endswith("@in.ccm.test")
    auto = (
        b"From: u1@example.com\r\nTo: " + reply_to.encode() + b"\r\nSubject: Out of office\r\n"
        b"Auto-Submitted: auto-replied\r\nMessage-ID: <ooo@x>\r\n\r\nI am away.\r\n"
    )
    assert api.request("POST", "/v1/inbound/email", data=auto).json == {"taken_as": "reply"}
    thread = api.get(f"/v1/conversations/{api.get('/v1/conversations').json['items'][0]['id']}").json["entries"]
    assert thread[-1]["automatic"] is True
    assert "replied" not in api.get("/v1/profiles/u1").json["engagement"].get("email", {})


DSN = b"""From: MAILER-DAEMON@mx.example.com\r
To: noreply@localhost\r
Subject: Undelivered Mail Returned to Sender\r
MIME-Version: 1.0\r
Content-Type: multipart/report; report-type=delivery-status; boundary="b"\r
\r
--b\r
Content-Type: text/plain\r
\r
Delivery failed.\r
--b\r
Content-Type: message/delivery-status\r
\r
Reporting-MTA: dns; mx.example.com\r
\r
Final-Recipient: rfc822; u1@example.com\r
Action: failed\r
Status: 5.1.1\r
Diagnostic-Code: smtp; 550 5.1.1 No such user\r
--b\r
Content-Type: text/rfc822-headers\r
\r
Message-ID: <%(message_id)s@localhost>\r
X-CCM-Message-Id: %(message_id)s\r
--b--\r
"""


def test_a_bounce_email_fails_the_message_and_suppresses_the_address(api, runtime):
    publish_template(api, variables=["first_name"], variants=VARIANTS)
    put_profile(api, "u1", channels=["email"])
    accepted = api.post("/v1/messages", json={"to": {"external_id": "u1"}, "template": "welcome"})
    deliver_message(runtime, accepted.json["id"])
    from sqlalchemy import update

    from ccm.messages.models import Message

    with runtime.db.unit_of_work() as session:  # as if it had gone out over SMTP
        session.execute(update(Message).where(Message.id == accepted.json["id"]).values(status="sent"))
    raw = DSN % {b"message_id": accepted.json["id"].encode()}
    assert api.request("POST", "/v1/inbound/email", data=raw).json == {"taken_as": "bounce"}
    message = api.get(f"/v1/messages/{accepted.json['id']}").json
    assert message["status"] == "failed"
    assert message["reason"].startswith("bounced: ") and "No such user" in message["reason"]
    assert api.get("/v1/suppressions").json["items"][0]["reason"] == "hard_bounce"


def test_webhooks_are_signed_logged_and_refused_for_private_addresses(api, runtime, worker):
    with HttpTestServer() as receiver:
        receiver.respond("/hook", 200)
        # Subscribing a loopback URL needs the policy (see test_webhook_targets.py); deliveries
        # check again, so a workspace that stops allowing private targets stops delivering to them.
        api.patch("/v1/workspace", json={"policy": {"webhooks_allow_private": True}})
        created = api.post("/v1/webhooks", json={"url": f"{receiver.url}/hook", "events": ["message.delivered"]})
        assert created.status_code == 201 and created.json["secret"].startswith("whsec_")
        api.patch("/v1/workspace", json={"policy": {"webhooks_allow_private": False}})
        publish_template(api, variables=["first_name"], variants=VARIANTS)
        put_profile(api, "u1", channels=["email"])
        accepted = api.post("/v1/messages", json={"to": {"external_id": "u1"}, "template": "welcome"})
        finished(api, accepted.json["id"])
        log = wait_for(
            lambda: (
                (d := api.get(f"/v1/webhooks/{created.json['id']}/deliveries").json["items"])
                and d[0]["status"] != "pending"
                and d
            ),
            message="the webhook delivery",
        )
        assert log[0]["status"] == "failed" and "internal address" in log[0]["last_error"]  # loopback: SSRF guard
        assert receiver.requests == []

        api.patch("/v1/workspace", json={"policy": {"webhooks_allow_private": True}})
        again = api.post("/v1/messages", json={"to": {"external_id": "u1"}, "template": "welcome"})
        finished(api, again.json["id"])
        wait_for(lambda: receiver.requests, message="the webhook request")
    request = receiver.requests[0]
    body = json.loads(request.body)
    assert (body["type"], body["data"]["message_id"]) == ("message.delivered", again.json["id"])
    key = base64.b64decode(created.json["secret"].removeprefix("whsec_"))
    expected = sign_standard_webhook(
        key, request.headers["webhook-id"], request.headers["webhook-timestamp"], request.body
    )
    assert request.headers["webhook-signature"] == expected


@pytest.mark.settings(inbound_domain="in.ccm.test")
def test_ccm_smtp_inbound_receives_a_reply_over_smtp(api, runtime, settings, tmp_path):
    import email
    import email.policy
    import smtplib

    from tests.support.processes import Process, ccm_env, free_port

    publish_template(api, variables=["first_name"], variants=VARIANTS)
    put_profile(api, "u1", channels=["email"])
    accepted = api.post("/v1/messages", json={"to": {"external_id": "u1"}, "template": "welcome"})
    deliver_message(runtime, accepted.json["id"])
    sent = api.get(f"/v1/outbox?message_id={accepted.json['id']}").json["items"][0]["raw"]
    reply_to = email.message_from_string(sent, policy=email.policy.default)["Reply-To"]
    port = free_port()
    env = ccm_env(
        database_url=settings.database_url,
        redis_url=settings.redis_url,
        secret_key="test-secret",
        redis_namespace=settings.redis_namespace,
        inbound_domain="in.ccm.test",
        data_dir=tmp_path,
    )
    listener = Process(
        [__import__("sys").executable, "-m", "ccm", "smtp-inbound", "--host", "127.0.0.1", "--port", str(port)],
        env,
        tmp_path / "smtp-inbound.log",
    )
    try:
        wait_for(lambda: "receiving mail" in listener.output(), timeout=30, message="ccm smtp-inbound to start")
        with smtplib.SMTP("127.0.0.1", port, local_hostname="localhost") as smtp:
            smtp.sendmail(
                "u1@example.com",
                [reply_to],
                b"From: u1@example.com\r\nTo: "
                + reply_to.encode()
                + b"\r\nSubject: Re: News\r\nMessage-ID: <r1@example.com>\r\n\r\nSee you there.\r\n",
            )
            with pytest.raises(smtplib.SMTPRecipientsRefused):
                smtp.sendmail("x@example.com", ["someone@elsewhere.example"], b"Subject: relay?\r\n\r\nno\r\n")
        conversation = wait_for(lambda: api.get("/v1/conversations").json["items"], message="the conversation")
        thread = api.get(f"/v1/conversations/{conversation[0]['id']}").json["entries"]
        assert [(e["direction"], e["body"]) for e in thread][-1] == ("in", "See you there.")
    finally:
        listener.stop()


def test_a_report_that_overtakes_its_send_is_refused_until_the_send_is_recorded(api, app, runtime, sms_sent):
    from sqlalchemy import update

    from ccm.messages.models import DeliveryAttempt, Message

    message_id, account_id = sms_sent

    def set_message(**values):
        with runtime.db.unit_of_work() as session:  # the message and its attempt get the id together
            session.execute(update(Message).where(Message.id == message_id).values(**values))
            attempt = update(DeliveryAttempt).where(DeliveryAttempt.message_id == message_id)
            session.execute(attempt.values(provider_message_id=values["provider_message_id"]))

    set_message(status="sending", provider_message_id=None)  # Twilio answered; CCM has not written it yet
    early = post_twilio(app, account_id, "status", status_form("delivered"))
    assert (early.status_code, early.headers["Retry-After"]) == (503, "5")
    assert events(runtime) == 0  # nothing recorded, so the retry is not a "duplicate"
    set_message(status="sent", provider_message_id=SMS_SID)
    assert post_twilio(app, account_id, "status", status_form("delivered")).status_code == 200
    assert api.get(f"/v1/messages/{message_id}").json["status"] == "delivered"
    # A report about a message CCM never sent, while nothing is being sent, is simply kept.
    unknown = post_twilio(app, account_id, "status", status_form("delivered", MessageSid="SM" + "f" * 32))
    assert unknown.status_code == 200


def test_a_retried_help_is_answered_once(api, app, runtime, sms_sent):
    _, account_id = sms_sent
    form = {"MessageSid": "SM" + "e" * 32, "From": PHONE, "To": "+14155550199", "Body": "HELP"}
    for _ in range(3):
        assert post_twilio(app, account_id, "inbound", form).status_code == 200
    answers = [m for m in api.get("/v1/messages").json["items"] if m["template"] == "ccm.system-text"]
    assert len(answers) == 1


def test_a_telegram_user_blocking_the_bot_is_suppressed_and_opted_out(api, app, runtime):
    from tests.channels.test_provider_callbacks import TELEGRAM_SECRET, TELEGRAM_TOKEN, telegram_member

    account = add_provider(api, "telegram", "bot", {"bot_token": TELEGRAM_TOKEN, "webhook_secret": TELEGRAM_SECRET})
    put_profile(api, "bob", email=None, chat={"telegram": "987654321"}, channels=["chat"])
    api.post("/v1/profiles/bob/consent", json={"channel": "chat", "status": "granted"})
    update = telegram_member(730151009, "member", "kicked")
    for _ in range(2):  # Telegram retries; the second changes nothing
        answer = app.test_client().post(
            f"/hooks/{account['id']}/status", json=update, headers={"X-Telegram-Bot-Api-Secret-Token": TELEGRAM_SECRET}
        )
        assert answer.status_code == 200
    [entry] = api.get("/v1/suppressions").json["items"]
    assert (entry["channel"], entry["reason"]) == ("chat", "stop")
    history = api.get("/v1/profiles/bob/consent").json["history"]
    assert [(h["status"], h["source"]) for h in history][0] == ("revoked", "provider_unsubscribe")


def test_a_follow_up_with_a_template_is_checked_like_any_send(api, app, runtime, sms_sent):
    message_id, account_id = sms_sent
    form = {"MessageSid": "SM" + "d" * 32, "From": PHONE, "To": "+14155550199", "Body": "Tell me more"}
    post_twilio(app, account_id, "inbound", form)
    [conversation] = api.get("/v1/conversations?profile=u1").json["items"]
    path = f"/v1/conversations/{conversation['id']}/messages"
    publish_template(api, "coupon", variables=["code"], variants=[{"channel": "sms", "body": "Use {{ code }}"}])
    missing = api.post(path, json={"template": "coupon", "data": {}})
    assert (missing.status_code, missing.json["error"]["details"]["field"]) == (422, "data.code")
    publish_template(api, "mail-only", variants=[VARIANTS[1]], variables=["first_name"])
    email_only = api.post(path, json={"template": "mail-only", "data": {}})  # the thread is on SMS
    assert (email_only.status_code, email_only.json["error"]["details"]["field"]) == (422, "channel")
    api.post("/v1/profiles/u1/consent", json={"channel": "sms", "status": "revoked"})
    key = {"Idempotency-Key": "follow-up-1"}
    first = api.post(path, json={"template": "welcome", "data": {"first_name": "Ada"}}, headers=key)
    again = api.post(path, json={"template": "welcome", "data": {"first_name": "Ada"}}, headers=key)
    assert first.status_code == 202 and again.json == first.json
    assert again.headers["Idempotent-Replayed"] == "true"
    deliver_message(runtime, first.json["id"])
    followed = api.get(f"/v1/messages/{first.json['id']}").json
    assert (followed["category"], followed["status"]) == ("marketing", "skipped")  # consent still rules
    assert followed["reason"] == "no_consent"


def test_only_a_stop_is_confirmed_to_a_blocked_number(api, app, runtime, sms_sent):
    _, account_id = sms_sent
    post_twilio(app, account_id, "status", status_form("undelivered", ErrorCode="30005"))  # hard bounce
    form = {"MessageSid": "SM" + "9" * 32, "From": PHONE, "To": "+14155550199", "Body": "HELP"}
    post_twilio(app, account_id, "inbound", form)
    [answer] = [m for m in api.get("/v1/messages").json["items"] if m["template"] == "ccm.system-text"]
    deliver_message(runtime, answer["id"])
    answered = api.get(f"/v1/messages/{answer['id']}").json
    assert (answered["status"], answered["route"][0]["reason"]) == ("skipped", "suppressed:hard_bounce")


def test_twilio_gets_an_empty_twiml_answer_and_other_providers_json(api, app, runtime, sms_sent):
    _, account_id = sms_sent
    form = {"MessageSid": "SM" + "8" * 32, "From": PHONE, "To": "+14155550199", "Body": "thanks"}
    answer = post_twilio(app, account_id, "inbound", form)
    assert (answer.mimetype, answer.get_data()) == ("text/xml", b'<?xml version="1.0" encoding="UTF-8"?><Response/>')
    gateway = add_provider(
        api, "webhook", "gateway", {"url": "http://127.0.0.1:9/send", "secret": GATEWAY_SECRET, "channel": "sms"}
    )
    report = post_gateway(
        app,
        gateway["id"],
        "status",
        {"type": "message.status", "data": {"id": "gw-9", "status": "delivered"}},
        event_id="evt-9",
    )
    assert (report.status_code, report.json) == (200, {"ok": True})
