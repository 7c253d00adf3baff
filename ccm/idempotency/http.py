"""The ``Idempotency-Key`` header on the endpoints that create things."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from flask import Response, current_app, json, request

from ccm.auth.api import current_workspace_id
from ccm.http import db_session
from ccm.idempotency.service import fingerprint, run_idempotent


def respond_idempotently(work: Callable[[], tuple[dict[str, Any], int]], *,
                         expected: tuple[dict[str, Any], int] | None = None) -> Response:
    """Run ``work`` once per ``Idempotency-Key`` (when the request has one) and answer with its
    result; a repeat of the same request gets the stored answer and ``Idempotent-Replayed: true``."""
    result = run_idempotent(session=db_session(), workspace_id=current_workspace_id(),
                            key=request.headers.get("Idempotency-Key"),
                            request_hash=fingerprint(request.method, request.path, request.get_data()),
                            ttl=current_app.extensions["ccm"].settings.idempotency_ttl, work=work, expected=expected)
    headers = {"Idempotent-Replayed": "true"} if result.replayed else {}
    return Response(json.dumps(result.body), status=result.status, headers=headers, mimetype="application/json")
