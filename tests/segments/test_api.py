"""``/v1/segments`` as a client uses it."""

from __future__ import annotations

from typing import Any

import pytest

from tests.support.factories import put_profile

FRANCE = {"attribute": "attributes.country", "op": "equals", "value": "FR"}


def make(api: Any, name: str = "france", **body: Any) -> dict[str, Any]:
    answer = api.post("/v1/segments", json={"name": name, **(body or {"rules": FRANCE})})
    assert answer.status_code == 201, answer.json
    return answer.json


@pytest.fixture
def people(api):
    for external_id, country in (("ana", "FR"), ("bob", "DE"), ("cyd", "FR")):
        put_profile(api, external_id, attributes={"country": country})


def test_a_rules_segment_counts_and_samples_its_profiles(api, people):
    segment = make(api)
    assert segment["kind"] == "rules" and segment["id"].startswith("seg_") and segment["rules"] == FRANCE
    assert api.get(f"/v1/segments/{segment['id']}/count").json == {"count": 2, "approximate": False}
    sample = api.get(f"/v1/segments/{segment['id']}/sample").json["data"]
    assert sorted(profile["external_id"] for profile in sample) == ["ana", "cyd"]
    assert set(sample[0]) >= {"id", "email", "attributes", "engagement_score"}
    assert len(api.get(f"/v1/segments/{segment['id']}/sample?limit=1").json["data"]) == 1
    assert api.get("/v1/segments/france/count").json["count"] == 2  # by name too


def test_sample_limit_is_bounded(api, people):
    segment = make(api)
    for bad in ("0", "101", "ten"):
        answer = api.get(f"/v1/segments/{segment['id']}/sample?limit={bad}")
        assert answer.status_code == 422 and answer.json["error"]["details"]["field"] == "query.limit"


def test_live_count_of_rules_not_saved(api, people):
    answer = api.post("/v1/segments/count", json={"rules": {"not": FRANCE}})
    assert answer.json == {"count": 1, "approximate": False}


def test_a_static_list_takes_members_and_reports_unknown_ids(api, people):
    listed = make(api, "vips", kind="static")
    assert listed["kind"] == "static" and listed["rules"] is None
    added = api.post(f"/v1/segments/{listed['id']}/members", json={"profiles": ["ana", "bob", "nobody", "ana"]})
    assert added.status_code == 200 and added.json == {"added": 2, "removed": None, "unknown": ["nobody"]}
    again = api.post(f"/v1/segments/{listed['id']}/members", json={"profiles": ["ana"]})
    assert again.json["added"] == 0
    assert api.get(f"/v1/segments/{listed['id']}/count").json["count"] == 2
    removed = api.delete(f"/v1/segments/{listed['id']}/members", json={"profiles": ["bob", "ghost"]})
    assert removed.json == {"added": None, "removed": 1, "unknown": ["ghost"]}
    assert [p["external_id"] for p in api.get(f"/v1/segments/{listed['id']}/sample").json["data"]] == ["ana"]


def test_members_are_for_static_lists_only(api, people):
    segment = make(api)
    answer = api.post(f"/v1/segments/{segment['id']}/members", json={"profiles": ["ana"]})
    assert answer.status_code == 409
    assert api.patch(f"/v1/segments/{make(api, 'l', kind='static')['id']}", json={"rules": FRANCE}).status_code == 409


def test_members_are_at_most_ten_thousand_a_call(api, people):
    listed = make(api, "big", kind="static")
    answer = api.post(f"/v1/segments/{listed['id']}/members", json={"profiles": [f"u{i}" for i in range(10_001)]})
    assert answer.status_code == 422 and answer.json["error"]["details"]["field"] == "profiles"


def test_patch_renames_and_replaces_rules_and_delete_removes(api, people):
    segment = make(api)
    changed = api.patch(f"/v1/segments/{segment['id']}", json={"name": "germany", "rules": {**FRANCE, "value": "DE"}})
    assert changed.status_code == 200 and changed.json["name"] == "germany"
    assert api.get(f"/v1/segments/{segment['id']}/count").json["count"] == 1
    assert api.delete(f"/v1/segments/{segment['id']}").status_code == 204
    assert api.get(f"/v1/segments/{segment['id']}").status_code == 404


def test_names_are_unique_in_a_workspace(api):
    make(api)
    answer = api.post("/v1/segments", json={"name": "france", "rules": FRANCE})
    assert answer.status_code == 409 and answer.json["error"]["details"]["field"] == "name"


def test_list_is_paginated_newest_first(api):
    ids = [make(api, f"s{i}")["id"] for i in range(3)]
    first = api.get("/v1/segments?limit=2").json
    assert [item["id"] for item in first["items"]] == ids[:0:-1]
    rest = api.get(f"/v1/segments?limit=2&cursor={first['next_cursor']}").json
    assert [item["id"] for item in rest["items"]] == ids[:1] and rest["next_cursor"] is None


@pytest.mark.parametrize(
    ("rules", "field"),
    [
        ({"and": [FRANCE, {"attribute": "attributes.age", "op": "gt"}]}, "rules.and.1.value"),
        ({"or": [{"event": "order_completed", "within_last": {"days": -3}}]}, "rules.or.0.within_last.days"),
        ({"attribute": "attributes.country", "op": "equalz", "value": "FR"}, "rules"),
        ({"attribute": "password", "op": "equals", "value": "x"}, "rules.attribute"),
        ({"nand": []}, "rules"),
        ({"and": []}, "rules.and"),
        ({"engagement": "opened", "within_last": {"days": 7}, "channel": "fax"}, "rules.channel"),
        (
            {"event": "x", "where": [{"property": "properties.total", "op": "gt", "value": "1", "extra": 1}]},
            "rules.where.0.extra",
        ),
        (
            {"attribute": "created_at", "op": "within_last", "value": {"days": 1}, "timezone": "Mars/Olympus"},
            "rules.timezone",
        ),
    ],
)
def test_bad_rules_are_refused_naming_the_field(api, rules, field):
    answer = api.post("/v1/segments", json={"name": "bad", "rules": rules})
    assert answer.status_code == 422, answer.json
    assert answer.json["error"]["details"]["field"] == field, answer.json
    assert api.get("/v1/segments").json["items"] == []


def test_rules_too_deep_or_too_many_are_refused(api):
    deep: dict[str, Any] = FRANCE
    for _ in range(9):
        deep = {"not": deep}
    answer = api.post("/v1/segments", json={"name": "deep", "rules": deep})
    assert answer.status_code == 422 and "nest" in answer.json["error"]["message"]
    wide = {"or": [{"and": [FRANCE] * 50} for _ in range(5)]}
    answer = api.post("/v1/segments", json={"name": "wide", "rules": wide})
    assert answer.status_code == 422 and "at most" in answer.json["error"]["message"]


def test_a_rules_segment_needs_rules_and_a_list_has_none(api):
    assert api.post("/v1/segments", json={"name": "x"}).json["error"]["details"]["field"] == "rules"
    answer = api.post("/v1/segments", json={"name": "x", "kind": "static", "rules": FRANCE})
    assert answer.status_code == 422 and answer.json["error"]["details"]["field"] == "rules"


def test_in_segment_resolves_names_refuses_unknown_and_cycles(api, people):
    vips = make(api, "vips", kind="static")
    api.post(f"/v1/segments/{vips['id']}/members", json={"profiles": ["ana", "bob"]})
    french_vips = make(api, "french-vips", rules={"and": [FRANCE, {"in_segment": "vips"}]})
    assert french_vips["rules"]["and"][1] == {"in_segment": vips["id"]}
    assert api.get(f"/v1/segments/{french_vips['id']}/count").json["count"] == 1
    unknown = api.post("/v1/segments", json={"name": "x", "rules": {"in_segment": "nope"}})
    assert unknown.status_code == 422 and unknown.json["error"]["details"]["field"] == "rules"
    outer = make(api, "outer", rules={"in_segment": french_vips["id"]})
    cycle = api.patch(f"/v1/segments/{french_vips['id']}", json={"rules": {"in_segment": outer["id"]}})
    assert cycle.status_code == 422 and "cycle" in cycle.json["error"]["message"]
    assert api.delete(f"/v1/segments/{vips['id']}").status_code == 409


def test_another_workspaces_segment_is_not_found_and_its_profiles_never_counted(api, runtime, app, people):
    from ccm.auth.service import create_api_key
    from ccm.workspaces.service import get_or_create_workspace
    from tests.support.api import ApiClient

    with runtime.db.unit_of_work() as session:
        other, _ = get_or_create_workspace(session=session, name="globex")
        _, token = create_api_key(session=session, workspace_id=other.id)
    theirs = ApiClient(app.test_client(), token)
    put_profile(theirs, "zoe", attributes={"country": "FR"})
    their_segment = make(theirs)
    for path in ("", "/count", "/sample"):
        assert api.get(f"/v1/segments/{their_segment['id']}{path}").status_code == 404
    assert api.patch(f"/v1/segments/{their_segment['id']}", json={"name": "x"}).status_code == 404
    assert api.delete(f"/v1/segments/{their_segment['id']}").status_code == 404
    assert api.post("/v1/segments", json={"name": "x", "rules": {"in_segment": their_segment["id"]}}).status_code == 422
    mine = make(api)
    assert api.get(f"/v1/segments/{mine['id']}/count").json["count"] == 2
    assert theirs.get(f"/v1/segments/{their_segment['id']}/count").json["count"] == 1
