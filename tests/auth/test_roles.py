"""Every /v1 endpoint declares the permission it needs, and a key of each role is refused (403)
exactly where ``ccm.access.ROLE_PERMISSIONS`` says: the table is the app's own URL map, so an
endpoint added later cannot skip the check."""

from __future__ import annotations

import re

import pytest

from ccm.access import ROLE_PERMISSIONS, Permission, Role, allows, require
from ccm.auth.service import create_api_key
from ccm.errors import Forbidden
from ccm.http import PERMISSIONS
from tests.support.api import ApiClient

NOT_WORKSPACE_SCOPED = ("meta.", "hooks.", "tracking.", "unsubscribe.")


def v1_rules(app):
    return [
        (rule, method)
        for rule in app.url_map.iter_rules()
        if rule.rule.startswith("/v1") and not rule.endpoint.startswith(NOT_WORKSPACE_SCOPED)
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"})
    ]


def test_every_v1_endpoint_declares_a_permission(app):
    rules = v1_rules(app)
    assert len(rules) > 50
    assert [f"{method} {rule.rule}" for rule, method in rules if rule.endpoint not in PERMISSIONS] == []


def test_the_map_follows_the_roles_of_the_issue():
    expect = {
        "api_keys.create_api_key": Permission.ADMIN,
        "api_keys.list_api_keys": Permission.ADMIN,
        "providers.list_providers": Permission.ADMIN,
        "webhooks.create_webhook": Permission.ADMIN,
        "workspace.patch_workspace": Permission.ADMIN,
        "templates.publish_template": Permission.TEMPLATES,
        "campaigns.launch_campaign": Permission.CAMPAIGNS,
        "campaign_results.get_export_csv": Permission.CAMPAIGNS,
        "consent.record_consent": Permission.CONSENT,
        "profiles.delete_profile": Permission.PRIVACY,
        "profiles.export_profile": Permission.PRIVACY,
        "profiles.list_profiles": Permission.VIEW,
    }
    assert {name: PERMISSIONS.get(name) for name in expect} == expect


@pytest.fixture
def keys(runtime, workspace):
    with runtime.db.unit_of_work() as session:
        return {
            role: create_api_key(session=session, workspace_id=workspace[0], name=role.value, role=role)[1]
            for role in Role
        }


@pytest.mark.parametrize("role", list(Role))
def test_a_key_of_each_role_is_refused_exactly_where_its_permissions_say(app, keys, role):
    client = ApiClient(app.test_client(), keys[role])
    wrong = []
    for rule, method in v1_rules(app):
        path = re.sub(r"<[^>]+>", "zz1", re.sub(r"<int:[^>]+>", "1", rule.rule))
        answer = client.request(method, path, json=None if method in ("GET", "DELETE") else {})
        needed = PERMISSIONS[rule.endpoint]
        if (answer.status_code == 403) == allows(role, needed):
            wrong.append((method, path, needed.value, answer.status_code))
        if answer.status_code == 403 and not rule.endpoint.startswith("ingest."):
            assert answer.json["error"]["details"]["field"] == "Authorization"
            assert answer.json["error"]["details"]["roles"] == [r.value for r in Role if needed in ROLE_PERMISSIONS[r]]
    assert wrong == []


def test_a_refusal_names_the_roles_that_would_be_allowed():
    with pytest.raises(Forbidden) as refused:
        require("viewer", Permission.TEMPLATES)
    assert "admin, marketer, standard" in refused.value.message
    assert refused.value.details["field"] == "Authorization"
    require("marketer", Permission.TEMPLATES)
    with pytest.raises(Forbidden):
        require("nobody", Permission.VIEW)


def test_new_roles_can_be_given_to_keys_by_the_api(api, app):
    created = api.post("/v1/api-keys", json={"name": "support", "role": "agent"})
    assert (created.status_code, created.json["role"]) == (201, "agent")
    agent = ApiClient(app.test_client(), created.json["token"])
    assert agent.get("/v1/profiles").status_code == 200
    refused = agent.post("/v1/templates", json={})
    assert refused.status_code == 403 and "admin, marketer, standard" in refused.json["error"]["message"]


def test_the_openapi_document_says_what_each_operation_needs(api):
    paths = api.get("/v1/openapi.json").json["paths"]
    audit = paths["/v1/audit"]["get"]
    assert audit["x-permission"] == "workspace.admin" and "403" in audit["responses"]
    assert {name for name in ("action", "actor", "since", "until", "cursor")} <= {
        param["name"] for param in audit["parameters"]
    }
    assert paths["/v1/templates/{key}/publish"]["post"]["x-permission"] == "templates.write"
