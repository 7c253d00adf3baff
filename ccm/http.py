"""The HTTP layer shared by every API blueprint: declared endpoints, request validation with
pydantic, JSON responses, the per-request unit of work, and the OpenAPI document built from the
same declarations that validate requests.
"""

from __future__ import annotations

import functools
import json
import logging
import re
import typing
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from flask import Blueprint, Response, current_app, g, request
from pydantic import BaseModel, ConfigDict, ValidationError, create_model
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError, SQLAlchemyError
from sqlalchemy.exc import TimeoutError as SQLAlchemyTimeoutError
from sqlalchemy.orm import Session

from ccm.access import Permission
from ccm.db import commit, rollback
from ccm.errors import CCMError, PayloadTooLarge, ServiceUnavailable, ValidationFailed
from ccm.validation import check_input

log = logging.getLogger(__name__)

MAX_BODY_BYTES = 1_000_000
"""JSON bodies are smaller than this; raw ones (inbound email) are bounded by CCM_MAX_REQUEST_BYTES."""


@dataclass
class Operation:
    """One declared API operation: how its input is validated, what it answers, for the OpenAPI document."""

    method: str
    path: str
    summary: str
    tag: str
    body: type[BaseModel] | None
    query: type[BaseModel] | None
    path_params: type[BaseModel] | None
    responses: dict[int, type[BaseModel] | None]
    errors: frozenset[int] = frozenset()
    headers: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Request headers the operation reads, with their JSON schemas."""
    public: bool = False
    raw_body: str | None = None
    """The media type of a body taken as raw bytes (``message/rfc822``), not JSON."""
    body_content: dict[str, Any] | None = None
    """The OpenAPI ``requestBody.content`` of a body the view reads itself (a file upload)."""
    produces: str | None = None
    """The media type of a success answer that is not JSON (``text/csv``): the view returns the
    ``Response`` itself, often streamed."""
    permission: Permission | None = None
    """What the caller's role must allow (None for public operations)."""


OPERATIONS: list[Operation] = []

PERMISSIONS: dict[str, Permission] = {}
"""Flask endpoint name (``templates.publish_template``) → the permission it needs, checked by the
authentication hook before the view runs."""

_BLUEPRINT_PERMISSIONS: dict[str, tuple[Permission, Permission]] = {}


def permissions(bp: Blueprint, *, writes: Permission, reads: Permission = Permission.VIEW) -> None:
    """What the blueprint's operations need unless one declares its own: ``reads`` for GET, ``writes``
    for the rest. Call it before declaring the blueprint's endpoints."""
    _BLUEPRINT_PERMISSIONS[bp.name] = (reads, writes)


def declare_permission(bp: Blueprint, view_name: str, permission: Permission) -> None:
    """The permission of a route added without :func:`endpoint` (an event stream, the ingestion API)."""
    PERMISSIONS[f"{bp.name}.{view_name}"] = permission


def _permission(bp: Blueprint, method: str, declared: Permission | None, public: bool) -> Permission | None:
    if declared is not None or public:
        return declared
    if bp.name not in _BLUEPRINT_PERMISSIONS:
        raise TypeError(f"blueprint {bp.name!r}: declare its permissions (ccm.http.permissions) or each endpoint's")
    reads, writes = _BLUEPRINT_PERMISSIONS[bp.name]
    return reads if method.upper() in ("GET", "HEAD") else writes


def endpoint(
    bp: Blueprint,
    rule: str,
    *,
    method: str,
    summary: str,
    responses: dict[int, type[BaseModel] | None],
    body: type[BaseModel] | None = None,
    query: type[BaseModel] | None = None,
    headers: dict[str, dict[str, Any]] | None = None,
    public: bool = False,
    errors: tuple[int, ...] = (),
    raw_body: str | None = None,
    body_content: dict[str, Any] | None = None,
    produces: str | None = None,
    permission: Permission | None = None,
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Declare an operation. Path parameters are validated against the view's own annotations
    (each an ``Annotated`` type with its limits), the body and query into the given models,
    passed to the view as ``body=`` and ``query=``; the view returns a declared response model
    (or ``(model, status[, headers])``), serialized through that model. ``errors`` lists the
    error statuses the operation adds to the ones every operation may answer. ``produces``
    declares a non-JSON answer (``text/csv``): the view returns a ``Response`` of that type.
    ``permission`` is what the caller's role must allow; without it, the blueprint's (see
    :func:`permissions`)."""

    def register(view: Callable[..., Any]) -> Callable[..., Any]:
        path_model = _path_model(view, rule)
        operation = Operation(
            method.lower(),
            _openapi_path(f"{bp.url_prefix or ''}{rule}"),
            summary,
            bp.name,
            body,
            query,
            path_model,
            responses,
            frozenset(errors),
            headers or {},
            public,
            raw_body,
            body_content,
            produces,
            _permission(bp, method, permission, public),
        )
        OPERATIONS.append(operation)
        if operation.permission is not None:
            PERMISSIONS[f"{bp.name}.{view.__name__}"] = operation.permission

        @functools.wraps(view)
        def handle(**path: Any) -> Any:
            values = parse_path(path_model, path) if path_model is not None else path
            if body is not None:
                values["body"] = parse_body(body)
            if query is not None:
                values["query"] = parse_query(query)
            return to_response(view(**values), operation)

        bp.add_url_rule(rule, endpoint=view.__name__, view_func=handle, methods=[method])
        return view

    return register


def _path_model(view: Callable[..., Any], rule: str) -> type[BaseModel] | None:
    names = re.findall(r"<(?:[a-z]+:)?([a-zA-Z_]+)>", rule)
    if not names:
        return None
    hints = typing.get_type_hints(view, include_extras=True)
    for name in names:
        if typing.get_origin(hints.get(name)) is not typing.Annotated:
            raise TypeError(f"{view.__qualname__}: path parameter {name!r} needs an Annotated type with its limits")
    fields: dict[str, Any] = {name: (hints[name], ...) for name in names}
    return create_model(f"{_camel(view.__name__)}Path", __config__=ConfigDict(extra="forbid"), **fields)


def parse_path(model: type[BaseModel], values: dict[str, Any]) -> dict[str, Any]:
    try:
        parsed = model.model_validate(values)
    except ValidationError as exc:
        raise validation_failed(exc) from None
    return dict(parsed)


def parse_body(model: type[BaseModel]) -> BaseModel:
    raw = read_body(MAX_BODY_BYTES, what="a JSON body")
    if not raw:
        raise ValidationFailed("body: a JSON body is required", field="body")
    try:
        parsed = model.model_validate_json(raw)
    except ValidationError as exc:
        raise validation_failed(exc) from None
    check_input(parsed, "")
    return parsed


def read_body(limit: int, *, what: str) -> bytes:
    """The request body, refused with a 413 beyond ``limit`` bytes."""
    if request.content_length and request.content_length > limit:
        raise PayloadTooLarge(f"body: {what} larger than {limit} bytes", field="body")
    raw = request.get_data(cache=True)
    if len(raw) > limit:
        raise PayloadTooLarge(f"body: {what} larger than {limit} bytes", field="body")
    return raw


def parse_query(model: type[BaseModel]) -> BaseModel:
    check_query()
    try:
        return model.model_validate(request.args.to_dict())
    except ValidationError as exc:
        raise validation_failed(exc, prefix="query.") from None


def check_query() -> None:
    """Every query parameter given once, holding nothing a column cannot store."""
    for name in request.args:
        values = request.args.getlist(name)
        if len(values) > 1:
            raise ValidationFailed(f"query.{name}: given {len(values)} times; give it once", field=f"query.{name}")
        check_input({name: values[0]}, "query")


def check_request() -> None:
    """``before_request`` for every route, declared or not (callbacks, tracking, unsubscribe):
    path parameters and the query string hold nothing a column cannot store."""
    if request.view_args:
        check_input(request.view_args, "")
    check_query()


def validation_failed(exc: ValidationError, *, prefix: str = "") -> ValidationFailed:
    """Turn pydantic's errors into one 422 naming the first offending field (all are in details)."""
    errors = []
    for error in exc.errors(include_url=False, include_input=False, include_context=False):
        location = ".".join(str(part) for part in error["loc"] if not _UNION_MEMBER.match(str(part)))
        if error["type"] == "json_invalid":
            location = "body"
        field = prefix + location if location else (prefix.rstrip(".") or "body")
        errors.append({"field": field, "message": error["msg"], "type": error["type"]})
    first = errors[0]
    return ValidationFailed(f"{first['field']}: {first['message']}", field=first["field"], details={"errors": errors})


_UNION_MEMBER = re.compile(r"^(function-[a-z]+\[.*\]|constrained-[a-z]+|literal\[.*\])$")
"""How pydantic labels the members of a plain union in error locations (``version.constrained-int``):
they are not fields, so they are left out of the field an error names."""


def to_response(result: Any, operation: Operation) -> Response:
    """Serialize what a view returned through the response model it declared for that status;
    anything else is a bug (the document would not describe the answer)."""
    status, headers = 200, None
    if isinstance(result, tuple):
        result, status, *rest = result
        headers = rest[0] if rest else None
    if operation.produces and isinstance(result, Response) and result.status_code in operation.responses:
        return result
    if status not in operation.responses:
        raise TypeError(f"{operation.method.upper()} {operation.path} answered {status}, which it does not declare")
    declared = operation.responses[status]
    if declared is None:
        if result is not None:
            raise TypeError(f"{operation.method.upper()} {operation.path} declares no body for {status}")
        return Response(status=status, headers=headers)
    if type(result) is not declared:
        raise TypeError(
            f"{operation.method.upper()} {operation.path} answered {type(result).__name__} with "
            f"{status}; it declares {declared.__name__}"
        )
    return Response(result.model_dump_json(), status=status, headers=headers, mimetype="application/json")


def error_response(error: CCMError, headers: dict[str, str] | None = None) -> Response:
    return Response(json.dumps(error.to_dict()), status=error.status, headers=headers, mimetype="application/json")


def db_session() -> Session:
    """The request's session; committed by :func:`finish_request` when the response is not an error.
    GET and HEAD requests never write: theirs is read-only, so it takes no write lock."""
    if "db_session" not in g:
        db = current_app.extensions["ccm"].db
        g.db_session = (db.read_only_sessionmaker if request.method in ("GET", "HEAD") else db.sessionmaker)()
    return g.db_session


def finish_request(response: Response) -> Response:
    """Commit the request's work when the answer is a success (an error changes nothing). A
    commit the database refuses turns the answer into that error: a 2xx must mean it is stored."""
    session: Session | None = g.pop("db_session", None)
    if session is None:
        return response
    try:
        if response.status_code < 400:
            commit(session)
        else:
            rollback(session)
    except SQLAlchemyError as exc:
        rollback(session)
        if not unreachable(exc):
            raise
        return unavailable_response(exc)
    finally:
        session.close()
    return response


def unreachable(error: BaseException) -> bool:
    """Whether a database error means "cannot reach it now" (503) rather than a bug (500):
    connection refused or lost, the pool exhausted, SQLite busy past its timeout."""
    if isinstance(error, SQLAlchemyTimeoutError | OperationalError | InterfaceError):
        return True
    return isinstance(error, DBAPIError) and error.connection_invalidated


def unavailable_response(error: BaseException) -> Response:
    log.warning("database unavailable: %s", str(error).splitlines()[0] if str(error) else type(error).__name__)
    unavailable = ServiceUnavailable("the database is unavailable; nothing was changed, retry later")
    return error_response(unavailable, {"Retry-After": str(unavailable.retry_after)})


def discard_session(_exc: BaseException | None) -> None:
    session: Session | None = g.pop("db_session", None)
    if session is not None:
        rollback(session)
        session.close()


def _openapi_path(rule: str) -> str:
    return re.sub(r"<(?:[a-z]+:)?([a-zA-Z_]+)>", r"{\1}", rule)


def _camel(name: str) -> str:
    return "".join(part.capitalize() for part in name.split("_"))
