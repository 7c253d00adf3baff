"""Templates over the API: drafts checked on save, immutable versions, snippets, previews."""

from __future__ import annotations

from tests.support.factories import publish_template, put_profile, template_body


def test_create_publish_and_read_versions(api):
    created = api.post("/v1/templates", json=template_body())
    assert created.status_code == 201
    assert created.json["latest_version"] is None
    first = api.post("/v1/templates/welcome/publish")
    assert (first.status_code, first.json) == (201, {"version": 1, "created": True})
    unchanged = api.post("/v1/templates/welcome/publish")
    assert (unchanged.status_code, unchanged.json) == (200, {"version": 1, "created": False})

    api.patch("/v1/templates/welcome", json={"description": "descriptions are not versioned"})
    assert api.post("/v1/templates/welcome/publish").json == {"version": 1, "created": False}
    api.patch("/v1/templates/welcome", json={"default_locale": "es"})
    assert api.post("/v1/templates/welcome/publish").json == {"version": 2, "created": True}
    assert api.get("/v1/templates/welcome").json["latest_version"] == 2
    assert api.get("/v1/templates/welcome/versions/1").json["variants"][0]["subject"] == "Welcome, {{ first_name }}"
    assert api.get("/v1/templates/welcome/versions/3").status_code == 404


def test_published_versions_do_not_change_when_the_draft_does(api):
    publish_template(api)
    api.patch(
        "/v1/templates/welcome",
        json={"variants": [{"channel": "email", "subject": "Changed", "html": "<p>{{ first_name }} {{ plan }}</p>"}]},
    )
    assert api.get("/v1/templates/welcome/versions/1").json["variants"][0]["subject"] == "Welcome, {{ first_name }}"
    assert api.get("/v1/templates/welcome").json["variants"][0]["subject"] == "Changed"


def test_duplicate_key_is_409(api):
    api.post("/v1/templates", json=template_body())
    again = api.post("/v1/templates", json=template_body())
    assert again.status_code == 409
    assert again.json["error"]["details"]["field"] == "key"


def test_syntax_error_is_422_naming_part_and_line(api):
    body = template_body(variants=[{"channel": "email", "subject": "Hi", "html": "<p>ok</p>\n<p>{% if x %}</p>"}])
    response = api.post("/v1/templates", json=body)
    assert response.status_code == 422
    error = response.json["error"]
    assert error["details"]["field"] == "variants.0.email.html"
    assert error["details"]["line"] == 2
    assert api.get("/v1/templates/welcome").status_code == 404


def test_template_reaching_for_python_internals_is_refused(api):
    for payload in [
        "{{ ''.__class__.__mro__ }}",
        "{{ lipsum.__globals__ }}",
        "{{ x|attr('__class__') }}",
        "{{ cycler.__init__.__globals__.os }}",
    ]:
        body = template_body(variants=[{"channel": "sms", "body": payload}])
        response = api.post("/v1/templates", json=body)
        assert response.status_code == 422, payload
        assert response.json["error"]["details"]["field"] == "variants.0.sms.body"


def test_multiline_subject_is_refused(api):
    body = template_body(variants=[{"channel": "email", "subject": "Hi\nBcc: x@example.com", "html": "<p>x</p>"}])
    response = api.post("/v1/templates", json=body)
    assert response.status_code == 422
    assert response.json["error"]["details"]["field"] == "variants.0.email.subject"


def test_publishing_refuses_undeclared_variables(api):
    api.post("/v1/templates", json=template_body(variables=["first_name"]))
    response = api.post("/v1/templates/welcome/publish")
    assert response.status_code == 409  # the request is fine; the draft is not publishable as it stands
    assert response.json["error"]["details"]["field"] == "variables"
    assert "plan" in response.json["error"]["message"]
    assert api.get("/v1/templates/welcome").json["latest_version"] is None


def test_layouts_and_partials_are_frozen_into_the_version(api):
    layout = "<main>{% block content %}{% endblock %}</main>{% include 'partials/footer.html' %}"
    assert api.put("/v1/snippets/layouts/base.html", json={"source": layout}).status_code == 201
    api.put("/v1/snippets/partials/footer.html", json={"source": "<footer>v1 footer</footer>"})
    body = template_body(
        variables=["first_name"],
        variants=[
            {
                "channel": "email",
                "subject": "Hi",
                "html": "{% extends 'layouts/base.html' %}{% block content %}Hello {{ first_name }}{% endblock %}",
            }
        ],
    )
    api.post("/v1/templates", json=body)
    assert api.post("/v1/templates/welcome/publish").json["version"] == 1
    version = api.get("/v1/templates/welcome/versions/1").json
    assert set(version["snippets"]) == {"layouts/base.html", "partials/footer.html"}

    api.put("/v1/snippets/partials/footer.html", json={"source": "<footer>v2 footer</footer>"})
    preview = api.post("/v1/templates/welcome/preview", json={"data": {"first_name": "Ada"}}).json
    assert "v1 footer" in preview["parts"][0]["html"]
    assert api.post("/v1/templates/welcome/publish").json["version"] == 2
    preview = api.post("/v1/templates/welcome/preview", json={"data": {"first_name": "Ada"}}).json
    assert "v2 footer" in preview["parts"][0]["html"]


def test_publishing_with_a_missing_snippet_is_409(api):
    body = template_body(
        variables=[], variants=[{"channel": "email", "subject": "Hi", "html": "{% include 'partials/nope.html' %}"}]
    )
    api.post("/v1/templates", json=body)
    response = api.post("/v1/templates/welcome/publish")
    assert response.status_code == 409
    assert response.json["error"]["details"]["snippet"] == "partials/nope.html"


def test_snippet_names_are_checked(api):
    response = api.put("/v1/snippets/../etc/passwd", json={"source": "x"})
    assert response.status_code in (404, 422)
    response = api.put("/v1/snippets/layouts/base", json={"source": "x"})
    assert response.status_code == 422
    assert response.json["error"]["details"]["field"] == "name"


def test_preview_with_a_stored_profile(api):
    publish_template(api)
    put_profile(api, "u1", attributes={"first_name": "Grace", "plan": "team"}, locale="es")
    preview = api.post("/v1/templates/welcome/preview", json={"external_id": "u1", "channel": "email"})
    assert preview.status_code == 200
    body = preview.json
    assert body["version"] == 1 and body["problems"] == []
    [part] = body["parts"]
    assert (part["locale"], part["subject"]) == ("es", "Bienvenido, Grace")
    assert "Hola Grace, plan team." in part["text"]


def test_preview_reports_missing_and_undeclared_variables(api):
    api.post("/v1/templates", json=template_body(variables=["first_name"]))
    preview = api.post("/v1/templates/welcome/preview", json={"version": "draft", "data": {}}).json
    codes = {(p["code"], p["part"]) for p in preview["problems"]}
    assert ("undeclared_variable", "email.en.html") in codes
    assert ("missing_variable", "data") in codes
    assert any(p["code"] == "undefined_variable" for p in preview["problems"])


def test_preview_escapes_html_but_not_text(api):
    api.post("/v1/templates", json=template_body(variables=["first_name", "plan"]))
    api.post("/v1/templates/welcome/publish")
    evil = "<script>alert(1)</script>"
    preview = api.post(
        "/v1/templates/welcome/preview", json={"data": {"first_name": evil, "plan": "p"}, "channel": "sms"}
    ).json
    assert preview["parts"][0]["body"] == f"Welcome {evil}!"
    preview = api.post(
        "/v1/templates/welcome/preview", json={"data": {"first_name": evil, "plan": "p"}, "channel": "email"}
    ).json
    assert "<script>" not in preview["parts"][0]["html"]
    assert "&lt;script&gt;" in preview["parts"][0]["html"]


def test_previewing_the_latest_version_of_an_unpublished_template_is_a_409(api):
    api.post("/v1/templates", json=template_body())

    latest = api.post("/v1/templates/welcome/preview", json={})
    draft = api.post(
        "/v1/templates/welcome/preview", json={"version": "draft", "data": {"first_name": "A", "plan": "p"}}
    )

    assert (latest.status_code, latest.json["error"]["details"]["field"]) == (409, "version")
    assert draft.status_code == 200


def test_rollback_publishes_the_old_content_as_a_new_version(api):
    publish_template(api)
    first = api.get("/v1/templates/welcome/versions/1").json["variants"]
    api.patch("/v1/templates/welcome", json={"variants": [{"channel": "sms", "body": "Changed {{ first_name }}"}]})
    assert api.post("/v1/templates/welcome/publish").json["version"] == 2

    rolled = api.post("/v1/templates/welcome/versions/1/rollback")
    assert (rolled.status_code, rolled.json) == (201, {"version": 3, "created": True})
    assert api.get("/v1/templates/welcome/versions/3").json["variants"] == first
    assert api.get("/v1/templates/welcome").json["variants"] == first
    entry = api.get("/v1/audit", query_string={"action": "template.rollback"}).json["items"]
    assert [(e["before"], e["after"]) for e in entry] == [({"version": 2}, {"version": 3, "from_version": 1})]

    again = api.post("/v1/templates/welcome/versions/1/rollback")
    assert (again.status_code, again.json) == (200, {"version": 3, "created": False})


def test_rollback_keeps_the_snippets_frozen_in_the_old_version(api):
    api.put("/v1/snippets/partials/sig.txt", json={"source": "Old signature"})
    publish_template(api, variables=[], variants=[{"channel": "sms", "body": "Hi {% include 'partials/sig.txt' %}"}])
    api.put("/v1/snippets/partials/sig.txt", json={"source": "New signature"})
    api.patch("/v1/templates/welcome", json={"description": "republish with the new signature"})
    api.patch(
        "/v1/templates/welcome", json={"variants": [{"channel": "sms", "body": "Hey {% include 'partials/sig.txt' %}"}]}
    )
    assert api.post("/v1/templates/welcome/publish").json["version"] == 2

    assert api.post("/v1/templates/welcome/versions/1/rollback").json["version"] == 3
    assert api.get("/v1/templates/welcome/versions/3").json["snippets"] == {"partials/sig.txt": "Old signature"}


def test_rollback_to_a_version_that_does_not_exist_is_404_naming_it(api):
    publish_template(api)
    missing = api.post("/v1/templates/welcome/versions/7/rollback")
    assert missing.status_code == 404
    assert missing.json["error"]["details"]["field"] == "version"
    assert api.get("/v1/templates/welcome").json["latest_version"] == 1
    assert api.post("/v1/templates/nope/versions/1/rollback").status_code == 404
