"""Attribute conditions: profile columns and attributes.<path>, on SQLite and PostgreSQL alike."""

from __future__ import annotations

import datetime as dt

import pytest

from tests.segments.conftest import NOW, add_profile, matching


@pytest.fixture
def people(runtime, workspace):
    ws = workspace[0]
    with runtime.db.unit_of_work() as session:
        add_profile(
            session,
            ws,
            "ana",
            attributes={
                "country": "FR",
                "city": "Paris",
                "age": 34,
                "vip": True,
                "tags": ["vip", "beta"],
                "plan": "Pro Annual",
            },
            engagement_score=0.8,
            best_channel="email",
            timezone="Europe/Paris",
        )
        add_profile(
            session,
            ws,
            "bob",
            attributes={"country": "DE", "age": "34", "vip": False, "plan": "basic"},
            engagement_score=0.2,
            best_channel="sms",
        )
        add_profile(
            session,
            ws,
            "cyd",
            attributes={"country": "FR", "age": 19.5, "address": {"city": "Lyon"}},
            engagement_score=0.5,
        )
        add_profile(session, ws, "dee", attributes={}, email=None)
    return ws


def test_equals_matches_the_same_text_and_never_a_number_given_as_text(runtime, people):
    with runtime.db.unit_of_work() as session:
        assert matching(session, people, {"attribute": "attributes.country", "op": "equals", "value": "FR"}) == {
            "ana",
            "cyd",
        }
        assert matching(session, people, {"attribute": "attributes.age", "op": "equals", "value": 34}) == {"ana"}
        assert matching(session, people, {"attribute": "attributes.age", "op": "equals", "value": "34"}) == {"bob"}
        assert matching(session, people, {"attribute": "attributes.vip", "op": "equals", "value": True}) == {"ana"}
        assert matching(session, people, {"attribute": "attributes.vip", "op": "equals", "value": False}) == {"bob"}


def test_not_equals_and_not_in_match_profiles_without_the_field(runtime, people):
    with runtime.db.unit_of_work() as session:
        assert matching(session, people, {"attribute": "attributes.country", "op": "not_equals", "value": "FR"}) == {
            "bob",
            "dee",
        }
        assert matching(
            session, people, {"attribute": "attributes.country", "op": "not_in", "values": ["FR", "DE"]}
        ) == {"dee"}
        assert matching(session, people, {"attribute": "attributes.country", "op": "in", "values": ["DE", "IT"]}) == {
            "bob"
        }


def test_numbers_compare_as_numbers_and_texts_are_left_out(runtime, people):
    with runtime.db.unit_of_work() as session:
        # "34" (a text) is not a number over 20; 19.5 is not over 20; 34 is.
        assert matching(session, people, {"attribute": "attributes.age", "op": "gt", "value": 20}) == {"ana"}
        assert matching(session, people, {"attribute": "attributes.age", "op": "lte", "value": 19.5}) == {"cyd"}
        assert matching(session, people, {"attribute": "attributes.age", "op": "between", "values": [19, 40]}) == {
            "ana",
            "cyd",
        }
        # 100 > 9 as numbers, though "100" < "9" as texts
        assert matching(session, people, {"attribute": "engagement_score", "op": "gte", "value": 0.5}) == {"ana", "cyd"}


def test_contains_and_starts_with_ignore_case_and_contains_finds_list_elements(runtime, people):
    with runtime.db.unit_of_work() as session:
        assert matching(session, people, {"attribute": "attributes.plan", "op": "contains", "value": "annual"}) == {
            "ana"
        }
        assert matching(session, people, {"attribute": "attributes.plan", "op": "starts_with", "value": "BA"}) == {
            "bob"
        }
        assert matching(session, people, {"attribute": "attributes.tags", "op": "contains", "value": "beta"}) == {"ana"}
        assert matching(session, people, {"attribute": "attributes.plan", "op": "contains", "value": "%"}) == set()
        assert matching(session, people, {"attribute": "email", "op": "starts_with", "value": "ana@"}) == {"ana"}


def test_exists_and_nested_paths(runtime, people):
    with runtime.db.unit_of_work() as session:
        assert matching(session, people, {"attribute": "attributes.address.city", "op": "equals", "value": "Lyon"}) == {
            "cyd"
        }
        assert matching(session, people, {"attribute": "attributes.city", "op": "exists"}) == {"ana"}
        assert matching(session, people, {"attribute": "email", "op": "not_exists"}) == {"dee"}
        assert matching(session, people, {"attribute": "best_channel", "op": "in", "values": ["sms"]}) == {"bob"}


def test_groups_nest(runtime, people):
    rules = {
        "or": [
            {
                "and": [
                    {"attribute": "attributes.country", "op": "equals", "value": "FR"},
                    {"not": {"attribute": "attributes.age", "op": "gt", "value": 30}},
                ]
            },
            {"attribute": "best_channel", "op": "equals", "value": "sms"},
        ]
    }
    with runtime.db.unit_of_work() as session:
        assert matching(session, people, rules) == {"cyd", "bob"}


def test_signed_up_today_in_paris_counts_days_in_paris(runtime, workspace):
    ws = workspace[0]
    now = dt.datetime(2026, 12, 3, 0, 30, tzinfo=dt.UTC)  # 01:30 in Paris, still Dec 2nd 19:30 in New York
    with runtime.db.unit_of_work() as session:
        add_profile(session, ws, "after-paris-midnight", created_at=dt.datetime(2026, 12, 2, 23, 15, tzinfo=dt.UTC))
        add_profile(session, ws, "before-paris-midnight", created_at=dt.datetime(2026, 12, 2, 22, 45, tzinfo=dt.UTC))
        add_profile(session, ws, "yesterday", created_at=dt.datetime(2026, 12, 1, 23, 30, tzinfo=dt.UTC))
        today = {"attribute": "created_at", "op": "within_last", "value": {"days": 0}}
        assert matching(session, ws, {**today, "timezone": "Europe/Paris"}, now=now) == {"after-paris-midnight"}
        assert matching(session, ws, {**today, "timezone": "America/New_York"}, now=now) == {
            "after-paris-midnight",
            "before-paris-midnight",
        }
        assert matching(session, ws, {**today, "value": {"days": 1}, "timezone": "Europe/Paris"}, now=now) == {
            "after-paris-midnight",
            "before-paris-midnight",
            "yesterday",
        }
        older = {"attribute": "created_at", "op": "more_than", "value": {"days": 0}, "timezone": "Europe/Paris"}
        assert matching(session, ws, older, now=now) == {"before-paris-midnight", "yesterday"}


def test_before_and_after_a_date_in_the_declared_zone(runtime, workspace):
    ws = workspace[0]
    with runtime.db.unit_of_work() as session:
        add_profile(
            session,
            ws,
            "a",
            created_at=dt.datetime(2026, 6, 30, 22, 30, tzinfo=dt.UTC),
            attributes={"renewal": "2026-07-01T10:00:00Z"},
        )
        add_profile(
            session,
            ws,
            "b",
            created_at=dt.datetime(2026, 7, 1, 22, 30, tzinfo=dt.UTC),
            attributes={"renewal": "2026-07-03"},
        )
        paris = {"timezone": "Europe/Paris"}
        # 22:30 UTC on June 30th is July 1st in Paris
        assert (
            matching(session, ws, {"attribute": "created_at", "op": "before", "value": "2026-07-01", **paris}) == set()
        )
        assert matching(session, ws, {"attribute": "created_at", "op": "before", "value": "2026-07-02", **paris}) == {
            "a"
        }
        assert matching(session, ws, {"attribute": "created_at", "op": "after", "value": "2026-07-01", **paris}) == {
            "b"
        }
        assert matching(session, ws, {"attribute": "attributes.renewal", "op": "after", "value": "2026-07-01"}) == {"b"}
        assert matching(
            session, ws, {"attribute": "attributes.renewal", "op": "within_last", "value": {"days": 200}}, now=NOW
        ) == {"a", "b"}
