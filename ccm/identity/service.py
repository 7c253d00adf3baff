"""Identity merge: an anonymous profile folded into a known one when a call shows they are the
same person (``alias``, or an ``identify`` whose ``userId`` and ``anonymousId`` name two profiles).

Everything that refers to the anonymous profile moves — events, anonymous ids, consent records,
messages (waiting ones included), deliveries' engagement, conversations and replies, account
memberships, trigger firings (so a cancel event finds them), static-list memberships — and the
fields the known profile lacks are filled from it. The merge writes one :class:`ProfileMerge`
record naming every moved row and the fields as they were, from which :func:`revert_merge` puts
everything back. The anonymous profile stays as a tombstone (``merged_into_id``) without contact
data, so a worker holding its id mid-delivery still finds a row, and erasing the known profile
erases it too.

Only anonymous profiles are merged: a profile keeps one ``userId`` (as in Segment's identity
resolution, where two user ids on one profile is refused by default), so a call that would join
two profiles with different user ids is recorded and noted instead. Both profiles are locked
(``FOR UPDATE``, in id order) for the rest of the transaction.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Table, select, tuple_, update
from sqlalchemy.orm import Session

from ccm.db import Base, utcnow
from ccm.engagement import rollups
from ccm.errors import Conflict, NotFound
from ccm.identity.models import ProfileMerge
from ccm.ids import new_id
from ccm.pagination import PageQuery, paginate, split_page
from ccm.profiles.models import Profile


@dataclass(frozen=True)
class Moved:
    """A table whose rows refer to a profile: ``key`` identifies a row (to move it back);
    ``unique`` are the columns that, with ``profile_id``, may hold one row only — a row the
    target already has stays on the source."""

    table: str
    key: tuple[str, ...]
    unique: tuple[str, ...] = ()


MOVED: Sequence[Moved] = (
    Moved("event", ("id",)),
    Moved("profile_anonymous_id", ("anonymous_id",)),
    Moved("consent_record", ("id",)),
    Moved("message", ("id",)),
    Moved("engagement_event", ("id",)),
    Moved("conversation", ("id",)),
    Moved("inbound_message", ("id",)),
    Moved("account_member", ("group_id",), unique=("workspace_id", "group_id")),
    Moved("trigger_fire", ("id",)),
    Moved("segment_member", ("segment_id",), unique=("segment_id",)),
)
"""Every table that refers to a profile, except the merge records themselves (a test checks the
list against the schema)."""
NOT_MOVED = frozenset({"profile", "profile_merge"})

_FILLED = ("email", "phone", "timezone", "locale")
"""Fields the target takes from the source when it has none."""
_CLEARED: dict[str, Any] = {"email": None, "phone": None, "chat": {}}
"""The source's contact data, removed so that nothing finds the tombstone by its address."""
_CHUNK = 500


def merge_profiles(*, session: Session, source: Profile, target: Profile, call: dict[str, Any]) -> ProfileMerge:
    """Fold ``source`` into ``target`` (see the module docstring) and record it.

    Raises:
      Conflict: the source has a user id of its own, is already merged, or is another
        workspace's (callers check first: this guards the invariant).
    """
    _check(source, target)
    _lock(session, source, target)
    moved = {spec.table: _move(session, spec, source.id, target.id) for spec in MOVED}
    merge = ProfileMerge(
        id=new_id("mrg"),
        workspace_id=target.workspace_id,
        source_id=source.id,
        target_id=target.id,
        call=call,
        moved={table: keys for table, keys in moved.items() if keys},
        source_before=_fields(source, (*_CLEARED, "merged_into_id")),
        target_before=_fields(target, (*_FILLED, "chat", "attributes", "channels", "preferences", *_ROLLUPS)),
    )
    _fold(session, source, target)
    session.add(merge)
    return merge


def revert_merge(*, session: Session, workspace_id: str, merge_id: str, actor: str) -> ProfileMerge:
    """Undo a merge from its record: the moved rows that still point at the target go back to the
    source, and both profiles' merged fields get their values from before the merge.

    Raises:
      NotFound: no such merge in this workspace.
      Conflict: it was reverted already.
    """
    merge = get_merge(session=session, workspace_id=workspace_id, merge_id=merge_id)
    if merge.reverted_at is not None:
        raise Conflict(f"merge {merge_id} was reverted at {merge.reverted_at.isoformat()}", field="merge_id")
    source, target = session.get_one(Profile, merge.source_id), session.get_one(Profile, merge.target_id)
    _lock(session, source, target)
    for spec in MOVED:
        _move_back(session, spec, merge.moved.get(spec.table, []), source.id, target.id)
    _restore(source, merge.source_before)
    _restore(target, merge.target_before)
    now = utcnow()
    source.updated_at = target.updated_at = now
    merge.reverted_at, merge.reverted_by = now, actor
    return merge


def get_merge(*, session: Session, workspace_id: str, merge_id: str) -> ProfileMerge:
    merge = session.scalar(
        select(ProfileMerge).where(ProfileMerge.workspace_id == workspace_id, ProfileMerge.id == merge_id)
    )
    if merge is None:
        raise NotFound(f"merge_id: no merge {merge_id!r}", field="merge_id")
    return merge


def list_merges(
    *, session: Session, workspace_id: str, profile_id: str | None, page: PageQuery
) -> tuple[Sequence[ProfileMerge], str | None]:
    """Merges newest first; with ``profile_id``, those into or from that profile."""
    statement = select(ProfileMerge).where(ProfileMerge.workspace_id == workspace_id)
    if profile_id is not None:
        statement = statement.where((ProfileMerge.target_id == profile_id) | (ProfileMerge.source_id == profile_id))
    rows = session.scalars(paginate(statement, ProfileMerge.id, page)).all()
    return split_page(rows, page, lambda merge: merge.id)


_ROLLUPS = ("engagement", "engagement_score", "best_channel")


def _check(source: Profile, target: Profile) -> None:
    if source.workspace_id != target.workspace_id:
        raise Conflict("profiles of two workspaces are never merged", field="profile")
    if source.external_id is not None:
        raise Conflict(f"profile {source.id} has a userId of its own: only anonymous profiles merge", field="profile")
    if source.merged_into_id is not None or target.merged_into_id is not None or source.id == target.id:
        raise Conflict(f"profile {source.id} cannot merge into {target.id}", field="profile")


def _lock(session: Session, *profiles: Profile) -> None:
    """Both rows, in id order (two merges of the same pair cannot deadlock), read again."""
    ids = sorted(profile.id for profile in profiles)
    statement = select(Profile).where(Profile.id.in_(ids)).order_by(Profile.id).with_for_update()
    session.scalars(statement.execution_options(populate_existing=True)).all()


def _table(name: str) -> Table:
    return Base.metadata.tables[name]


def _move(session: Session, spec: Moved, source_id: str, target_id: str) -> list[list[Any]]:
    table = _table(spec.table)
    statement = update(table).where(table.c.profile_id == source_id)
    if spec.unique:
        other = table.alias("taken")
        taken = select(other.c.profile_id).where(
            other.c.profile_id == target_id, *(other.c[name] == table.c[name] for name in spec.unique)
        )
        statement = statement.where(~taken.exists())
    keys = session.execute(statement.values(profile_id=target_id).returning(*(table.c[k] for k in spec.key))).all()
    return [list(row) for row in keys]


def _move_back(session: Session, spec: Moved, keys: list[list[Any]], source_id: str, target_id: str) -> None:
    table = _table(spec.table)
    columns = [table.c[name] for name in spec.key]
    for start in range(0, len(keys), _CHUNK):
        chunk = [tuple(key) for key in keys[start : start + _CHUNK]]
        match = columns[0].in_([key[0] for key in chunk]) if len(columns) == 1 else tuple_(*columns).in_(chunk)
        session.execute(update(table).where(table.c.profile_id == target_id, match).values(profile_id=source_id))


def _fold(session: Session, source: Profile, target: Profile) -> None:
    """The target's missing fields from the source (the target's own values win), the rollups
    added up and rescored, the source emptied of contact data and pointed at the target."""
    for name in _FILLED:
        if getattr(target, name) is None and getattr(source, name) is not None:
            setattr(target, name, getattr(source, name))
    target.chat = {**(source.chat or {}), **(target.chat or {})}
    target.attributes = {**(source.attributes or {}), **(target.attributes or {})}
    target.channels = target.channels or source.channels
    target.preferences = {**(source.preferences or {}), **(target.preferences or {})}
    session.flush()  # the moved engagement events count in the target's score
    rollups.combine(session, target, source.engagement or {})
    for name, value in _CLEARED.items():
        setattr(source, name, value)
    source.merged_into_id = target.id
    source.updated_at = target.updated_at = utcnow()


def _fields(profile: Profile, names: Sequence[str]) -> dict[str, Any]:
    return {name: _plain(getattr(profile, name)) for name in names}


def _plain(value: Any) -> Any:
    return value.isoformat() if isinstance(value, dt.datetime) else value


def _restore(profile: Profile, before: dict[str, Any]) -> None:
    for name, value in before.items():
        setattr(profile, name, value)
