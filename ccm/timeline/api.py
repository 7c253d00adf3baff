from __future__ import annotations

import datetime as dt
from typing import Any

from flask import Blueprint
from pydantic import BaseModel, Field

from ccm.access import Permission
from ccm.auth.api import current_workspace_id, require_api_key
from ccm.http import db_session, endpoint, permissions
from ccm.profiles.service import get_profile
from ccm.timeline.service import CURSOR_PATTERN, timeline
from ccm.validation import ExternalId, QueryModel

bp = Blueprint("timeline", __name__, url_prefix="/v1/profiles")
bp.before_request(require_api_key)
permissions(bp, writes=Permission.PROFILES)


class TimelineQuery(QueryModel):
    limit: int = Field(50, ge=1, le=500)
    cursor: str | None = Field(
        None, pattern=CURSOR_PATTERN, max_length=60, description="next_cursor of the previous page"
    )


class TimelineEntry(BaseModel):
    model_config = {"extra": "allow"}

    type: str = Field(
        description="message (with triggered_by when a trigger sent it), event, inbound, activity (an ingested "
        "track, page, identify …), merge or consent"
    )
    id: str
    at: dt.datetime


class Timeline(BaseModel):
    items: list[TimelineEntry]
    next_cursor: str | None


@endpoint(
    bp,
    "/<external_id>/timeline",
    method="GET",
    query=TimelineQuery,
    responses={200: Timeline},
    summary="Everything that happened with this person, newest first",
)
def get_timeline(external_id: ExternalId, query: TimelineQuery) -> Timeline:
    profile = get_profile(session=db_session(), workspace_id=current_workspace_id(), external_id=external_id)
    items, cursor = timeline(session=db_session(), profile_id=profile.id, limit=query.limit, cursor=query.cursor)
    entries: list[Any] = [TimelineEntry(**item) for item in items]
    return Timeline(items=entries, next_cursor=cursor)
