"""``GET /v1/campaigns/{id}/results/timeline``: opens and clicks hour by hour since the launch."""

from __future__ import annotations

from tests.campaigns.results_helpers import Recipient, make_campaign


def test_engagement_is_bucketed_by_hour_since_the_launch(runtime, api, workspace):
    recipients = [
        # events at sent + 10 min, + 71 min, + 132 min …: hours 0, 1, 2 after a send at launch + 1 min
        Recipient("a1", "A", "sent", engagement=["opened", "clicked", "opened"]),
        Recipient("a2", "A", "sent", engagement=["machine_opened", "opened"]),
        Recipient("b1", "B", "sent", sent_after=125, engagement=["opened"]),  # launch + 2 h 15 min
        Recipient("b2", "B", "sent", engagement=["machine_clicked"]),  # a link scanner: not charted
    ]
    campaign = make_campaign(runtime, api, workspace[0], recipients)
    answer = api.get(f"/v1/campaigns/{campaign}/results/timeline?hours=4")
    assert answer.status_code == 200, answer.json
    points = {(p["hour"], p["variant"]): (p["opened"], p["clicked"], p["machine_opened"]) for p in answer.json["items"]}
    assert points == {
        (0, "A"): (1, 0, 1),
        (0, "B"): (0, 0, 0),
        (1, "A"): (1, 1, 0),
        (1, "B"): (0, 0, 0),
        (2, "A"): (1, 0, 0),
        (2, "B"): (1, 0, 0),
        (3, "A"): (0, 0, 0),
        (3, "B"): (0, 0, 0),
    }
    first = answer.json["items"][0]
    assert first["starts_at"].startswith("2026-11-30T09:00:00")


def test_the_timeline_is_bounded(runtime, api, workspace):
    campaign = make_campaign(runtime, api, workspace[0], [Recipient("a1", engagement=["opened"])], variants=("A",))
    for hours in ("0", "2161", "x", "1.5"):
        answer = api.get(f"/v1/campaigns/{campaign}/results/timeline?hours={hours}")
        assert answer.status_code == 422, hours
        assert answer.json["error"]["details"]["field"] == "query.hours"
    assert len(api.get(f"/v1/campaigns/{campaign}/results/timeline?hours=2160").json["items"]) <= 2160
