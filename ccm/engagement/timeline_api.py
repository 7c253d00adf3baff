from __future__ import annotations

import datetime as dt
from typing import Any

from flask import Blueprint
from pydantic import BaseModel, Field

from ccm.auth.api import current_workspace_id, require_api_key
from ccm.engagement.timeline import timeline
from ccm.http import db_session, endpoint
from ccm.pagination import PageQuery
from ccm.profiles.service import get_profile

bp = Blueprint("timeline", __name__, url_prefix="/v1/profiles")
bp.before_request(require_api_key)


class TimelineEntry(BaseModel):
    model_config = {"extra": "allow"}

    type: str = Field(description="message, event, inbound or consent")
    id: str
    at: dt.datetime


class Timeline(BaseModel):
    items: list[TimelineEntry]
    next_cursor: str | None


@endpoint(bp, "/<external_id>/timeline", method="GET", query=PageQuery, responses={200: Timeline},
          summary="Everything that happened with this person, newest first")
def get_timeline(external_id: str, query: PageQuery) -> Timeline:
    profile = get_profile(session=db_session(), workspace_id=current_workspace_id(), external_id=external_id)
    items, cursor = timeline(session=db_session(), profile_id=profile.id, limit=query.limit, cursor=query.cursor)
    entries: list[Any] = [TimelineEntry(**item) for item in items]
    return Timeline(items=entries, next_cursor=cursor)
