"""API keys and write keys (admins): list the live ones, create one with a role (its token shown
this once), revoke one. The auth service of ``/v1/api-keys``, audited as there."""

from __future__ import annotations

import json

from flask import g, request
from sqlalchemy.orm import Session
from werkzeug.wrappers import Response

from ccm.access import Permission, Role
from ccm.audit.service import Target
from ccm.auth import service
from ccm.auth.models import ApiKey
from ccm.auth.schemas import ApiKeyIn, ApiKeyOut
from ccm.errors import NotFound
from ccm.web.admin_forms import Outcome, audit, run_write
from ccm.web.pages import db, page
from ccm.web.security import requires


def _page(outcome: Outcome, created: str | None = None) -> Response:
    with db().unit_of_work() as session:
        keys = service.list_api_keys(session=session, workspace_id=g.user.workspace_id)
    roles = [role.value for role in Role]
    return page("admin/keys.html", outcome.status, keys=keys, roles=roles, created=created, **outcome.shown())


@requires(Permission.ADMIN)
def index() -> Response:
    return _page(Outcome())


@requires(Permission.ADMIN)
def create() -> Response:
    outcome = Outcome()

    def work(session: Session) -> tuple[ApiKey, str]:
        body = ApiKeyIn.model_validate_json(
            json.dumps({"name": request.form.get("name", "").strip(), "role": request.form.get("role", "")})
        )
        key, token = service.create_api_key(
            session=session, workspace_id=g.user.workspace_id, name=body.name, role=body.role
        )
        audit(
            session,
            "api_key.create",
            Target("api_key", key.id),
            after=ApiKeyOut.model_validate(key).model_dump(mode="json"),
        )
        return key, token

    made = run_write(outcome, work)
    if made is None:
        return _page(outcome)
    outcome.notices.append(f"Created the {made[0].role} key {made[0].prefix}…; copy it now, it is not shown again.")
    return _page(outcome, created=made[1])


@requires(Permission.ADMIN)
def revoke(key_id: str) -> Response:
    outcome = Outcome()

    def work(session: Session) -> bool:
        if not service.revoke_api_key(session=session, workspace_id=g.user.workspace_id, key_id=key_id):
            raise NotFound(f"id: no API key {key_id!r}", field="id")
        audit(session, "api_key.revoke", Target("api_key", key_id))
        return True

    if run_write(outcome, work):
        outcome.notices.append("Revoked the key: it stops working on its next request.")
    return _page(outcome)
