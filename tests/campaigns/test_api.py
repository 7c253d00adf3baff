"""``/v1/campaigns`` as a client uses it: validation that names the field, the moves and their
refusals, the progress, the event stream, and ``/v1/messages?campaign=``."""

from __future__ import annotations

import pytest

from ccm.campaigns import engine
from tests.campaigns.conftest import (
    campaign_body,
    everyone,
    make_campaign,
    publish_promo,
    ready,
    seed_profiles,
    wait_status,
)


@pytest.fixture
def segment(api):
    return ready(api)


def test_a_new_campaign_is_a_draft_listed_with_zero_counts(api, segment):
    campaign = make_campaign(api, segment, channels=["email"], topic="news", throttle={"per_second": 50})
    assert campaign["status"] == "draft" and campaign["id"].startswith("cmp_")
    assert campaign["counts"]["targeted"] == 0 and campaign["throttle"] == {"per_second": 50.0}
    assert [v["key"] for v in campaign["variants"]] == ["A"]
    listed = api.get("/v1/campaigns").json
    assert [item["id"] for item in listed["items"]] == [campaign["id"]]
    assert api.get(f"/v1/campaigns/{campaign['id']}").json["segment"] == segment


@pytest.mark.parametrize(
    ("overrides", "status", "field"),
    [
        ({"segment": "nobody"}, 404, "segment"),
        ({"template": "missing"}, 404, "template"),
        ({"template": None, "variants": [{"template": "promo"}, {"template": "missing"}]}, 404, "variants.1.template"),
        ({"variants": [{"template": "promo", "weight": 1}]}, 422, "template"),
        ({"template": None}, 422, "template"),
        ({"template": None, "variants": [{"template": "promo", "weight": 0}]}, 422, "variants.0.weight"),
        ({"holdout_percent": 60}, 422, "holdout_percent"),
        ({"schedule": {"local_time": "25:00"}}, 422, "schedule.local_time"),
        ({"schedule": {"at": "tomorrow"}}, 422, "schedule.at"),
        ({"calendar": {"hours": ["18:00", "09:00"]}}, 422, "calendar.hours"),
        ({"calendar": {"days": ["mon", "mon"]}}, 422, "calendar.days"),
        ({"throttle": {"per_second": -1}}, 422, "throttle.per_second"),
        ({"ab_test": {"sample_percent": 20, "wait_hours": 1}}, 422, "variants"),
        ({"channels": ["fax"]}, 422, "channels.0"),
        ({"surprise": 1}, 422, "surprise"),
    ],
)
def test_an_invalid_campaign_is_refused_naming_the_field(api, segment, overrides, status, field):
    body = {key: value for key, value in (campaign_body(segment) | overrides).items() if value is not None}
    answer = api.post("/v1/campaigns", json=body)
    assert answer.status_code == status, answer.json
    assert answer.json["error"]["details"]["field"] == field, answer.json
    assert api.get("/v1/campaigns").json["items"] == []


def test_moves_that_the_status_does_not_allow_are_409s_saying_why(api, runtime, workspace, segment):
    campaign = make_campaign(api, segment)
    refused = api.post(f"/v1/campaigns/{campaign['id']}/pause")
    assert refused.status_code == 409 and "draft campaign cannot be paused" in refused.json["error"]["message"]
    assert api.post(f"/v1/campaigns/{campaign['id']}/cancel").json["status"] == "cancelled"
    assert api.post(f"/v1/campaigns/{campaign['id']}/launch").status_code == 409
    assert api.post(f"/v1/campaigns/{campaign['id']}/resume").status_code == 409
    assert api.patch(f"/v1/campaigns/{campaign['id']}", json={"name": "later"}).status_code == 409
    assert api.get("/v1/campaigns/cmp_00000000000000000000000000").status_code == 404


def test_a_draft_can_be_changed_until_it_is_launched(api, runtime, workspace, segment):
    publish_promo(api, "promo-b")
    campaign = make_campaign(api, segment)
    changed = api.patch(
        f"/v1/campaigns/{campaign['id']}",
        json={
            "name": "Autumn",
            "template": None,
            "variants": [{"template": "promo"}, {"template": "promo-b", "weight": 3}],
        },
    )
    assert changed.status_code == 200, changed.json
    assert changed.json["name"] == "Autumn"
    assert [(v["key"], v["template"], v["weight"]) for v in changed.json["variants"]] == [
        ("A", "promo", 1.0),
        ("B", "promo-b", 3.0),
    ]
    launched = api.post(f"/v1/campaigns/{campaign['id']}/launch").json
    assert launched["status"] == "running"
    assert [v["template_version"] for v in launched["variants"]] == [1, 1]
    assert api.patch(f"/v1/campaigns/{campaign['id']}", json={"name": "x"}).status_code == 409


def test_launching_marketing_email_without_a_postal_address_is_refused(api, runtime, workspace):
    api.patch("/v1/workspace", json={"policy": {"postal_address": None}})  # the test workspace has one
    publish_promo(api)
    campaign = make_campaign(api, everyone(api))
    refused = api.post(f"/v1/campaigns/{campaign['id']}/launch")
    assert refused.status_code == 409
    assert "postal address" in refused.json["error"]["message"]
    assert api.get(f"/v1/campaigns/{campaign['id']}").json["status"] == "draft"
    sms_only = make_campaign(api, everyone(api, "all2"), channels=["sms"])
    assert api.post(f"/v1/campaigns/{sms_only['id']}/launch").json["status"] == "running"


def test_launching_twice_fans_out_once(api, runtime, workspace, segment):
    seed_profiles(runtime, workspace[0], 40)
    campaign = make_campaign(api, segment)
    first = api.post(f"/v1/campaigns/{campaign['id']}/launch").json
    engine.run_fanout(runtime, campaign["id"])
    second = api.post(f"/v1/campaigns/{campaign['id']}/launch").json
    engine.run_fanout(runtime, campaign["id"])
    assert first["id"] == second["id"] and second["status"] == "running"
    assert api.get(f"/v1/campaigns/{campaign['id']}").json["counts"]["targeted"] == 40


def test_its_messages_are_listed_page_by_page(api, runtime, workspace, segment):
    seed_profiles(runtime, workspace[0], 7)
    campaign = make_campaign(api, segment)
    api.post(f"/v1/campaigns/{campaign['id']}/launch")
    engine.run_fanout(runtime, campaign["id"])
    other = make_campaign(api, segment, name="other")
    api.post(f"/v1/campaigns/{other['id']}/launch")
    engine.run_fanout(runtime, other["id"])
    first = api.get(f"/v1/messages?campaign={campaign['id']}&limit=5").json
    second = api.get(f"/v1/messages?campaign={campaign['id']}&limit=5&cursor={first['next_cursor']}").json
    items = first["items"] + second["items"]
    assert len(items) == 7 and second["next_cursor"] is None
    assert {item["campaign_id"] for item in items} == {campaign["id"]}
    assert {item["variant"] for item in items} == {"A"}
    assert api.get("/v1/messages?campaign=nope").status_code == 422


def test_the_event_stream_reports_progress_until_the_end(api, runtime, workspace, worker, smtp_server, segment):
    seed_profiles(runtime, workspace[0], 5)
    campaign = make_campaign(api, segment)
    api.post(f"/v1/campaigns/{campaign['id']}/launch")
    wait_status(api, campaign["id"], "completed")
    answer = api.get(f"/v1/campaigns/{campaign['id']}/events")
    assert answer.status_code == 200 and answer.mimetype == "text/event-stream"
    events = [block for block in answer.get_data(as_text=True).split("\n\n") if block]
    assert events[0].startswith("event: progress\ndata: {")
    assert '"targeted":5' in events[0] and events[-1] == 'event: end\ndata: {"status": "completed"}'
    assert api.get(f"/v1/campaigns/{campaign['id']}/events?seconds=0").status_code == 422
    assert api.get("/v1/campaigns/cmp_00000000000000000000000000/events").status_code == 404
