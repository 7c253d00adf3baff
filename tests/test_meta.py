from __future__ import annotations

import pytest


def test_openapi_describes_every_endpoint_with_its_schemas(app):
    document = app.test_client().get("/v1/openapi.json").json
    assert document["openapi"].startswith("3.1")
    send = document["paths"]["/v1/messages"]["post"]
    schema_name = send["requestBody"]["content"]["application/json"]["schema"]["$ref"].rsplit("/", 1)[1]
    assert {"to", "template", "data", "channel"} <= set(document["components"]["schemas"][schema_name]["properties"])
    assert "202" in send["responses"] and "422" in send["responses"]
    assert {"Idempotency-Key"} <= {p["name"] for p in send["parameters"]}
    assert "/v1/profiles/{external_id}" in document["paths"]
    assert {"put", "get", "patch", "delete"} <= set(document["paths"]["/v1/profiles/{external_id}"])
    assert "/v1/templates/{key}/preview" in document["paths"]


def test_openapi_needs_no_key(app):
    assert app.test_client().get("/v1/openapi.json").status_code == 200


def test_healthz_reports_database_and_broker(app):
    response = app.test_client().get("/healthz")
    assert response.status_code == 200
    assert response.json == {"status": "ok", "database": "ok", "broker": "ok"}


def test_unknown_routes_answer_json_errors(api):
    response = api.get("/v1/nothing-here")
    assert response.status_code == 404
    assert response.json["error"]["code"] == "not_found"


@pytest.mark.settings(max_request_bytes=1000)
def test_an_oversized_body_is_refused_with_413_naming_it(api):
    response = api.request("POST", "/v1/inbound/email", data=b"x" * 2000)
    assert (response.status_code, response.json["error"]["details"]["field"]) == (413, "body")


def test_an_oversized_json_body_is_refused_with_413_and_changes_nothing(api):
    response = api.put("/v1/profiles/u1", json={"attributes": {"notes": "x" * 1_100_000}})
    assert (response.status_code, response.json["error"]["details"]["field"]) == (413, "body")
    assert api.get("/v1/profiles/u1").status_code == 404


def test_settings_keep_secrets_out_of_their_repr():
    from ccm.config import Settings

    shown = repr(
        Settings(
            smtp_url="smtp://user:hunter2@mail.example.com",
            secret_key="k" * 40,
            database_url="postgresql://u:hunter2@db/ccm",
            redis_url="redis://:hunter2@cache",
        )
    )
    assert "hunter2" not in shown and "k" * 40 not in shown
