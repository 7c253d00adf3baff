from __future__ import annotations

from flask import Blueprint, request

from ccm.access import Permission
from ccm.audit.api import audit
from ccm.audit.service import Target
from ccm.auth.api import current_actor, current_workspace_id, require_api_key
from ccm.consent import service
from ccm.consent.schemas import ConsentIn, ConsentOut, ConsentRecordOut
from ccm.http import db_session, endpoint, permissions
from ccm.profiles.service import get_profile
from ccm.validation import ExternalId

bp = Blueprint("consent", __name__, url_prefix="/v1/profiles")
bp.before_request(require_api_key)
permissions(bp, writes=Permission.CONSENT)


@endpoint(
    bp,
    "/<external_id>/consent",
    method="POST",
    body=ConsentIn,
    responses={201: ConsentRecordOut},
    summary="Record a consent decision (the ledger is append-only)",
)
def record_consent(external_id: ExternalId, body: ConsentIn) -> tuple[ConsentRecordOut, int]:
    profile = get_profile(
        session=db_session(), workspace_id=current_workspace_id(), external_id=external_id, lock="key_share"
    )
    data = body.model_copy(
        update={
            "ip": body.ip or request.remote_addr,
            "user_agent": body.user_agent or request.headers.get("User-Agent"),
        }
    )
    record = service.record_consent(
        session=db_session(),
        workspace_id=current_workspace_id(),
        profile_id=profile.id,
        data=data,
        actor=current_actor(),
    )
    out = ConsentRecordOut.model_validate(record)
    audit("consent.change", Target("profile", external_id), after=out.model_dump(mode="json"))
    return out, 201


@endpoint(
    bp,
    "/<external_id>/consent",
    method="GET",
    responses={200: ConsentOut},
    summary="Current consent per channel and topic, and the whole history",
)
def get_consent(external_id: ExternalId) -> ConsentOut:
    profile = get_profile(session=db_session(), workspace_id=current_workspace_id(), external_id=external_id)
    records = service.history(session=db_session(), profile_id=profile.id)
    return ConsentOut(current=service.current(records), history=[ConsentRecordOut.model_validate(r) for r in records])
