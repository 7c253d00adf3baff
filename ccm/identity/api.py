"""Identity merges: list them, read one, and undo one (``POST /v1/merges/{id}/revert``)."""

from __future__ import annotations

from typing import Annotated

from flask import Blueprint

from ccm.access import Permission
from ccm.auth.api import current_actor, current_workspace_id, require_api_key
from ccm.http import db_session, endpoint, permissions
from ccm.identity import service
from ccm.identity.schemas import MERGE_ID, MergeList, MergeListQuery, MergeOut
from ccm.profiles.service import get_profile

bp = Blueprint("identity", __name__, url_prefix="/v1/merges")
bp.before_request(require_api_key)
permissions(bp, writes=Permission.PROFILES)

MergeId = Annotated[str, MERGE_ID]


@endpoint(
    bp,
    "",
    method="GET",
    query=MergeListQuery,
    responses={200: MergeList},
    errors=(404,),
    summary="Identity merges, newest first (anonymous profiles merged into known ones by alias or identify)",
)
def list_merges(query: MergeListQuery) -> MergeList:
    session, workspace_id = db_session(), current_workspace_id()
    profile_id = None
    if query.profile is not None:
        profile_id = get_profile(session=session, workspace_id=workspace_id, external_id=query.profile).id
    items, cursor = service.list_merges(session=session, workspace_id=workspace_id, profile_id=profile_id, page=query)
    return MergeList(items=[MergeOut.of(merge) for merge in items], next_cursor=cursor)


@endpoint(bp, "/<merge_id>", method="GET", responses={200: MergeOut}, summary="One identity merge and what it moved")
def get_merge(merge_id: MergeId) -> MergeOut:
    return MergeOut.of(service.get_merge(session=db_session(), workspace_id=current_workspace_id(), merge_id=merge_id))


@endpoint(
    bp,
    "/<merge_id>/revert",
    method="POST",
    responses={200: MergeOut},
    errors=(409,),
    summary="Undo a merge: the moved rows and the merged fields go back to the two profiles",
)
def revert_merge(merge_id: MergeId) -> MergeOut:
    merge = service.revert_merge(
        session=db_session(), workspace_id=current_workspace_id(), merge_id=merge_id, actor=current_actor()
    )
    db_session().flush()
    return MergeOut.of(merge)
