"""When a campaign's messages go: at each recipient's local time (a missing or invalid zone gets
the workspace's, counted, never dropped), deferred by the sending calendar, never later than the
deadline allows, and at the throttle's rate."""

from __future__ import annotations

import datetime as dt
import threading
import time
import zoneinfo

from sqlalchemy import func, select

from ccm.campaigns import engine, pump
from ccm.campaigns.fanout import due_of
from ccm.db import utcnow
from ccm.jobs import PendingJob
from ccm.messages.models import Message
from ccm.profiles.models import Profile
from tests.campaigns.conftest import campaign_row, make_campaign, ready, seed_profiles, wait_status

ZONES = ["Asia/Tokyo", "America/New_York", None, "Not/A_Zone"]


def _due_by_profile(runtime, campaign_id):
    with runtime.db.read_only() as session:
        rows = session.execute(
            select(Profile.timezone, Message.id)
            .join(Profile, Profile.id == Message.profile_id)
            .where(Message.campaign_id == campaign_id)
        ).all()
    return [(zone, due_of(message_id)) for zone, message_id in rows]


def _next_local(now, zone_name, at):
    zone = zoneinfo.ZoneInfo(zone_name)
    local = now.astimezone(zone)
    candidate = dt.datetime.combine(local.date(), at, tzinfo=zone)
    if candidate < now:
        candidate = dt.datetime.combine(local.date() + dt.timedelta(days=1), at, tzinfo=zone)
    return candidate


def _launch(api, runtime, campaign):
    assert api.post(f"/v1/campaigns/{campaign['id']}/launch").status_code == 200
    engine.run_fanout(runtime, campaign["id"])
    return campaign_row(runtime, campaign["id"])


def test_local_time_sends_at_nine_in_each_zone_and_the_rest_in_the_workspace_zone(api, runtime, workspace):
    segment = ready(api)
    api.patch("/v1/workspace", json={"policy": {"timezone": "Europe/Paris"}})
    for index, zone in enumerate(ZONES):
        seed_profiles(runtime, workspace[0], 1, start=index, timezone=zone)
    campaign = make_campaign(api, segment, schedule={"local_time": "09:00"})
    started = utcnow()
    row = _launch(api, runtime, campaign)

    assert row.fallback_timezone_count == 2
    due = _due_by_profile(runtime, campaign["id"])
    assert len(due) == 4  # nobody dropped
    for zone, at in due:
        expected = _next_local(started, zone if zone in ZONES[:2] else "Europe/Paris", dt.time(9, 0))
        assert abs(at - expected) < dt.timedelta(seconds=3), (zone, at, expected)
    got = api.get(f"/v1/campaigns/{campaign['id']}").json
    assert got["fallback_timezone_count"] == 2 and got["counts"]["queued"] == 4


def test_nothing_is_released_before_it_is_due_and_everything_when_it_is(api, runtime, workspace):
    segment = ready(api)
    for index, zone in enumerate(ZONES):
        seed_profiles(runtime, workspace[0], 1, start=index, timezone=zone)
    campaign = make_campaign(api, segment, schedule={"local_time": "09:00"})
    _launch(api, runtime, campaign)
    soon = utcnow() + dt.timedelta(seconds=2)
    if not any(at <= soon + dt.timedelta(seconds=1) for _, at in _due_by_profile(runtime, campaign["id"])):
        with runtime.db.unit_of_work() as session:
            pump.pump_campaign(session, runtime, campaign["id"], now=soon)
        assert campaign_row(runtime, campaign["id"]).released == 0
    later = utcnow() + dt.timedelta(days=1, hours=1)
    with runtime.db.unit_of_work() as session:
        pump.pump_campaign(session, runtime, campaign["id"], now=later)
    assert campaign_row(runtime, campaign["id"]).released == 4


def test_the_calendar_defers_to_the_next_allowed_window_in_the_recipients_zone(api, runtime, workspace):
    segment = ready(api)
    seed_profiles(runtime, workspace[0], 1, timezone="Asia/Tokyo")
    now = utcnow()
    tomorrow = (now.astimezone(zoneinfo.ZoneInfo("Asia/Tokyo")) + dt.timedelta(days=1)).date()
    day = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")[tomorrow.weekday()]
    campaign = make_campaign(api, segment, calendar={"days": [day], "hours": ["10:00", "11:00"]})
    _launch(api, runtime, campaign)
    [(_, at)] = _due_by_profile(runtime, campaign["id"])
    expected = dt.datetime.combine(tomorrow, dt.time(10, 0), tzinfo=zoneinfo.ZoneInfo("Asia/Tokyo"))
    assert at == expected.astimezone(dt.UTC)


def test_a_schedule_missed_by_more_than_its_deadline_never_starts(api, runtime, workspace):
    segment = ready(api)
    seed_profiles(runtime, workspace[0], 3)
    at = utcnow() + dt.timedelta(seconds=30)
    late = make_campaign(api, segment, schedule={"at": at.isoformat()}, deadline=60)
    on_time = make_campaign(api, segment, name="on time", schedule={"at": at.isoformat()}, deadline=600)
    for campaign in (late, on_time):
        assert api.post(f"/v1/campaigns/{campaign['id']}/launch").json["status"] == "scheduled"
    pump.start_due(runtime, at + dt.timedelta(minutes=5))  # the service was down for five minutes
    missed = api.get(f"/v1/campaigns/{late['id']}").json
    assert missed["status"] == "cancelled" and missed["ended_reason"] == "deadline_missed"
    assert missed["counts"]["targeted"] == 0
    assert api.get(f"/v1/campaigns/{on_time['id']}").json["status"] == "running"


def test_two_schedulers_at_once_start_it_once_and_make_one_message_per_recipient(api, runtime, workspace):
    segment = ready(api)
    seed_profiles(runtime, workspace[0], 300)
    at = utcnow() + dt.timedelta(seconds=5)
    campaign = make_campaign(api, segment, schedule={"at": at.isoformat()})
    api.post(f"/v1/campaigns/{campaign['id']}/launch")

    def scheduler():
        pump.start_due(runtime, at + dt.timedelta(seconds=1))
        engine.run_fanout(runtime, campaign["id"])

    threads = [threading.Thread(target=scheduler) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    with runtime.db.read_only() as session:
        per_profile = session.execute(
            select(func.count(), func.count(func.distinct(Message.profile_id))).where(
                Message.campaign_id == campaign["id"]
            )
        ).one()
    assert tuple(per_profile) == (300, 300)


def test_two_launches_at_once_make_one_message_per_recipient(app, api, runtime, workspace):
    segment = ready(api)
    seed_profiles(runtime, workspace[0], 300)
    campaign = make_campaign(api, segment)
    answers = []

    def launch():
        answers.append(
            app.test_client()
            .post(f"/v1/campaigns/{campaign['id']}/launch", headers={"Authorization": f"Bearer {workspace[1]}"})
            .status_code
        )
        engine.run_fanout(runtime, campaign["id"])

    threads = [threading.Thread(target=launch) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert answers == [200, 200]
    with runtime.db.read_only() as session:
        count, distinct = session.execute(
            select(func.count(), func.count(func.distinct(Message.profile_id))).where(
                Message.campaign_id == campaign["id"]
            )
        ).one()
    assert (count, distinct) == (300, 300)


def test_the_throttle_caps_the_release_rate(api, runtime, workspace, worker, smtp_server):
    segment = ready(api)
    seed_profiles(runtime, workspace[0], 60)
    campaign = make_campaign(api, segment, throttle={"per_second": 5})
    api.post(f"/v1/campaigns/{campaign['id']}/launch")
    wait_status_released = time.monotonic() + 30
    while campaign_row(runtime, campaign["id"]).released == 0 and time.monotonic() < wait_status_released:
        time.sleep(0.05)
    first = campaign_row(runtime, campaign["id"]).released
    started = time.monotonic()
    time.sleep(4.0)
    released = campaign_row(runtime, campaign["id"]).released - first
    rate = released / (time.monotonic() - started)
    assert 3.0 <= rate <= 7.0, rate
    assert len(smtp_server.messages) <= first + released + 1
    assert api.post(f"/v1/campaigns/{campaign['id']}/cancel").json["status"] == "cancelled"
    done = wait_status(api, campaign["id"], "cancelled")
    assert done["counts"]["targeted"] == 60


def test_time_left_of_a_local_time_campaign_counts_until_its_last_recipients_morning(api, runtime, workspace):
    segment = ready(api)
    for index, zone in enumerate(ZONES):
        seed_profiles(runtime, workspace[0], 1, start=index, timezone=zone)
    campaign = make_campaign(api, segment, schedule={"local_time": "09:00"})
    _launch(api, runtime, campaign)
    with runtime.db.unit_of_work() as session:  # a tick: the pump now has a release rate
        pump.pump_campaign(session, runtime, campaign["id"], now=utcnow())
    last_due = max(at for _, at in _due_by_profile(runtime, campaign["id"]))

    got = api.get(f"/v1/campaigns/{campaign['id']}").json

    assert got["status"] == "running" and got["counts"]["queued"] == 4
    expected = (last_due - utcnow()).total_seconds()
    assert expected - 5 <= got["eta_seconds"] <= expected + 5, (got["eta_seconds"], expected)


def _zone_at(now, hour):
    """A fixed-offset zone whose local time is ``hour`` o'clock (and some minutes) at ``now``."""
    offset = (hour - now.hour) % 24
    offset = offset - 24 if offset > 14 else offset
    return f"Etc/GMT{-offset:+d}" if offset else "Etc/GMT"


def _pump_at(runtime, campaign_id, now):
    with runtime.db.unit_of_work() as session:
        pump.pump_campaign(session, runtime, campaign_id, now=now)
    return _released_to(runtime, campaign_id)


def _released_to(runtime, campaign_id):
    """The zones of the messages that have a delivery job due (handed to delivery)."""
    with runtime.db.read_only() as session:
        rows = session.execute(
            select(Profile.timezone, PendingJob.due_at)
            .join(Message, Message.profile_id == Profile.id)
            .join(PendingJob, PendingJob.key == "messages.deliver:" + Message.id)
            .where(Message.campaign_id == campaign_id)
        ).all()
    return sorted(zone for zone, due in rows if due.year < 9000)


def test_the_pump_holds_a_zone_whose_window_closed_and_releases_it_when_it_reopens(api, runtime, workspace):
    segment = ready(api)
    now = utcnow()
    closing = _zone_at(now, 12)  # 12:xx now: inside 11:00-13:00, closed three hours from now
    opening = _zone_at(now + dt.timedelta(hours=3), 12)  # 09:xx now: opens at 11:00, open in three hours
    seed_profiles(runtime, workspace[0], 2, timezone=closing)
    seed_profiles(runtime, workspace[0], 2, start=2, timezone=opening)
    campaign = make_campaign(api, segment, calendar={"hours": ["11:00", "13:00"]})
    _launch(api, runtime, campaign)

    # The workers were down (or the campaign paused) through the first zone's window.
    later = now + dt.timedelta(hours=3)
    assert _pump_at(runtime, campaign["id"], later) == [opening, opening]
    assert api.get(f"/v1/campaigns/{campaign['id']}").json["counts"]["queued"] == 4
    reopens = dt.datetime.combine(
        (now.astimezone(zoneinfo.ZoneInfo(closing)) + dt.timedelta(days=1)).date(),
        dt.time(11, 1),
        tzinfo=zoneinfo.ZoneInfo(closing),
    ).astimezone(dt.UTC)
    assert _pump_at(runtime, campaign["id"], reopens - dt.timedelta(minutes=2)) == [opening, opening]
    assert _pump_at(runtime, campaign["id"], reopens) == sorted([closing, closing, opening, opening])


def test_cancelling_a_campaign_skips_its_held_messages_and_drops_their_jobs(api, runtime, workspace):
    segment = ready(api)
    now = utcnow()
    seed_profiles(runtime, workspace[0], 3, timezone=_zone_at(now, 12))
    campaign = make_campaign(api, segment, calendar={"hours": ["11:00", "13:00"]})
    _launch(api, runtime, campaign)
    assert _pump_at(runtime, campaign["id"], now + dt.timedelta(hours=3)) == []  # all three held
    assert _parked_jobs(runtime, now) == 3

    assert api.post(f"/v1/campaigns/{campaign['id']}/cancel").status_code == 200
    for _ in range(3):
        with runtime.db.unit_of_work() as session:
            pump.wind_down(session, campaign["id"])
    got = api.get(f"/v1/campaigns/{campaign['id']}").json
    assert got["counts"]["skipped"] == 3 and got["counts"]["queued"] == 0
    assert _parked_jobs(runtime, now) == 0


def _parked_jobs(runtime, now):
    with runtime.db.read_only() as session:
        far = now + dt.timedelta(days=3650)
        return session.scalar(select(func.count()).select_from(PendingJob).where(PendingJob.due_at > far))
