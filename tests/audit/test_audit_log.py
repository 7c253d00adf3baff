"""The audit log: a real API call leaves one entry with who, what, before and after; secrets never
reach it; admins filter and page it; nobody can rewrite it; a change rolled back leaves nothing."""

from __future__ import annotations

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.exc import DBAPIError

from ccm.access import Role
from ccm.audit.service import Target, record
from ccm.auth.service import create_api_key
from tests.campaigns.conftest import make_campaign, ready, seed_profiles
from tests.support.api import ApiClient


def entries(api, **filters):
    answer = api.get("/v1/audit", query_string=filters)
    assert answer.status_code == 200, answer.json
    return answer.json["items"]


def only(api, action):
    found = entries(api, action=action)
    assert len(found) == 1, found
    return found[0]


def test_publishing_a_template_is_recorded_with_the_versions(api):
    ready(api)  # creates and publishes "promo"
    entry = only(api, "template.publish")
    assert (entry["target_type"], entry["target_id"], entry["before"], entry["after"]) == (
        "template",
        "promo",
        None,
        {"version": 1},
    )
    assert entry["actor"].startswith("api_key:ccm_") and entry["ip"] == "127.0.0.1"
    assert api.post("/v1/templates/promo/publish").status_code == 200  # nothing new: not an action
    assert len(entries(api, action="template.publish")) == 1


def test_campaign_launch_pause_resume_and_cancel_are_recorded(api, runtime, workspace):
    segment = ready(api)
    seed_profiles(runtime, workspace[0], 5)
    campaign = make_campaign(api, segment, throttle={"per_second": 1})
    for action, status in (("launch", "running"), ("pause", "paused"), ("resume", "running"), ("cancel", "cancelled")):
        answer = api.post(f"/v1/campaigns/{campaign['id']}/{action}")
        assert answer.json["status"] == status, (action, answer.json)
    found = [(e["action"], e["before"]["status"], e["after"]["status"]) for e in entries(api, target_type="campaign")]
    assert found == [
        ("campaign.cancel", "running", "cancelled"),
        ("campaign.resume", "paused", "running"),
        ("campaign.pause", "running", "paused"),
        ("campaign.launch", "draft", "running"),
    ]


def test_provider_changes_are_recorded_without_their_secrets(api):
    config = {"account_sid": "AC" + "1" * 32, "auth_token": "tw-5ecret-token", "from_number": "+14155550199"}
    created = api.post("/v1/providers", json={"kind": "twilio", "label": "main", "config": config})
    assert created.status_code == 201, created.json
    account = created.json["id"]
    assert api.patch(f"/v1/providers/{account}", json={"label": "backup"}).status_code == 200
    assert api.delete(f"/v1/providers/{account}").status_code == 204
    log = entries(api, target_type="provider", target_id=account)
    assert [e["action"] for e in log] == ["provider.delete", "provider.update", "provider.create"]
    assert (log[1]["before"]["label"], log[1]["after"]["label"]) == ("main", "backup")
    assert "tw-5ecret-token" not in str(api.get("/v1/audit").json)


def test_keys_webhooks_workspace_and_consent_are_recorded(api, app):
    key = api.post("/v1/api-keys", json={"name": "crm", "role": "marketer"}).json
    assert api.delete(f"/v1/api-keys/{key['id']}").status_code == 204
    assert only(api, "api_key.create")["after"]["role"] == "marketer"
    assert only(api, "api_key.revoke")["target_id"] == key["id"]

    policy = {"postal_address": "2 Elm St, Springfield, USA", "webhooks_allow_private": True}
    assert api.patch("/v1/workspace", json={"policy": policy}).status_code == 200
    change = only(api, "workspace.update")
    assert (change["before"]["policy"]["postal_address"], change["after"]["policy"]["postal_address"]) == (
        "Acme Test Inc., 1 Test Street, Springfield, IL 62701, USA",
        "2 Elm St, Springfield, USA",
    )

    hook = api.post("/v1/webhooks", json={"url": "http://127.0.0.1:9/hook", "events": ["message.sent"]})
    assert hook.status_code == 201, hook.json
    assert api.delete(f"/v1/webhooks/{hook.json['id']}").status_code == 204
    assert only(api, "webhook.create")["after"]["url"] == "http://127.0.0.1:9/hook"
    assert hook.json["secret"] not in str(only(api, "webhook.create"))
    assert only(api, "webhook.delete")["before"]["url"] == "http://127.0.0.1:9/hook"

    assert api.put("/v1/profiles/u1", json={"email": "u1@example.com"}).status_code in (200, 201)
    consent = api.post("/v1/profiles/u1/consent", json={"channel": "email", "status": "revoked"})
    assert consent.status_code == 201, consent.json
    assert only(api, "consent.change")["after"]["status"] == "revoked"


def test_exports_and_erasure_are_recorded(api, runtime, workspace):
    segment = ready(api)
    campaign = make_campaign(api, segment)
    assert api.get(f"/v1/campaigns/{campaign['id']}/export.csv").status_code == 200
    assert api.get(f"/v1/campaigns/{campaign['id']}/results.csv").status_code == 200
    assert only(api, "export.recipients_csv")["target_id"] == campaign["id"]
    assert only(api, "export.results_csv")["target_id"] == campaign["id"]

    assert api.put("/v1/profiles/u2", json={"email": "u2@example.com"}).status_code in (200, 201)
    assert api.get("/v1/profiles/u2/export").status_code == 200
    assert api.delete("/v1/profiles/u2").status_code == 204
    assert [e["action"] for e in entries(api, target_type="profile", target_id="u2")] == [
        "profile.erase",
        "export.profile",
    ]


def test_filters_and_pages_newest_first(api, runtime, workspace):
    with runtime.db.unit_of_work() as session:
        for n in range(7):
            record(
                session=session,
                workspace_id=workspace[0],
                actor=f"user:agent{n % 2}@example.com",
                action="consent.change",
                target=Target("profile", f"p{n}"),
            )
    mine = entries(api, actor="user:agent1@example.com")
    assert [e["target_id"] for e in mine] == ["p5", "p3", "p1"]
    first = api.get("/v1/audit", query_string={"limit": 4}).json
    second = api.get("/v1/audit", query_string={"limit": 4, "cursor": first["next_cursor"]}).json
    ids = [e["target_id"] for e in first["items"] + second["items"]]
    assert ids == [f"p{n}" for n in reversed(range(7))] and second["next_cursor"] is None
    assert entries(api, since="2199-01-01T00:00:00Z") == []
    assert len(entries(api, until="2199-01-01T00:00:00Z")) == 7


@pytest.mark.parametrize(
    ("name", "value"),
    [("since", "yesterday"), ("until", "1900-01-01T00:00:00"), ("limit", "0"), ("cursor", "x"), ("actor", "bob")],
)
def test_a_bad_filter_is_a_422_naming_it(api, name, value):
    answer = api.get("/v1/audit", query_string={name: value})
    assert answer.status_code == 422
    assert answer.json["error"]["details"]["field"] == f"query.{name}"


@pytest.mark.parametrize("role", [r for r in Role if r != Role.ADMIN])
def test_only_admin_keys_read_the_log(app, runtime, workspace, role):
    with runtime.db.unit_of_work() as session:
        token = create_api_key(session=session, workspace_id=workspace[0], role=role)[1]
    answer = ApiClient(app.test_client(), token).get("/v1/audit")
    assert answer.status_code == 403 and answer.json["error"]["details"]["field"] == "Authorization"


def test_the_database_refuses_to_update_or_delete_an_entry(runtime, workspace, settings):
    with runtime.db.unit_of_work() as session:
        entry = record(
            session=session,
            workspace_id=workspace[0],
            actor="user:a@example.com",
            action="x.y",
            target=Target("t", "1"),
        )
    engine = create_engine(settings.resolved_database_url)
    try:
        for statement in ("UPDATE audit_log SET actor = 'someone else'", "DELETE FROM audit_log"):
            with pytest.raises(DBAPIError, match="append-only"), engine.begin() as connection:
                connection.execute(text(statement))
        with engine.connect() as connection:
            assert connection.execute(text("SELECT actor FROM audit_log")).scalars().all() == ["user:a@example.com"]
    finally:
        engine.dispose()
    assert entry.id.startswith("aud_")


def test_a_change_rolled_back_leaves_no_entry(api, runtime, workspace):
    with pytest.raises(RuntimeError), runtime.db.unit_of_work() as session:
        record(
            session=session,
            workspace_id=workspace[0],
            actor="user:a@example.com",
            action="x.y",
            target=Target("t", "1"),
        )
        raise RuntimeError("the change failed")
    # and through the API: a refused change (409) is rolled back with its entry
    segment = ready(api)
    campaign = make_campaign(api, segment)
    assert api.post(f"/v1/campaigns/{campaign['id']}/pause").status_code == 409
    assert entries(api, target_type="campaign") == [] and entries(api, action="x.y") == []
