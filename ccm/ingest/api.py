"""The Segment HTTP Tracking API: ``POST /v1/{identify,track,page,screen,group,alias}``,
``/v1/batch`` and ``/v1/import`` (an alias of batch, where some official clients post).

Authentication is the source's write key, as HTTP Basic user name with an empty password
(what the clients send) or as the body's ``writeKey``; a workspace's other API keys work too, as
``Bearer``. Errors answer ``{"code", "message", "field"}`` — the shape the clients read — with
400 for a request that breaks the spec (nothing of it is stored), 401 for a missing or unknown key,
429 with ``Retry-After`` when the process is overloaded — more requests in flight than
``ingest_max_in_flight``, or no database connection free in the pool — and 503 with
``Retry-After`` when the database cannot be reached (the clients retry 5xx and 429; nothing of a
refused request was stored).
"""

from __future__ import annotations

import base64
import binascii
import logging
import threading
from typing import Any

from flask import Blueprint, Response, current_app, jsonify, request
from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as SQLAlchemyTimeoutError
from werkzeug.exceptions import HTTPException

from ccm.access import Permission, allows
from ccm.auth import service as keys
from ccm.auth.api import note_key_use
from ccm.db import utcnow
from ccm.errors import CCMError
from ccm.http import db_session, declare_permission, unreachable
from ccm.ingest import service
from ccm.ingest.spec import KINDS, MAX_BATCH_BYTES, SpecError, calls_of, read_json
from ccm.triggers import firing

log = logging.getLogger(__name__)
bp = Blueprint("ingest", __name__, url_prefix="/v1")


class Overloaded(Exception):
    """No room for one more tracking request now: answered 429, nothing stored."""

    def __init__(self, retry_after: int) -> None:
        super().__init__(f"overloaded, retry after {retry_after} s")
        self.retry_after = retry_after


@bp.record_once
def _install_gate(state: Any) -> None:
    settings = state.app.extensions["ccm"].settings
    state.app.extensions["ccm.ingest_gate"] = threading.BoundedSemaphore(settings.ingest_max_in_flight)


def _accept(kind: str | None) -> Response | tuple[Response, int]:
    gate = current_app.extensions["ccm.ingest_gate"]
    if not gate.acquire(timeout=current_app.extensions["ccm"].settings.ingest_queue_wait):
        raise Overloaded(retry_after=1)
    try:
        return _store(kind)
    finally:
        gate.release()


def _store(kind: str | None) -> Response | tuple[Response, int]:
    raw = request.get_data(cache=True)
    if len(raw) > MAX_BATCH_BYTES:
        raise SpecError(f"body: larger than {MAX_BATCH_BYTES // 1024} KB", field="body", code="too_large")
    body = read_json(raw, encoding=request.headers.get("Content-Encoding"))
    token = _write_key(body)
    if not token:
        return _error(
            401, "unauthorized", "missing write key: send it as the Basic user name or as writeKey", "Authorization"
        )
    session = db_session()
    caller = keys.authenticate(session=session, token=token)
    if caller is None:
        return _error(401, "unauthorized", "unknown or revoked write key", "Authorization")
    if not allows(caller.role, Permission.EVENTS):
        return _error(403, "forbidden", f"this API key's role {caller.role!r} may not send events", "Authorization")
    note_key_use(caller)
    received_at = utcnow()
    calls = calls_of(body, kind=kind, received_at=received_at, ip=request.remote_addr)
    stored = service.ingest(session=session, workspace_id=caller.workspace_id, calls=calls, received_at=received_at)
    # In this transaction: an event and the message it triggers are stored together, or neither.
    firing.react(
        session=session,
        runtime=current_app.extensions["ccm"],
        workspace_id=caller.workspace_id,
        events=stored.events,
        now=received_at,
    )
    return jsonify(success=True, stored=stored.stored, duplicates=stored.duplicates)


def _write_key(body: dict[str, object]) -> str:
    header = request.headers.get("Authorization", "")
    scheme, _, credentials = header.partition(" ")
    if scheme.lower() == "basic" and credentials:
        try:
            user, _, _ = base64.b64decode(credentials.strip(), validate=True).decode("utf-8").partition(":")
        except (binascii.Error, UnicodeDecodeError):
            raise SpecError("Authorization: Basic credentials are not valid base64", field="Authorization") from None
        return user
    if scheme.lower() == "bearer" and credentials:
        return credentials.strip()
    key = body.get("writeKey")
    return key if isinstance(key, str) else ""


def _error(status: int, code: str, message: str, field: str | None) -> tuple[Response, int]:
    return jsonify(code=code, message=message, field=field), status


@bp.errorhandler(SpecError)
def _spec_error(error: SpecError) -> tuple[Response, int]:
    return _error(400, error.code, error.message, error.field)


@bp.errorhandler(CCMError)
def _ccm_error(error: CCMError) -> tuple[Response, int]:
    return _error(error.status, error.code, error.message, error.details.get("field"))


@bp.errorhandler(Overloaded)
def _overloaded(error: Overloaded) -> tuple[Response, int]:
    response, status = _error(429, "overloaded", "too many events at once; nothing was stored, retry later", None)
    response.headers["Retry-After"] = str(error.retry_after)
    return response, status


@bp.errorhandler(SQLAlchemyTimeoutError)
def _pool_exhausted(error: SQLAlchemyTimeoutError) -> tuple[Response, int]:
    log.warning("ingest: no database connection free in the pool")
    return _overloaded(Overloaded(retry_after=2))


_RETRYABLE = frozenset({"40P01", "40001"})
"""PostgreSQL's deadlock_detected and serialization_failure: the transaction was rolled back
because of another one, not because the database is down; the same request succeeds again."""


@bp.errorhandler(DBAPIError)
def _database_error(error: Exception) -> tuple[Response, int]:
    if getattr(getattr(error, "orig", None), "sqlstate", None) in _RETRYABLE:
        log.info("ingest: met a concurrent request (%s); answered 503 for the client to retry", type(error).__name__)
        response, status = _error(503, "conflict", "met a concurrent request; nothing was stored, retry", None)
        response.headers["Retry-After"] = "1"
        return response, status
    if not unreachable(error):
        raise error  # a bug: the application's handler logs it and answers 500
    log.warning("ingest: database unavailable: %s", type(error).__name__)
    response, status = _error(503, "unavailable", "the database is unavailable; nothing was stored, retry later", None)
    response.headers["Retry-After"] = "5"
    return response, status


@bp.errorhandler(HTTPException)
def _http_error(error: HTTPException) -> tuple[Response, int]:
    status = error.code or 400
    if status == 413:
        return _error(400, "too_large", f"body: larger than {current_app.config['MAX_CONTENT_LENGTH']} bytes", "body")
    return _error(status, error.name.lower().replace(" ", "_"), error.description or error.name, None)


def _route(kind: str | None, *paths: str) -> None:
    def view() -> Response | tuple[Response, int]:
        return _accept(kind)

    for path in paths:
        name = f"ingest_{kind or 'batch'}_{path.strip('/')}"
        bp.add_url_rule(path, name, view, methods=["POST"])
        declare_permission(bp, name, Permission.EVENTS)


for _kind in KINDS:
    _route(_kind, f"/{_kind}")
_route(None, "/batch", "/import")
