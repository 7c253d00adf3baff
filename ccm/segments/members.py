"""The members of a static list, added and removed by the profiles' external ids."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from ccm.db import insert_many, rowcount, utcnow
from ccm.errors import Conflict
from ccm.profiles.models import Profile
from ccm.segments.models import Segment, SegmentKind, SegmentMember
from ccm.segments.service import get_segment

MAX_PER_CALL = 10_000
_MEMBER = SegmentMember.__table__
_CHUNK = 1000


@dataclass(frozen=True)
class Change:
    """What a call did: how many rows it added or removed, and the ids no profile has."""

    changed: int
    unknown: list[str]


def add_members(*, session: Session, workspace_id: str, segment_id: str, external_ids: list[str]) -> Change:
    """Put the profiles with these external ids on a static list (those already on it stay).

    Raises:
      NotFound: no such segment. Conflict: it is not a static list.
    """
    segment = _static(session, workspace_id, segment_id)
    found, unknown = _profiles(session, workspace_id, external_ids)
    now, added = utcnow(), 0
    ids = sorted(set(found.values()))
    for start in range(0, len(ids), _CHUNK):
        rows = [{"segment_id": segment.id, "profile_id": pid, "added_at": now} for pid in ids[start : start + _CHUNK]]
        added += rowcount(insert_many(session.connection(), _MEMBER, rows))
    _touch(segment)
    return Change(added, unknown)


def remove_members(*, session: Session, workspace_id: str, segment_id: str, external_ids: list[str]) -> Change:
    """Take the profiles with these external ids off a static list."""
    segment = _static(session, workspace_id, segment_id)
    found, unknown = _profiles(session, workspace_id, external_ids)
    ids, removed = sorted(set(found.values())), 0
    for start in range(0, len(ids), _CHUNK):
        chunk = ids[start : start + _CHUNK]
        statement = delete(_MEMBER).where(_MEMBER.c.segment_id == segment.id, _MEMBER.c.profile_id.in_(chunk))
        removed += rowcount(session.execute(statement))
    _touch(segment)
    return Change(removed, unknown)


def _static(session: Session, workspace_id: str, segment_id: str) -> Segment:
    segment = get_segment(session, workspace_id, segment_id)
    if segment.kind != SegmentKind.STATIC:
        raise Conflict("segment: members are for static lists; a rules segment is who its rules match", field="id")
    return segment


def _profiles(session: Session, workspace_id: str, external_ids: list[str]) -> tuple[dict[str, str], list[str]]:
    """External id → profile id of the workspace's (unmerged) profiles, and the ids none has."""
    wanted = list(dict.fromkeys(external_ids))
    found: dict[str, str] = {}
    for start in range(0, len(wanted), _CHUNK):
        chunk = wanted[start : start + _CHUNK]
        rows = session.execute(
            select(Profile.external_id, Profile.id).where(
                Profile.workspace_id == workspace_id, Profile.external_id.in_(chunk), Profile.merged_into_id.is_(None)
            )
        )
        found.update({external_id: profile_id for external_id, profile_id in rows if external_id is not None})
    return found, [external_id for external_id in wanted if external_id not in found]


def _touch(segment: Segment) -> None:
    segment.updated_at = utcnow()
