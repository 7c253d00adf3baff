"""The admin screens through the Flask test client: each page and form as an admin; every form
refused (403, nothing changed) to the other roles; bad input a 4xx naming the field, never a 500."""

from __future__ import annotations

import datetime as dt
import re

import pytest
from sqlalchemy import func, select

from ccm.audit.models import AuditEntry
from ccm.auth.models import ApiKey
from ccm.channels.models import ProviderAccount
from ccm.users.models import User
from ccm.webhooks.models import WebhookEndpoint
from ccm.webhooks.service import emit
from ccm.workspaces.models import Workspace
from tests.support.api import wait_for
from tests.support.http_server import HttpTestServer, refused_url
from tests.web.conftest import PASSWORD, csrf_of

PAGES = ("/admin/users", "/admin/providers", "/admin/keys", "/admin/audit", "/admin/settings", "/admin/webhooks")
SID = "AC" + "1" * 32


def audited(runtime, action):
    with runtime.db.unit_of_work() as session:
        rows = session.scalars(select(AuditEntry).where(AuditEntry.action == action).order_by(AuditEntry.id)).all()
        return [(row.actor, row.target_id, row.before, row.after) for row in rows]


def field_error(html, field_id):
    found = re.search(rf'<p class="field-error" id="{re.escape(field_id)}-error">([^<]*)</p>', html)
    return found and found.group(1)


@pytest.mark.parametrize("path", PAGES)
def test_an_admin_reads_each_admin_page(admin, path):
    answer = admin.get(path)
    assert answer.status_code == 200, answer.text
    assert 'aria-label="Admin"' in answer.text and "<label" in answer.text


# Users


def test_an_admin_adds_a_user_changes_its_role_and_disables_it_all_audited(admin, app, runtime, make_user):
    added = admin.post_form("/admin/users", email="Neo@example.com", role="agent")
    assert added.status_code == 200 and "one-time password (shown once)" in added.text
    with runtime.db.unit_of_work() as session:
        neo = session.scalars(select(User).where(User.email_key == "neo@example.com")).one()
    assert admin.post_form(f"/admin/users/{neo.id}/role", role="marketer").status_code == 200
    make_user("viewer", email="other@example.com")
    other = app.test_client()
    assert other.post("/login", data={"email": "other@example.com", "password": PASSWORD}).status_code == 302
    with runtime.db.unit_of_work() as session:
        other_id = session.scalars(select(User.id).where(User.email_key == "other@example.com")).one()
    disabled = admin.post_form(f"/admin/users/{other_id}/disable")
    assert disabled.status_code == 200 and "their sessions ended" in disabled.text
    assert other.get("/").status_code == 302  # logged out at once
    assert other.post("/login", data={"email": "other@example.com", "password": PASSWORD}).status_code == 401
    assert admin.post_form(f"/admin/users/{other_id}/enable").status_code == 200
    assert [(a, t) for a, t, _, _ in audited(runtime, "user.create")][-2:] == [
        ("user:admin@example.com", neo.id),
        ("system", other_id),
    ]
    assert audited(runtime, "user.role")[0][3]["role"] == "marketer"
    assert audited(runtime, "user.disable")[0][:2] == ("user:admin@example.com", other_id)
    assert audited(runtime, "user.enable")[0][:2] == ("user:admin@example.com", other_id)


@pytest.mark.parametrize(
    ("form", "status", "field"),
    [
        ({"email": "not an address", "role": "agent"}, 422, "email"),
        ({"email": "x@example.com", "role": "standard"}, 422, "role"),
        ({"email": "admin@example.com", "role": "agent"}, 409, "email"),
    ],
)
def test_a_bad_new_user_is_refused_naming_the_field(admin, runtime, form, status, field):
    answer = admin.post_form("/admin/users", **form)
    assert answer.status_code == status and field_error(answer.text, field), answer.text
    with runtime.db.unit_of_work() as session:
        assert session.scalar(select(func.count()).select_from(User)) == 1


def test_the_last_admin_is_neither_disabled_nor_demoted_and_an_unknown_user_is_404(admin, runtime):
    with runtime.db.unit_of_work() as session:
        me = session.scalars(select(User.id)).one()
    assert admin.post_form(f"/admin/users/{me}/disable").status_code == 409
    demoted = admin.post_form(f"/admin/users/{me}/role", role="viewer")
    assert demoted.status_code == 409 and "last admin" in demoted.text
    assert admin.post_form(f"/admin/users/{me}/role", role="root").status_code == 422
    assert admin.post_form("/admin/users/usr_nobody/disable").status_code == 404
    assert admin.get("/admin/users").status_code == 200


# Providers


def test_an_admin_configures_a_provider_from_its_config_model_and_its_secret_is_never_shown(admin, runtime):
    form = admin.get("/admin/providers/new?kind=twilio").text
    for name in ("account_sid", "auth_token", "from_number", "messaging_service_sid", "whatsapp", "base_url"):
        assert f'name="config.{name}"' in form and f'<label for="config-{name}"' in form
    assert 'type="password" id="config-auth_token"' in form and 'type="checkbox" id="config-whatsapp"' in form
    config = {"config.account_sid": SID, "config.auth_token": "tw-5ecret", "config.from_number": "+14155550199"}
    added = admin.post_form("/admin/providers", {"kind": "twilio", "label": "Twilio", "priority": "5", **config})
    assert added.status_code == 200 and "Added Twilio" in added.text
    with runtime.db.unit_of_work() as session:
        account = session.scalars(select(ProviderAccount)).one()
    edit = admin.get(f"/admin/providers/{account.id}").text
    assert "tw-5ecret" not in edit and "set; leave empty to keep it" in edit and SID in edit
    saved = admin.post_form(
        f"/admin/providers/{account.id}",
        {"label": "Twilio US", "priority": "7", "config.account_sid": SID, "config.from_number": "+14155550100"},
    )
    assert saved.status_code == 200 and "Saved Twilio US" in saved.text
    with runtime.db.unit_of_work() as session:
        account = session.get(ProviderAccount, account.id)
        secrets = runtime.secret_box.open(account.sealed_secrets)
    assert secrets == {"auth_token": "tw-5ecret"} and account.settings["from_number"] == "+14155550100"
    assert "tw-5ecret" not in str(audited(runtime, "provider.create") + audited(runtime, "provider.update"))
    assert audited(runtime, "provider.update")[0][0] == "user:admin@example.com"


def test_a_provider_is_checked_against_the_provider_itself(admin, runtime, smtp_server):
    admin.post_form(
        "/admin/providers", {"kind": "smtp", "label": "Relay", "priority": "1", "config.url": smtp_server.url()}
    )
    admin.post_form(
        "/admin/providers",
        {"kind": "smtp", "label": "Dead", "priority": "2", "config.url": refused_url().replace("http", "smtp")},
    )
    with runtime.db.unit_of_work() as session:
        ids = dict(session.execute(select(ProviderAccount.label, ProviderAccount.id)).all())
    assert "Relay: the check passed." in admin.post_form(f"/admin/providers/{ids['Relay']}/check").text
    failed = admin.post_form(f"/admin/providers/{ids['Dead']}/check")
    assert failed.status_code == 200 and "Dead: the check failed:" in failed.text


def test_a_provider_is_disabled_and_enabled(admin, runtime):
    admin.post_form(
        "/admin/providers", {"kind": "local_outbox", "label": "Box", "priority": "1", "config.channel": "sms"}
    )
    with runtime.db.unit_of_work() as session:
        account_id = session.scalars(select(ProviderAccount.id)).one()
    assert "Box is disabled" in admin.post_form(f"/admin/providers/{account_id}/disable").text
    with runtime.db.unit_of_work() as session:
        assert session.get(ProviderAccount, account_id).enabled is False
    assert "Box is enabled" in admin.post_form(f"/admin/providers/{account_id}/enable").text
    assert [after["enabled"] for _, _, _, after in audited(runtime, "provider.update")] == [False, True]


@pytest.mark.parametrize(
    ("form", "field_id"),
    [
        (
            {"kind": "twilio", "label": "T", "priority": "1", "config.account_sid": "AC1", "config.auth_token": "x"},
            "config-account_sid",
        ),
        (
            {
                "kind": "twilio",
                "label": "T",
                "priority": "1",
                "config.account_sid": SID,
                "config.from_number": "+14155550199",
            },
            "config-auth_token",
        ),
        (
            {"kind": "twilio", "label": "", "priority": "1", "config.account_sid": SID, "config.auth_token": "x"},
            "label",
        ),
        ({"kind": "smtp", "label": "S", "priority": "soon", "config.url": "smtp://127.0.0.1:25"}, "priority"),
        (
            {
                "kind": "webhook",
                "label": "W",
                "priority": "1",
                "config.url": "http://127.0.0.1/",
                "config.secret": "whsec_eA==",
                "config.channel": "fax",
            },
            "config-channel",
        ),
        ({"kind": "pigeon", "label": "P", "priority": "1"}, "kind"),
    ],
)
def test_a_bad_provider_form_is_refused_naming_the_field(admin, runtime, form, field_id):
    answer = admin.post_form("/admin/providers", form)
    assert answer.status_code == 422 and field_error(answer.text, field_id), answer.text
    if form["kind"] != "pigeon":  # what was typed is shown again, but never a secret
        assert f'id="label" name="label" value="{form["label"]}"' in answer.text
        assert 'value="x"' not in answer.text and "leave empty to keep it" not in answer.text
    with runtime.db.unit_of_work() as session:
        assert session.scalar(select(func.count()).select_from(ProviderAccount)) == 0


def test_an_unknown_provider_is_404_and_an_unknown_kind_422(admin):
    assert admin.get("/admin/providers/prv_nope").status_code == 404
    assert admin.post_form("/admin/providers/prv_nope/check").status_code == 404
    assert admin.post_form("/admin/providers/prv_nope", label="x", priority="1").status_code == 404
    assert admin.get("/admin/providers/new?kind=pigeon").status_code == 422


# API keys


def test_an_admin_creates_a_write_key_shown_once_and_revokes_it(admin, app, runtime):
    created = admin.post_form("/admin/keys", name="site", role="write")
    token = re.search(r'id="new-token" value="([^"]+)"', created.text).group(1)
    assert created.status_code == 200 and token.startswith("ccm_")
    listing = admin.get("/admin/keys").text
    assert token not in listing and token[:12] in listing and "write" in listing
    track = {"type": "track", "userId": "u1", "event": "Signed Up"}
    headers = {"Authorization": f"Bearer {token}"}
    assert "<td>never</td>" in listing
    assert app.test_client().post("/v1/track", json=track, headers=headers).status_code < 300
    used = re.search(r'<time datetime="([^"]+)">', admin.get("/admin/keys").text)  # the write key, just used
    assert used and used.group(1).startswith(dt.datetime.now(dt.UTC).strftime("%Y-%m-%d"))
    with runtime.db.unit_of_work() as session:
        key_id = session.scalars(select(ApiKey.id).where(ApiKey.name == "site")).one()
    assert admin.post_form(f"/admin/keys/{key_id}/revoke").status_code == 200
    assert app.test_client().post("/v1/track", json=track, headers=headers).status_code == 401
    assert [a for a, *_ in audited(runtime, "api_key.create") + audited(runtime, "api_key.revoke")] == [
        "user:admin@example.com"
    ] * 2
    assert admin.post_form("/admin/keys/key_nope/revoke").status_code == 404


@pytest.mark.parametrize(("form", "field_id"), [({"role": "root"}, "key-role"), ({"name": "a\x01b"}, "name")])
def test_a_bad_key_is_refused_naming_the_field(admin, runtime, form, field_id):
    answer = admin.post_form("/admin/keys", {"name": "k", "role": "standard", **form})
    assert answer.status_code == 422 and field_error(answer.text, field_id), answer.text
    with runtime.db.unit_of_work() as session:
        assert session.scalar(select(func.count()).select_from(ApiKey)) == 1  # the workspace fixture's


# Audit log


def test_the_audit_log_filters_pages_and_shows_before_and_after(admin, runtime, workspace):
    for n in range(3):
        admin.post_form("/admin/keys", name=f"k{n}", role="viewer")
    admin.post_form(
        "/admin/settings",
        timezone="Europe/Paris",
        help_text="Text HELP",
        **{"qh-marketing-sms-start": "09:00", "qh-marketing-sms-end": "20:00"},
    )
    page = admin.get("/admin/audit?action=workspace.update").text
    assert page.count('class="card entry"') == 1 and "<h3>Before</h3>" in page and "Europe/Paris" in page
    first = admin.get("/admin/audit?action=api_key.create&limit=2")
    assert first.text.count('class="card entry"') == 2
    older = re.search(r'href="([^"]+)" rel="next"', first.text).group(1).replace("&amp;", "&")
    second = admin.get(older).text
    assert second.count('class="card entry"') == 1 and 'rel="next"' not in second and "k0" in second
    by_me = admin.get("/admin/audit?actor=user:admin@example.com&target_type=api_key").text
    assert by_me.count('class="card entry"') == 3
    assert admin.get("/admin/audit?since=2000-01-01T00:00&until=2000-01-02T00:00").text.count('class="card entry"') == 0


@pytest.mark.parametrize(
    ("query", "field_id"), [("actor=nobody", "f-actor"), ("since=yesterday", "f-since"), ("action=DROP", "f-action")]
)
def test_a_bad_audit_filter_is_refused_naming_the_field(admin, query, field_id):
    answer = admin.get(f"/admin/audit?{query}")
    assert answer.status_code == 422 and field_error(answer.text, field_id), answer.text


# Workspace settings


def _settings(**extra):
    return {
        "mail_from": "Acme <news@acme.example>",
        "default_locale": "es-MX",
        "timezone": "America/Chicago",
        "audience_timezones": "America/New_York\nAmerica/Los_Angeles",
        "qh-marketing-sms-start": "09:00",
        "qh-marketing-sms-end": "20:00",
        "transactional_bypass": "on",
        "cap-0-channel": "sms",
        "cap-0-topic": "",
        "cap-0-max": "3",
        "cap-0-days": "7",
        "cap-1-channel": "*",
        "cap-1-max": "",
        "cap-1-days": "",
        "topic-0-name": "news",
        "topic-0-mode": "opt_in",
        "topic-0-description": "The newsletter",
        "topic-1-name": "",
        "topic-1-mode": "opt_in",
        "postal_address": "Acme Inc., 2 Main Street, Springfield, IL 62701, USA",
        "help_text": "Text STOP to stop.",
        **extra,
    }


def test_an_admin_saves_the_settings_as_patch_v1_workspace_would(admin, api):
    saved = admin.post_form("/admin/settings", _settings())
    assert saved.status_code == 200 and "Saved the settings" in saved.text
    body = api.get("/v1/workspace").json
    policy = body["policy"]
    assert (body["mail_from"], body["default_locale"]) == ("Acme <news@acme.example>", "es-MX")
    assert policy["timezone"] == "America/Chicago" and policy["audience_timezones"] == [
        "America/New_York",
        "America/Los_Angeles",
    ]
    assert policy["quiet_hours"]["marketing"] == {"email": None, "sms": ["09:00", "20:00"], "chat": None}
    assert policy["frequency_caps"] == [{"channel": "sms", "topic": "*", "max": 3, "days": 7.0}]
    assert policy["topics"] == {"news": {"mode": "opt_in", "description": "The newsletter"}}
    assert policy["help_text"] == "Text STOP to stop." and policy["postal_address"].startswith("Acme Inc.")
    shown = admin.get("/admin/settings").text
    assert 'value="09:00"' in shown and 'value="news"' in shown and "America/Los_Angeles" in shown


@pytest.mark.parametrize(
    ("extra", "field_id"),
    [
        ({"qh-marketing-sms-start": "25:00"}, "qh-marketing-sms"),
        ({"qh-marketing-sms-end": ""}, "qh-marketing-sms"),
        ({"cap-0-max": "many"}, "cap-0-max"),
        ({"cap-0-days": "0"}, "cap-0-days"),
        ({"timezone": "Mars/Olympus"}, "timezone"),
        ({"postal_address": "short"}, "postal_address"),
        ({"mail_from": "no at sign"}, "mail_from"),
        ({"default_locale": "!!"}, "default_locale"),
        ({"help_text": "x" * 301}, "help_text"),
        ({"topic-0-name": "Bad Topic"}, "topic-0"),
    ],
)
def test_a_bad_setting_is_refused_with_the_error_next_to_its_field(admin, api, extra, field_id):
    before = api.get("/v1/workspace").json
    answer = admin.post_form("/admin/settings", _settings(**extra))
    assert answer.status_code == 422 and field_error(answer.text, field_id), answer.text
    assert api.get("/v1/workspace").json == before


# Webhooks


def test_an_admin_subscribes_a_webhook_and_reads_its_deliveries(admin, api, runtime, workspace, worker):
    with HttpTestServer() as server:
        server.respond("/hook", status=200, json={})
        refused = admin.post_form("/admin/webhooks", {"url": server.url + "/hook", "events": ["message.sent"]})
        assert refused.status_code == 422 and "internal address" in field_error(refused.text, "url")
        api.patch("/v1/workspace", json={"policy": {"webhooks_allow_private": True}})
        created = admin.post_form(
            "/admin/webhooks", {"url": server.url + "/hook", "events": ["message.sent", "message.failed"]}
        )
        assert created.status_code == 200 and re.search(r'id="new-secret" value="whsec_', created.text)
        with runtime.db.unit_of_work() as session:
            endpoint = session.scalars(select(WebhookEndpoint)).one()
            emit(session, workspace[0], "message.sent", {"message_id": "msg_1"})
        assert endpoint.events == ["message.failed", "message.sent"]
        deliveries = _wait_for_delivery(admin, endpoint.id)
    assert (
        "message.sent" in deliveries and "<td>delivered</td><td>1</td>" in deliveries and "<td>200</td>" in deliveries
    )
    assert audited(runtime, "webhook.create")[0][0] == "user:admin@example.com"


def _wait_for_delivery(admin, endpoint_id):
    return wait_for(
        lambda: (page := admin.get(f"/admin/webhooks/{endpoint_id}").text) and "<td>delivered</td>" in page and page,
        timeout=10,
        message="the webhook delivery",
    )


@pytest.mark.parametrize(
    ("form", "field_id"),
    [({"url": "ftp://example.com/x", "events": ["message.sent"]}, "url"), ({"url": "https://example.com/x"}, "events")],
)
def test_a_bad_webhook_is_refused_naming_the_field(admin, runtime, form, field_id):
    answer = admin.post_form("/admin/webhooks", form)
    assert answer.status_code == 422 and field_error(answer.text, field_id), answer.text
    with runtime.db.unit_of_work() as session:
        assert session.scalar(select(func.count()).select_from(WebhookEndpoint)) == 0
    assert admin.get("/admin/webhooks/whk_nope").status_code == 404


# Roles without the admin permission

FORMS = (
    ("/admin/users", {"email": "sneaky@example.com", "role": "admin"}),
    ("/admin/users/{user}/role", {"role": "viewer"}),
    ("/admin/users/{user}/disable", {}),
    ("/admin/users/{user}/enable", {}),
    ("/admin/providers", {"kind": "local_outbox", "label": "Sneaky", "priority": "1"}),
    ("/admin/providers/{provider}", {"label": "Sneaky", "priority": "1"}),
    ("/admin/providers/{provider}/check", {}),
    ("/admin/providers/{provider}/disable", {}),
    ("/admin/providers/{provider}/enable", {}),
    ("/admin/providers/{provider}/delete", {}),
    ("/admin/keys", {"name": "sneaky", "role": "admin"}),
    ("/admin/keys/{key}/revoke", {}),
    ("/admin/settings", {"help_text": "Sneaky"}),
    ("/admin/webhooks", {"url": "https://example.com/x", "events": ["message.sent"]}),
)


def _state(runtime):
    """Everything an admin form could change."""
    with runtime.db.unit_of_work() as session:
        return [
            session.execute(select(User.email, User.role, User.disabled_at).order_by(User.id)).all(),
            session.execute(select(ProviderAccount.label, ProviderAccount.enabled, ProviderAccount.updated_at)).all(),
            session.execute(select(ApiKey.id, ApiKey.revoked_at)).all(),
            session.execute(select(Workspace.settings, Workspace.mail_from)).all(),
            session.scalar(select(func.count()).select_from(WebhookEndpoint)),
            session.scalar(select(func.count()).select_from(AuditEntry)),
        ]


@pytest.mark.parametrize("role", ["marketer", "agent", "viewer"])
def test_no_other_role_reaches_an_admin_page_or_form(web_client, admin, runtime, workspace, role):
    admin.post_form("/admin/providers", {"kind": "local_outbox", "label": "Box", "priority": "1"})
    with runtime.db.unit_of_work() as session:
        ids = {
            "user": session.scalars(select(User.id)).one(),
            "provider": session.scalars(select(ProviderAccount.id)).one(),
            "key": session.scalars(select(ApiKey.id)).one(),
        }
    client = web_client(role)
    csrf = csrf_of(client.get("/").text)
    assert ">Admin</a>" not in client.get("/").text
    for path in PAGES:
        assert client.get(path).status_code == 403, path
    before = _state(runtime)
    for path, form in FORMS:
        answer = client.post(path.format(**ids), data={"csrf_token": csrf, **form})
        assert answer.status_code == 403 and role in answer.text, path
    assert _state(runtime) == before


@pytest.mark.parametrize(
    ("method", "path", "form"),
    [
        ("get", "/admin/providers/prv_%00", None),
        ("get", "/admin/audit?target_id=a%00b", None),
        ("get", "/admin/webhooks/whk_%00", None),
        ("post", "/admin/users", {"email": "a\x00@example.com", "role": "agent"}),
        ("post", "/admin/providers", {"kind": "mailgun", "label": "M", "priority": "1", "config.domain": "a\x00b"}),
        ("post", "/admin/settings", {"help_text": "STOP\x00"}),
        ("post", "/admin/users/usr_%00/disable", {}),
    ],
)
def test_a_value_no_column_can_store_is_a_422_never_a_500(admin, method, path, form):
    answer = admin.get(path) if method == "get" else admin.post_form(path, form)
    assert answer.status_code == 422 and "NUL characters" in answer.text, answer.text
