"""The dashboard's counts come from a cache (``message_day_count``) of each day's messages by status,
channel and skip reason: whatever was cached, the overview equals a direct count of the messages
once a change (a new message today, a late report on an old one) is older than the day's refresh
age, and shows the cached count before."""

from __future__ import annotations

import datetime as dt
from collections import Counter

import pytest
from sqlalchemy import insert, select

from ccm.db import utcnow
from ccm.engagement.models import EngagementEvent
from ccm.ids import id_at
from ccm.message_templates.models import TemplateVersion
from ccm.messages.day_counts import FIRST_MAX_AGE, TODAY_MAX_AGE, VIEW_GRACE, max_age
from ccm.messages.models import Message, MessageDayCount, MessageStatus
from ccm.messages.overview import Overview, read_overview, refresh_day_counts
from ccm.messages.state import report, transition_many
from tests.campaigns.conftest import publish_promo, seed_profiles

NOW = dt.datetime.combine(utcnow().date(), dt.time(12), tzinfo=dt.UTC)  # no midnight inside a test
ROWS = [  # (days ago, status, channel, reason)
    (0, "delivered", "email", None),
    (0, "queued", None, None),
    (1, "sent", "email", None),
    (1, "skipped", None, "quiet_hours"),
    (2, "sent", "sms", None),
    (2, "failed", "email", "bounced: 550 user unknown"),
    (5, "skipped", "email", "no_consent: email, news"),
    (13, "delivered", "chat", None),
    (14, "delivered", "chat", None),  # outside the 14 days
]


def write(runtime, workspace_id: str, rows, *, at: dt.datetime = NOW) -> list[str]:
    with runtime.db.unit_of_work() as session:
        version = session.scalars(select(TemplateVersion)).first()
        assert version is not None
        values = []
        for n, (days_ago, status, channel, reason) in enumerate(rows):
            made = at - dt.timedelta(days=days_ago, minutes=n + 1)
            key = id_at("msg", made)
            values.append(
                {"id": key, "workspace_id": workspace_id, "source": "api", "send_key": key}
                | {"category": "marketing", "template_version_id": version.id, "template_key": "promo"}
                | {"template_version": 1, "failed_channels": [], "channel": channel, "data": {}, "track": True}
                | {"route": [], "status": status, "reason": reason, "deadline_at": made + dt.timedelta(days=1)}
                | {"claims": 1, "created_at": made, "updated_at": made}
            )
        session.execute(insert(Message), values)
    return [value["id"] for value in values]


def direct_count(runtime, workspace_id: str, now: dt.datetime) -> Counter[tuple[str, str]]:
    """(day, status) → messages, counted in Python from every row of the workspace."""
    start = now.date() - dt.timedelta(days=13)
    with runtime.db.read_only() as session:
        rows = session.execute(select(Message.created_at, Message.status).where(Message.workspace_id == workspace_id))
        return Counter((at.date().isoformat(), status) for at, status in rows if at.date() >= start)


def view(runtime, workspace_id: str, now: dt.datetime, grace: float = 1) -> Overview:
    """What the dashboard does (at ``grace`` 1: the counts' own ages): the overview, then the
    days it counted afresh cached."""
    return read_overview(runtime.db, workspace_id, now=now, grace=grace)


@pytest.fixture
def history(runtime, api, workspace) -> list[str]:
    publish_promo(api)
    return write(runtime, workspace[0], ROWS)


def test_the_first_view_counts_and_caches_the_14_days_and_equals_a_direct_count(runtime, workspace, history):
    overview = view(runtime, workspace[0], NOW)
    assert overview.by_day_status == direct_count(runtime, workspace[0], NOW)
    assert len(overview.recounted) == 14
    with runtime.db.read_only() as session:
        cached = session.scalars(select(MessageDayCount.day).where(MessageDayCount.workspace_id == workspace[0]))
        assert len(list(cached)) == 14
    assert overview.skipped_by_reason == {"quiet_hours": 1, "no_consent": 1}
    assert (
        overview.by_channel_status[("none", "skipped")] == 1 and overview.by_channel_status[("chat", "delivered")] == 1
    )


def test_a_message_made_after_todays_count_shows_at_once(runtime, workspace, history):
    first = view(runtime, workspace[0], NOW)
    write(
        runtime, workspace[0], [(0, "sent", "sms", None)], at=NOW + dt.timedelta(minutes=1, seconds=1)
    )  # made at NOW + 1 s
    again = view(runtime, workspace[0], NOW + dt.timedelta(seconds=2))
    assert again.recounted == {}
    assert again.by_day_status == direct_count(runtime, workspace[0], NOW) != first.by_day_status
    assert again.by_day_status[(NOW.date().isoformat(), "sent")] == 1


def test_a_status_change_of_todays_message_shows_once_its_count_is_a_minute_old(runtime, workspace, history):
    view(runtime, workspace[0], NOW)
    queued = history[1]
    with runtime.db.unit_of_work() as session:
        assert transition_many(session, [queued], expect=[MessageStatus.QUEUED], to=MessageStatus.SKIPPED, reason="x")
    today = NOW.date().isoformat()
    cached = view(runtime, workspace[0], NOW + TODAY_MAX_AGE - dt.timedelta(seconds=1))
    assert cached.recounted == {} and cached.by_day_status[(today, "queued")] == 1
    again = view(runtime, workspace[0], NOW + TODAY_MAX_AGE)
    assert set(again.recounted) == {today} and (today, "queued") not in again.by_day_status
    assert again.by_day_status == direct_count(runtime, workspace[0], NOW)


def test_a_late_delivery_report_shows_once_the_days_count_is_older_than_its_refresh_age(runtime, workspace, history):
    view(runtime, workspace[0], NOW)
    two_days_ago, sent = (NOW.date() - dt.timedelta(days=2)).isoformat(), history[4]
    with runtime.db.unit_of_work() as session:
        assert report(session, sent, to=MessageStatus.DELIVERED, reason="delivered")
    age = max_age(NOW.date() - dt.timedelta(days=2), NOW.date())
    assert age == 2 * FIRST_MAX_AGE

    before = view(runtime, workspace[0], NOW + age - dt.timedelta(seconds=1))
    assert before.by_day_status[(two_days_ago, "sent")] == 1 and (two_days_ago, "delivered") not in before.by_day_status
    after = view(runtime, workspace[0], NOW + age)
    assert set(after.recounted) == {(NOW.date() - dt.timedelta(days=n)).isoformat() for n in (0, 1, 2)}
    assert after.by_day_status == direct_count(runtime, workspace[0], NOW)
    assert after.by_day_status[(two_days_ago, "delivered")] == 1 and (two_days_ago, "sent") not in after.by_day_status


def test_an_old_day_is_counted_again_only_after_its_longer_age(runtime, workspace, history):
    view(runtime, workspace[0], NOW)
    recounted = view(runtime, workspace[0], NOW + FIRST_MAX_AGE).recounted
    assert set(recounted) == {(NOW.date() - dt.timedelta(days=n)).isoformat() for n in (0, 1)}
    later = view(runtime, workspace[0], NOW + dt.timedelta(days=1))  # a new day: its 14 days counted again
    assert len(later.recounted) == 14
    assert later.by_day_status == direct_count(runtime, workspace[0], NOW + dt.timedelta(days=1))


def test_opens_and_clicks_are_cached_with_todays_count_and_taken_again_with_it(runtime, workspace, history):
    assert view(runtime, workspace[0], NOW).opened == 0
    profile = seed_profiles(runtime, workspace[0], 1)[0]
    with runtime.db.unit_of_work() as session:
        session.execute(
            insert(EngagementEvent),
            {"workspace_id": workspace[0], "profile_id": profile, "message_id": history[0], "kind": "opened"}
            | {"machine": False, "source": "test", "dedupe_key": "open", "occurred_at": NOW},
        )
    assert view(runtime, workspace[0], NOW + TODAY_MAX_AGE - dt.timedelta(seconds=1)).opened == 0
    assert view(runtime, workspace[0], NOW + TODAY_MAX_AGE).opened == 1


def test_the_refresh_ages_double_day_by_day_up_to_256_times(runtime):
    today = NOW.date()
    ages = [max_age(today - dt.timedelta(days=n), today) for n in (0, 1, 2, 3, 9, 13)]
    assert ages == [TODAY_MAX_AGE, FIRST_MAX_AGE, 2 * FIRST_MAX_AGE, 4 * FIRST_MAX_AGE] + [256 * FIRST_MAX_AGE] * 2


def test_a_view_takes_a_count_past_its_age_which_the_periodic_refresh_counts_again(runtime, workspace, history):
    view(runtime, workspace[0], NOW, grace=VIEW_GRACE)
    with runtime.db.unit_of_work() as session:
        assert transition_many(
            session, [history[1]], expect=[MessageStatus.QUEUED], to=MessageStatus.SKIPPED, reason="x"
        )
    aged = NOW + TODAY_MAX_AGE
    stale = view(runtime, workspace[0], aged, grace=VIEW_GRACE)
    assert (
        stale.recounted == {} and stale.by_day_status[(NOW.date().isoformat(), "queued")] == 1
    )  # no count in the view

    assert refresh_day_counts(runtime.db, now=aged) == 1  # the workspaces whose dashboard was looked at
    fresh = view(runtime, workspace[0], aged + dt.timedelta(seconds=1), grace=VIEW_GRACE)
    assert fresh.recounted == {} and fresh.by_day_status == direct_count(runtime, workspace[0], NOW)
