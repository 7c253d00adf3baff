from __future__ import annotations

import datetime as dt
from typing import Any

from pydantic import BaseModel, Field

from ccm.identity.models import ProfileMerge
from ccm.pagination import ID_PATTERN, PageQuery
from ccm.validation import ExternalId

MERGE_ID = Field(pattern=rf"^{ID_PATTERN}$", max_length=35)


class MergeListQuery(PageQuery):
    profile: ExternalId | None = Field(None, description="only the merges into the profile with this external id")


class MergeOut(BaseModel):
    id: str
    source_profile_id: str = Field(description="the anonymous profile that was merged (a tombstone while merged)")
    target_profile_id: str = Field(description="the profile it was merged into")
    call: dict[str, Any] = Field(description="the call that merged them: kind, message_id, event_id, ids")
    moved: dict[str, int] = Field(description="rows moved to the target, per table")
    merged_at: dt.datetime
    reverted_at: dt.datetime | None
    reverted_by: str | None

    @classmethod
    def of(cls, merge: ProfileMerge) -> MergeOut:
        return cls(
            id=merge.id,
            source_profile_id=merge.source_id,
            target_profile_id=merge.target_id,
            call=merge.call,
            moved={table: len(keys) for table, keys in merge.moved.items()},
            merged_at=merge.merged_at,
            reverted_at=merge.reverted_at,
            reverted_by=merge.reverted_by,
        )


class MergeList(BaseModel):
    items: list[MergeOut]
    next_cursor: str | None
