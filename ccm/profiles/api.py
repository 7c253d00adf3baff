from __future__ import annotations

import re
import unicodedata
from urllib.parse import quote

from flask import Blueprint

from ccm.access import Permission
from ccm.audit.api import audit, audit_export
from ccm.audit.service import Target
from ccm.auth.api import current_workspace_id, require_api_key
from ccm.http import db_session, endpoint, permissions
from ccm.profiles import privacy, service
from ccm.profiles.schemas import ProfileExport, ProfileIn, ProfileList, ProfileListQuery, ProfileOut, ProfilePatch
from ccm.validation import ExternalId
from ccm.workspaces.service import workspace_policy

bp = Blueprint("profiles", __name__, url_prefix="/v1/profiles")
bp.before_request(require_api_key)
permissions(bp, writes=Permission.PROFILES)


@endpoint(
    bp,
    "/<external_id>",
    method="PUT",
    body=ProfileIn,
    responses={200: ProfileOut, 201: ProfileOut},
    summary="Create or replace a profile",
)
def put_profile(external_id: ExternalId, body: ProfileIn) -> tuple[ProfileOut, int]:
    profile, created = service.upsert_profile(
        session=db_session(), workspace_id=current_workspace_id(), external_id=external_id, data=body
    )
    db_session().flush()
    return ProfileOut.model_validate(profile), 201 if created else 200


@endpoint(
    bp,
    "/<external_id>",
    method="PATCH",
    body=ProfilePatch,
    responses={200: ProfileOut},
    summary="Change some fields of a profile; attributes are merged",
)
def patch_profile(external_id: ExternalId, body: ProfilePatch) -> ProfileOut:
    profile = service.patch_profile(
        session=db_session(), workspace_id=current_workspace_id(), external_id=external_id, data=body
    )
    db_session().flush()
    return ProfileOut.model_validate(profile)


@endpoint(bp, "/<external_id>", method="GET", responses={200: ProfileOut}, summary="Read a profile")
def get_profile(external_id: ExternalId) -> ProfileOut:
    profile = service.get_profile(session=db_session(), workspace_id=current_workspace_id(), external_id=external_id)
    return ProfileOut.model_validate(profile)


@endpoint(
    bp,
    "/<external_id>",
    method="DELETE",
    responses={204: None},
    permission=Permission.PRIVACY,
    summary="Erase a person (GDPR): waiting messages end skipped(erased), personal data is removed, "
    "only hashed suppression entries remain",
)
def delete_profile(external_id: ExternalId) -> tuple[None, int]:
    session, workspace_id = db_session(), current_workspace_id()
    region = workspace_policy(session=session, workspace_id=workspace_id).default_region
    privacy.erase_profile(session=session, workspace_id=workspace_id, external_id=external_id, region=region)
    audit("profile.erase", Target("profile", external_id))
    return None, 204


@endpoint(
    bp,
    "/<external_id>/export",
    method="GET",
    responses={200: ProfileExport},
    permission=Permission.PRIVACY,
    summary="Everything CCM holds about a person (GDPR access): profile, consent, messages, suppressions",
)
def export_profile(external_id: ExternalId) -> tuple[ProfileExport, int, dict[str, str]]:
    body = privacy.export_profile(session=db_session(), workspace_id=current_workspace_id(), external_id=external_id)
    audit_export("export.profile", Target("profile", external_id))
    return ProfileExport.model_validate(body), 200, {"Content-Disposition": _attachment(external_id)}


def _attachment(external_id: str) -> str:
    """RFC 6266: an ASCII ``filename`` for old clients and the exact name as ``filename*``. A raw
    non-Latin-1 header value cannot even be written by a WSGI server."""
    ascii_id = unicodedata.normalize("NFKD", external_id).encode("ascii", "ignore").decode()
    fallback = re.sub(r"[^A-Za-z0-9._-]+", "_", ascii_id).strip("_.") or "profile"
    return f"attachment; filename=\"{fallback}.json\"; filename*=UTF-8''{quote(external_id + '.json', safe='')}"


@endpoint(
    bp,
    "",
    method="GET",
    query=ProfileListQuery,
    responses={200: ProfileList},
    summary="List profiles, newest first, with cursor pagination and attribute filters",
)
def list_profiles(query: ProfileListQuery) -> ProfileList:
    items, cursor = service.list_profiles(
        session=db_session(), workspace_id=current_workspace_id(), page=query, filters=query.filters()
    )
    return ProfileList(items=[ProfileOut.model_validate(p) for p in items], next_cursor=cursor)
