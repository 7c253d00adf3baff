"""The A/B flow through the engine, with the in-process worker and a loopback SMTP server: the
sample goes out, its opens are recorded, the wait ends, ``pick_winner`` chooses, the engine sends
the winner to the rest, and the results show the decision and its confidence."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import select

from ccm.campaigns.models import Campaign, FanoutPhase
from ccm.engagement.service import record_events
from ccm.messages.models import Message
from tests.campaigns.conftest import message_counts, publish_promo, ready, seed_profiles, wait_status
from tests.support.api import wait_for

AUDIENCE = 60


def open_all(runtime, campaign_id: str, variant: str, *, machine: bool) -> int:
    """Every sent message of ``variant`` opened (by its person, or by a privacy proxy)."""
    with runtime.db.unit_of_work() as session:
        rows = session.execute(
            select(Message.id, Message.workspace_id, Message.profile_id).where(
                Message.campaign_id == campaign_id, Message.variant == variant, Message.status == "sent"
            )
        ).all()
        events = [
            {
                "workspace_id": row.workspace_id,
                "profile_id": row.profile_id,
                "message_id": row.id,
                "channel": "email",
                "kind": "opened",
                "machine": machine,
                "source": "tracking",
                "dedupe_key": f"test-open:{row.id}",
            }
            for row in rows
        ]
        record_events(session, events)
    return len(rows)


def test_the_engine_sends_the_significant_winner_to_the_rest(api, runtime, workspace, worker, smtp_server):
    segment = ready(api)
    publish_promo(api, "promo_b")
    seed_profiles(runtime, workspace[0], AUDIENCE)
    body = {
        "name": "Spring A/B",
        "segment": segment,
        "variants": [{"template": "promo"}, {"template": "promo_b"}],
        "ab_test": {"sample_percent": 50, "wait_hours": 1, "metric": "opened"},
    }
    created = api.post("/v1/campaigns", json=body)
    assert created.status_code == 201, created.json
    campaign_id = created.json["id"]
    assert api.post(f"/v1/campaigns/{campaign_id}/launch").status_code == 200

    def sample_sent() -> bool:
        with runtime.db.read_only() as session:
            phase = session.get_one(Campaign, campaign_id).fanout_phase
        counts = message_counts(runtime, campaign_id)
        return phase == FanoutPhase.WAITING and set(counts) == {"sent"}

    wait_for(sample_sent, timeout=60, message="the sample to be sent")
    opened_b = open_all(runtime, campaign_id, "B", machine=False)
    machine_a = open_all(runtime, campaign_id, "A", machine=True)  # Apple Mail privacy: not a person
    assert opened_b >= 2 and machine_a >= 2  # the sample: about half of the audience, split by weight
    waiting = api.get(f"/v1/campaigns/{campaign_id}/results").json
    assert waiting["ab_test"]["winner"] is None
    assert waiting["ab_test"]["leader"] == "B" and waiting["ab_test"]["leader_significant"]

    with runtime.db.unit_of_work() as session:  # the hour of waiting, passed
        campaign = session.get_one(Campaign, campaign_id)
        campaign.sample_done_at = campaign.sample_done_at - dt.timedelta(hours=2)
    wait_status(api, campaign_id, "completed", timeout=60)

    results = api.get(f"/v1/campaigns/{campaign_id}/results").json
    test = results["ab_test"]
    assert (test["winner"], test["decided_by"]) == ("B", "auto")
    assert test["significant"] is True and test["confidence"] > 0.99
    a, b = results["variants"]
    assert a["counts"]["opened"] == 0 and a["counts"]["machine_opened"] == machine_a
    assert b["counts"]["opened"] == opened_b
    assert a["counts"]["targeted"] == machine_a  # the rest all got B
    assert b["counts"]["targeted"] == AUDIENCE - machine_a
    assert results["total"]["counts"]["sent"] == AUDIENCE
    recipients = sorted(r for m in smtp_server.messages for r in m.rcpt_tos)
    assert recipients == sorted(f"p{n}@example.com" for n in range(AUDIENCE))
    late = api.post(f"/v1/campaigns/{campaign_id}/winner", json={"variant": "A"})
    assert late.status_code == 409, late.json
