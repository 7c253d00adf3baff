"""``GET /v1/campaigns/{id}/results``: counts, rates and conversions per variant and for the
holdout, on a campaign whose messages are in known states."""

from __future__ import annotations

import datetime as dt

import pytest

from tests.campaigns.results_helpers import LAUNCH, Recipient, make_campaign, track

GOAL = {"event": "order_completed", "within_hours": 72}


@pytest.fixture
def mixed(runtime, api, workspace):
    recipients = [
        Recipient("a1", "A", "delivered", engagement=["delivered", "opened", "clicked"]),
        Recipient("a2", "A", "sent", engagement=["machine_opened"]),  # Apple Mail privacy: not a person
        Recipient("a3", "A", "sent", engagement=["machine_opened", "opened"]),
        Recipient("a4", "A", "failed", reason="bounced: 550 no such user", engagement=["bounced"]),
        Recipient("a5", "A", "skipped", reason="no_consent: email, marketing", sent_after=None),
        Recipient("a6", "A", "skipped", reason="no_consent: email, marketing", sent_after=None),
        Recipient("b1", "B", "sent", engagement=["clicked"]),  # images blocked: the click is an open too
        Recipient("b2", "B", "sent", engagement=["opened", "unsubscribed", "complained"]),
        Recipient("b3", "B", "skipped", reason="frequency_cap: 3 a week", sent_after=None),
        Recipient("b4", "B", "queued", sent_after=None),
        Recipient("b5", "B", "sent", engagement=["replied"]),
    ]
    return make_campaign(runtime, api, workspace[0], recipients, goal=GOAL, holdout=("h1", "h2"))


def test_counts_each_variant_and_the_whole_campaign(api, mixed):
    answer = api.get(f"/v1/campaigns/{mixed}/results")
    assert answer.status_code == 200, answer.json
    a, b = answer.json["variants"]
    assert (a["key"], b["key"]) == ("A", "B")
    assert a["counts"] | {"conversions": 0} == {
        "targeted": 6,
        "pending": 0,
        "sent": 4,
        "delivered": 3,
        "delivery_confirmed": 1,
        "failed": 1,
        "skipped": 2,
        "opened": 2,
        "machine_opened": 2,
        "clicked": 1,
        "machine_clicked": 0,
        "replied": 0,
        "unsubscribed": 0,
        "bounced": 1,
        "complaints": 0,
        "conversions": 0,
    }
    assert a["skipped_by_reason"] == {"no_consent": 2}
    assert b["counts"]["opened"] == 2 and b["counts"]["clicked"] == 1
    assert (b["counts"]["unsubscribed"], b["counts"]["complaints"], b["counts"]["replied"]) == (1, 1, 1)
    assert (b["counts"]["pending"], b["counts"]["sent"]) == (1, 3)
    assert b["skipped_by_reason"] == {"frequency_cap": 1}
    total = answer.json["total"]
    assert total["counts"]["targeted"] == 11
    assert total["skipped_by_reason"] == {"frequency_cap": 1, "no_consent": 2}
    for group in (a, b, total):
        counts = group["counts"]
        assert counts["pending"] + counts["delivered"] + counts["failed"] + counts["skipped"] == counts["targeted"]


def test_rates_divide_by_what_could_happen(api, mixed):
    a = api.get(f"/v1/campaigns/{mixed}/results").json["variants"][0]
    assert a["rates"]["delivery"] == pytest.approx(3 / 4)
    assert a["rates"]["open"] == pytest.approx(2 / 3)
    assert a["rates"]["click"] == pytest.approx(1 / 3)
    assert a["rates"]["bounce"] == pytest.approx(1 / 4)
    assert a["rates"]["conversion"] == 0.0


def test_conversions_count_the_goal_inside_the_window_once(app, api, write_key, mixed):
    track(app, write_key, "a1", "order_completed", LAUNCH + dt.timedelta(hours=2))
    track(app, write_key, "a1", "order_completed", LAUNCH + dt.timedelta(hours=3))  # the same person again
    track(app, write_key, "a2", "order_completed", LAUNCH + dt.timedelta(hours=73))  # after the window
    track(app, write_key, "a3", "order_completed", LAUNCH - dt.timedelta(minutes=5))  # before the message
    track(app, write_key, "b1", "page_viewed", LAUNCH + dt.timedelta(hours=1))  # not the goal
    track(app, write_key, "b2", "order_completed", LAUNCH + dt.timedelta(hours=72))  # the window's last minute
    track(app, write_key, "b3", "order_completed", LAUNCH + dt.timedelta(hours=1))  # skipped: never got it
    results = api.get(f"/v1/campaigns/{mixed}/results").json
    a, b = results["variants"]
    assert a["counts"]["conversions"] == 1
    assert b["counts"]["conversions"] == 1
    assert results["total"]["counts"]["conversions"] == 2
    assert a["rates"]["conversion"] == pytest.approx(1 / 6)


def test_the_holdout_converts_from_the_launch(app, api, write_key, mixed):
    track(app, write_key, "h1", "order_completed", LAUNCH + dt.timedelta(minutes=30))
    track(app, write_key, "h2", "order_completed", LAUNCH - dt.timedelta(hours=1))  # before the launch
    track(app, write_key, "a1", "order_completed", LAUNCH + dt.timedelta(hours=5))
    results = api.get(f"/v1/campaigns/{mixed}/results").json
    holdout = results["holdout"]
    assert holdout["key"] == "holdout"
    assert (holdout["counts"]["targeted"], holdout["counts"]["conversions"]) == (2, 1)
    assert holdout["rates"]["conversion"] == pytest.approx(0.5)
    vs = results["variants"][0]["vs_holdout"]
    assert vs["against"] == "holdout"
    assert vs["rate"] == pytest.approx(1 / 6) and vs["other_rate"] == pytest.approx(0.5)
    assert vs["lift"] == pytest.approx((1 / 6) / 0.5 - 1)
    assert not vs["significant"]  # six against two people prove nothing
    assert results["total"]["counts"]["conversions"] == 1  # the holdout is not part of the campaign


def test_without_a_goal_nothing_converts(runtime, app, api, workspace, write_key):
    campaign = make_campaign(runtime, api, workspace[0], [Recipient("u1")])
    track(app, write_key, "u1", "order_completed", LAUNCH + dt.timedelta(hours=1))
    results = api.get(f"/v1/campaigns/{campaign}/results").json
    assert results["goal"] is None
    assert results["total"]["counts"]["conversions"] == 0
    assert results["variants"][0]["vs_holdout"] is None


def test_variants_are_compared_with_the_best_other_one(api, mixed):
    results = api.get(f"/v1/campaigns/{mixed}/results?metric=clicked").json
    assert results["metric"] == "clicked"
    a, b = results["variants"]
    assert a["comparison"]["against"] == "B"
    assert a["comparison"]["rate"] == pytest.approx(1 / 3)
    assert b["comparison"]["rate"] == pytest.approx(1 / 3)
    assert a["comparison"]["lift"] == pytest.approx(0.0)
    assert not a["comparison"]["significant"]


def test_a_campaign_without_messages_answers_zeros(runtime, api, workspace):
    campaign = make_campaign(runtime, api, workspace[0], [])
    results = api.get(f"/v1/campaigns/{campaign}/results").json
    assert [v["counts"]["targeted"] for v in results["variants"]] == [0, 0]
    assert results["variants"][0]["rates"]["open"] is None
    assert results["variants"][0]["comparison"] is None
    assert results["holdout"] is None


def test_unknown_and_malformed_ids(api):
    missing = api.get("/v1/campaigns/cmp_00000000000000000000000000/results")
    assert missing.status_code == 404
    assert missing.json["error"]["details"]["field"] == "campaign_id"
    malformed = api.get("/v1/campaigns/nope/results")
    assert malformed.status_code == 422
    assert malformed.json["error"]["details"]["field"] == "campaign_id"
    bad_metric = api.get("/v1/campaigns/cmp_00000000000000000000000000/results?metric=revenue")
    assert bad_metric.status_code == 422
    assert bad_metric.json["error"]["details"]["field"] == "query.metric"


def test_another_workspace_sees_no_results(app, runtime, mixed):
    from ccm.auth.service import create_api_key
    from ccm.workspaces.service import get_or_create_workspace
    from tests.support.api import ApiClient

    with runtime.db.unit_of_work() as session:
        other, _ = get_or_create_workspace(session=session, name="globex")
        _, key = create_api_key(session=session, workspace_id=other.id)
    stranger = ApiClient(app.test_client(), key)
    for path in ("results", "results/timeline", "results.csv", "export.csv"):
        assert stranger.get(f"/v1/campaigns/{mixed}/{path}").status_code == 404, path
    assert stranger.post(f"/v1/campaigns/{mixed}/winner", json={"variant": "A"}).status_code == 404


def test_a_window_of_a_fraction_of_an_hour(runtime, app, api, workspace, write_key):
    goal = {"event": "order_completed", "within_hours": 1.5}
    campaign = make_campaign(runtime, api, workspace[0], [Recipient("u1"), Recipient("u2")], goal=goal)
    track(app, write_key, "u1", "order_completed", LAUNCH + dt.timedelta(minutes=80))  # sent at +1 min
    track(app, write_key, "u2", "order_completed", LAUNCH + dt.timedelta(minutes=95))  # 94 min after: too late
    results = api.get(f"/v1/campaigns/{campaign}/results").json
    assert results["goal"] == goal
    assert results["total"]["counts"]["conversions"] == 1
