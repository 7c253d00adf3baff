"""A campaign's messages go through the delivery core: re-checked at send time, failing one by
one, slowed by provider back-pressure, paused by breakers; A/B variants, a holdout, a winner."""

from __future__ import annotations

import email
import email.policy
import time

import pytest
from sqlalchemy import func, select

from ccm.campaigns.models import CampaignHoldout
from ccm.messages.models import Message
from tests.campaigns.conftest import (
    campaign_row,
    make_campaign,
    publish_promo,
    ready,
    seed_profiles,
    wait_status,
)
from tests.support.api import wait_for


def _launch(api, campaign):
    answer = api.post(f"/v1/campaigns/{campaign['id']}/launch")
    assert answer.status_code == 200, answer.json
    return answer.json


def _rcpts(smtp_server):
    return sorted(address for message in smtp_server.messages for address in message.rcpt_tos)


def test_a_recipient_who_unsubscribes_while_queued_is_not_sent(api, runtime, workspace, worker, smtp_server):
    segment = ready(api)
    seed_profiles(runtime, workspace[0], 6)
    campaign = make_campaign(api, segment, throttle={"per_second": 2})
    _launch(api, campaign)
    wait_for(lambda: campaign_row(runtime, campaign["id"]).released, timeout=30, message="the first release")
    # p5 is released last: its message is queued, not yet handed to delivery
    revoked = api.post("/v1/profiles/p5/consent", json={"channel": "email", "status": "revoked", "source": "form"})
    assert revoked.status_code in (200, 201), revoked.json
    done = wait_status(api, campaign["id"], "completed")
    assert "p5@example.com" not in _rcpts(smtp_server)
    assert len(_rcpts(smtp_server)) == 5
    assert done["counts"]["skipped"] == 1 and sum(done["skipped_by_reason"].values()) == 1


def test_one_bad_recipient_or_render_fails_only_that_message(api, runtime, workspace, worker, smtp_server):
    set_up = ready(api)
    publish_promo(
        api, "plan-promo", html="<p>{{ first_name }}, your {{ plan }} plan</p>", variables=["first_name", "plan"]
    )
    seed_profiles(runtime, workspace[0], 8, attributes={"first_name": "Ann", "plan": "pro"})
    seed_profiles(runtime, workspace[0], 1, start=8, attributes={"first_name": "Bo"})  # no plan: cannot render
    smtp_server.set_reply("RCPT p3@example.com", "550 5.1.1 No such user")
    campaign = make_campaign(api, set_up, template="plan-promo")
    _launch(api, campaign)
    done = wait_status(api, campaign["id"], "completed")
    assert done["counts"]["targeted"] == 9
    assert done["counts"]["sent"] + done["counts"]["delivered"] == 7
    assert done["counts"]["failed"] + done["counts"]["skipped"] == 2
    assert sorted(_rcpts(smtp_server)) == sorted(f"p{n}@example.com" for n in range(8) if n != 3)


def test_the_campaign_data_fills_the_template_beside_each_profile(api, runtime, workspace, worker, smtp_server):
    set_up = ready(api)
    publish_promo(
        api, "headline-promo", html="<p>{{ headline }}, {{ first_name }}</p>", variables=["first_name", "headline"]
    )
    seed_profiles(runtime, workspace[0], 2, attributes={"first_name": "Ann"})
    campaign = make_campaign(api, set_up, template="headline-promo", data={"headline": "Spring is here"})
    assert campaign["data"] == {"headline": "Spring is here"}
    _launch(api, campaign)
    done = wait_status(api, campaign["id"], "completed")
    assert done["counts"]["failed"] == 0 and done["counts"]["skipped"] == 0
    parsed = [email.message_from_bytes(message.raw, policy=email.policy.default) for message in smtp_server.messages]
    bodies = [message.get_body(("html",)).get_content() for message in parsed]
    assert len(bodies) == 2 and all("Spring is here, Ann" in body for body in bodies)


@pytest.mark.settings(campaign_max_rate=40.0)
def test_provider_back_pressure_slows_the_campaign_and_fails_nobody(api, runtime, workspace, worker, smtp_server):
    segment = ready(api)
    seed_profiles(runtime, workspace[0], 40)
    runtime.guards.cooldown = 1.0  # the provider's circuit breaker (30 s) is not what this is about
    smtp_server.set_reply("RCPT", "451 4.7.1 Try again later")
    campaign = make_campaign(api, segment)
    _launch(api, campaign)
    wait_for(
        lambda: campaign_row(runtime, campaign["id"]).throttled_by_provider >= 2,
        timeout=30,
        message="the pump to meet back-pressure",
    )
    slowed = campaign_row(runtime, campaign["id"])
    assert slowed.release_rate is not None and slowed.release_rate < 40.0
    smtp_server.set_reply("RCPT", None)
    done = wait_status(api, campaign["id"], "completed", timeout=90)
    assert done["counts"]["failed"] == 0, done["failed_by_reason"]
    assert done["throttled_by_provider"] >= 2
    assert _rcpts(smtp_server) == sorted(f"p{n}@example.com" for n in range(40))


@pytest.mark.settings(campaign_breaker_min=10)
def test_a_campaign_whose_messages_fail_too_often_pauses_saying_why(api, runtime, workspace, worker, smtp_server):
    segment = ready(api)
    seed_profiles(runtime, workspace[0], 60)
    smtp_server.set_reply("RCPT", "550 5.1.1 No such user")
    campaign = make_campaign(api, segment, throttle={"per_second": 20})
    _launch(api, campaign)
    paused = wait_status(api, campaign["id"], "paused", timeout=30)
    assert paused["paused_reason"].startswith("breaker: failed 100.0% of the last")
    assert paused["counts"]["queued"] > 0  # the rest waits
    released = campaign_row(runtime, campaign["id"]).released
    time.sleep(1.5)
    assert campaign_row(runtime, campaign["id"]).released == released


def test_an_ab_test_sends_the_winner_to_the_rest_and_keeps_the_holdout_out(
    api, runtime, workspace, worker, smtp_server
):
    segment = ready(api)
    publish_promo(api, "promo-b")
    seed_profiles(runtime, workspace[0], 200)
    campaign = make_campaign(
        api,
        segment,
        template=None,
        variants=[{"template": "promo"}, {"template": "promo-b"}],
        holdout_percent=10,
        ab_test={"sample_percent": 30, "wait_hours": 0, "metric": "opened"},
    )
    _launch(api, campaign)
    done = wait_status(api, campaign["id"], "completed", timeout=60)
    winner = done["ab_test"]["winner"]
    assert winner in ("A", "B") and done["ab_test"]["decided_by"] == "auto"
    with runtime.db.read_only() as session:
        by_variant = dict(
            session.execute(
                select(Message.variant, func.count())
                .where(Message.campaign_id == campaign["id"])
                .group_by(Message.variant)
            ).all()
        )
        held = set(
            session.scalars(select(CampaignHoldout.profile_id).where(CampaignHoldout.campaign_id == campaign["id"]))
        )
        messaged = set(session.scalars(select(Message.profile_id).where(Message.campaign_id == campaign["id"])))
    assert 5 <= len(held) <= 40 and not held & messaged
    assert len(held) + len(messaged) == 200
    loser = "B" if winner == "A" else "A"
    assert 10 <= by_variant[loser] <= 60  # its half of the sample only
    assert by_variant[winner] > 100
    assert done["counts"]["holdout"] == len(held)
    assert len(_rcpts(smtp_server)) == len(messaged)
