"""API keys through the API: admin keys list, create and revoke them; standard keys may not; a
revoked key stops working at once; keys made before roles existed are admin keys."""

from __future__ import annotations

from sqlalchemy import create_engine, text

from ccm.auth.models import ApiKeyRole
from ccm.auth.service import create_api_key
from ccm.workspaces.service import get_or_create_workspace
from tests.support.api import ApiClient


def make_key(runtime, workspace_id, role):
    with runtime.db.unit_of_work() as session:
        return create_api_key(session=session, workspace_id=workspace_id, name=f"{role} key", role=role)[1]


def test_an_admin_key_lists_creates_and_revokes_keys(api, app):
    created = api.post("/v1/api-keys", json={"name": "backend"})
    assert created.status_code == 201, created.json
    new = created.json
    assert (new["role"], new["name"], new["token"][:12]) == ("standard", "backend", new["prefix"])
    listed = api.get("/v1/api-keys").json["items"]
    assert [(k["prefix"], k["role"]) for k in listed][-1] == (new["prefix"], "standard")
    assert all("token" not in k and "digest" not in k for k in listed)

    backend = ApiClient(app.test_client(), new["token"])
    assert backend.get("/v1/profiles").status_code == 200
    assert api.delete(f"/v1/api-keys/{new['id']}").status_code == 204
    assert backend.get("/v1/profiles").status_code == 401
    assert new["id"] not in [k["id"] for k in api.get("/v1/api-keys").json["items"]]


def test_a_standard_key_may_not_manage_keys(app, runtime, workspace):
    standard = ApiClient(app.test_client(), make_key(runtime, workspace[0], ApiKeyRole.STANDARD))
    for method, path in [("GET", "/v1/api-keys"), ("POST", "/v1/api-keys"), ("DELETE", "/v1/api-keys/key_x")]:
        answer = standard.request(method, path, json={} if method == "POST" else None)
        assert answer.status_code == 403, (method, answer.json)
        assert answer.json["error"]["code"] == "forbidden"
    assert standard.get("/v1/profiles").status_code == 200  # everything else it may do


def test_an_admin_key_can_make_an_admin_key(api):
    assert api.post("/v1/api-keys", json={"role": "admin"}).json["role"] == "admin"
    assert api.post("/v1/api-keys", json={"role": "root"}).status_code == 422


def test_a_key_cannot_revoke_itself(api):
    [me] = api.get("/v1/api-keys").json["items"]
    answer = api.delete(f"/v1/api-keys/{me['id']}")
    assert answer.status_code == 409 and answer.json["error"]["details"]["field"] == "id"
    assert api.get("/v1/api-keys").status_code == 200


def test_another_workspaces_key_is_not_found(api, runtime):
    with runtime.db.unit_of_work() as session:
        other, _ = get_or_create_workspace(session=session, name="other")
        key, _ = create_api_key(session=session, workspace_id=other.id)
    assert api.delete(f"/v1/api-keys/{key.id}").status_code == 404
    assert key.id not in [k["id"] for k in api.get("/v1/api-keys").json["items"]]


def test_keys_made_before_roles_existed_become_admin_keys(tmp_path):
    from ccm.migrate import upgrade

    url = f"sqlite:///{tmp_path / 'old.sqlite3'}"
    upgrade(url, "0003")
    engine = create_engine(url)
    with engine.begin() as connection:
        connection.execute(
            text(
                "INSERT INTO workspace (id, name, default_locale, settings, created_at) "
                "VALUES ('wsp_1', 'old', 'en', '{}', '2026-01-01 00:00:00')"
            )
        )
        connection.execute(
            text(
                "INSERT INTO api_key (id, workspace_id, name, prefix, digest, created_at) "
                "VALUES ('key_1', 'wsp_1', '', 'ccm_abcdefgh', 'x', '2026-01-01 00:00:00')"
            )
        )
    upgrade(url)
    with engine.connect() as connection:
        assert connection.execute(text("SELECT role FROM api_key")).scalar() == "admin"
    engine.dispose()


def test_the_openapi_document_describes_the_endpoints(app):
    paths = app.test_client().get("/v1/openapi.json").json["paths"]
    assert {"get", "post"} <= set(paths["/v1/api-keys"]) and "delete" in paths["/v1/api-keys/{key_id}"]
