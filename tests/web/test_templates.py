"""The template screens through the Flask test client: listing and searching, the editor and its
live preview, saving and publishing (audited as the user), history, diffs and rollback, and the
roles that may only read."""

from __future__ import annotations

import re

import pytest

from tests.support.factories import publish_template
from tests.web.conftest import csrf_of

READERS = ("viewer", "agent")
WRITERS = ("marketer", "admin")


def editor_form(client, key="welcome"):
    """The editor's fields as the page shows them (the saved draft), ready to post back."""
    page = client.get(f"/templates/{key}")
    assert page.status_code == 200, page.text
    html = page.text
    form = {"csrf_token": csrf_of(html)}
    for name, value in re.findall(r'<input id="f-[^"]+" name="([^"]+)" value="([^"]*)"', html):
        form[name] = unescape(value)
    for name, value in re.findall(r'<textarea id="f-[^"]+" name="([^"]+)"[^>]*>(.*?)</textarea>', html, re.S):
        form[name] = unescape(value)
    for name, value in re.findall(r'<input type="hidden" name="(variants\.\d+\.channel)" value="([^"]+)"', html):
        form[name] = value
    form["category"] = re.search(r"<option selected>([a-z]+)</option>", html).group(1)
    return form


def unescape(text):
    return (
        text.replace("&lt;", "<").replace("&gt;", ">").replace("&#34;", '"').replace("&#39;", "'").replace("&amp;", "&")
    )


@pytest.fixture
def welcome(api):
    """The factories' "welcome" template (email en and es, sms en), published once."""
    publish_template(api)
    return "welcome"


def test_the_list_shows_each_template_and_searches(web_client, api, welcome):
    publish_template(api, key="order-shipped", description="Order shipped")
    client = web_client("viewer")
    listed = client.get("/templates/")
    assert listed.status_code == 200
    assert "welcome" in listed.text and "order-shipped" in listed.text
    assert "version 1" in listed.text and "email: en, es" in listed.text and "sms: en" in listed.text
    found = client.get("/templates/?q=SHIPPED")
    assert "order-shipped" in found.text and ">welcome<" not in found.text
    assert 'href="/templates/"' in client.get("/").text  # the menu entry


@pytest.mark.parametrize("role", READERS)
def test_readers_see_the_editor_without_its_controls(web_client, welcome, role):
    client = web_client(role)
    page = client.get("/templates/welcome")
    assert page.status_code == 200
    assert "Read only" in page.text
    for control in (">Publish</button>", ">Save draft</button>", ">Add variant</button>", "Remove this variant"):
        assert control not in page.text
    assert re.search(r'name="variants.2.sms.body"[^>]* readonly>', page.text)
    assert "New template" not in client.get("/templates/").text
    assert "Publish version 1 again" not in client.get("/templates/welcome/versions").text


@pytest.mark.parametrize("role", READERS)
def test_a_forced_write_from_a_reader_is_403_and_changes_nothing(web_client, api, welcome, role):
    client = web_client(role)
    form = editor_form(client)
    form["variants.2.sms.body"] = "Hijacked"
    token = form["csrf_token"]
    answers = [
        client.post("/templates/welcome", data=form),
        client.post("/templates/welcome/publish", data=form),
        client.post("/templates/welcome/versions/1/rollback", data={"csrf_token": token}),
        client.post("/templates/", data={"csrf_token": token, "key": "new-one", "channel": "sms"}),
        client.get("/templates/new"),
    ]
    assert [a.status_code for a in answers] == [403] * 5
    assert "templates.write" in answers[0].text
    assert api.get("/v1/templates/welcome").json["variants"][2]["body"] == "Welcome {{ first_name }}!"
    assert api.get("/v1/templates/welcome").json["latest_version"] == 1
    assert api.get("/v1/templates/new-one").status_code == 404


def test_a_marketer_creates_a_template_and_lands_in_its_editor(web_client, api):
    client = web_client("marketer")
    token = csrf_of(client.get("/templates/new").text)
    form = {"csrf_token": token, "key": "order-shipped", "description": "Order shipped", "category": "transactional"}
    created = client.post("/templates/", data={**form, "channel": "sms", "locale": "en", "variables": "order_id"})
    assert created.status_code == 302 and created.headers["Location"].endswith("/templates/order-shipped")
    draft = api.get("/v1/templates/order-shipped").json
    assert (draft["variables"], [v["channel"] for v in draft["variants"]]) == (["order_id"], ["sms"])
    assert draft["latest_version"] is None


@pytest.mark.parametrize(
    ("field", "value", "named"),
    [("key", "Not A Key", "Key"), ("category", "loud", "Category"), ("channel", "fax", "Channel")],
)
def test_a_bad_new_template_is_422_naming_the_field(web_client, api, field, value, named):
    client = web_client("marketer")
    form = {"key": "fine", "category": "marketing", "channel": "sms", field: value}
    answer = client.post("/templates/", data={"csrf_token": csrf_of(client.get("/templates/new").text), **form})
    assert answer.status_code == 422
    assert f"{named}:" in answer.text
    assert api.get("/v1/templates").json["items"] == []


def test_saving_the_draft_keeps_it_and_leaves_the_versions_alone(web_client, api, welcome):
    client = web_client("marketer")
    form = editor_form(client)
    form["variants.2.sms.body"] = "Hi {{ first_name }}, welcome aboard"
    saved = client.post("/templates/welcome", data=form)
    assert saved.status_code == 200 and "Draft saved." in saved.text
    assert api.get("/v1/templates/welcome").json["variants"][2]["body"] == "Hi {{ first_name }}, welcome aboard"
    assert api.get("/v1/templates/welcome").json["latest_version"] == 1


@pytest.mark.parametrize(
    ("field", "value", "problem"),
    [
        ("variants.0.email.html", "<p>{% if x %}</p>", "Email (en) HTML"),
        ("variants.0.email.subject", "", "Email (en) Subject"),
        ("variants.2.sms.body", "{{ ''.__class__ }}", "SMS (en) Body"),
        ("variables", "first_name, 9lives", "Variables"),
        ("category", "loud", "Category"),
        ("variants.1.email.locale", "not a locale!", "Email (not a locale!) Locale"),
    ],
)
def test_a_bad_draft_is_422_naming_the_field_and_changes_nothing(web_client, api, welcome, field, value, problem):
    client = web_client("marketer")
    before = api.get("/v1/templates/welcome").json
    form = {**editor_form(client), field: value}
    answer = client.post("/templates/welcome", data=form)
    assert answer.status_code == 422, answer.text
    assert f'<p class="notice" role="status">{problem}' in answer.text
    assert f'name="{field}"' in answer.text and 'aria-invalid="true"' in answer.text
    assert api.get("/v1/templates/welcome").json == before


def test_the_live_preview_renders_the_form_as_typed(web_client, api, welcome):
    client = web_client("marketer")
    form = {**editor_form(client), "sample": '{"first_name": "Ada"}'}
    form["variants.0.email.subject"] = "Hello {{ first_name }}, on {{ plan }}"
    form["variants.2.sms.body"] = "Hi {{ first_name }} " + "x" * 160
    answer = client.post("/templates/welcome/preview", data=form, headers={"X-CSRF-Token": form["csrf_token"]})
    assert answer.status_code == 200
    assert "Hello Ada, on [plan]" in answer.text
    assert re.search(r"data-sms-counter>2 segments · GSM-7<", answer.text)
    form["variants.2.sms.body"] = "Hi {{ first_name }} 🎉"
    answer = client.post("/templates/welcome/preview", data=form, headers={"X-CSRF-Token": form["csrf_token"]})
    assert re.search(r"data-sms-counter>1 segment · UCS-2<", answer.text)
    assert api.get("/v1/templates/welcome").json["variants"][0]["subject"] == "Welcome, {{ first_name }}"


def test_the_preview_puts_each_problem_next_to_its_field(web_client, welcome):
    client = web_client("viewer")
    form = editor_form(client)
    form["variants.2.sms.body"] = "{{ first_name }} {% if %}"
    form["variants.0.email.subject"] = "Hi {{ nickname }}"
    answer = client.post("/templates/welcome/preview", data=form, headers={"X-CSRF-Token": form["csrf_token"]})
    assert answer.status_code == 200
    sms = re.search(r'id="problems-variants-2-sms-body"[^>]*>(.*?)</div>', answer.text, re.S).group(1)
    assert "line 1" in sms
    subject = re.search(r'id="problems-variants-0-email-subject"[^>]*>(.*?)</div>', answer.text, re.S).group(1)
    assert "nickname" in subject and "does not declare" in subject


def test_the_email_frame_is_the_rendered_html_under_its_own_policy(web_client, welcome):
    client = web_client("marketer")
    form = {**editor_form(client), "sample": '{"first_name": "Ada", "plan": "Pro"}'}
    frame = client.post("/templates/welcome/frame/0", data=form)
    assert frame.status_code == 200
    assert "Welcome, Ada!" in frame.text and "Your plan: Pro." in frame.text
    policy = frame.headers["Content-Security-Policy"]
    assert "sandbox" in policy and "script-src" not in policy and "frame-ancestors 'self'" in policy
    assert "Content-Security-Policy" in client.get("/templates/welcome").headers
    assert "frame-ancestors 'none'" in client.get("/templates/welcome").headers["Content-Security-Policy"]


def test_publishing_from_the_editor_saves_publishes_and_audits_the_user(web_client, api, welcome):
    client = web_client("marketer")
    form = editor_form(client)
    form["variants.2.sms.body"] = "Welcome back {{ first_name }}!"
    published = client.post("/templates/welcome/publish", data=form)
    assert published.status_code == 302
    history = client.get(published.headers["Location"])
    assert "Published version 2." in history.text and "Version 2 (latest)" in history.text
    assert api.get("/v1/templates/welcome/versions/2").json["variants"][2]["body"] == "Welcome back {{ first_name }}!"
    entries = api.get("/v1/audit", query_string={"action": "template.publish"}).json["items"]
    assert (entries[0]["actor"], entries[0]["after"]) == ("user:marketer@example.com", {"version": 2})


def test_publishing_a_draft_with_undeclared_variables_is_409_and_saves_nothing(web_client, api, welcome):
    client = web_client("marketer")
    form = {**editor_form(client), "variants.2.sms.body": "Hi {{ nickname }}"}
    answer = client.post("/templates/welcome/publish", data=form)
    assert answer.status_code == 409
    assert "Variables: variables used but not declared: nickname" in answer.text
    assert api.get("/v1/templates/welcome").json["variants"][2]["body"] == "Welcome {{ first_name }}!"
    assert api.get("/v1/templates/welcome").json["latest_version"] == 1


def test_history_diffs_two_versions_and_rolls_back(web_client, api, welcome):
    api.patch("/v1/templates/welcome", json={"variants": [{"channel": "sms", "body": "Line one\nLine two"}]})
    api.post("/v1/templates/welcome/publish")
    client = web_client("marketer")
    diff = client.get("/templates/welcome/diff?from=1&to=2")
    assert diff.status_code == 200
    assert "<h2>sms.en.body</h2>" in diff.text and "<h2>email.es.subject</h2>" in diff.text
    assert re.search(r"removed</td>\s*<td><del>Welcome \{\{ first_name \}\}!</del>", diff.text)
    assert re.search(r"added</td>\s*<td><ins>Line two</ins>", diff.text)
    assert client.get("/templates/welcome/diff").text == diff.text  # the latest against the one before

    history = client.get("/templates/welcome/versions")
    rolled = client.post("/templates/welcome/versions/1/rollback", data={"csrf_token": csrf_of(history.text)})
    assert rolled.status_code == 302
    assert "Published version 3." in client.get(rolled.headers["Location"]).text
    assert (
        api.get("/v1/templates/welcome/versions/3").json["variants"]
        == (api.get("/v1/templates/welcome/versions/1").json["variants"])
    )
    entry = api.get("/v1/audit", query_string={"action": "template.rollback"}).json["items"][0]
    assert (entry["actor"], entry["after"]) == ("user:marketer@example.com", {"version": 3, "from_version": 1})


@pytest.mark.parametrize(
    ("query", "status", "named"),
    [
        ("from=x&to=1", 422, "from"),
        ("from=1&to=0", 422, "to"),
        ("from=1&to=9", 404, "version"),
        ("from=&to=1", 422, "from"),
    ],
)
def test_a_bad_diff_request_is_a_4xx_naming_the_field(web_client, welcome, query, status, named):
    answer = web_client("viewer").get(f"/templates/welcome/diff?{query}")
    assert answer.status_code == status
    assert f"<strong>{named}</strong>" in answer.text


def test_unknown_and_internal_templates_are_404(web_client, welcome):
    client = web_client("marketer")
    token = csrf_of(client.get("/templates/").text)
    assert client.get("/templates/nope").status_code == 404
    assert client.get("/templates/ccm.system-text").status_code == 404
    assert client.get("/templates/nope/versions").status_code == 404
    assert client.post("/templates/nope/versions/1/rollback", data={"csrf_token": token}).status_code == 404
    assert client.post("/templates/welcome/versions/5/rollback", data={"csrf_token": token}).status_code == 404


def test_a_write_without_the_csrf_token_is_403(web_client, api, welcome):
    client = web_client("marketer")
    form = {**editor_form(client), "variants.2.sms.body": "No token"}
    del form["csrf_token"]
    assert client.post("/templates/welcome/publish", data=form).status_code == 403
    assert api.get("/v1/templates/welcome").json["latest_version"] == 1


def test_adding_a_variant_keeps_what_was_typed_and_saves_nothing(web_client, api, welcome):
    client = web_client("marketer")
    form = {**editor_form(client), "variants.2.sms.body": "Typed, not saved", "new_channel": "chat", "new_locale": "fr"}
    answer = client.post("/templates/welcome/variants", data=form)
    assert answer.status_code == 200
    assert "Chat (fr)" in answer.text and "Typed, not saved" in answer.text
    assert len(api.get("/v1/templates/welcome").json["variants"]) == 3
    bad = client.post("/templates/welcome/variants", data={**form, "new_channel": "fax"})
    assert bad.status_code == 422 and "New_channel" in bad.text


@pytest.mark.parametrize(
    ("field", "named"),
    [("description", "Name"), ("variants.2.sms.body", "SMS (en) Body"), ("variants.0.email.html", "Email (en) HTML")],
)
def test_characters_no_column_can_store_are_422_naming_the_field(web_client, api, welcome, field, named):
    client = web_client("marketer")
    before = api.get("/v1/templates/welcome").json
    form = {**editor_form(client), field: "bad \x00 byte"}
    for path in ("/templates/welcome", "/templates/welcome/publish"):
        answer = client.post(path, data=form)
        assert answer.status_code == 422, answer.text
        assert f'<p class="notice" role="status">{named}:' in answer.text
    assert api.get("/v1/templates/welcome").json == before


@pytest.mark.parametrize(
    ("key", "status"), [("a%00b", 422), ("UPPER", 404), ("-dash", 404), ("x" * 201, 404), ("a%0A", 404)]
)
def test_a_key_no_template_can_have_is_a_4xx_naming_it(web_client, key, status):
    client = web_client("marketer")
    token = csrf_of(client.get("/templates/").text)
    for answer in (
        client.get(f"/templates/{key}"),
        client.post(f"/templates/{key}/publish", data={"csrf_token": token}),
    ):
        assert answer.status_code == status  # a NUL is refused in every path by the app's own check
        assert "<strong>key</strong>" in answer.text or '"field": "key"' in answer.text


def test_a_new_template_with_a_nul_is_422(web_client, api):
    client = web_client("marketer")
    form = {"key": "fine", "category": "marketing", "channel": "sms", "description": "a\x00b"}
    answer = client.post("/templates/", data={"csrf_token": csrf_of(client.get("/templates/new").text), **form})
    assert answer.status_code == 422 and "Name:" in answer.text
    assert api.get("/v1/templates").json["items"] == []
