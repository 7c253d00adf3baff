"""Storing Segment-spec calls: dedupe by ``messageId``, resolve each call's profile, apply
identify traits, keep every event. Runs in the request's transaction, so an event is durable
before the 2xx and a failed request stores nothing.

Identity: ``userId`` is a profile's ``external_id``; an ``anonymousId`` is linked to at most one
profile (``profile_anonymous_id``), and a profile may have many (one per device). A call with
only an ``anonymousId`` makes an anonymous profile; an identify that brings a ``userId`` to an
anonymous profile gives it that external id. When the two ids name two different profiles, the
call is recorded on the known one and the event notes that the profiles were not merged (merging
is the next step of this package).
"""

from __future__ import annotations

import datetime as dt
import functools
import zoneinfo
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from ccm.channels.addresses import normalize_email_address, normalize_phone
from ccm.channels.base import InvalidAddress
from ccm.db import dialect_of, insert_ignoring_conflicts, utcnow
from ccm.ids import new_id
from ccm.ingest.models import Event, EventSeen, ProfileAnonymousId
from ccm.ingest.spec import Call, profile_fields
from ccm.profiles.models import Profile
from ccm.workspaces.service import workspace_policy

_SEEN = EventSeen.__table__
_EVENT = Event.__table__


@dataclass(frozen=True)
class Ingested:
    """What a request stored: new events, and the retried ones recognised by ``messageId``;
    ``events`` are the stored rows (the ``event`` table's columns), for what reacts to them."""

    stored: int
    duplicates: int
    events: tuple[dict[str, Any], ...] = ()


def ingest(*, session: Session, workspace_id: str, calls: Sequence[Call], received_at: dt.datetime) -> Ingested:
    """Store the calls not seen before, in order, in the caller's transaction."""
    fresh = _unseen(session, workspace_id, calls, received_at)
    resolver = _Resolver(session, workspace_id)
    rows = [_event_row(call, resolver, workspace_id, received_at, event_id) for call, event_id in fresh]
    if rows:
        session.execute(_EVENT.insert(), rows)
    return Ingested(stored=len(rows), duplicates=len(calls) - len(rows), events=tuple(rows))


def _unseen(
    session: Session, workspace_id: str, calls: Sequence[Call], received_at: dt.datetime
) -> list[tuple[Call, str]]:
    """The calls whose ``messageId`` is new to the workspace (also within this request), each
    with its event id; recorded as seen in one statement."""
    first: dict[str, tuple[Call, str]] = {}
    for call in calls:
        first.setdefault(call.message_id, (call, new_id("evt")))
    if not first:
        return []
    statement = insert_ignoring_conflicts(dialect_of(session), _SEEN, returning=_SEEN.c.message_id)
    rows = [
        {"workspace_id": workspace_id, "message_id": message_id, "event_id": event_id, "seen_at": received_at}
        for message_id, (_, event_id) in first.items()
    ]
    new = set(session.execute(statement, rows).scalars())
    return [(call, event_id) for message_id, (call, event_id) in first.items() if message_id in new]


def _event_row(
    call: Call, resolver: _Resolver, workspace_id: str, received_at: dt.datetime, event_id: str
) -> dict[str, Any]:
    notes: list[str] = []
    profile = resolver.profile_for(call, notes)
    if call.kind == "identify":
        _apply_traits(resolver, profile, call.traits, notes)
    properties = call.properties
    if call.kind == "group":
        properties = {"group_id": call.group_id, "traits": call.traits}
    elif call.kind == "alias":
        properties = {"previous_id": call.previous_id}
    elif call.kind == "identify":
        properties = {"traits": call.traits}
    return {
        "id": event_id,
        "workspace_id": workspace_id,
        "received_at": received_at,
        "profile_id": profile.id,
        "kind": call.kind,
        "name": call.name,
        "message_id": call.message_id,
        "user_id": call.user_id,
        "anonymous_id": call.anonymous_id,
        "occurred_at": call.occurred_at,
        "properties": properties,
        "context": {**call.context, **({"integrations": call.integrations} if call.integrations else {})},
        "notes": notes,
    }


def _apply_traits(resolver: _Resolver, profile: Profile, traits: dict[str, Any], notes: list[str]) -> None:
    """Reserved traits onto the profile's fields (a value that is not valid is noted, not applied),
    the others into its attributes."""
    fields, attributes = profile_fields(traits)
    for name, value in fields.items():
        try:
            setattr(profile, name, resolver.valid(name, value))
        except ValueError as exc:
            notes.append(f"traits.{name}: not applied, {exc}")
    if attributes:
        profile.attributes = {**(profile.attributes or {}), **attributes}
    profile.updated_at = utcnow()


class _Resolver:
    """Finds or makes the profile of each call, remembering them for the rest of the request."""

    def __init__(self, session: Session, workspace_id: str) -> None:
        self.session, self.workspace_id = session, workspace_id
        self._by_user: dict[str, Profile] = {}
        self._by_anonymous: dict[str, Profile] = {}

    def profile_for(self, call: Call, notes: list[str]) -> Profile:
        known = self._user(call.user_id) if call.user_id else None
        anonymous = self._anonymous(call.anonymous_id) if call.anonymous_id else None
        if known is not None:
            if call.anonymous_id and anonymous is None:
                self._link(call.anonymous_id, known)
            elif anonymous is not None and anonymous.id != known.id:
                notes.append(f"anonymousId {call.anonymous_id!r} belongs to profile {anonymous.id}: not merged")
            return known
        if anonymous is not None and call.user_id and anonymous.external_id is None:
            anonymous.external_id = call.user_id  # identify after anonymous activity: the same person
            self._by_user[call.user_id] = anonymous
            return anonymous
        if anonymous is not None and not call.user_id:
            return anonymous
        profile = self._create(call.user_id)
        if call.anonymous_id and anonymous is None:
            self._link(call.anonymous_id, profile)
        return profile

    def valid(self, name: str, value: Any) -> str | None:
        """A reserved trait's value as the profile stores it; ValueError when it is not valid."""
        if value is None or value == "":
            return None
        if not isinstance(value, str):
            raise ValueError("must be a string")
        if name == "email":
            try:
                return normalize_email_address(value)
            except InvalidAddress as exc:
                raise ValueError(str(exc)) from None
        if name == "phone":
            try:
                return normalize_phone(value, region=self._default_region)
            except InvalidAddress as exc:
                raise ValueError(str(exc)) from None
        if name == "timezone":
            return _time_zone(value)
        if len(value) > 35:
            raise ValueError("a locale is at most 35 characters")
        return value

    @functools.cached_property
    def _default_region(self) -> str | None:
        return workspace_policy(session=self.session, workspace_id=self.workspace_id).default_region

    def _user(self, user_id: str) -> Profile | None:
        if user_id not in self._by_user:
            found = self.session.scalar(
                select(Profile)
                .where(Profile.workspace_id == self.workspace_id, Profile.external_id == user_id)
                .with_for_update(key_share=True)  # an erasure meanwhile waits: the event's reference holds
            )
            if found is None:
                return None
            self._by_user[user_id] = found
        return self._by_user[user_id]

    def _anonymous(self, anonymous_id: str) -> Profile | None:
        if anonymous_id not in self._by_anonymous:
            found = self.session.scalar(
                select(Profile)
                .join(ProfileAnonymousId, ProfileAnonymousId.profile_id == Profile.id)
                .where(
                    ProfileAnonymousId.workspace_id == self.workspace_id,
                    ProfileAnonymousId.anonymous_id == anonymous_id,
                )
                .with_for_update(key_share=True, of=Profile)
            )
            if found is None:
                return None
            self._by_anonymous[anonymous_id] = found
        return self._by_anonymous[anonymous_id]

    def _create(self, user_id: str | None) -> Profile:
        """A new profile; when a concurrent request made the same one first, that one."""
        profile = Profile(workspace_id=self.workspace_id, external_id=user_id)
        try:
            with self.session.begin_nested():
                self.session.add(profile)
        except IntegrityError:
            assert user_id is not None  # only the external id is unique
            found = self._user(user_id)
            assert found is not None
            return found
        if user_id:
            self._by_user[user_id] = profile
        return profile

    def _link(self, anonymous_id: str, profile: Profile) -> None:
        statement = insert_ignoring_conflicts(dialect_of(self.session), ProfileAnonymousId.__table__)
        self.session.execute(
            statement,
            {
                "workspace_id": self.workspace_id,
                "anonymous_id": anonymous_id,
                "profile_id": profile.id,
                "linked_at": utcnow(),
            },
        )
        self._by_anonymous.setdefault(anonymous_id, profile)


def _time_zone(value: str) -> str:
    try:
        zoneinfo.ZoneInfo(value)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"{value!r} is not an IANA time zone") from None
    return value
