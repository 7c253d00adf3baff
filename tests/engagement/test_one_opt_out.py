"""Provider reports go through the one opt-out, driven by real traffic: a complaint reported fifty
times (each with its own event id) suppresses once and revokes once; a hard bounce suppresses and
leaves consent alone. (STOP keywords and one-click unsubscribes: test_loop.py, test_tracking.py.)"""

from __future__ import annotations

import pytest
from sqlalchemy import select

from ccm.consent.models import ConsentRecord
from ccm.messages.delivery import deliver_message
from ccm.suppression.models import Suppression
from tests.channels.test_provider_accounts import MAILGUN_DOMAIN, MAILGUN_KEY, add_provider
from tests.engagement.test_whole_life import SIGNING_KEY, mailgun_event
from tests.support.factories import publish_template, put_profile
from tests.support.http_server import HttpTestServer

MAILGUN_ID = "20261125.7@mg.example.com"


@pytest.fixture
def emailed(api, runtime):
    api.patch("/v1/workspace", json={"policy": {"quiet_hours": {"marketing": {}}}})
    with HttpTestServer() as mailgun:
        mailgun.respond(f"/v3/{MAILGUN_DOMAIN}/messages.mime", 200, json={"id": f"<{MAILGUN_ID}>", "message": "ok"})
        config = {"api_key": MAILGUN_KEY, "domain": MAILGUN_DOMAIN, "base_url": mailgun.url}
        account = add_provider(api, "mailgun", "mailgun", {**config, "webhook_signing_key": SIGNING_KEY})
        publish_template(api, variants=[{"channel": "email", "subject": "Hi", "html": "<p>Hi</p>"}])
        put_profile(api, "u1", channels=["email"])
        message_id = api.post("/v1/messages", json={"to": {"external_id": "u1"}, "template": "welcome"}).json["id"]
        deliver_message(runtime, message_id)
    assert api.get(f"/v1/messages/{message_id}").json["status"] == "sent"
    return message_id, account["id"]


def report(app, account_id, kind, event_id):
    return app.test_client().post(f"/hooks/{account_id}/status", json=mailgun_event(kind, MAILGUN_ID, event_id))


def rows(runtime):
    with runtime.db.unit_of_work() as session:
        suppressed = [(s.channel, s.reason) for s in session.scalars(select(Suppression))]
        ledger = [(r.channel, r.status, r.source) for r in session.scalars(select(ConsentRecord))]
    return suppressed, ledger


def test_fifty_complaints_suppress_once_and_revoke_once(api, app, runtime, emailed):
    message_id, account_id = emailed
    for n in range(50):  # fifty distinct reports of the one complaint (an ESP retrying, a feedback loop)
        assert report(app, account_id, "complained", f"complaint-{n}").status_code == 200
    assert rows(runtime) == ([("email", "complaint")], [("email", "revoked", "provider_complaint")])
    assert api.get(f"/v1/messages/{message_id}").json["status"] == "sent"  # a complaint is no delivery outcome
    again = api.post("/v1/messages", json={"to": {"external_id": "u1"}, "template": "welcome"}).json["id"]
    deliver_message(runtime, again)
    assert api.get(f"/v1/messages/{again}").json["reason"] == "suppressed:complaint"


def test_a_hard_bounce_after_delivery_suppresses_without_touching_consent(api, app, runtime, emailed):
    message_id, account_id = emailed
    report(app, account_id, "delivered", "ev-delivered")
    bounced = mailgun_event("failed", MAILGUN_ID, "ev-bounce")
    bounced["event-data"]["severity"] = "permanent"
    assert app.test_client().post(f"/hooks/{account_id}/status", json=bounced).status_code == 200
    assert api.get(f"/v1/messages/{message_id}").json["status"] == "delivered"  # never regresses
    assert rows(runtime) == ([("email", "hard_bounce")], [])
