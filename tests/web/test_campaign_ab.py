"""The composer's A/B test, sending calendar and conversion goal through the Flask client: what
they save, their errors next to their fields, the campaign page's set-up and test stage, and the
winner picked by hand behind a confirmation."""

from __future__ import annotations

import datetime as dt
import re

import pytest
from flask import render_template

from ccm.campaigns.models import Campaign, CampaignStatus, FanoutPhase
from ccm.web.campaign_form import SLOTS, blank
from tests.campaigns.conftest import campaign_row, ready
from tests.campaigns.results_helpers import Recipient
from tests.campaigns.results_helpers import make_campaign as campaign_with_messages
from tests.web.conftest import csrf_of
from tests.web.test_campaigns import campaigns_in, composer, field_error

TWO_VARIANTS = {"variants.0.template": "promo", "variants.1.template": "promo"}
TEST = {"sample_percent": 20, "wait_hours": 4, "metric": "opened", "winner": None}
SAMPLE_DONE = dt.datetime(2026, 11, 30, 10, 0, tzinfo=dt.UTC)


def text_of(html: str, field: str) -> str:
    """The text of the element marked ``data-field=field``, tags left out, spaces collapsed."""
    found = re.search(rf'data-field="{field}">(.*?)</(td|p)>', html, re.S)
    assert found, f"no {field} on the page"
    return " ".join(re.sub(r"<[^>]+>", "", found.group(1)).split())


def test_a_marketer_composes_an_ab_test_with_a_calendar_and_a_goal(web_client, api):
    segment = ready(api)
    client = web_client("marketer")
    answer = composer(
        client,
        name="Spring A/B",
        segment=segment,
        **TWO_VARIANTS,
        **{"ab_test.sample_percent": "20", "ab_test.wait_hours": "4.5", "ab_test.metric": "clicked"},
        **{"calendar.days": ["fri", "mon"], "calendar.hours.0": "09:00", "calendar.hours.1": "18:00"},
        **{"goal.event": "order_completed", "goal.within_hours": "48"},
    )
    assert answer.status_code == 303, answer.text
    campaign_id = answer.headers["Location"].rsplit("/", 1)[-1]
    body = api.get(f"/v1/campaigns/{campaign_id}").json
    assert body["ab_test"] == {"sample_percent": 20, "wait_hours": 4.5, "metric": "clicked", "winner": None}
    assert body["calendar"] == {"days": ["mon", "fri"], "hours": ["09:00", "18:00"]}
    assert body["goal"] == {"event": "order_completed", "within_hours": 48}

    page = client.get(f"/campaigns/{campaign_id}").text
    assert text_of(page, "setup-ab-test") == "a 20 % sample, winner by clicks after 4.5 h"
    assert text_of(page, "setup-calendar") == "Monday, Friday; 09:00–18:00 in each recipient's time zone"
    assert text_of(page, "setup-goal") == "order_completed within 48 h"
    assert text_of(page, "ab-stage").startswith("Not started: at launch 20 % of the audience gets the variants")


def test_the_optional_groups_left_empty_save_none_of_them(web_client, api):
    segment = ready(api)
    client = web_client("marketer")
    answer = composer(client, name="Plain", segment=segment, template="promo", **{"ab_test.metric": "clicked"})
    assert answer.status_code == 303, answer.text
    campaign_id = answer.headers["Location"].rsplit("/", 1)[-1]
    body = api.get(f"/v1/campaigns/{campaign_id}").json
    assert (body["ab_test"], body["calendar"], body["goal"]) == (None, None, None)
    page = client.get(f"/campaigns/{campaign_id}").text
    assert text_of(page, "setup-ab-test") == "none" and text_of(page, "setup-goal") == "none"
    assert text_of(page, "setup-calendar") == "any day, any time"
    assert 'data-field="ab-stage"' not in page


def test_days_alone_make_a_calendar_of_every_hour(web_client, api):
    answer = composer(
        web_client("marketer"), name="Weekdays", segment=ready(api), template="promo", **{"calendar.days": ["tue"]}
    )
    assert answer.status_code == 303, answer.text
    body = api.get(f"/v1/campaigns/{answer.headers['Location'].rsplit('/', 1)[-1]}").json
    assert body["calendar"] == {"days": ["tue"], "hours": None}


AB = {**TWO_VARIANTS, "ab_test.sample_percent": "20", "ab_test.wait_hours": "4"}


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({**TWO_VARIANTS, "ab_test.sample_percent": "20"}, "ab_test.wait_hours"),  # half a test
        ({**TWO_VARIANTS, "ab_test.wait_hours": "4"}, "ab_test.sample_percent"),
        ({**AB, "ab_test.sample_percent": "0"}, "ab_test.sample_percent"),
        ({**AB, "ab_test.sample_percent": "120"}, "ab_test.sample_percent"),
        ({**AB, "ab_test.wait_hours": "soon"}, "ab_test.wait_hours"),
        ({**AB, "ab_test.wait_hours": "-1"}, "ab_test.wait_hours"),
        ({**AB, "ab_test.metric": "likes"}, "ab_test.metric"),
        ({"template": "promo", "ab_test.sample_percent": "20", "ab_test.wait_hours": "4"}, "variants"),  # one variant
        ({"template": "promo", "calendar.hours.0": "18:00", "calendar.hours.1": "09:00"}, "calendar.hours"),
        ({"template": "promo", "calendar.hours.0": "09:00"}, "calendar.hours"),  # no end
        ({"template": "promo", "calendar.hours.0": "9am", "calendar.hours.1": "18:00"}, "calendar.hours"),
        ({"template": "promo", "calendar.days": ["someday"]}, "calendar.days"),
        ({"template": "promo", "calendar.days": ["mon", "mon"]}, "calendar.days"),
        ({"template": "promo", "goal.within_hours": "24"}, "goal.event"),
        ({"template": "promo", "goal.event": "order", "goal.within_hours": "0"}, "goal.within_hours"),
        ({"template": "promo", "goal.event": "order", "goal.within_hours": "a week"}, "goal.within_hours"),
    ],
)
def test_bad_ab_calendar_or_goal_input_is_shown_next_to_its_field(web_client, api, runtime, fields, field):
    answer = composer(web_client("marketer"), name="Sale", segment=ready(api), **fields)
    assert answer.status_code == 422
    assert field_error(answer.text, field), answer.text
    assert f'aria-describedby="{field.replace(".", "-")}-error"' in answer.text
    assert campaigns_in(runtime) == 0


def test_the_composer_keeps_the_test_and_the_calendar_after_an_error(web_client, api):
    answer = composer(
        web_client("marketer"),
        name="",
        segment=ready(api),
        **AB,
        **{"ab_test.metric": "replied", "calendar.days": ["sat", "sun"], "calendar.hours.0": "10:00"},
    )
    assert answer.status_code == 422
    assert 'value="20"' in answer.text and '<option value="replied" selected>' in answer.text
    assert 'value="sat" checked' in answer.text and 'value="sun" checked' in answer.text
    assert 'value="mon" checked' not in answer.text and 'value="10:00"' in answer.text


@pytest.mark.parametrize("slot", sorted(SLOTS))
def test_every_field_an_error_can_name_has_its_place_on_the_form(app, slot):
    """An error put at a place the form does not show would only say "see the fields below"."""
    with app.test_request_context("/campaigns/new"):
        html = render_template(
            "campaigns/new.html", form=blank().values, errors={slot: "wrong"}, segments=[], templates=[],
            channels=[], metrics=[], days={},
        )  # fmt: skip
    assert field_error(html, slot) == "wrong"
    assert f'aria-describedby="{slot.replace(".", "-")}-error"' in html


def waiting_campaign(runtime, api, workspace, opened=(6, 24), **fields) -> str:
    """A running A/B campaign whose sample is out: 60 messages per variant, the first ``opened``
    of A's and of B's opened (by default B four times as often)."""
    audience = [
        Recipient(f"{key.lower()}{n}", key, "sent", engagement=["opened"] if n < count else [])
        for key, count in zip("AB", opened, strict=True)
        for n in range(60)
    ]
    fields = {"ab_test": dict(TEST), "phase": FanoutPhase.WAITING} | fields
    campaign_id = campaign_with_messages(runtime, api, workspace[0], audience, **fields)
    with runtime.db.unit_of_work() as session:
        session.get_one(Campaign, campaign_id).sample_done_at = SAMPLE_DONE
    return campaign_id


def test_a_waiting_test_shows_its_stage_the_leader_and_the_pick(web_client, api, runtime, workspace):
    campaign_id = waiting_campaign(runtime, api, workspace)
    page = web_client("marketer").get(f"/campaigns/{campaign_id}").text
    assert text_of(page, "ab-stage") == (
        "Waiting for the winner: the sample (20 % of the audience) is out; "
        "the winner by opens is chosen at 2026-11-30 14:00 UTC and goes to everyone else."
    )
    assert text_of(page, "ab-leader").startswith("Leading now on opens: variant B (significant, 99.9 % confidence)")
    assert "Pick a winner now" in page
    assert re.search(r'value="B" checked> Variant B \(promo\)', page)  # the leader is offered first


def test_before_any_difference_no_variant_is_said_to_lead(web_client, api, runtime, workspace):
    campaign_id = waiting_campaign(runtime, api, workspace, opened=(0, 0))
    page = web_client("marketer").get(f"/campaigns/{campaign_id}").text
    assert text_of(page, "ab-leader").startswith("The variants are level on opens so far.")
    assert re.search(r'value="A" checked> Variant A', page)


def test_a_viewer_sees_the_stage_but_no_pick(web_client, api, runtime, workspace):
    campaign_id = waiting_campaign(runtime, api, workspace)
    viewer = web_client("viewer")
    page = viewer.get(f"/campaigns/{campaign_id}").text
    assert text_of(page, "ab-stage").startswith("Waiting for the winner")
    assert "Pick a winner now" not in page
    csrf = csrf_of(page)
    forced = viewer.post(
        f"/campaigns/{campaign_id}/winner", data={"csrf_token": csrf, "variant": "A", "confirmed": "yes"}
    )
    assert forced.status_code == 403
    assert campaign_row(runtime, campaign_id).ab_test == TEST


def test_picking_a_winner_asks_first_then_records_it_as_the_api_does(web_client, api, runtime, workspace):
    campaign_id = waiting_campaign(runtime, api, workspace)
    client = web_client("marketer")
    csrf = csrf_of(client.get(f"/campaigns/{campaign_id}").text)
    asked = client.post(f"/campaigns/{campaign_id}/winner", data={"csrf_token": csrf, "variant": "A"})
    assert asked.status_code == 200
    assert "Send variant A to the rest of the audience?" in asked.text
    assert "Yes, send variant A to the rest" in asked.text and "No, keep the test running" in asked.text
    assert campaign_row(runtime, campaign_id).ab_test == TEST  # nothing chosen yet

    confirmed = client.post(
        f"/campaigns/{campaign_id}/winner", data={"csrf_token": csrf, "variant": "A", "confirmed": "yes"}
    )
    assert confirmed.status_code == 303
    test = api.get(f"/v1/campaigns/{campaign_id}/results").json["ab_test"]
    assert (test["winner"], test["decided_by"], test["leader"]) == ("A", "manual", "B")
    page = client.get(f"/campaigns/{campaign_id}").text
    assert text_of(page, "ab-stage").startswith("Winner picked: variant A (picked by hand, not significant")
    assert text_of(page, "ab-stage").endswith("the rest of the audience gets it on the next tick.")


@pytest.mark.parametrize(("variant", "status"), [("C", 422), ("", 422), ("A B", 422)])
def test_a_variant_the_campaign_has_not_is_refused_next_to_the_choice(
    web_client, api, runtime, workspace, variant, status
):
    campaign_id = waiting_campaign(runtime, api, workspace)
    client = web_client("marketer")
    csrf = csrf_of(client.get(f"/campaigns/{campaign_id}").text)
    for confirmed in ("", "yes"):
        answer = client.post(
            f"/campaigns/{campaign_id}/winner", data={"csrf_token": csrf, "variant": variant, "confirmed": confirmed}
        )
        assert answer.status_code == status
        assert field_error(answer.text, "variant").startswith("variant:"), answer.text
    assert campaign_row(runtime, campaign_id).ab_test == TEST


def test_once_the_winner_went_out_the_page_says_so_and_a_pick_is_a_409(web_client, api, runtime, workspace):
    decided = {**TEST, "winner": "B", "decided_by": "auto", "significant": True, "confidence": 0.999}
    campaign_id = waiting_campaign(
        runtime, api, workspace, ab_test=decided, status=CampaignStatus.COMPLETED, phase=FanoutPhase.DONE
    )
    client = web_client("marketer")
    page = client.get(f"/campaigns/{campaign_id}").text
    assert text_of(page, "ab-stage") == (
        "Test over: variant B won (chosen automatically, significant at 99.9 % confidence); "
        "the rest of the audience gets it."
    )
    assert "Pick a winner now" not in page and 'data-field="ab-leader"' not in page
    answer = client.post(
        f"/campaigns/{campaign_id}/winner", data={"csrf_token": csrf_of(page), "variant": "A", "confirmed": "yes"}
    )
    assert answer.status_code == 409
    assert re.search(r'class="notice" role="status">[^<]*a winner can be chosen while it runs', answer.text)
    assert campaign_row(runtime, campaign_id).ab_test == decided


def test_a_pick_on_an_unknown_campaign_is_not_found(web_client):
    client = web_client("marketer")
    csrf = csrf_of(client.get("/campaigns/").text)
    answer = client.post("/campaigns/cmp_nosuch/winner", data={"csrf_token": csrf, "variant": "A"})
    assert answer.status_code == 404 and "No campaign" in answer.text
