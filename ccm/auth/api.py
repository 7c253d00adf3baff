"""Request authentication: ``Authorization: Bearer <api key>`` scopes a request to one workspace."""

from __future__ import annotations

from flask import g, request

from ccm.auth.service import authenticate
from ccm.errors import Unauthorized
from ccm.http import db_session


def require_api_key() -> None:
    """``before_request`` hook for every workspace-scoped blueprint."""
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token:
        raise Unauthorized("missing API key: send 'Authorization: Bearer <key>'", field="Authorization")
    workspace_id = authenticate(session=db_session(), token=token.strip())
    if workspace_id is None:
        raise Unauthorized("unknown or revoked API key", field="Authorization")
    g.workspace_id = workspace_id
    g.actor = f"api_key:{token.strip()[:12]}"


def current_workspace_id() -> str:
    return g.workspace_id


def current_actor() -> str:
    """Who is acting, for ledgers: the API key's visible prefix."""
    return g.actor
