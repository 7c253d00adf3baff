"""Event, engagement, reachability and in_segment conditions, and merged profiles."""

from __future__ import annotations

import datetime as dt
import itertools

import pytest
from sqlalchemy import literal, select

from ccm.consent.models import ConsentRecord
from ccm.consent.service import allows
from ccm.db import UTCDateTime
from ccm.ids import new_id
from ccm.profiles.models import Profile
from ccm.segments import service
from ccm.segments.models import SegmentKind, SegmentMember
from ccm.suppression.service import suppress, suppressed
from ccm.workspaces.schemas import WorkspacePatch, WorkspacePolicy
from ccm.workspaces.service import update_workspace, workspace_policy
from tests.segments.conftest import NOW, add_engagement, add_event, add_profile, matching, tree

DAY = dt.timedelta(days=1)


@pytest.fixture
def buyers(runtime, workspace):
    """ana: 3 orders this month (one of 120 EUR); bob: 1 recent, 2 long ago; cyd: a page view only."""
    ws = workspace[0]
    with runtime.db.unit_of_work() as session:
        ana, bob, cyd = (add_profile(session, ws, name) for name in ("ana", "bob", "cyd"))
        for days, total in ((1, 20), (5, 120), (10, 35)):
            add_event(session, ana, "order_completed", NOW - days * DAY, total=total, currency="EUR")
        add_event(session, bob, "order_completed", NOW - 2 * DAY, total=15, currency="USD")
        for days in (60, 90):
            add_event(session, bob, "order_completed", NOW - days * DAY, total=500)
        add_event(session, cyd, "viewed_page", NOW - DAY)
    return ws


def test_performed_at_least_n_times_in_the_last_days(runtime, buyers):
    rule = {"event": "order_completed", "count": {"op": "at_least", "value": 2}, "within_last": {"days": 30}}
    with runtime.db.unit_of_work() as session:
        assert matching(session, buyers, rule) == {"ana"}
        assert matching(session, buyers, {**rule, "within_last": {"days": 365}}) == {"ana", "bob"}
        assert matching(session, buyers, {"event": "order_completed"}) == {"ana", "bob"}


def test_never_performed_is_at_most_zero(runtime, buyers):
    never = {"event": "order_completed", "count": {"op": "at_most", "value": 0}}
    with runtime.db.unit_of_work() as session:
        assert matching(session, buyers, never) == {"cyd"}
        assert matching(
            session, buyers, {**never, "within_last": {"days": 30}, "count": {"op": "exactly", "value": 0}}
        ) == {"cyd"}
        exactly_one = {"event": "order_completed", "within_last": {"days": 30}, "count": {"op": "exactly", "value": 1}}
        assert matching(session, buyers, exactly_one) == {"bob"}
        at_most_one = {"event": "order_completed", "within_last": {"days": 30}, "count": {"op": "at_most", "value": 1}}
        assert matching(session, buyers, at_most_one) == {"bob", "cyd"}


def test_event_property_filters_and_a_window_between_dates(runtime, buyers):
    with runtime.db.unit_of_work() as session:
        big = {"event": "order_completed", "where": [{"property": "properties.total", "op": "gte", "value": 100}]}
        assert matching(session, buyers, big) == {"ana", "bob"}
        recent_big = {**big, "within_last": {"days": 30}}
        assert matching(session, buyers, recent_big) == {"ana"}
        dollars = {
            "event": "order_completed",
            "where": [{"property": "properties.currency", "op": "in", "values": ["USD"]}],
        }
        assert matching(session, buyers, dollars) == {"bob"}
        window = {
            "event": "order_completed",
            "between": [str((NOW - 95 * DAY).date()), str((NOW - 55 * DAY).date())],
            "count": {"op": "exactly", "value": 2},
        }
        assert matching(session, buyers, window) == {"bob"}


def test_engagement_leaves_out_machine_opens_unless_asked(runtime, workspace):
    ws = workspace[0]
    with runtime.db.unit_of_work() as session:
        human, machine, old, sms = (add_profile(session, ws, n) for n in ("human", "machine", "old", "sms"))
        add_engagement(session, human, "opened", NOW - DAY)
        add_engagement(session, machine, "opened", NOW - DAY, machine=True)
        add_engagement(session, old, "opened", NOW - 40 * DAY)
        add_engagement(session, sms, "clicked", NOW - DAY, channel="sms")
        opened = {"engagement": "opened", "within_last": {"days": 30}}
        assert matching(session, ws, opened) == {"human"}
        assert matching(session, ws, {**opened, "include_machine": True}) == {"human", "machine"}
        assert matching(session, ws, {"engagement": "opened"}) == {"human", "old"}
        assert matching(session, ws, {"engagement": "clicked", "channel": "email"}) == set()
        assert matching(session, ws, {"engagement": "clicked", "channel": "sms"}) == {"sms"}
        not_opened = {"not": opened}
        assert matching(session, ws, not_opened) == {"machine", "old", "sms"}


def test_merged_profiles_never_match(runtime, workspace):
    ws = workspace[0]
    with runtime.db.unit_of_work() as session:
        known = add_profile(session, ws, "known", attributes={"country": "FR"})
        add_profile(session, ws, "anon", attributes={"country": "FR"}, merged_into_id=known.id)
        assert matching(session, ws, {"attribute": "attributes.country", "op": "equals", "value": "FR"}) == {"known"}


def test_audience_query_reads_in_keyset_chunks_and_feeds_insert_select(runtime, workspace):
    ws = workspace[0]
    with runtime.db.unit_of_work() as session:
        made = sorted(add_profile(session, ws, f"p{i}", attributes={"n": i}).id for i in range(25))
        listed = service.create_segment(
            session=session,
            workspace_id=ws,
            name="odd",
            kind=SegmentKind.RULES,
            tree=tree({"attribute": "attributes.n", "op": "gte", "value": 5}),
        )
        query = service.audience_query(session, ws, listed.id, now=NOW)
        assert len(query.selected_columns) == 1
        seen, cursor = [], ""
        while True:
            chunk = session.scalars(query.where(Profile.id > cursor).order_by(Profile.id).limit(7)).all()
            if not chunk:
                break
            seen.extend(chunk)
            cursor = chunk[-1]
        assert seen == made[5:]
        static = service.create_segment(
            session=session, workspace_id=ws, name="copy", kind=SegmentKind.STATIC, tree=None
        )
        table = SegmentMember.__table__
        ids = query.subquery()
        session.execute(
            table.insert().from_select(
                ["segment_id", "profile_id", "added_at"],
                select(literal(static.id), ids.c.id, literal(NOW, UTCDateTime())),
            )
        )
        assert (
            session.scalars(service.audience_query(session, ws, static.id, now=NOW).order_by(Profile.id)).all()
            == made[5:]
        )


def test_audience_query_of_an_unknown_or_foreign_segment_is_not_found(runtime, workspace):
    from ccm.errors import NotFound

    with runtime.db.unit_of_work() as session, pytest.raises(NotFound):
        service.audience_query(session, workspace[0], "seg_01JAAAAAAAAAAAAAAAAAAAAAAA", now=NOW)


# -- reachability: the SQL agrees with the Python decision -----------------------------------------

HISTORIES = [
    [],
    [("*", "granted")],
    [("*", "revoked")],
    [("news", "granted")],
    [("news", "revoked")],
    [("*", "revoked"), ("news", "granted")],
    [("news", "granted"), ("*", "revoked")],
    [("promo", "granted")],
    [("news", "revoked"), ("news", "granted")],
]
POLICIES = [
    {"consent_default": "opt_out"},
    {"consent_default": "opt_in"},
    {"consent_default": "opt_out", "topics": {"news": {"mode": "opt_in"}}},
    {"consent_default": "opt_in", "topics": {"news": {"mode": "opt_out"}}},
]


@pytest.mark.parametrize("policy", POLICIES)
def test_reachable_agrees_with_the_consent_and_suppression_decisions(runtime, workspace, policy):
    ws = workspace[0]
    start = NOW - 10 * DAY
    with runtime.db.unit_of_work() as session:
        update_workspace(session=session, workspace_id=ws, data=WorkspacePatch(policy=WorkspacePolicy(**policy)))
        profiles = []
        for number, (history, suppressed_too, channel) in enumerate(
            itertools.product(HISTORIES, (False, True), ("email", "sms"))
        ):
            profile = add_profile(
                session, ws, f"p{number}", email=f"Person.{number}@Example.com", phone=f"+3361234{number:04d}"
            )
            for step, (topic, status) in enumerate(history):
                session.add(
                    ConsentRecord(
                        id=new_id("cns"),
                        workspace_id=ws,
                        profile_id=profile.id,
                        channel=channel,
                        topic=topic,
                        status=status,
                        source="test",
                        recorded_at=start + step * DAY,
                    )
                )
            if suppressed_too:
                address = profile.email.upper() if channel == "email" else profile.phone
                suppress(session=session, workspace_id=ws, channel=channel, address=address, reason="manual")
            profiles.append(profile)
        add_profile(session, ws, "no-address", email=None, phone=None)
        session.flush()
        decided = workspace_policy(session=session, workspace_id=ws)
        for channel, topic in itertools.product(("email", "sms"), (None, "news", "promo")):
            expected = {
                p.external_id
                for p in profiles
                if allows(session=session, profile_id=p.id, channel=channel, topic=topic, policy=decided)
                and suppressed(
                    session=session,
                    workspace_id=ws,
                    channel=channel,
                    address=p.email if channel == "email" else p.phone,
                )
                is None
            }
            rule = {"reachable": channel, **({"topic": topic} if topic else {})}
            assert matching(session, ws, rule) == expected, (channel, topic)
            assert 0 < len(expected) < len(profiles)
