"""Choosing the A/B winner: automatically when the wait is over (``pick_winner``, which the
engine's tick calls), and by hand (``POST /v1/campaigns/{id}/winner``)."""

from __future__ import annotations

import pytest

from ccm.campaigns.models import Campaign, CampaignStatus, FanoutPhase
from ccm.campaigns.pump import pump_campaign
from ccm.campaigns.winner import pick_winner
from ccm.db import utcnow
from tests.campaigns.results_helpers import Recipient, add_recipients, make_campaign

TEST = {"sample_percent": 20, "wait_hours": 4, "metric": "opened", "winner": None}


def audience(opened_a: int, opened_b: int, each: int = 60) -> list[Recipient]:
    """``each`` delivered messages per variant, the first ``opened_*`` of them opened."""
    return [
        Recipient(f"{key.lower()}{n}", key, "sent", engagement=["opened"] if n < opened else [])
        for key, opened in (("A", opened_a), ("B", opened_b))
        for n in range(each)
    ]


def pick(runtime, campaign_id):
    with runtime.db.unit_of_work() as session:
        campaign = session.get_one(Campaign, campaign_id)
        return pick_winner(session, campaign), campaign.ab_test


def test_a_clear_leader_wins_when_the_wait_ends(runtime, api, workspace):
    campaign = make_campaign(runtime, api, workspace[0], audience(6, 24), ab_test=dict(TEST))
    winner, test = pick(runtime, campaign)
    assert winner == "B"
    assert test["winner"] == "B" and test["decided_by"] == "auto" and test["decided_at"]
    assert test["significant"] is True
    assert test["confidence"] > 0.99
    assert test["metric"] == "opened" and test["wait_hours"] == 4  # the settings are kept
    shown = api.get(f"/v1/campaigns/{campaign}/results").json["ab_test"]
    assert (shown["winner"], shown["decided_by"], shown["significant"]) == ("B", "auto", True)


def test_without_significance_the_best_observed_still_wins_marked_so(runtime, api, workspace):
    campaign = make_campaign(runtime, api, workspace[0], audience(10, 12), ab_test=dict(TEST))
    winner, test = pick(runtime, campaign)
    assert winner == "B"
    assert test["significant"] is False
    assert test["confidence"] < 0.95
    assert api.get(f"/v1/campaigns/{campaign}/results").json["ab_test"]["significant"] is False


def test_the_metric_decides(runtime, api, workspace):
    recipients = [Recipient(f"a{n}", "A", "sent", engagement=["opened", "clicked"]) for n in range(30)] + [
        Recipient(f"b{n}", "B", "sent", engagement=["opened"] if n < 10 else ["replied"]) for n in range(30)
    ]
    campaign = make_campaign(runtime, api, workspace[0], recipients, ab_test={**TEST, "metric": "replied"})
    assert pick(runtime, campaign)[0] == "B"


def test_nothing_measured_is_no_winner_yet(runtime, api, workspace):
    waiting = [Recipient(f"u{n}", "AB"[n % 2], "queued", sent_after=None) for n in range(4)]
    campaign = make_campaign(runtime, api, workspace[0], waiting, ab_test=dict(TEST))
    winner, test = pick(runtime, campaign)
    assert winner is None
    assert test["winner"] is None and "decided_by" not in test


def test_no_ab_test_no_winner(runtime, api, workspace):
    campaign = make_campaign(runtime, api, workspace[0], audience(1, 5, each=5))
    assert pick(runtime, campaign) == (None, None)


def test_a_manual_winner_stands_at_the_end_of_the_wait(runtime, api, workspace):
    campaign = make_campaign(runtime, api, workspace[0], audience(6, 24), ab_test=dict(TEST))
    answer = api.post(f"/v1/campaigns/{campaign}/winner", json={"variant": "A"})
    assert answer.status_code == 200, answer.json
    assert (answer.json["winner"], answer.json["decided_by"]) == ("A", "manual")
    assert answer.json["significant"] is False  # A is not the better variant
    assert answer.json["leader"] == "B" and answer.json["leader_significant"] is True
    winner, test = pick(runtime, campaign)
    assert winner == "A"
    assert test["decided_by"] == "manual"


def test_a_manual_winner_may_replace_an_automatic_one_before_the_rest_goes(runtime, api, workspace):
    campaign = make_campaign(runtime, api, workspace[0], audience(6, 24), ab_test=dict(TEST))
    assert pick(runtime, campaign)[0] == "B"
    answer = api.post(f"/v1/campaigns/{campaign}/winner", json={"variant": "A"})
    assert answer.status_code == 200, answer.json
    assert api.get(f"/v1/campaigns/{campaign}/results").json["ab_test"]["winner"] == "A"


def test_an_unknown_variant_is_refused(runtime, api, workspace):
    campaign = make_campaign(runtime, api, workspace[0], audience(1, 2, each=3), ab_test=dict(TEST))
    for body in ({"variant": "C"}, {"variant": ""}, {"variant": 1}, {}, {"variant": "A", "extra": 1}):
        answer = api.post(f"/v1/campaigns/{campaign}/winner", json=body)
        assert answer.status_code == 422, (body, answer.json)
        assert answer.json["error"]["details"]["field"] in ("variant", "extra"), answer.json
    with runtime.db.read_only() as session:
        assert session.get_one(Campaign, campaign).ab_test == TEST  # nothing changed: the test goes on


@pytest.mark.parametrize(
    ("ab_test", "status", "phase"),
    [
        (None, CampaignStatus.RUNNING, FanoutPhase.ALL),  # no A/B test
        ({**TEST, "winner": "B", "decided_by": "auto"}, CampaignStatus.RUNNING, FanoutPhase.REST),  # rest going
        ({**TEST, "winner": "B", "decided_by": "auto"}, CampaignStatus.COMPLETED, FanoutPhase.DONE),
        (dict(TEST), CampaignStatus.CANCELLED, FanoutPhase.SAMPLE),
        (dict(TEST), CampaignStatus.DRAFT, FanoutPhase.ALL),
    ],
)
def test_no_winner_can_be_chosen_when_it_is_too_late_or_meaningless(runtime, api, workspace, ab_test, status, phase):
    campaign = make_campaign(
        runtime, api, workspace[0], audience(1, 2, each=3), ab_test=ab_test, status=status, phase=phase
    )
    answer = api.post(f"/v1/campaigns/{campaign}/winner", json={"variant": "A"})
    assert answer.status_code == 409, answer.json
    with runtime.db.read_only() as session:
        assert session.get_one(Campaign, campaign).ab_test == ab_test  # unchanged


def test_winner_of_an_unknown_campaign_is_404(api):
    answer = api.post("/v1/campaigns/cmp_00000000000000000000000000/winner", json={"variant": "A"})
    assert answer.status_code == 404


def test_the_decision_is_judged_on_the_sample_not_on_the_rest(runtime, api, workspace):
    """After the decision every later message is the winner's: the evidence shown is the
    sample's as the decision saw it, and later opens do not change it."""
    campaign = make_campaign(
        runtime, api, workspace[0], audience(10, 12), ab_test=dict(TEST), phase=FanoutPhase.WAITING
    )
    assert pick(runtime, campaign)[0] == "B"
    before = api.get(f"/v1/campaigns/{campaign}/results").json["ab_test"]
    assert before["significant"] is False
    with runtime.db.unit_of_work() as session:  # the rest: 150 messages of B, all opened, after the decision
        row = session.get_one(Campaign, campaign)
        row.ab_test = {**row.ab_test, "decided_at": "2026-11-30T12:00:00+00:00"}
    rest = [
        Recipient(f"r{n}", "B", "sent", sent_after=200, created_after=190, engagement=["opened"]) for n in range(150)
    ]
    add_recipients(runtime, api, workspace[0], campaign, rest)
    after = api.get(f"/v1/campaigns/{campaign}/results").json
    assert after["variants"][1]["counts"]["opened"] == 162  # the results count everything
    assert after["ab_test"]["significant"] is False  # the decision's evidence is the sample's
    assert after["ab_test"]["confidence"] == pytest.approx(before["confidence"])
    assert after["ab_test"]["leader_significant"] is True  # and now, counting the rest, B leads clearly


def test_a_winner_may_be_chosen_while_the_sample_waits(runtime, api, workspace):
    campaign = make_campaign(
        runtime, api, workspace[0], audience(1, 2, each=3), ab_test=dict(TEST), phase=FanoutPhase.WAITING
    )
    answer = api.post(f"/v1/campaigns/{campaign}/winner", json={"variant": "B"})
    assert answer.status_code == 200, answer.json
    assert (answer.json["winner"], answer.json["decided_by"]) == ("B", "manual")


def _pumped_decision(runtime, api, campaign):
    with runtime.db.unit_of_work() as session:
        pump_campaign(session, runtime, campaign, now=utcnow())
    return api.get(f"/v1/campaigns/{campaign}").json["ab_test"]


def test_the_pump_keeps_the_evidence_of_the_winner_it_asked_for(runtime, api, workspace):
    waited = {**TEST, "wait_hours": 0}
    campaign = make_campaign(runtime, api, workspace[0], audience(6, 24), ab_test=waited, phase=FanoutPhase.WAITING)

    test = _pumped_decision(runtime, api, campaign)

    assert (test["winner"], test["decided_by"]) == ("B", "auto")
    assert test["significant"] is True and test["confidence"] > 0.99 and test["p_value"] < 0.01
    assert test["best_observed"] == "B" and test["test"].startswith("two-proportion z-test")
    with runtime.db.read_only() as session:
        assert session.get_one(Campaign, campaign).fanout_phase == FanoutPhase.REST


def test_with_nothing_measured_the_pump_sends_the_control_and_says_so(runtime, api, workspace):
    waiting = [Recipient(f"u{n}", "AB"[n % 2], "queued", sent_after=None) for n in range(4)]
    campaign = make_campaign(
        runtime, api, workspace[0], waiting, ab_test={**TEST, "wait_hours": 0}, phase=FanoutPhase.WAITING
    )

    test = _pumped_decision(runtime, api, campaign)

    assert (test["winner"], test["decided_by"]) == ("A", "auto")
    assert test["best_observed"] is None and test["significant"] is False
