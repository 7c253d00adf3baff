"""The /v1/providers API: accounts validated per kind, secrets sealed at rest and never returned,
PATCH that merges, credential checks against a loopback provider, and workspace isolation."""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from sqlalchemy import select

from ccm.channels.models import ProviderAccount
from ccm.messages.delivery import deliver_message
from tests.support.factories import publish_template, put_profile
from tests.support.http_server import HttpTestServer, RecordedRequest, refused_url
from tests.support.smtp_server import SmtpTestServer

MASK = "********"
TWILIO_SID = "AC" + "0123456789abcdef" * 2
TWILIO_TOKEN = "twilio-auth-token-5ecret"
TELEGRAM_TOKEN = "123456:telegram-Bot-Token_5ecret"
MAILGUN_KEY = "key-mailgun-api-5ecret"
MAILGUN_DOMAIN = "mg.example.com"
WEBHOOK_KEY = b"accounts-webhook-key-24b"
WEBHOOK_SECRET = "whsec_" + base64.b64encode(WEBHOOK_KEY).decode()
SMTP_PASSWORD = "smtp-pa55-5ecret"
SMS_PATH = f"/2010-04-01/Accounts/{TWILIO_SID}/Messages.json"
SMS_ACCEPTED = {"status": 201, "json": {"sid": "SM" + "a" * 32, "status": "queued"}}


def twilio_config(base_url: str, **overrides: Any) -> dict[str, Any]:
    return {
        "account_sid": TWILIO_SID,
        "auth_token": TWILIO_TOKEN,
        "from_number": "+14155550199",
        "base_url": base_url,
        **overrides,
    }


def add_provider(api: Any, kind: str, label: str, config: dict[str, Any], **fields: Any) -> dict[str, Any]:
    response = api.post("/v1/providers", json={"kind": kind, "label": label, "config": config, **fields})
    assert response.status_code == 201, response.json
    return response.json


def provider_rows(runtime: Any) -> list[dict[str, Any]]:
    """The ``provider`` table as stored, every column."""
    table = ProviderAccount.__table__
    with runtime.db.unit_of_work() as session:
        return [dict(row) for row in session.execute(select(table)).mappings()]


def webhook_signature_ok(request: RecordedRequest, key: bytes = WEBHOOK_KEY) -> bool:
    """Verifies a Standard Webhooks signature the way a receiver would."""
    signed = f"{request.headers['webhook-id']}.{request.headers['webhook-timestamp']}.".encode() + request.body
    expected = "v1," + base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()
    return hmac.compare_digest(request.headers["webhook-signature"], expected)


def send_sms(api: Any, runtime: Any) -> dict[str, Any]:
    """Send one SMS to u1, deliver it in this thread, and return the message."""
    if api.get("/v1/templates/ping").status_code == 404:
        publish_template(
            api,
            "ping",
            variables=["first_name"],
            variants=[{"channel": "sms", "locale": "en", "body": "Hi {{ first_name }}"}],
        )
        put_profile(api, "u1", phone="+14155550100")
    accepted = api.post("/v1/messages", json={"to": {"external_id": "u1"}, "template": "ping", "channel": "sms"})
    assert accepted.status_code == 202, accepted.json
    deliver_message(runtime, accepted.json["id"])
    return api.get(f"/v1/messages/{accepted.json['id']}").json


@pytest.fixture
def server() -> Iterator[HttpTestServer]:
    with HttpTestServer() as running:
        yield running


@dataclass(frozen=True)
class Kind:
    """One provider kind: a valid config (given the loopback server's URL), its secret values,
    and, for kinds with a credentials check, what the check calls and how it carries the secret."""

    kind: str
    config: Callable[[str], dict[str, Any]]
    secrets: dict[str, str]
    channel: str
    check_path: str | None = None
    check_ok: dict[str, Any] = field(default_factory=dict)
    carries_secret: Callable[[RecordedRequest], bool] | None = None
    refused: dict[str, Any] = field(default_factory=dict)


KINDS = [
    Kind(
        "twilio",
        twilio_config,
        {"auth_token": TWILIO_TOKEN},
        "sms",
        check_path=f"/2010-04-01/Accounts/{TWILIO_SID}.json",
        check_ok={"json": {"sid": TWILIO_SID}},
        carries_secret=lambda r: r.method == "GET" and r.basic_auth() == (TWILIO_SID, TWILIO_TOKEN),
        refused={"status": 401, "json": {"code": 20003, "message": f"Authenticate {TWILIO_TOKEN}"}},
    ),
    Kind(
        "telegram",
        lambda base: {"bot_token": TELEGRAM_TOKEN, "base_url": base},
        {"bot_token": TELEGRAM_TOKEN},
        "chat",
        check_path=f"/bot{TELEGRAM_TOKEN}/getMe",
        check_ok={"json": {"ok": True, "result": {"id": 123456}}},
        carries_secret=lambda r: r.method == "GET",  # the token is the path itself
        refused={
            "status": 401,
            "json": {"ok": False, "error_code": 401, "description": f"Unauthorized: {TELEGRAM_TOKEN}"},
        },
    ),
    Kind(
        "mailgun",
        lambda base: {"api_key": MAILGUN_KEY, "domain": MAILGUN_DOMAIN, "base_url": base},
        {"api_key": MAILGUN_KEY},
        "email",
        check_path=f"/v3/domains/{MAILGUN_DOMAIN}",
        check_ok={"json": {"domain": {"name": MAILGUN_DOMAIN}}},
        carries_secret=lambda r: r.method == "GET" and r.basic_auth() == ("api", MAILGUN_KEY),
        refused={"status": 401, "body": f"Forbidden: key {MAILGUN_KEY}"},
    ),
    Kind(
        "webhook",
        lambda base: {"url": f"{base}/gateway", "secret": WEBHOOK_SECRET, "channel": "sms"},
        {"secret": WEBHOOK_SECRET},
        "sms",
        check_path="/gateway",
        check_ok={"status": 204},
        carries_secret=lambda r: r.json() == {"type": "ping"} and webhook_signature_ok(r),
        refused={"status": 401, "json": {"error": f"signature does not match {WEBHOOK_SECRET}"}},
    ),
    Kind("slack", lambda base: {"base_url": f"{base}/services/"}, {}, "chat"),
    Kind("smtp", lambda base: {"url": f"smtp://user:{SMTP_PASSWORD}@127.0.0.1:2525"}, {"url": SMTP_PASSWORD}, "email"),
    Kind("local_outbox", lambda base: {"channel": "sms"}, {}, "sms"),
]
CHECKED = [kind for kind in KINDS if kind.check_path]


@pytest.mark.parametrize("kind", KINDS, ids=[kind.kind for kind in KINDS])
def test_each_kind_is_created_with_its_secrets_masked_and_sealed(api, runtime, server, kind):
    created = api.post("/v1/providers", json={"kind": kind.kind, "label": "main", "config": kind.config(server.url)})

    assert created.status_code == 201, created.json
    assert (created.json["kind"], created.json["channel"], created.json["priority"]) == (kind.kind, kind.channel, 100)
    shown = [
        created.get_data(as_text=True),
        api.get(f"/v1/providers/{created.json['id']}").get_data(as_text=True),
        api.get("/v1/providers").get_data(as_text=True),
    ]
    [row] = provider_rows(runtime)
    for secret in kind.secrets.values():
        assert not any(secret in text for text in shown)
        assert secret not in repr(row)  # no column holds it in plain text, sealed_secrets included
    assert not set(kind.secrets) & set(row["settings"])
    assert created.json["config"] == {**row["settings"], **{name: MASK for name in kind.secrets}}
    if kind.secrets:
        sealed = base64.urlsafe_b64decode(row["sealed_secrets"])
        assert not any(secret.encode() in sealed for secret in kind.secrets.values())  # encrypted, not encoded
        opened = runtime.secret_box.open(row["sealed_secrets"])
        assert all(secret in opened[name] for name, secret in kind.secrets.items())
    else:
        assert row["sealed_secrets"] == ""


@pytest.mark.parametrize("kind", CHECKED, ids=[kind.kind for kind in CHECKED])
def test_check_is_ok_and_proves_the_stored_credentials(api, server, kind):
    server.respond(kind.check_path, **kind.check_ok)
    account = add_provider(api, kind.kind, "main", kind.config(server.url))

    checked = api.post(f"/v1/providers/{account['id']}/check")

    assert (checked.status_code, checked.json) == (200, {"ok": True, "error": None})
    [request] = server.requests
    assert request.path == kind.check_path
    assert kind.carries_secret(request)


@pytest.mark.parametrize("kind", CHECKED, ids=[kind.kind for kind in CHECKED])
def test_check_reports_refused_credentials_without_the_secret(api, server, kind):
    server.respond(kind.check_path, **kind.refused)  # the answer even quotes the secret back
    account = add_provider(api, kind.kind, "main", kind.config(server.url))

    checked = api.post(f"/v1/providers/{account['id']}/check")

    assert checked.status_code == 200
    assert checked.json["ok"] is False
    assert checked.json["error"].startswith("auth_failed: ")
    assert "401" in checked.json["error"]
    for secret in kind.secrets.values():
        assert secret not in checked.get_data(as_text=True)


def test_check_of_an_unreachable_provider_is_not_ok(api):
    account = add_provider(api, "twilio", "main", twilio_config(refused_url()))

    checked = api.post(f"/v1/providers/{account['id']}/check")

    assert checked.json["ok"] is False
    assert checked.json["error"].startswith("network_error: ")
    assert TWILIO_TOKEN not in checked.json["error"]


def test_check_of_smtp_logs_in_and_keeps_the_password_out_of_errors(api):
    with SmtpTestServer(auth=("user", SMTP_PASSWORD)) as smtp:
        good = add_provider(api, "smtp", "good", {"url": smtp.url(user="user", password=SMTP_PASSWORD)})
        bad = add_provider(api, "smtp", "bad", {"url": smtp.url(user="user", password="wrong-5ecret")})

        assert api.post(f"/v1/providers/{good['id']}/check").json == {"ok": True, "error": None}
        refused = api.post(f"/v1/providers/{bad['id']}/check").json

    assert refused["ok"] is False and refused["error"].startswith("auth_failed: ")
    assert "wrong-5ecret" not in refused["error"]


def test_slack_check_is_ok_without_calling_anything(api, server):
    account = add_provider(api, "slack", "hooks", {"base_url": f"{server.url}/services/"})
    assert api.post(f"/v1/providers/{account['id']}/check").json == {"ok": True, "error": None}
    assert server.requests == []


INVALID = [
    # (body, field named in the 422)
    ({"kind": "twilio", "config": twilio_config("http://127.0.0.1:9", account_sid="AC123")}, "config.account_sid"),
    (
        {
            "kind": "twilio",
            "config": {k: v for k, v in twilio_config("http://127.0.0.1:9").items() if k != "auth_token"},
        },
        "config.auth_token",
    ),
    ({"kind": "twilio", "config": twilio_config("http://127.0.0.1:9", from_number="555-0199")}, "config.from_number"),
    ({"kind": "twilio", "config": twilio_config("http://127.0.0.1:9", rate_per_second=0)}, "config.rate_per_second"),
    ({"kind": "twilio", "config": twilio_config("http://127.0.0.1:9", region="us1")}, "config.region"),
    ({"kind": "telegram", "config": {"bot_token": "not-a-token"}}, "config.bot_token"),
    ({"kind": "mailgun", "config": {"api_key": "k", "domain": "not a domain"}}, "config.domain"),
    (
        {"kind": "webhook", "config": {"url": "http://127.0.0.1:9/gw", "secret": "whsec_short", "channel": "sms"}},
        "config.secret",
    ),
    ({"kind": "webhook", "config": {"url": "http://127.0.0.1:9/gw", "secret": WEBHOOK_SECRET}}, "config.channel"),
    ({"kind": "slack", "config": {"base_url": "http://hooks.example.com/services/"}}, "config.base_url"),
    ({"kind": "smtp", "config": {"url": "smtp://127.0.0.1:25", "timeout": 0}}, "config.timeout"),
    pytest.param({"kind": "smtp", "config": {"url": f"smtp://user:{SMTP_PASSWORD}@127.0.0.1:notaport"}}, "config.url"),
    ({"kind": "fax", "config": {}}, "kind"),
    ({"kind": "telegram", "channel": "sms", "config": {"bot_token": TELEGRAM_TOKEN}}, "channel"),
    ({"kind": "twilio", "channel": "chat", "config": twilio_config("http://127.0.0.1:9")}, "channel"),
    ({"kind": "mailgun", "channel": "fax", "config": {"api_key": "k", "domain": MAILGUN_DOMAIN}}, "channel"),
    ({"kind": "local_outbox", "priority": -1}, "priority"),
    ({"kind": "local_outbox", "label": ""}, "label"),
]


@pytest.mark.parametrize("body, field", INVALID, ids=lambda value: value if isinstance(value, str) else value["kind"])
def test_invalid_account_is_422_naming_the_field_and_creates_nothing(api, runtime, body, field):
    response = api.post("/v1/providers", json={"label": "main", **body})

    assert response.status_code == 422, response.json
    assert response.json["error"]["details"]["field"] == field
    assert api.get("/v1/providers").json["items"] == []
    assert provider_rows(runtime) == []


def test_a_twilio_account_without_a_sender_is_422_naming_the_config(api):
    config = twilio_config("http://127.0.0.1:9", from_number=None)
    response = api.post("/v1/providers", json={"kind": "twilio", "label": "main", "config": config})
    assert response.status_code == 422
    assert response.json["error"]["details"]["field"] == "config"


@pytest.mark.parametrize(
    "config",
    [
        {"url": f"smtp://user:{SMTP_PASSWORD}@127.0.0.1:notaport"},
        {"url": f"smtp://user:{SMTP_PASSWORD}@127.0.0.1:25?starttls=maybe"},
        {"url": f"http://user:{SMTP_PASSWORD}@127.0.0.1:25"},
        {"url": [SMTP_PASSWORD]},
    ],
)
def test_a_refused_config_never_echoes_its_secret(api, config):
    response = api.post("/v1/providers", json={"kind": "smtp", "label": "main", "config": config})
    assert response.status_code == 422
    assert SMTP_PASSWORD not in response.get_data(as_text=True)


def test_a_duplicate_label_is_409_and_creates_nothing(api, runtime, server):
    first = add_provider(api, "twilio", "main", twilio_config(server.url))

    again = api.post(
        "/v1/providers", json={"kind": "telegram", "label": "main", "config": {"bot_token": TELEGRAM_TOKEN}}
    )

    assert again.status_code == 409
    assert again.json["error"]["details"]["field"] == "label"
    assert [row["id"] for row in provider_rows(runtime)] == [first["id"]]


def test_renaming_to_a_taken_label_is_409(api, server):
    add_provider(api, "twilio", "main", twilio_config(server.url))
    other = add_provider(api, "twilio", "backup", twilio_config(server.url))
    response = api.patch(f"/v1/providers/{other['id']}", json={"label": "main"})
    assert response.status_code == 409


def test_patch_merges_config_and_keeps_an_omitted_secret(api, server):
    server.respond(f"/2010-04-01/Accounts/{TWILIO_SID}.json", json={"sid": TWILIO_SID})
    account = add_provider(api, "twilio", "main", twilio_config(server.url))

    patched = api.patch(f"/v1/providers/{account['id']}", json={"config": {"from_number": "+14155550111"}})

    assert patched.status_code == 200, patched.json
    assert patched.json["config"] == {**account["config"], "from_number": "+14155550111"}
    assert api.post(f"/v1/providers/{account['id']}/check").json["ok"] is True
    [request] = server.requests
    assert request.basic_auth() == (TWILIO_SID, TWILIO_TOKEN)


def test_patch_with_the_mask_keeps_the_secret_and_sends_with_it(api, runtime, server):
    server.respond(SMS_PATH, **SMS_ACCEPTED)
    account = add_provider(api, "twilio", "main", twilio_config(server.url))

    patched = api.patch(
        f"/v1/providers/{account['id']}",
        json={"priority": 5, "config": {"auth_token": MASK, "from_number": "+14155550111"}},
    )

    assert patched.status_code == 200, patched.json
    assert (patched.json["priority"], patched.json["config"]["auth_token"]) == (5, MASK)
    message = send_sms(api, runtime)
    assert message["status"] == "sent", message
    [request] = server.requests
    assert request.basic_auth() == (TWILIO_SID, TWILIO_TOKEN)
    assert request.form()["From"] == "+14155550111"


def test_patch_with_a_new_secret_replaces_it(api, runtime, server):
    server.respond(SMS_PATH, **SMS_ACCEPTED)
    account = add_provider(api, "twilio", "main", twilio_config(server.url))

    api.patch(f"/v1/providers/{account['id']}", json={"config": {"auth_token": "rotated-5ecret"}})

    assert send_sms(api, runtime)["status"] == "sent"
    assert server.requests[0].basic_auth() == (TWILIO_SID, "rotated-5ecret")
    assert "rotated-5ecret" not in repr(provider_rows(runtime))


def test_invalid_patch_is_422_and_changes_nothing(api, runtime, server):
    account = add_provider(api, "twilio", "main", twilio_config(server.url))
    before = provider_rows(runtime)

    response = api.patch(
        f"/v1/providers/{account['id']}",
        json={"label": "renamed", "config": {"account_sid": "nope", "auth_token": "other-5ecret"}},
    )

    assert response.status_code == 422
    assert response.json["error"]["details"]["field"] == "config.account_sid"
    assert provider_rows(runtime) == before


def test_changing_priority_reorders_failover(api, runtime):
    with HttpTestServer() as first, HttpTestServer() as second:
        for server in (first, second):
            server.respond(SMS_PATH, **SMS_ACCEPTED)
        add_provider(api, "twilio", "first", twilio_config(first.url), priority=1)
        backup = add_provider(api, "twilio", "second", twilio_config(second.url), priority=2)
        assert send_sms(api, runtime)["status"] == "sent"
        assert (len(first.requests), len(second.requests)) == (1, 0)

        api.patch(f"/v1/providers/{backup['id']}", json={"priority": 0})
        message = send_sms(api, runtime)

        assert message["attempts"][0]["hops"][0]["account"] == backup["id"]
        assert (len(first.requests), len(second.requests)) == (1, 1)


def test_a_disabled_or_deleted_account_is_not_used(api, runtime, server):
    server.respond(SMS_PATH, **SMS_ACCEPTED)
    account = add_provider(api, "twilio", "main", twilio_config(server.url))

    api.patch(f"/v1/providers/{account['id']}", json={"enabled": False})
    assert send_sms(api, runtime)["reason"] == "no_provider"
    api.patch(f"/v1/providers/{account['id']}", json={"enabled": True})
    assert send_sms(api, runtime)["status"] == "sent"
    assert api.delete(f"/v1/providers/{account['id']}").status_code == 204
    assert send_sms(api, runtime)["reason"] == "no_provider"
    assert len(server.requests) == 1


def test_another_workspaces_provider_is_404(api, app, runtime, server):
    from ccm.auth.service import create_api_key
    from ccm.workspaces.service import get_or_create_workspace
    from tests.support.api import ApiClient

    account = add_provider(api, "twilio", "main", twilio_config(server.url))
    with runtime.db.unit_of_work() as session:
        other, _ = get_or_create_workspace(session=session, name="other")
        _, key = create_api_key(session=session, workspace_id=other.id)
    stranger = ApiClient(app.test_client(), key)

    path = f"/v1/providers/{account['id']}"
    for response in (
        stranger.get(path),
        stranger.patch(path, json={"priority": 1}),
        stranger.delete(path),
        stranger.post(f"{path}/check"),
    ):
        assert response.status_code == 404, response.json
    assert stranger.get("/v1/providers").json["items"] == []
    assert api.get(path).json == account
    assert server.requests == []
