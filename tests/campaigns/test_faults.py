"""Campaigns through crashes, with real ``dramatiq`` worker processes and the loopback SMTP server:
workers SIGKILLed again and again (tests/support/sigkill.py; its 20,000-recipient run is
bench/fault_campaign_sigkill.py), the broker losing everything it held, every process restarted
while the campaign is paused. Every recipient gets exactly one email; the campaign completes with
exact counts. (A kill between the intent's COMMIT leaving and a message's final dot would still
lose that message, ``sent(outcome_unknown)``; that window is the dots alone, microseconds, see
ccm/messages/batch.py.)
(2,000 recipients rather than the issue's 20,000, to keep the suite short: the fan-out still runs
in several chunks, CCM_CAMPAIGN_CHUNK=300, so kills land between its checkpoints; the broker and
pause tests use 1,000.)"""

from __future__ import annotations

import time
from collections import Counter

import pytest
from sqlalchemy import func, select

from ccm.messages.models import Message
from tests.campaigns.conftest import make_campaign, ready, seed_profiles, wait_status
from tests.messages.test_faults import lose_queued_messages, needs_redis, worker_env
from tests.support.api import wait_for
from tests.support.processes import start_workers
from tests.support.sigkill import KillPlan, Tally, Workers, kill_repeatedly, tally

pytestmark = [pytest.mark.e2e, needs_redis]
RECIPIENTS = 2_000
SMALLER = 1_000
# Several threads a worker process, as deployed: their GIL hand-offs were what a kill exploited.
KILLS = KillPlan(groups=2, threads=4, pause=(0.5, 1.0), kills=6, seconds=15)


def _env(settings, smtp_server):
    return worker_env(settings, smtp_server, campaign_chunk=300)


def _received(smtp_server) -> Counter[str]:
    return Counter(address for message in list(smtp_server.messages) for address in message.rcpt_tos)


def _status(api, campaign_id) -> str:
    return api.get(f"/v1/campaigns/{campaign_id}").json["status"]


def _tally(runtime, campaign_id, smtp_server) -> Tally:
    """The messages the database calls sent (and those ``outcome_unknown``) against the server."""
    with runtime.db.read_only() as session:
        rows = session.execute(
            select(Message.to_address, Message.reason).where(
                Message.campaign_id == campaign_id, Message.status == "sent"
            )
        ).all()
    unknown = (address for address, reason in rows if (reason or "").startswith("outcome_unknown"))
    received = (address for message in list(smtp_server.messages) for address in message.rcpt_tos)
    return tally((address for address, _ in rows), unknown, received)


def _exact_counts(runtime, campaign_id, answer, recipients=RECIPIENTS) -> None:
    with runtime.db.read_only() as session:
        rows = dict(
            session.execute(
                select(Message.status, func.count()).where(Message.campaign_id == campaign_id).group_by(Message.status)
            ).all()
        )
    assert answer["counts"]["targeted"] == sum(rows.values()) == recipients
    for status, count in rows.items():
        assert answer["counts"][status] == count


def _start(api, runtime, workspace, recipients=RECIPIENTS, **overrides):
    segment = ready(api)
    seed_profiles(runtime, workspace[0], recipients)
    campaign = make_campaign(api, segment, **overrides)
    assert api.post(f"/v1/campaigns/{campaign['id']}/launch").status_code == 200
    return campaign["id"]


def test_workers_killed_again_and_again_send_everyone_exactly_one_email(
    api, runtime, workspace, settings, smtp_server, tmp_path, record_property
):
    campaign_id = _start(api, runtime, workspace)
    workers = Workers(_env(settings, smtp_server), tmp_path, threads=KILLS.threads)
    try:
        report = kill_repeatedly(workers, KILLS, lambda: _status(api, campaign_id) != "running")
        done = wait_status(api, campaign_id, "completed", timeout=90)  # ~50 s in all on a quiet machine
    finally:
        workers.stop()
    got = _tally(runtime, campaign_id, smtp_server)
    record_property("sigkill", {"kills": report.kills, **got.summary})
    print(f"sigkill: {report.kills} kills, {got.summary}")
    assert report.kills >= 3  # the kills landed while the campaign ran
    assert got.duplicates == {}  # nobody twice
    assert got.expected == RECIPIENTS and got.unexpected == frozenset()
    assert got.lost == frozenset()  # and nobody missed: exactly one email each
    _exact_counts(runtime, campaign_id, done)
    assert done["counts"]["sent"] == RECIPIENTS


def test_the_broker_losing_its_data_mid_campaign_misses_and_doubles_nobody(
    api, runtime, workspace, settings, smtp_server, tmp_path
):
    campaign_id = _start(api, runtime, workspace, SMALLER, throttle={"per_second": 500})
    worker = start_workers(_env(settings, smtp_server), tmp_path / "worker.log")
    try:
        wait_for(lambda: len(smtp_server.messages) >= 150, timeout=60, message="the campaign to be under way")
        lose_queued_messages(settings)  # what a Redis restarted empty leaves (FLUSHDB of CCM's keys)
        done = wait_status(api, campaign_id, "completed", timeout=120)
    finally:
        worker.stop()
    received = _received(smtp_server)
    assert set(received) == {f"p{n}@example.com" for n in range(SMALLER)}
    assert set(received.values()) == {1}
    _exact_counts(runtime, campaign_id, done, SMALLER)


def test_pause_restart_everything_and_resume_misses_and_doubles_nobody(
    api, runtime, workspace, settings, smtp_server, tmp_path
):
    campaign_id = _start(api, runtime, workspace, SMALLER, throttle={"per_second": 300})
    worker = start_workers(_env(settings, smtp_server), tmp_path / "before.log")
    wait_for(lambda: len(smtp_server.messages) >= 100, timeout=60, message="the campaign to be under way")
    assert api.post(f"/v1/campaigns/{campaign_id}/pause").json["status"] == "paused"
    time.sleep(1.5)
    worker.kill()
    lose_queued_messages(settings)
    after = start_workers(_env(settings, smtp_server), tmp_path / "after.log")
    try:
        sent_while_paused = len(smtp_server.messages)
        time.sleep(2.0)
        assert len(smtp_server.messages) == sent_while_paused < SMALLER  # paused means paused
        assert api.post(f"/v1/campaigns/{campaign_id}/resume").json["status"] == "running"
        done = wait_status(api, campaign_id, "completed", timeout=120)
    finally:
        after.stop()
    received = _received(smtp_server)
    assert set(received) == {f"p{n}@example.com" for n in range(SMALLER)}
    assert set(received.values()) == {1}
    _exact_counts(runtime, campaign_id, done, SMALLER)
