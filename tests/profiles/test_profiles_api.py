from __future__ import annotations

from tests.support.factories import put_profile


def test_put_creates_then_replaces_a_profile(api):
    created = api.put(
        "/v1/profiles/u1",
        json={
            "email": "Ada@Example.COM",
            "phone": "+14155550100",
            "attributes": {"plan": "pro", "age": 36},
            "timezone": "Europe/Paris",
            "locale": "es-mx",
            "channels": ["sms", "email"],
        },
    )
    assert created.status_code == 201
    body = created.json
    assert body["email"] == "Ada@example.com"  # domain normalized, local part kept
    assert body["locale"] == "es-MX"
    assert body["channels"] == ["sms", "email"]

    replaced = api.put("/v1/profiles/u1", json={"email": "ada@example.com"})
    assert replaced.status_code == 200
    assert replaced.json["id"] == body["id"]
    assert replaced.json["attributes"] == {} and replaced.json["phone"] is None


def test_patch_merges_attributes_and_null_removes_one(api):
    put_profile(api, "u1", attributes={"plan": "pro", "city": "Paris"})
    patched = api.patch("/v1/profiles/u1", json={"attributes": {"plan": "team", "city": None}, "locale": "fr"})
    assert patched.status_code == 200
    assert patched.json["attributes"] == {"plan": "team"}
    assert patched.json["locale"] == "fr"
    assert patched.json["email"] == "u1@example.com"


def test_get_and_delete(api):
    put_profile(api, "u1")
    assert api.get("/v1/profiles/u1").json["external_id"] == "u1"
    assert api.delete("/v1/profiles/u1").status_code == 204
    missing = api.get("/v1/profiles/u1")
    assert missing.status_code == 404
    assert missing.json["error"]["code"] == "not_found"


def test_bad_fields_are_422_naming_the_field_and_change_nothing(api):
    put_profile(api, "u1")
    for body, field in [
        ({"email": "not-an-email"}, "email"),
        ({"timezone": "Mars/Olympus"}, "timezone"),
        ({"channels": ["email", "fax"]}, "channels.1"),
        ({"channels": ["email", "email"]}, "channels"),
        ({"locale": "english!"}, "locale"),
        ({"nickname": "x"}, "nickname"),
    ]:
        response = api.put("/v1/profiles/u1", json=body)
        assert response.status_code == 422, body
        assert response.json["error"]["details"]["field"] == field
        assert field in response.json["error"]["message"]
    assert api.get("/v1/profiles/u1").json["email"] == "u1@example.com"


def test_invalid_json_is_a_422_on_the_body(api):
    response = api.request("PUT", "/v1/profiles/u1", data=b"{nope", headers={"Content-Type": "application/json"})
    assert response.status_code == 422
    assert response.json["error"]["details"]["field"] == "body"


def test_list_paginates_newest_first_with_a_cursor(api):
    for n in range(5):
        put_profile(api, f"u{n}")
    first = api.get("/v1/profiles?limit=2").json
    assert [p["external_id"] for p in first["items"]] == ["u4", "u3"]
    second = api.get(f"/v1/profiles?limit=2&cursor={first['next_cursor']}").json
    assert [p["external_id"] for p in second["items"]] == ["u2", "u1"]
    third = api.get(f"/v1/profiles?limit=2&cursor={second['next_cursor']}").json
    assert [p["external_id"] for p in third["items"]] == ["u0"]
    assert third["next_cursor"] is None


def test_list_filters_on_attributes_by_type(api):
    put_profile(api, "a", attributes={"plan": "pro", "age": 30, "vip": True})
    put_profile(api, "b", attributes={"plan": "free", "age": "30", "vip": False})
    put_profile(api, "c", attributes={"plan": "pro", "age": 41})

    def ids(query):
        response = api.get(f"/v1/profiles?{query}")
        assert response.status_code == 200, response.json
        return sorted(p["external_id"] for p in response.json["items"])

    assert ids("attributes.plan=pro") == ["a", "c"]
    assert ids("attributes.age=30") == ["a"]
    assert ids('attributes.age="30"') == ["b"]
    assert ids("attributes.vip=true") == ["a"]
    assert ids("attributes.plan=pro&attributes.age=41") == ["c"]
    assert ids("email=b@example.com") == ["b"]


def test_list_rejects_unknown_filters(api):
    response = api.get("/v1/profiles?color=red")
    assert response.status_code == 422
    assert response.json["error"]["details"]["field"] == "query.color"


def test_another_workspaces_profile_is_404(api, app, runtime):
    from ccm.auth.service import create_api_key
    from ccm.workspaces.service import get_or_create_workspace
    from tests.support.api import ApiClient

    put_profile(api, "u1")
    with runtime.db.unit_of_work() as session:
        other, _ = get_or_create_workspace(session=session, name="other")
        _, key = create_api_key(session=session, workspace_id=other.id)
    other_api = ApiClient(app.test_client(), key)
    assert other_api.get("/v1/profiles/u1").status_code == 404
    assert other_api.get("/v1/profiles").json["items"] == []
    assert other_api.patch("/v1/profiles/u1", json={"locale": "fr"}).status_code == 404


def test_requests_without_a_valid_key_are_401(app, workspace):
    client = app.test_client()
    assert client.get("/v1/profiles").status_code == 401
    wrong = client.get("/v1/profiles", headers={"Authorization": "Bearer ccm_wrong"})
    assert wrong.status_code == 401
    assert wrong.json["error"]["code"] == "unauthorized"


def test_a_revoked_key_stops_working_at_once(api, runtime, workspace):
    from ccm.auth.models import ApiKey
    from ccm.auth.service import revoke_api_key

    assert api.get("/v1/profiles").status_code == 200
    with runtime.db.unit_of_work() as session:
        key_id = session.query(ApiKey.id).filter_by(workspace_id=workspace[0]).scalar()
        assert revoke_api_key(session=session, workspace_id=workspace[0], key_id=key_id)
    assert api.get("/v1/profiles").status_code == 401
