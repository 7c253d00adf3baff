"""The ``Idempotency-Key`` header on the endpoints that create things."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from flask import current_app, request
from pydantic import BaseModel

from ccm.auth.api import current_workspace_id
from ccm.http import db_session
from ccm.idempotency.service import MAX_KEY_LENGTH, fingerprint, run_idempotent
from ccm.validation import SEMANTIC_HINT

M = TypeVar("M", bound=BaseModel)

HEADER = {
    "Idempotency-Key": {
        "type": "string",
        "minLength": 1,
        "maxLength": MAX_KEY_LENGTH,
        "pattern": r"^[\x20-\x7e]+$",
        "description": SEMANTIC_HINT + "the same key and body replay the first answer; the same key with another "
        "body is a 422 (draft-ietf-httpapi-idempotency-key-header)",
    }
}
"""The header's schema, for :func:`ccm.http.endpoint`'s ``headers``."""


def respond_idempotently(
    work: Callable[[], tuple[M, int]],
    answer: type[M],
    *,
    expected: tuple[M, int] | None = None,
    request_hash: str | None = None,
) -> tuple[M, int, dict[str, str]]:
    """Run ``work`` once per ``Idempotency-Key`` (when the request has one) and answer with its
    result; a repeat of the same request gets the stored answer, read back through the same
    model, and ``Idempotent-Replayed: true``.

    ``request_hash`` says what makes two requests the same when the raw body cannot (a multipart
    body's boundary differs between two sends of one file); by default the method, the path with
    its query and the body."""
    result = run_idempotent(
        session=db_session(),
        workspace_id=current_workspace_id(),
        key=request.headers.get("Idempotency-Key"),
        request_hash=request_hash or fingerprint(request.method, _path_and_query(), request.get_data()),
        ttl=current_app.extensions["ccm"].settings.idempotency_ttl,
        work=lambda: _dumped(work()),
        expected=_dumped(expected) if expected else None,
    )
    headers = {"Idempotent-Replayed": "true"} if result.replayed else {}
    return answer.model_validate(result.body), result.status, headers


def _path_and_query() -> str:
    query = request.query_string.decode("latin-1")
    return f"{request.path}?{query}" if query else request.path


def _dumped(answer: tuple[BaseModel, int]) -> tuple[dict[str, Any], int]:
    return answer[0].model_dump(mode="json"), answer[1]
