"""The segments screens through the Flask test client: the list, the builder's live count and its
errors next to the wrong control, saving, static lists, and what each role may do."""

from __future__ import annotations

import json
import re

import pytest
from sqlalchemy import func, select

from ccm.segments.models import Segment, SegmentMember
from tests.segments.conftest import add_profile
from tests.web.conftest import csrf_of

WRITERS = ("admin", "marketer")
READERS = ("viewer", "agent")


@pytest.fixture
def people(runtime, workspace):
    with runtime.db.unit_of_work() as session:
        add_profile(session, workspace[0], "ana", attributes={"country": "FR", "plan": "pro"})
        add_profile(session, workspace[0], "bob", attributes={"country": "FR"})
        add_profile(session, workspace[0], "cy", attributes={"country": "DE"})


def segments(runtime) -> list[Segment]:
    with runtime.db.read_only() as session:
        return list(session.scalars(select(Segment).order_by(Segment.name)))


def builder_form(client, **fields):
    """The builder's fields: one attribute row ``country equals FR`` unless overridden."""
    token = csrf_of(client.get("/segments/new").text)
    form = {
        "csrf_token": token,
        "name": "France",
        "combine": "and",
        "rows-0-kind": "attribute",
        "rows-0-field": "attributes.country",
        "rows-0-op": "equals",
        "rows-0-value": "FR",
    }
    form.update(fields)
    return form


def errors_header(answer) -> dict[str, str]:
    return json.loads(answer.headers["HX-Trigger"])["rules-errors"]["errors"]


@pytest.mark.parametrize("role", WRITERS + READERS)
def test_every_role_sees_the_segments_in_the_menu_and_the_list(web_client, role, people):
    client = web_client(role)
    home = client.get("/")
    assert 'href="/segments/"' in home.text
    listing = client.get("/segments/")
    assert listing.status_code == 200
    assert ("New segment" in listing.text) == (role in WRITERS)


@pytest.mark.parametrize("role", WRITERS)
def test_the_live_count_and_sample_follow_the_rules(web_client, role, people):
    client = web_client(role)
    answer = client.post("/segments/preview", data=builder_form(client))
    assert answer.status_code == 200
    assert 'data-count="2"' in answer.text
    assert "ana@example.com" in answer.text and "cy@example.com" not in answer.text
    assert errors_header(answer) == {}
    either = builder_form(client, **{"combine": "or", "rows-1-kind": "attribute"})
    either.update({"rows-1-field": "attributes.country", "rows-1-op": "in", "rows-1-value": "DE, IT"})
    assert 'data-count="3"' in client.post("/segments/preview", data=either).text


def test_an_event_row_builds_a_windowed_count(web_client, people):
    client = web_client("marketer")
    form = builder_form(client, **{"rows-0-kind": "event", "rows-0-event": "order", "rows-0-count_op": "at_most"})
    form.update({"rows-0-count": "0", "rows-0-days": "30"})
    answer = client.post("/segments/preview", data=form)
    assert 'data-count="3"' in answer.text  # nobody ordered
    assert "&#34;within_last&#34;: {" in answer.text  # the JSON textarea shows the tree the rows make


@pytest.mark.parametrize(
    ("fields", "control"),
    [
        ({"rows-0-field": "engagement_score", "rows-0-value": "high"}, "rows-0-op"),
        ({"rows-0-op": "between", "rows-0-value": "1"}, "rows-0-value"),
        ({"rows-0-kind": "event", "rows-0-event": "x", "rows-0-days": "soon"}, "rows-0-days"),
        ({"rows-0-field": "nickname"}, "rows-0-field"),
        ({"rows-0-kind": "in_segment", "rows-0-segment": "nothing"}, "rows-0-segment"),
    ],
)
def test_invalid_rules_are_named_at_the_wrong_control(web_client, people, fields, control):
    client = web_client("marketer")
    answer = client.post("/segments/preview", data=builder_form(client, **fields))
    assert answer.status_code == 422
    assert list(errors_header(answer)) == [control]
    saved = client.post("/segments/", data=builder_form(client, **fields))
    assert saved.status_code == 422
    assert re.search(rf'id="{control}"[^>]*aria-invalid="true"', saved.text), saved.text
    assert re.search(rf'id="err-{control}">[^<]+<', saved.text)
    assert segments(client.application.extensions["ccm"]) == []


def test_a_segment_needs_a_name_to_be_saved_not_to_be_counted(web_client, runtime, people):
    client = web_client("marketer")
    assert client.post("/segments/preview", data=builder_form(client, name="")).status_code == 200
    saved = client.post("/segments/", data=builder_form(client, name=""))
    assert saved.status_code == 422
    assert re.search(r'id="name"[^>]*aria-invalid="true"', saved.text)
    assert 'id="err-name">name: String should have at least 1 character<' in saved.text
    assert segments(runtime) == []


def test_json_mode_takes_nested_rules_and_names_their_errors(web_client, people):
    client = web_client("marketer")
    nested = {"not": {"or": [{"attribute": "attributes.plan", "op": "exists"}]}}
    form = builder_form(client, use_json="on", rules_json=json.dumps(nested))
    assert 'data-count="2"' in client.post("/segments/preview", data=form).text
    bad = builder_form(client, use_json="on", rules_json='{"not": {"attribute": "attributes.plan", "op": "maybe"}}')
    answer = client.post("/segments/preview", data=bad)
    assert answer.status_code == 422 and list(errors_header(answer)) == ["rules_json"]
    assert errors_header(answer)["rules_json"].startswith("rules.not: op: one of equals")
    broken = client.post("/segments/", data=builder_form(client, use_json="on", rules_json="{nope"))
    assert broken.status_code == 422 and "not JSON" in broken.text
    deep = client.post("/segments/preview", data=builder_form(client, use_json="on", rules_json="[" * 100_000))
    assert deep.status_code == 422 and list(errors_header(deep)) == ["rules_json"]
    nul = '{"attribute": "email", "op": "equals", "value": "a\\u0000b"}'
    stored = client.post("/segments/preview", data=builder_form(client, use_json="on", rules_json=nul))
    assert stored.status_code == 422 and "rules.value: NUL characters" in errors_header(stored)["rules_json"]


def test_saving_makes_the_segment_and_reopens_it_as_rows(web_client, runtime, people):
    client = web_client("marketer")
    saved = client.post("/segments/", data=builder_form(client))
    assert saved.status_code == 302
    (segment,) = segments(runtime)
    assert segment.rules == {"and": [{"attribute": "attributes.country", "op": "equals", "value": "FR"}]}
    page = client.get(saved.headers["Location"])
    assert 'value="attributes.country"' in page.text and "Saved." in page.text
    assert client.get(f"/segments/{segment.id}/count").text.count('data-count="2"') == 1
    renamed = client.post(f"/segments/{segment.id}", data=builder_form(client, name="Francophones"))
    assert renamed.status_code == 302 and segments(runtime)[0].name == "Francophones"
    again = client.post("/segments/", data=builder_form(client, name="Francophones"))
    assert again.status_code == 409 and 'id="err-name">name: the workspace has a segment' in again.text


def test_deleting_is_refused_while_another_segment_uses_it(web_client, runtime, people):
    client = web_client("marketer")
    client.post("/segments/", data=builder_form(client, name="France"))
    uses = {"rows-0-kind": "in_segment", "rows-0-segment": "France"}
    assert client.post("/segments/", data=builder_form(client, name="Loyal French", **uses)).status_code == 302
    france, loyal = segments(runtime)
    assert f'<option value="{france.id}" selected>France</option>' in client.get(f"/segments/{loyal.id}").text
    token = csrf_of(client.get("/segments/").text)
    refused = client.post(f"/segments/{france.id}/delete", data={"csrf_token": token})
    assert refused.status_code == 409 and "segment &#39;Loyal French&#39; uses this one" in refused.text
    assert client.post(f"/segments/{loyal.id}/delete", data={"csrf_token": token}).status_code == 302
    assert client.post(f"/segments/{france.id}/delete", data={"csrf_token": token}).status_code == 302
    assert segments(runtime) == []


def test_a_static_list_takes_members_by_external_id(web_client, runtime, people):
    client = web_client("marketer")
    token = csrf_of(client.get("/segments/").text)
    made = client.post("/segments/static", data={"csrf_token": token, "name": "VIPs"})
    assert made.status_code == 302
    (segment,) = segments(runtime)
    added = client.post(
        f"/segments/{segment.id}/members", data={"csrf_token": token, "action": "add", "profiles": "ana\nbob\nzed"}
    )
    assert "Added 2 profile(s). No profile has the external id(s): zed." in added.text
    assert client.get(f"/segments/{segment.id}/count").text.count('data-count="2"') == 1
    bad = client.post(f"/segments/{segment.id}/members", data={"csrf_token": token, "profiles": "a\x01b"})
    assert bad.status_code == 422 and 'id="err-profiles">profiles.0' in bad.text


@pytest.mark.parametrize("role", READERS)
def test_readers_may_look_but_a_forced_write_is_refused(web_client, runtime, people, role):
    client = web_client(role)
    writer = web_client("marketer")
    writer.post("/segments/static", data={"csrf_token": csrf_of(writer.get("/").text), "name": "VIPs"})
    (segment,) = segments(runtime)
    shown = client.get(f"/segments/{segment.id}")
    assert shown.status_code == 200 and "Add to the list" not in shown.text
    assert client.get("/segments/new").status_code == 403
    token = csrf_of(shown.text)
    for path, data in [
        ("/segments/", builder_form(writer, csrf_token=token)),
        ("/segments/static", {"csrf_token": token, "name": "mine"}),
        (f"/segments/{segment.id}", builder_form(writer, csrf_token=token, name="renamed")),
        (f"/segments/{segment.id}/members", {"csrf_token": token, "profiles": "ana"}),
        ("/segments/preview", builder_form(writer, csrf_token=token)),
        (f"/segments/{segment.id}/delete", {"csrf_token": token}),
    ]:
        assert client.post(path, data=data).status_code == 403, path
    assert [s.name for s in segments(runtime)] == ["VIPs"]
    with runtime.db.read_only() as session:
        assert session.scalar(select(func.count()).select_from(SegmentMember)) == 0


def test_a_form_without_its_token_is_refused(web_client, runtime, people):
    client = web_client("marketer")
    form = builder_form(client)
    del form["csrf_token"]
    assert client.post("/segments/", data=form).status_code == 403
    assert segments(runtime) == []


def test_adding_and_removing_rows_rerenders_them(web_client, people):
    client = web_client("marketer")
    added = client.post("/segments/builder", data=builder_form(client, add="1", add_kind="engagement"))
    assert 'id="rows-1-engagement"' in added.text and 'value="FR"' in added.text
    removed = client.post("/segments/builder", data=builder_form(client, remove="0"))
    assert 'id="rows-0-kind"' not in removed.text


def test_an_unknown_segment_is_404(web_client):
    assert web_client("viewer").get("/segments/seg_nothing").status_code == 404


def test_what_no_column_can_store_is_refused_naming_the_field(web_client, runtime, people):
    client = web_client("marketer")
    answer = client.post("/segments/", data=builder_form(client, **{"rows-0-value": "F\x00R"}))
    assert answer.status_code == 422 and "rows-0-value: NUL characters" in answer.text
    assert client.get("/segments/seg\x00x").status_code == 422
    assert segments(runtime) == []
