"""Storing Segment-spec calls: dedupe by ``messageId``, resolve each call's profile, apply
identify traits and group memberships, keep every event. Runs in the request's transaction, so an
event is durable before the 2xx and a failed request stores nothing.

Identity: ``userId`` is a profile's ``external_id``; an ``anonymousId`` is linked to at most one
profile (``profile_anonymous_id``), and a profile may have many (one per device). A call with
only an ``anonymousId`` makes an anonymous profile; an identify that brings a ``userId`` to an
anonymous profile gives it that external id. When a call shows that an anonymous profile and a
known one are the same person — an ``identify`` naming both, or an ``alias`` from a
``previousId`` — the anonymous one is merged into the known one (:mod:`ccm.identity.service`);
two profiles with different user ids are never merged, and the event notes why.
"""

from __future__ import annotations

import datetime as dt
import functools
import zoneinfo
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ARRAY, Select, String, any_, bindparam, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, load_only

from ccm.channels.addresses import normalize_email_address, normalize_phone
from ccm.channels.base import InvalidAddress
from ccm.db import dialect_of, insert_ignoring_conflicts, insert_many, utcnow
from ccm.identity.service import merge_profiles
from ccm.ids import new_id
from ccm.ingest.models import Account, AccountMember, Event, EventSeen, ProfileAnonymousId
from ccm.ingest.spec import Call, profile_fields
from ccm.profiles.models import Profile
from ccm.workspaces.service import workspace_policy

_SEEN = EventSeen.__table__
_EVENT = Event.__table__
_MEMBER = AccountMember.__table__


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
    resolver.prefetch([call for call, _ in fresh])
    rows = [_event_row(call, resolver, workspace_id, received_at, event_id) for call, event_id in fresh]
    for row in rows:  # an event read before its profile was merged, in this request, goes with it
        row["profile_id"] = resolver.surviving(row["profile_id"])
    if rows:
        insert_many(session.connection(), _EVENT, rows, ignoring=False)
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
    rows = [
        {"workspace_id": workspace_id, "message_id": message_id, "event_id": event_id, "seen_at": received_at}
        for message_id, (_, event_id) in first.items()
    ]
    new = set(insert_many(session.connection(), _SEEN, rows, "message_id").scalars())
    return [(call, event_id) for message_id, (call, event_id) in first.items() if message_id in new]


def _event_row(
    call: Call, resolver: _Resolver, workspace_id: str, received_at: dt.datetime, event_id: str
) -> dict[str, Any]:
    notes: list[str] = []
    profile = resolver.profile_for(call, notes, event_id)
    if call.kind == "identify":
        _apply_traits(resolver, profile, call.traits, notes)
    elif call.kind == "group" and call.group_id:
        _join_group(resolver.session, workspace_id, profile, call, received_at)
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


def _join_group(session: Session, workspace_id: str, profile: Profile, call: Call, at: dt.datetime) -> None:
    """The account's traits updated (the call's win over those it had) and the profile a member."""
    account = session.get(Account, (workspace_id, call.group_id), with_for_update=True)
    if account is None:
        account = Account(workspace_id=workspace_id, group_id=call.group_id, traits={}, created_at=at)
        try:
            with session.begin_nested():
                session.add(account)
        except IntegrityError:  # made by a concurrent request meanwhile
            account = session.get_one(Account, (workspace_id, call.group_id), with_for_update=True)
    account.traits, account.updated_at = {**account.traits, **call.traits}, at
    member = {"workspace_id": workspace_id, "group_id": call.group_id, "profile_id": profile.id, "joined_at": at}
    session.execute(insert_ignoring_conflicts(dialect_of(session), _MEMBER), member)


class _Resolver:
    """Finds or makes the profile of each call, remembering them for the rest of the request."""

    def __init__(self, session: Session, workspace_id: str) -> None:
        self.session, self.workspace_id = session, workspace_id
        self._by_user: dict[str, Profile] = {}
        self._by_anonymous: dict[str, Profile] = {}
        self._merged: dict[str, str] = {}
        self._no_user: set[str] = set()
        self._no_anonymous: set[str] = set()

    def prefetch(self, calls: Sequence[Call]) -> None:
        """Load, and lock, the profiles the calls name with one statement for their user ids and
        one for their anonymous ids, instead of two per call; those not found are remembered as
        missing. The profiles an identify or alias may change are locked first, for update
        (``FOR NO KEY UPDATE``, so that two identifies cannot lose each other's traits); the rest
        only against erasure (``FOR KEY SHARE``: the events' references hold, and concurrent
        requests naming the same profiles do not wait for each other). Each statement locks in
        profile id order, so two requests naming the same profiles queue instead of deadlocking."""
        self._fetch(*_ids_named([call for call in calls if call.kind in _CHANGING]), changing=True)
        self._fetch(*_ids_named(calls), changing=False)

    def _fetch(self, user_ids: set[str], anonymous_ids: set[str], *, changing: bool) -> None:
        dialect, workspace = dialect_of(self.session), {"workspace_id": self.workspace_id}
        user_ids = user_ids - self._by_user.keys() - self._no_user
        if user_ids:
            found = self.session.scalars(_users_named(dialect, changing), {**workspace, "ids": list(user_ids)})
            self._by_user.update(
                (profile.external_id, self._survivor(profile)) for profile in found if profile.external_id
            )
            self._no_user.update(user_ids - self._by_user.keys())
        anonymous_ids = anonymous_ids - self._by_anonymous.keys() - self._no_anonymous
        if anonymous_ids:
            statement = _anonymous_named(dialect, changing)
            linked = self.session.execute(statement, {**workspace, "ids": list(anonymous_ids)})
            self._by_anonymous.update((anonymous_id, self._survivor(profile)) for anonymous_id, profile in linked)
            self._no_anonymous.update(anonymous_ids - self._by_anonymous.keys())

    def profile_for(self, call: Call, notes: list[str], event_id: str) -> Profile:
        if call.kind == "alias":
            return self._alias(call, notes, event_id)
        known = self._user(call.user_id) if call.user_id else None
        anonymous = self._anonymous(call.anonymous_id) if call.anonymous_id else None
        if known is not None:
            if call.anonymous_id and anonymous is None:
                self._link(call.anonymous_id, known)
            elif anonymous is not None and anonymous.id != known.id:
                self._merge(anonymous, known, call, notes, event_id)
            return known
        if anonymous is not None and call.user_id and anonymous.external_id is None:
            return self._name(anonymous, call.user_id)  # identify after anonymous activity: the same person
        if anonymous is not None and not call.user_id:
            return anonymous
        profile = self._create(call.user_id)
        if call.anonymous_id and anonymous is None:
            self._link(call.anonymous_id, profile)
        return profile

    def surviving(self, profile_id: str) -> str:
        """The profile that ``profile_id``'s history lives on: itself, or the one it merged into."""
        return self._merged.get(profile_id, profile_id)

    def _alias(self, call: Call, notes: list[str], event_id: str) -> Profile:
        """``previousId`` (an anonymous id or an earlier user id) is the same person as ``userId``."""
        assert call.user_id is not None and call.previous_id is not None  # the spec requires both
        previous = self._user(call.previous_id) or self._anonymous(call.previous_id)
        known = self._user(call.user_id)
        if previous is None:
            known = known or self._create(call.user_id)
            self._link(call.previous_id, known)
            return known
        if known is None:
            if previous.external_id is None:
                return self._name(previous, call.user_id)
            known = self._create(call.user_id)
        if previous.id != known.id:
            self._merge(previous, known, call, notes, event_id)
        return known

    def _merge(self, source: Profile, target: Profile, call: Call, notes: list[str], event_id: str) -> None:
        if source.external_id is not None:
            notes.append(
                f"profile {source.id} has userId {source.external_id!r} and profile {target.id} has"
                f" {target.external_id!r}: not merged, a profile keeps one userId"
            )
            return
        record = {
            "kind": call.kind,
            "message_id": call.message_id,
            "event_id": event_id,
            "user_id": call.user_id,
            "anonymous_id": call.anonymous_id,
            "previous_id": call.previous_id,
        }
        merge = merge_profiles(session=self.session, source=source, target=target, call=record)
        notes.append(f"merged profile {source.id} into {target.id} (merge {merge.id})")
        self._merged[source.id] = target.id
        for anonymous_id, profile in list(self._by_anonymous.items()):
            if profile is source:
                self._by_anonymous[anonymous_id] = target

    def _name(self, profile: Profile, user_id: str) -> Profile:
        profile.external_id = user_id
        self._by_user[user_id] = profile
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
        """The profile with this user id: prefetched, else looked up (and locked) like them."""
        if user_id not in self._by_user and user_id not in self._no_user:
            self._fetch({user_id}, set(), changing=True)
        return self._by_user.get(user_id)

    def _anonymous(self, anonymous_id: str) -> Profile | None:
        if anonymous_id not in self._by_anonymous and anonymous_id not in self._no_anonymous:
            self._fetch(set(), {anonymous_id}, changing=True)
        return self._by_anonymous.get(anonymous_id)

    def _survivor(self, found: Profile) -> Profile:
        """``found``, or the profile it was merged into by a request that committed while this
        one waited for its lock (the lookup then returns the row as the merge left it)."""
        while found.merged_into_id is not None:
            found = self.session.get_one(Profile, found.merged_into_id, with_for_update={"key_share": True})
        return found

    def _create(self, user_id: str | None) -> Profile:
        """A new profile; when a concurrent request made the same one first, that one."""
        profile = Profile(workspace_id=self.workspace_id, external_id=user_id)
        try:
            with self.session.begin_nested():
                self.session.add(profile)
        except IntegrityError:
            assert user_id is not None  # only the external id is unique
            self._no_user.discard(user_id)  # missing when prefetched: made by a concurrent request since
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


def _among(column: Any, dialect: str) -> Any:
    """``column IN (:ids)``: one array parameter on PostgreSQL (one prepared statement whatever the
    count of ids), an expanding list on SQLite."""
    if dialect == "postgresql":
        return column == any_(bindparam("ids", type_=ARRAY(String)))
    return column.in_(bindparam("ids", expanding=True))


_RESOLVED = load_only(Profile.id, Profile.workspace_id, Profile.external_id, Profile.attributes, Profile.merged_into_id)
"""What resolving and identify read of a prefetched profile: decoding its other JSON columns cost
more than the rest of the lookup (any other column loads when first read)."""


_CHANGING = frozenset({"identify", "alias"})
"""The calls that may change the profile they name (traits, a user id, a merge)."""


def _ids_named(calls: Sequence[Call]) -> tuple[set[str], set[str]]:
    """The user ids and the anonymous ids the calls name (an alias's ``previousId`` may be either)."""
    previous = {call.previous_id for call in calls if call.previous_id}
    users = {call.user_id for call in calls if call.user_id} | previous
    return users, {call.anonymous_id for call in calls if call.anonymous_id} | previous


@functools.cache
def _users_named(dialect: str, changing: bool) -> Select[Profile]:
    return (
        select(Profile)
        .where(Profile.workspace_id == bindparam("workspace_id"), _among(Profile.external_id, dialect))
        .options(_RESOLVED)
        .order_by(Profile.id)
        .with_for_update(key_share=True, read=not changing)
    )


@functools.cache
def _anonymous_named(dialect: str, changing: bool) -> Select[str, Profile]:
    return (
        select(ProfileAnonymousId.anonymous_id, Profile)
        .join(Profile, ProfileAnonymousId.profile_id == Profile.id)
        .where(
            ProfileAnonymousId.workspace_id == bindparam("workspace_id"),
            _among(ProfileAnonymousId.anonymous_id, dialect),
        )
        .options(_RESOLVED)
        .order_by(Profile.id)
        .with_for_update(key_share=True, read=not changing, of=Profile)
    )


def _time_zone(value: str) -> str:
    try:
        zoneinfo.ZoneInfo(value)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"{value!r} is not an IANA time zone") from None
    return value
