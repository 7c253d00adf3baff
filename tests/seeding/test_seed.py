"""``ccm seed``: a realistic workspace of made-up people — counts, the spread of their fields,
nobody reachable, rollups that agree with the events, deterministic, and refused a second time."""

from __future__ import annotations

import datetime as dt
import re
import zoneinfo
from collections import Counter

import phonenumbers
import pytest
from click.testing import CliRunner
from sqlalchemy import func, select

from ccm.cli import main
from ccm.consent.models import ConsentRecord
from ccm.db import utcnow
from ccm.engagement.models import EngagementEvent
from ccm.engagement.rollups import score
from ccm.ingest.models import Event
from ccm.message_templates.models import MessageTemplate
from ccm.profiles.models import Profile
from ccm.suppression.models import Suppression
from ccm.workspaces.compliance import marketing_email_refusal
from ccm.workspaces.models import Workspace
from ccm.workspaces.service import policy_of

RESERVED = re.compile(r"^[a-z]+\.[a-z]+\.\d+@(example\.(com|org|net)|[a-z]+\.test)$")
VALID_ZONES = zoneinfo.available_timezones()


@pytest.fixture
def cli(runtime, settings):
    env = {
        "CCM_DATABASE_URL": settings.database_url,
        "CCM_DATA_DIR": str(settings.data_dir),
        "CCM_SECRET_KEY": "test-secret",
        "CCM_REDIS_NAMESPACE": settings.redis_namespace,
    }
    if settings.redis_url:
        env["CCM_REDIS_URL"] = settings.redis_url
    return lambda *args: CliRunner().invoke(main, list(args), env=env, catch_exceptions=False)


def count(runtime, model, workspace_id):
    with runtime.db.read_only() as session:
        return session.scalar(select(func.count()).select_from(model).where(model.workspace_id == workspace_id))


def workspace_named(runtime, name):
    with runtime.db.read_only() as session:
        return session.scalar(select(Workspace).where(Workspace.name == name))


@pytest.fixture
def seeded(cli, runtime):
    result = cli("seed", "--workspace", "demo", "--profiles", "400", "--events-per-profile", "3", "--seed", "7")
    assert result.exit_code == 0, result.output
    return result, workspace_named(runtime, "demo")


def test_the_summary_line_says_what_was_written(seeded, runtime):
    result, workspace = seeded
    line = result.output.strip().splitlines()[-1]
    numbers = [
        int(n.replace(",", ""))
        for n in re.findall(r"([\d,]+) (?:profiles|consent|suppressions|events|engagement)", line)
    ]
    models = (Profile, ConsentRecord, Suppression, Event, EngagementEvent)
    assert numbers == [count(runtime, model, workspace.id) for model in models]
    assert numbers[0] == 400 and line.startswith(f"workspace 'demo' ({workspace.id}): 400 profiles")
    assert 400 * 2 <= numbers[3] <= 400 * 4  # about 3 events each, on average


def test_nobody_can_be_reached_and_the_fields_are_spread(seeded, runtime):
    _, workspace = seeded
    with runtime.db.read_only() as session:
        profiles = session.scalars(select(Profile).where(Profile.workspace_id == workspace.id)).all()
    emails = [p.email for p in profiles if p.email]
    assert 0.9 < len(emails) / 400 < 0.99 and all(RESERVED.match(e) for e in emails), emails[:5]
    assert len(set(emails)) == len(emails)
    phones = [p.phone for p in profiles if p.phone]
    assert 0.5 < len(phones) / 400 < 0.8
    assert all(phonenumbers.is_valid_number(phonenumbers.parse(phone)) and phone.startswith("+") for phone in phones)
    zones = Counter(p.timezone for p in profiles)
    assert 20 < zones[None] < 70  # about a tenth without a time zone
    invalid = [zone for zone in zones if zone is not None and zone not in VALID_ZONES]
    assert invalid and sum(zones[z] for z in invalid) < 25  # a few invalid ones
    assert len([z for z in zones if z in VALID_ZONES]) >= 10
    countries = Counter(p.attributes["country"] for p in profiles)
    assert countries.most_common(1)[0][0] == "US" and len(countries) >= 8
    for profile in profiles:
        attributes = profile.attributes
        assert {"first_name", "last_name", "country", "city", "age", "plan", "signup_date"} <= set(attributes)
        assert 18 <= attributes["age"] <= 90 and attributes["plan"] in ("free", "pro", "team", "enterprise")
        assert all((c == "email" and profile.email) or (c == "sms" and profile.phone) for c in profile.channels)
    assert len({p.locale for p in profiles}) >= 8


def test_consent_suppressions_events_and_rollups_agree(seeded, runtime):
    _, workspace = seeded
    with runtime.db.read_only() as session:
        consent = session.scalars(select(ConsentRecord).where(ConsentRecord.workspace_id == workspace.id)).all()
        events = session.scalars(select(Event).where(Event.workspace_id == workspace.id)).all()
        engagement = session.scalars(select(EngagementEvent).where(EngagementEvent.workspace_id == workspace.id)).all()
        profiles = {p.id: p for p in session.scalars(select(Profile).where(Profile.workspace_id == workspace.id))}
    email = Counter(c.status for c in consent if c.channel == "email")
    assert email["granted"] > 300 and 5 <= email["revoked"] < 60
    revoked = {c.profile_id for c in consent if c.status == "revoked"}
    assert revoked == {e.profile_id for e in engagement if e.kind == "unsubscribed"}
    names = Counter(e.name for e in events)
    assert {"order_completed", "product_viewed", "added_to_cart"} <= set(names) and names["Pricing"] > 0
    assert all(
        e.properties["total"] > 0 and e.properties["currency"] == "USD" for e in events if e.name == "order_completed"
    )
    now = utcnow()
    assert all(now - dt.timedelta(days=90, minutes=1) <= e.occurred_at <= now for e in events)
    by_profile: dict[str, list[EngagementEvent]] = {}
    for event in engagement:
        by_profile.setdefault(event.profile_id, []).append(event)
    for profile_id, made in by_profile.items():
        profile = profiles[profile_id]
        opened = sum(1 for e in made if e.kind == "opened" and not e.machine)
        assert profile.engagement["email"].get("opened", 0) == opened
        expected = score([(e.kind, e.machine, e.occurred_at) for e in made], now=now)
        assert profile.engagement_score == pytest.approx(expected, abs=0.01)
        assert profile.best_channel == ("email" if expected > 0 else None)


def test_the_workspace_can_send_marketing_email(seeded, runtime):
    _, workspace = seeded
    assert marketing_email_refusal(policy_of(workspace.settings)) is None
    with runtime.db.read_only() as session:
        template = session.scalar(select(MessageTemplate).where(MessageTemplate.workspace_id == workspace.id))
    assert (template.key, template.category, template.latest_version) == ("seed-newsletter", "marketing", 1)


def test_a_second_run_is_refused_and_changes_nothing(seeded, cli, runtime):
    _, workspace = seeded
    before = count(runtime, Event, workspace.id)
    again = cli("seed", "--workspace", "demo", "--profiles", "10")
    assert again.exit_code == 1
    assert "workspace 'demo' has 400 profiles already; seed a new one with --workspace" in again.output
    assert (count(runtime, Profile, workspace.id), count(runtime, Event, workspace.id)) == (400, before)


def test_the_same_seed_makes_the_same_people(cli, runtime):
    def people(name, seed):
        assert cli("seed", "--workspace", name, "--profiles", "50", "--seed", seed).exit_code == 0
        workspace_id = workspace_named(runtime, name).id
        with runtime.db.read_only() as session:
            rows = session.scalars(select(Profile).where(Profile.workspace_id == workspace_id))
            return sorted((p.external_id, p.email, p.phone, p.timezone, p.locale, p.attributes["city"]) for p in rows)

    first = people("one", "3")
    assert people("two", "3") == first
    assert people("three", "4") != first
