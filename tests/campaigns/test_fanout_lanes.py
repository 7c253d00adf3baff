"""The fan-out in lanes: chunks claimed as disjoint profile-id ranges and written on several
connections at once (CCM_CAMPAIGN_FANOUT_LANES; one lane on SQLite). Whatever the lanes do —
two fan-outs of one campaign at once, a worker SIGKILLed while both lanes are mid-chunk — each
profile of the audience ends up with exactly one message or one holdout row, and the campaign's
counts say so."""

from __future__ import annotations

import sys
import threading
import time

import pytest
from sqlalchemy import func, select

from ccm.campaigns import engine
from ccm.campaigns.models import Campaign, CampaignHoldout, FanoutChunk
from ccm.messages.models import Message
from tests.campaigns.conftest import make_campaign, ready, seed_profiles
from tests.support.api import wait_for
from tests.support.processes import Process, ccm_env

LANES = {"campaign_chunk": 40, "campaign_fanout_lanes": 2}
_FAN_OUT = (
    "import sys; from ccm.config import Settings; from ccm.runtime import create_runtime; "
    "from ccm.campaigns.engine import run_fanout; run_fanout(create_runtime(Settings()), sys.argv[1])"
)


def _launch(api, runtime, workspace, profiles: int, **overrides) -> str:
    segment = ready(api)
    seed_profiles(runtime, workspace[0], profiles)
    campaign = make_campaign(api, segment, **overrides)
    assert api.post(f"/v1/campaigns/{campaign['id']}/launch").json["status"] == "running"
    return campaign["id"]


def _written(runtime, campaign_id: str) -> dict[str, int]:
    """Messages, the distinct profiles they go to, holdout rows, claims left, and the campaign's
    own counters."""
    with runtime.db.read_only() as session:
        messages, profiles = session.execute(
            select(func.count(), func.count(func.distinct(Message.profile_id))).where(
                Message.campaign_id == campaign_id
            )
        ).one()
        held = session.scalar(select(func.count()).where(CampaignHoldout.campaign_id == campaign_id))
        claims = session.scalar(select(func.count()).where(FanoutChunk.campaign_id == campaign_id))
        campaign = session.get_one(Campaign, campaign_id)
        return {
            "messages": messages,
            "profiles": profiles,
            "held": held or 0,
            "claims": claims or 0,
            "holdout_count": campaign.holdout_count,
            "chunks": campaign.fanout_chunks,
        }


def _exactly_once(counts: dict[str, int], audience: int) -> None:
    assert counts["messages"] == counts["profiles"]  # nobody twice
    assert counts["messages"] + counts["held"] == audience  # nobody missed
    assert counts["holdout_count"] == counts["held"] and counts["claims"] == 0


@pytest.mark.settings(**LANES)
def test_two_lanes_write_every_recipient_once_in_many_chunks(api, runtime, workspace):
    campaign_id = _launch(api, runtime, workspace, 1_000, holdout_percent=10)
    engine.run_fanout(runtime, campaign_id)
    counts = _written(runtime, campaign_id)
    _exactly_once(counts, 1_000)
    assert 0 < counts["held"] < 200 and counts["chunks"] == 25  # 1,000 profiles in claims of 40
    with runtime.db.read_only() as session:
        ids = session.scalars(select(Message.id).where(Message.campaign_id == campaign_id)).all()
    assert len({message_id[19:25] for message_id in ids}) == 25  # each chunk's ids carry its own number
    assert api.get(f"/v1/campaigns/{campaign_id}").json["counts"]["targeted"] == counts["messages"]


@pytest.mark.settings(**LANES)
def test_two_fan_outs_of_one_campaign_at_once_write_every_recipient_once(api, runtime, workspace):
    campaign_id = _launch(api, runtime, workspace, 800, holdout_percent=5)
    threads = [threading.Thread(target=engine.run_fanout, args=(runtime, campaign_id)) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    _exactly_once(_written(runtime, campaign_id), 800)


@pytest.mark.settings(campaign_chunk=25, campaign_fanout_lanes=2)
def test_a_fan_out_killed_while_both_lanes_write_resumes_with_exact_counts(api, runtime, workspace, settings, tmp_path):
    if runtime.db.is_sqlite:
        pytest.skip("one lane on SQLite: its kills are tests/campaigns/test_faults.py's")
    audience = 6_000
    campaign_id = _launch(api, runtime, workspace, audience, holdout_percent=10)
    names = ("database_url", "redis_url", "redis_namespace", "data_dir", "secret_key", *LANES)
    env = ccm_env(**{name: getattr(settings, name) for name in names})
    worker = Process([sys.executable, "-c", _FAN_OUT, campaign_id], env, tmp_path / "fanout.log")
    try:
        wait_for(lambda: _written(runtime, campaign_id)["messages"] >= 1_000, timeout=60, message="chunks written")
        time.sleep(0.05)
    finally:
        worker.kill()  # SIGKILL: whatever the lanes were writing is rolled back
    killed = _written(runtime, campaign_id)
    assert killed["messages"] + killed["held"] < audience, worker.output()  # it died mid-way
    # Mostly the kill lands with chunks claimed and not written (the ones it was in the middle of);
    # now and then both lanes are between two chunks: either way nothing half-written may remain.
    assert killed["holdout_count"] == killed["held"] and killed["messages"] == killed["profiles"]
    engine.run_fanout(runtime, campaign_id)  # the job published again after the crash
    _exactly_once(_written(runtime, campaign_id), audience)
    assert api.get(f"/v1/campaigns/{campaign_id}").json["counts"]["holdout"] == _written(runtime, campaign_id)["held"]
