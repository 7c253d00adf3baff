"""Helpers of the segment tests: profiles, events and engagement written straight to the
database (with the times a test needs), and the external ids a rule tree matches."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

from sqlalchemy import select

from ccm.engagement.models import EngagementEvent
from ccm.ids import new_id
from ccm.ingest.models import Event
from ccm.profiles.models import Profile
from ccm.segments import service
from ccm.segments.rules import NODE_ADAPTER, check_size

NOW = dt.datetime(2026, 12, 3, 12, 0, tzinfo=dt.UTC)


def add_profile(session: Any, workspace_id: str, external_id: str, **fields: Any) -> Profile:
    fields.setdefault("email", f"{external_id}@example.com")
    fields.setdefault("created_at", NOW - dt.timedelta(days=400))
    profile = Profile(id=new_id("prf"), workspace_id=workspace_id, external_id=external_id, **fields)
    session.add(profile)
    session.flush()
    return profile


def add_event(session: Any, profile: Profile, name: str, at: dt.datetime, **properties: Any) -> None:
    session.add(
        Event(
            id=new_id("evt"),
            workspace_id=profile.workspace_id,
            received_at=at,
            profile_id=profile.id,
            kind="track",
            name=name,
            message_id=new_id("msg"),
            occurred_at=at,
            properties=properties,
        )
    )


def add_engagement(session: Any, profile: Profile, kind: str, at: dt.datetime, **fields: Any) -> None:
    fields.setdefault("channel", "email")
    session.add(
        EngagementEvent(
            id=new_id("evt"),
            workspace_id=profile.workspace_id,
            profile_id=profile.id,
            kind=kind,
            source="test",
            occurred_at=at,
            **fields,
        )
    )


def tree(rules: dict[str, Any]) -> Any:
    return check_size(NODE_ADAPTER.validate_json(json.dumps(rules)))


def matching(session: Any, workspace_id: str, rules: dict[str, Any], *, now: dt.datetime = NOW) -> set[str]:
    """The external ids of the profiles ``rules`` match, as the database computes them."""
    query = service.rules_query(session, workspace_id, tree(rules), now=now).subquery()
    ids = select(Profile.external_id).where(Profile.id.in_(select(query.c.id)))
    return set(session.scalars(ids))
