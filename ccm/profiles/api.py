from __future__ import annotations

import json

from flask import Blueprint, Response

from ccm.auth.api import current_workspace_id, require_api_key
from ccm.http import db_session, endpoint
from ccm.profiles import privacy, service
from ccm.profiles.schemas import ProfileIn, ProfileList, ProfileListQuery, ProfileOut, ProfilePatch
from ccm.workspaces.service import workspace_policy

bp = Blueprint("profiles", __name__, url_prefix="/v1/profiles")
bp.before_request(require_api_key)


@endpoint(bp, "/<external_id>", method="PUT", body=ProfileIn, responses={200: ProfileOut, 201: ProfileOut},
          summary="Create or replace a profile")
def put_profile(external_id: str, body: ProfileIn) -> tuple[ProfileOut, int]:
    profile, created = service.upsert_profile(
        session=db_session(), workspace_id=current_workspace_id(), external_id=external_id, data=body
    )
    db_session().flush()
    return ProfileOut.model_validate(profile), 201 if created else 200


@endpoint(bp, "/<external_id>", method="PATCH", body=ProfilePatch, responses={200: ProfileOut},
          summary="Change some fields of a profile; attributes are merged")
def patch_profile(external_id: str, body: ProfilePatch) -> ProfileOut:
    profile = service.patch_profile(
        session=db_session(), workspace_id=current_workspace_id(), external_id=external_id, data=body
    )
    db_session().flush()
    return ProfileOut.model_validate(profile)


@endpoint(bp, "/<external_id>", method="GET", responses={200: ProfileOut}, summary="Read a profile")
def get_profile(external_id: str) -> ProfileOut:
    profile = service.get_profile(session=db_session(), workspace_id=current_workspace_id(), external_id=external_id)
    return ProfileOut.model_validate(profile)


@endpoint(bp, "/<external_id>", method="DELETE", responses={204: None},
          summary="Erase a person (GDPR): waiting messages end skipped(erased), personal data is removed, "
                  "only hashed suppression entries remain")
def delete_profile(external_id: str) -> tuple[None, int]:
    session, workspace_id = db_session(), current_workspace_id()
    region = workspace_policy(session=session, workspace_id=workspace_id).default_region
    privacy.erase_profile(session=session, workspace_id=workspace_id, external_id=external_id, region=region)
    return None, 204


@endpoint(bp, "/<external_id>/export", method="GET", responses={200: None},
          summary="Everything CCM holds about a person (GDPR access): profile, consent, messages, suppressions")
def export_profile(external_id: str) -> Response:
    body = privacy.export_profile(session=db_session(), workspace_id=current_workspace_id(), external_id=external_id)
    return Response(json.dumps(body), mimetype="application/json",
                    headers={"Content-Disposition": f'attachment; filename="{external_id}.json"'})


@endpoint(bp, "", method="GET", query=ProfileListQuery, responses={200: ProfileList},
          summary="List profiles, newest first, with cursor pagination and attribute filters")
def list_profiles(query: ProfileListQuery) -> ProfileList:
    filters = {name: value for name, value in (query.model_extra or {}).items()}
    filters.update({name: getattr(query, name) for name in ("email", "phone") if getattr(query, name)})
    items, cursor = service.list_profiles(
        session=db_session(), workspace_id=current_workspace_id(), page=query, filters=filters
    )
    return ProfileList(items=[ProfileOut.model_validate(p) for p in items], next_cursor=cursor)
