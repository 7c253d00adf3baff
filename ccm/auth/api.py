"""Request authentication: ``Authorization: Bearer <api key>`` scopes a request to one workspace,
with the key's role; and the API keys endpoints, for admin keys."""

from __future__ import annotations

import datetime as dt

from flask import Blueprint, current_app, g, request

from ccm import access
from ccm.access import Permission
from ccm.audit import service as audit
from ccm.auth import service, usage
from ccm.auth.schemas import ApiKeyCreated, ApiKeyId, ApiKeyIn, ApiKeyList, ApiKeyOut
from ccm.db import utcnow
from ccm.errors import NotFound, Unauthorized
from ccm.http import PERMISSIONS, db_session, endpoint, permissions


def require_api_key() -> None:
    """``before_request`` hook for every workspace-scoped blueprint: the key, then whether its role
    allows what the endpoint declared (:data:`ccm.http.PERMISSIONS`), before the view runs."""
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token:
        raise Unauthorized("missing API key: send 'Authorization: Bearer <key>'", field="Authorization")
    caller = service.authenticate(session=db_session(), token=token.strip())
    if caller is None:
        raise Unauthorized("unknown or revoked API key", field="Authorization")
    if request.endpoint is not None:
        # Fail closed: a route whose permission was never declared is for admins until it is.
        access.require(caller.role, PERMISSIONS.get(request.endpoint, Permission.ADMIN))
    note_key_use(caller)
    g.caller = caller
    g.workspace_id = caller.workspace_id
    g.actor = f"api_key:{caller.prefix}"


def note_key_use(caller: service.Caller) -> None:
    """Mark the request's key as used; :func:`record_key_use` writes it when the request is over,
    and only when the stored time is more than a minute old (most requests write nothing)."""
    now = utcnow()
    if _key_use().claim(caller.key_id, caller.last_used_at, now):
        g.key_used = (caller.key_id, now)


def record_key_use(_exc: BaseException | None) -> None:
    """``teardown_request``: write the key's last use noted by :func:`note_key_use`, in its own
    transaction once the request's has ended, so that it holds none of the request's locks and a
    failure (logged) changes nothing about the answer."""
    noted: tuple[str, dt.datetime] | None = g.pop("key_used", None)
    if noted is not None:
        _key_use().touch(*noted)


def _key_use() -> usage.KeyUse:
    return current_app.extensions["ccm.key_use"]


def current_workspace_id() -> str:
    return g.workspace_id


def current_actor() -> str:
    """Who is acting, for ledgers: the API key's visible prefix."""
    return g.actor


bp = Blueprint("api_keys", __name__, url_prefix="/v1/api-keys")
bp.before_request(require_api_key)
permissions(bp, reads=Permission.ADMIN, writes=Permission.ADMIN)


@endpoint(
    bp,
    "",
    method="GET",
    responses={200: ApiKeyList},
    errors=(403,),
    summary="The workspace's API keys (not revoked), oldest first; admin keys only",
)
def list_api_keys() -> ApiKeyList:
    keys = service.list_api_keys(session=db_session(), workspace_id=current_workspace_id())
    return ApiKeyList(items=[ApiKeyOut.model_validate(key) for key in keys])


@endpoint(
    bp,
    "",
    method="POST",
    body=ApiKeyIn,
    responses={201: ApiKeyCreated},
    errors=(403,),
    summary="Create an API key (standard unless asked otherwise); the key is in the answer, once",
)
def create_api_key(body: ApiKeyIn) -> tuple[ApiKeyCreated, int]:
    key, token = service.create_api_key(
        session=db_session(), workspace_id=current_workspace_id(), name=body.name, role=body.role
    )
    out = ApiKeyOut.model_validate(key)
    _audit("api_key.create", key.id, after=out.model_dump(mode="json"))
    return ApiKeyCreated(**out.model_dump(), token=token), 201


@endpoint(
    bp,
    "/<key_id>",
    method="DELETE",
    responses={204: None},
    errors=(403, 404, 409),
    summary="Revoke an API key: it stops working on the next request (a key cannot revoke itself)",
)
def revoke_api_key(key_id: ApiKeyId) -> tuple[None, int]:
    if not service.revoke_api_key(
        session=db_session(), workspace_id=current_workspace_id(), key_id=key_id, caller_key_id=g.caller.key_id
    ):
        raise NotFound(f"no API key {key_id!r}", field="id")
    _audit("api_key.revoke", key_id)
    return None, 204


def _audit(action: str, key_id: str, *, after: dict[str, object] | None = None) -> None:
    audit.record(
        session=db_session(),
        workspace_id=current_workspace_id(),
        actor=current_actor(),
        action=action,
        target=audit.Target("api_key", key_id),
        after=after,
        ip=request.remote_addr,
    )
