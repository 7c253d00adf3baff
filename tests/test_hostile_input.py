"""Input no database column can hold — NUL, unpaired surrogates, NaN and Infinity, integers wider
than the column — on every input path (JSON bodies, path parameters, query strings, raw email,
provider callbacks) is a 422 naming the field and changes nothing, on PostgreSQL as on SQLite.
So is an identifier longer than its limit. A database that cannot be reached is a 503 with
``Retry-After``; an undeclared method is a 405 with ``Allow``."""

from __future__ import annotations

import pytest

from ccm.config import Settings
from tests.channels.test_provider_accounts import add_provider, twilio_config
from tests.engagement.test_loop import SMS_SID, post_twilio, status_form
from tests.support.factories import publish_template, put_profile


def field_of(response):
    return response.status_code, response.json["error"]["details"].get("field")


def raw_json(api, method, path, body):
    return api.request(method, path, data=body, headers={"Content-Type": "application/json"})


def nothing_stored(api):
    return api.get("/v1/profiles").json["items"] == []


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ('{"attributes": {"nick": "a\\u0000b"}}', "attributes.nick"),
        ('{"attributes": {"a\\u0000": 1}}', "attributes.a\x00"),
        ('{"attributes": {"deep": [1, {"x": ["\\u0000"]}]}}', "attributes.deep.1.x.0"),
        ('{"attributes": {"score": NaN}}', "attributes.score"),
        ('{"attributes": {"score": Infinity}}', "attributes.score"),
        ('{"attributes": {"score": -Infinity}}', "attributes.score"),
        ('{"attributes": {"score": 1e400}}', "attributes.score"),
        ('{"attributes": {"n": 9223372036854775808}}', "attributes.n"),
        ('{"attributes": {"n": -9223372036854775809}}', "attributes.n"),
        ('{"attributes": {"n": 1180591620717411303424}}', "attributes.n"),
        ('{"attributes": {"s": "\\ud800"}}', "body"),  # a lone surrogate is not JSON text (RFC 8259 §8.2)
        ('{"chat": {"telegram": "\\u0000"}}', "chat.telegram"),
    ],
)
def test_a_profile_body_no_column_can_hold_is_422_naming_the_field(api, body, field):
    response = raw_json(api, "PUT", "/v1/profiles/ada", body)
    assert field_of(response) == (422, field)
    assert nothing_stored(api)


def test_integers_at_the_64_bit_edge_are_kept_exactly(api):
    edge = {"max": 2**63 - 1, "min": -(2**63), "float": 1.5e308}
    assert api.put("/v1/profiles/ada", json={"attributes": edge}).status_code == 201
    assert api.get("/v1/profiles/ada").json["attributes"] == edge


@pytest.mark.parametrize(
    ("path", "field"),
    [
        ("/v1/profiles/a%00b", "external_id"),
        ("/v1/profiles/" + "x" * 256, "external_id"),
        ("/v1/profiles/tab%09id", "external_id"),
        ("/v1/templates/welcome/versions/9223372036854775808", "version"),
        ("/v1/templates/welcome/versions/2147483648", "version"),
        ("/v1/messages/msg_nope%00", "message_id"),
    ],
)
def test_a_path_parameter_no_column_can_hold_is_422_naming_it(api, path, field):
    assert field_of(api.get(path)) == (422, field)


def test_an_external_id_takes_255_characters_and_no_more(api):
    assert api.put("/v1/profiles/" + "é" * 255, json={}).status_code == 201
    assert field_of(api.put("/v1/profiles/" + "é" * 256, json={})) == (422, "external_id")
    assert field_of(api.post("/v1/messages", json={"to": {"external_id": "x" * 5000}, "template": "t"})) == (
        422,
        "to.external_id",
    )


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("attributes.n=1180591620717411303424", "query.attributes.n"),
        ("attributes.n=NaN", "query.attributes.n"),
        ("attributes.n=1e999", "query.attributes.n"),
        ("email=a%00b", "query.email"),
        ("attributes.plan=pro%00", "query.attributes.plan"),
        ("limit=5&limit=6", "query.limit"),
        ("cursor=not-a-cursor", "query.cursor"),
        ("attributes.x=" + "[" * 3000, None),  # parsed as text, not as JSON that nests 3,000 deep
    ],
)
def test_a_query_no_column_can_hold_is_422_naming_the_parameter(api, query, field):
    response = api.get(f"/v1/profiles?{query}")
    if field is None:
        assert response.status_code == 200
    else:
        assert field_of(response) == (422, field)


def test_unknown_enum_values_in_a_query_are_422(api):
    assert field_of(api.get("/v1/messages?status=bogus")) == (422, "query.status")
    assert api.get("/v1/messages?status=delivered").status_code == 200


def test_every_json_body_goes_through_the_same_checks(api):
    publish_template(api)
    put_profile(api, "ada")
    cases = [
        (
            "POST",
            "/v1/templates",
            '{"key": "t2", "category": "marketing", "variants": [{"channel": "sms", "body": "hi \\u0000"}]}',
            "variants.0.sms.body",
        ),
        ("POST", "/v1/templates/welcome/preview", '{"version": 1180591620717411303424}', "version"),
        ("POST", "/v1/templates/welcome/preview", '{"data": {"first_name": NaN}}', "data.first_name"),
        (
            "POST",
            "/v1/profiles/ada/consent",
            '{"channel": "email", "status": "granted", "source": "a\\u0000"}',
            "source",
        ),
        ("PUT", "/v1/snippets/partials/x.html", '{"source": "\\u0000"}', "source"),
        (
            "POST",
            "/v1/messages",
            '{"to": {"external_id": "ada"}, "template": "welcome", "data": {"first_name": "\\u0000"}}',
            "data.first_name",
        ),
        ("POST", "/v1/suppressions", '{"channel": "email", "address": "a\\u0000@example.com"}', "address"),
        ("PATCH", "/v1/providers/prv_00000000000000000000000000", '{"enabled": 0}', "enabled"),
        ("POST", "/v1/providers", '{"kind": "smtp", "label": "x", "enabled": 0}', "enabled"),
        ("PATCH", "/v1/workspace", '{"policy": {"sms_segment_cap": "6"}}', "policy.sms_segment_cap"),
    ]
    for method, path, body, field in cases:
        assert field_of(raw_json(api, method, path, body)) == (422, field), (method, path, body)
    assert api.get("/v1/messages").json["items"] == []
    assert api.get("/v1/suppressions").json["items"] == []


def test_a_raw_email_with_nul_bytes_is_refused_and_decoded_ones_are_cleaned(api):
    refused = api.post(
        "/v1/inbound/email",
        data=b"From: a@example.com\r\nSubject: hi\x00\r\n\r\nbody",
        headers={"Content-Type": "message/rfc822"},
    )
    assert field_of(refused) == (422, "body")
    # An encoded NUL only appears once decoded: the mail is kept, the NUL dropped.
    kept = api.post(
        "/v1/inbound/email",
        headers={"Content-Type": "message/rfc822"},
        data=(
            b"From: Ada <ada@example.com>\r\nTo: us@example.com\r\nSubject: =?utf-8?b?aGkAdGhlcmU=?=\r\n"
            b"Message-ID: <x1@example.com>\r\nContent-Type: text/plain; charset=utf-8\r\n"
            b"Content-Transfer-Encoding: base64\r\n\r\nb2sAIGZpbmU=\r\n"
        ),
    )
    assert kept.status_code == 202
    thread = api.get("/v1/conversations").json["items"]
    assert [conversation["subject"] for conversation in thread] == ["hithere"]


def test_a_signed_provider_callback_with_nul_is_422_and_records_nothing(api, app, runtime):

    account = add_provider(api, "twilio", "twilio", twilio_config("http://127.0.0.1:9"))
    answer = post_twilio(
        app,
        account["id"],
        "inbound",
        {**status_form("received"), "Body": "STOP\x00", "MessageSid": SMS_SID, "SmsStatus": "received"},
    )
    assert (answer.status_code, answer.json["error"]["details"]["field"]) == (422, "form.Body")
    assert api.get("/v1/suppressions").json["items"] == []
    forged = post_twilio(app, account["id"], "inbound", {"Body": "\x00"}, forged=True)
    assert forged.status_code == 401  # the signature is checked first: a forger learns nothing more


def test_an_undeclared_method_is_405_with_allow(api):
    response = api.request("TRACE", "/v1/profiles/ada")
    assert response.status_code == 405
    assert set(response.headers["Allow"].replace(" ", "").split(",")) >= {"GET", "PUT", "PATCH", "DELETE"}
    assert response.json["error"]["code"] == "method_not_allowed"


def test_an_unreachable_database_is_503_with_retry_after(workspace, tmp_path):
    from ccm.app import create_app

    down = Settings(
        database_url="postgresql+psycopg://postgres@127.0.0.1:9/none", secret_key="x", data_dir=tmp_path, redis_url=None
    )
    client = create_app(down).test_client()
    for method, path in [("GET", "/v1/profiles"), ("PUT", "/v1/profiles/ada"), ("POST", "/v1/messages")]:
        response = client.open(path, method=method, json={}, headers={"Authorization": f"Bearer {workspace[1]}"})
        assert (response.status_code, response.headers.get("Retry-After")) == (503, "5"), (method, path)
        assert response.json["error"]["code"] == "unavailable"
