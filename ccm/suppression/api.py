from __future__ import annotations

from typing import Annotated

from flask import Blueprint

from ccm.access import Permission
from ccm.auth.api import current_workspace_id, require_api_key
from ccm.http import db_session, endpoint, permissions
from ccm.suppression import service
from ccm.suppression.schemas import SuppressionIn, SuppressionList, SuppressionOut, SuppressionQuery
from ccm.validation import id_field
from ccm.workspaces.service import workspace_policy

SuppressionId = Annotated[str, id_field("sup")]

bp = Blueprint("suppressions", __name__, url_prefix="/v1/suppressions")
bp.before_request(require_api_key)
permissions(bp, writes=Permission.CONSENT)


@endpoint(
    bp,
    "",
    method="POST",
    body=SuppressionIn,
    responses={201: SuppressionList},
    summary="Suppress an address on a channel (idempotent)",
)
def add_suppression(body: SuppressionIn) -> tuple[SuppressionList, int]:
    session, workspace_id = db_session(), current_workspace_id()
    region = workspace_policy(session=session, workspace_id=workspace_id).default_region
    service.suppress(
        session=session,
        workspace_id=workspace_id,
        channel=body.channel,
        address=body.address,
        reason=body.reason,
        detail=body.detail,
        region=region,
    )
    items, _ = service.list_suppressions(
        session=session,
        workspace_id=workspace_id,
        page=SuppressionQuery(limit=1),
        channel=body.channel,
        address=body.address,
        region=region,
    )
    return SuppressionList(items=[SuppressionOut.model_validate(i) for i in items], next_cursor=None), 201


@endpoint(
    bp,
    "",
    method="GET",
    query=SuppressionQuery,
    responses={200: SuppressionList},
    summary="List suppressed addresses, newest first",
)
def list_suppressions(query: SuppressionQuery) -> SuppressionList:
    items, cursor = service.list_suppressions(
        session=db_session(),
        workspace_id=current_workspace_id(),
        page=query,
        channel=query.channel,
        address=query.address,
    )
    return SuppressionList(items=[SuppressionOut.model_validate(i) for i in items], next_cursor=cursor)


@endpoint(
    bp,
    "/<suppression_id>",
    method="DELETE",
    responses={204: None},
    errors=(409,),
    summary="Remove a suppression (an erased person's entry stays: 409)",
)
def delete_suppression(suppression_id: SuppressionId) -> tuple[None, int]:
    service.unsuppress(session=db_session(), workspace_id=current_workspace_id(), suppression_id=suppression_id)
    return None, 204
