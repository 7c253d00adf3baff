"""The HTTP layer shared by every API blueprint: declared endpoints, request validation with
pydantic, JSON responses, the per-request unit of work, and the OpenAPI document built from the
same declarations that validate requests.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from flask import Blueprint, Response, current_app, g, request
from pydantic import BaseModel, ValidationError
from sqlalchemy.orm import Session

from ccm.errors import CCMError, PayloadTooLarge, ValidationFailed

MAX_BODY_BYTES = 1_000_000
"""JSON bodies are smaller than this; raw ones (inbound email) are bounded by CCM_MAX_REQUEST_BYTES."""


@dataclass
class Operation:
    """One declared API operation, kept for the OpenAPI document."""

    method: str
    path: str
    summary: str
    tag: str
    body: type[BaseModel] | None
    query: type[BaseModel] | None
    responses: dict[int, type[BaseModel] | None]
    headers: list[str] = field(default_factory=list)
    public: bool = False


OPERATIONS: list[Operation] = []


def endpoint(
    bp: Blueprint, rule: str, *, method: str, summary: str, responses: dict[int, type[BaseModel] | None],
    body: type[BaseModel] | None = None, query: type[BaseModel] | None = None,
    headers: list[str] | None = None, public: bool = False,
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Declare an operation: validate its body and query into pydantic models passed to the view
    as ``body=`` and ``query=``, and serialize a returned model (or ``(model, status)``) as JSON."""

    def register(view: Callable[..., Any]) -> Callable[..., Any]:
        OPERATIONS.append(Operation(
            method.lower(), _openapi_path(f"{bp.url_prefix or ''}{rule}"), summary, bp.name,
            body, query, responses, headers or [], public,
        ))

        @functools.wraps(view)
        def handle(**path: Any) -> Any:
            if body is not None:
                path["body"] = parse_body(body)
            if query is not None:
                path["query"] = parse_query(query)
            return to_response(view(**path))

        bp.add_url_rule(rule, endpoint=view.__name__, view_func=handle, methods=[method])
        return view

    return register


def parse_body(model: type[BaseModel]) -> BaseModel:
    if request.content_length and request.content_length > MAX_BODY_BYTES:
        raise PayloadTooLarge(f"body: a JSON body larger than {MAX_BODY_BYTES} bytes", field="body")
    raw = request.get_data(cache=True)
    if not raw:
        raise ValidationFailed("a JSON body is required", field="body")
    try:
        return model.model_validate_json(raw)
    except ValidationError as exc:
        raise validation_failed(exc) from None


def parse_query(model: type[BaseModel]) -> BaseModel:
    try:
        return model.model_validate(request.args.to_dict())
    except ValidationError as exc:
        raise validation_failed(exc, prefix="query.") from None


def validation_failed(exc: ValidationError, *, prefix: str = "") -> ValidationFailed:
    """Turn pydantic's errors into one 422 naming the first offending field (all are in details)."""
    errors = []
    for error in exc.errors(include_url=False, include_input=False):
        location = ".".join(str(part) for part in error["loc"])
        if error["type"] == "json_invalid":
            location = "body"
        field = prefix + location if location else (prefix.rstrip(".") or "body")
        errors.append({"field": field, "message": error["msg"], "type": error["type"]})
    first = errors[0]
    return ValidationFailed(f"{first['field']}: {first['message']}", field=first["field"],
                            details={"errors": errors})


def to_response(result: Any) -> Any:
    status, headers = 200, None
    if isinstance(result, tuple):
        result, status, *rest = result
        headers = rest[0] if rest else None
    if isinstance(result, BaseModel):
        return Response(result.model_dump_json(), status=status, headers=headers, mimetype="application/json")
    if result is None:
        return Response(status=status, headers=headers)
    return result


def error_response(error: CCMError) -> Response:
    import json

    return Response(json.dumps(error.to_dict()), status=error.status, mimetype="application/json")


def db_session() -> Session:
    """The request's session; committed by :func:`finish_request` when the response is not an error."""
    if "db_session" not in g:
        g.db_session = current_app.extensions["ccm"].db.sessionmaker()
    return g.db_session


def finish_request(response: Response) -> Response:
    from ccm.db import commit, rollback

    session: Session | None = g.pop("db_session", None)
    if session is None:
        return response
    try:
        if response.status_code < 400:
            commit(session)
        else:
            rollback(session)
    finally:
        session.close()
    return response


def discard_session(_exc: BaseException | None) -> None:
    from ccm.db import rollback

    session: Session | None = g.pop("db_session", None)
    if session is not None:
        rollback(session)
        session.close()


def _openapi_path(rule: str) -> str:
    return re.sub(r"<(?:[a-z]+:)?([a-zA-Z_]+)>", r"{\1}", rule)
