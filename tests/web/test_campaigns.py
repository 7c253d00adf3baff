"""The campaign screens through the Flask client, per role: the list, the composer and its
errors by field, the moves (audited as the user), the event stream, the results and the CSV."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import func, select

from ccm.audit.models import AuditEntry
from ccm.campaigns.models import Campaign
from tests.campaigns.conftest import campaign_row, make_campaign, ready, seed_profiles, wait_status
from tests.web.conftest import csrf_of

WRITERS, READERS = ("marketer", "admin"), ("viewer", "agent")


def campaigns_in(runtime) -> int:
    with runtime.db.read_only() as session:
        return session.scalar(select(func.count()).select_from(Campaign)) or 0


def field_error(html: str, field: str) -> str:
    """The error shown next to a field of the composer ("" when none)."""
    found = re.search(rf'<p class="field-error" id="{re.escape(field.replace(".", "-"))}-error">([^<]*)</p>', html)
    return found.group(1) if found else ""


def composer(client, **fields):
    csrf = csrf_of(client.get("/campaigns/new").text)
    return client.post("/campaigns/new", data={"csrf_token": csrf, **fields})


@pytest.mark.parametrize("role", WRITERS + READERS)
def test_every_role_sees_the_campaign_list_with_its_counts(web_client, api, role):
    segment = ready(api)
    make_campaign(api, segment, name="Winter <sale>")
    client = web_client(role)
    answer = client.get("/campaigns/")
    assert answer.status_code == 200
    assert 'href="/campaigns/">Campaigns</a>' in client.get("/").text
    assert "Winter &lt;sale&gt;" in answer.text and "draft" in answer.text
    assert ("New campaign" in answer.text) == (role in WRITERS)


def test_a_marketer_composes_an_ab_campaign_with_every_setting(web_client, api, runtime):
    segment = ready(api)
    answer = composer(
        web_client("marketer"),
        name="Spring A/B",
        segment=segment,
        **{"variants.0.template": "promo", "variants.0.weight": "3", "variants.1.template": "promo"},
        holdout_percent="10",
        channels=["email"],
        topic="news",
        schedule="local",
        **{"schedule.local_time": "09:30", "throttle.per_second": "2.5"},
        deadline="3600",
    )
    assert answer.status_code == 303, answer.text
    campaign_id = answer.headers["Location"].rsplit("/", 1)[-1]
    body = api.get(f"/v1/campaigns/{campaign_id}").json
    assert [(v["key"], v["weight"]) for v in body["variants"]] == [("A", 3.0), ("B", 1.0)]
    assert body["holdout_percent"] == 10.0 and body["channels"] == ["email"] and body["topic"] == "news"
    assert body["schedule"] == {"local_time": "09:30"} and body["throttle"] == {"per_second": 2.5}
    assert body["deadline"] == 3600 and body["status"] == "draft"


@pytest.mark.parametrize(
    ("fields", "field", "status"),
    [
        ({"name": ""}, "name", 422),
        ({"throttle.per_second": "fast"}, "throttle.per_second", 422),
        ({"deadline": "10"}, "deadline", 422),
        ({"holdout_percent": "75"}, "holdout_percent", 422),
        ({"schedule": "at", "schedule.at": "next tuesday"}, "schedule.at", 422),
        ({"schedule": "sometime"}, "schedule", 422),
        ({"template": "no-such-template"}, "template", 404),
        ({"segment": "seg_nosuch"}, "segment", 404),
        ({"topic": "Not A Topic!"}, "topic", 422),
        ({"template": "", "variants.1.template": "promo"}, "variants.0.template", 422),
    ],
)
def test_bad_input_is_shown_next_to_its_field_and_saves_nothing(web_client, api, runtime, fields, field, status):
    segment = ready(api)
    answer = composer(web_client("marketer"), **{"name": "Sale", "segment": segment, "template": "promo", **fields})
    assert answer.status_code == status
    assert field_error(answer.text, field), answer.text
    assert campaigns_in(runtime) == 0


def test_the_composer_keeps_what_was_typed_after_an_error(web_client, api):
    segment = ready(api)
    answer = composer(web_client("marketer"), name="Keep me", segment=segment, template="promo", deadline="1")
    assert 'value="Keep me"' in answer.text and 'aria-invalid="true"' in answer.text


@pytest.mark.parametrize("role", READERS)
def test_a_read_only_role_is_refused_every_write_and_nothing_changes(web_client, api, runtime, role):
    segment = ready(api)
    campaign = make_campaign(api, segment)
    client = web_client(role)
    page = client.get(f"/campaigns/{campaign['id']}")
    assert page.status_code == 200 and "Launch" not in page.text
    csrf = csrf_of(page.text)
    assert client.get("/campaigns/new").status_code == 403
    forced = client.post(
        "/campaigns/new", data={"csrf_token": csrf, "name": "x", "segment": segment, "template": "promo"}
    )
    assert forced.status_code == 403
    for move in ("launch", "cancel"):
        assert client.post(f"/campaigns/{campaign['id']}/{move}", data={"csrf_token": csrf}).status_code == 403
    assert client.get(f"/campaigns/{campaign['id']}/results.csv").status_code == 403
    assert campaigns_in(runtime) == 1 and campaign_row(runtime, campaign["id"]).status == "draft"


def test_a_move_without_the_csrf_token_is_refused(web_client, api, runtime):
    campaign = make_campaign(api, ready(api))
    assert web_client("marketer").post(f"/campaigns/{campaign['id']}/cancel").status_code == 403
    assert campaign_row(runtime, campaign["id"]).status == "draft"


def test_cancelling_is_audited_as_the_user(web_client, api, runtime):
    campaign = make_campaign(api, ready(api))
    client = web_client("marketer")
    csrf = csrf_of(client.get(f"/campaigns/{campaign['id']}").text)
    answer = client.post(f"/campaigns/{campaign['id']}/cancel", data={"csrf_token": csrf})
    assert answer.status_code == 303
    assert campaign_row(runtime, campaign["id"]).status == "cancelled"
    with runtime.db.read_only() as session:
        entry = session.scalars(select(AuditEntry).where(AuditEntry.action == "campaign.cancel")).one()
    assert entry.actor == "user:marketer@example.com" and entry.target_id == campaign["id"]
    assert (entry.before, entry.after) == ({"status": "draft"}, {"status": "cancelled"})


def test_a_move_the_status_does_not_allow_is_a_409_that_says_why(web_client, api, runtime):
    campaign = make_campaign(api, ready(api))
    client = web_client("admin")
    csrf = csrf_of(client.get(f"/campaigns/{campaign['id']}").text)
    answer = client.post(f"/campaigns/{campaign['id']}/pause", data={"csrf_token": csrf})
    assert answer.status_code == 409
    assert "a draft campaign cannot be paused" in answer.text
    assert client.post(f"/campaigns/{campaign['id']}/explode", data={"csrf_token": csrf}).status_code == 404
    assert campaign_row(runtime, campaign["id"]).status == "draft"


def test_another_workspaces_or_an_unknown_campaign_is_not_found(web_client):
    client = web_client("viewer")
    for path in ("/campaigns/cmp_nosuch", "/campaigns/cmp_nosuch/results", "/campaigns/cmp_nosuch/events"):
        answer = client.get(path)
        assert answer.status_code == 404 and "No campaign" in answer.text


def test_the_event_stream_of_an_ended_campaign_sends_its_progress_then_ends(web_client, api):
    campaign = make_campaign(api, ready(api))
    api.post(f"/v1/campaigns/{campaign['id']}/cancel")
    answer = web_client("viewer").get(f"/campaigns/{campaign['id']}/events")
    assert answer.mimetype == "text/event-stream"
    events = re.findall(r"^event: (\w+)$", answer.text, re.M)
    assert events == ["progress", "end"]
    assert '"status":"cancelled"' in answer.text


def test_a_launched_campaign_completes_and_its_results_show_charts_and_csv(
    web_client, api, runtime, workspace, worker, smtp_server
):
    segment = ready(api)
    seed_profiles(runtime, workspace[0], 6)
    campaign = make_campaign(api, segment, name="Six")
    client = web_client("marketer")
    csrf = csrf_of(client.get(f"/campaigns/{campaign['id']}").text)
    assert client.post(f"/campaigns/{campaign['id']}/launch", data={"csrf_token": csrf}).status_code == 303
    wait_status(api, campaign["id"], "completed", timeout=60)
    page = client.get(f"/campaigns/{campaign['id']}")
    assert "100 %" in page.text and "data-progress-events" not in page.text
    results = client.get(f"/campaigns/{campaign['id']}/results")
    assert results.status_code == 200
    assert results.text.count('<svg role="img"') >= 3
    assert '<th scope="row">targeted</th><td>6</td>' in results.text
    assert '<th scope="row">email</th><td>6</td>' in results.text  # by channel: sent
    assert 'data-rate="delivery">100.0 %' in results.text
    csv = client.get(f"/campaigns/{campaign['id']}/results.csv")
    assert csv.status_code == 200 and csv.mimetype == "text/csv"
    assert csv.text.splitlines()[0].startswith("variant")
