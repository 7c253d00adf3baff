"""Unauthenticated endpoints: health and the OpenAPI document."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from dramatiq.brokers.redis import RedisBroker
from flask import Blueprint, Response, current_app, jsonify
from sqlalchemy import text

from ccm.brokers import ping
from ccm.openapi import openapi_document

if TYPE_CHECKING:
    from ccm.runtime import Runtime

bp = Blueprint("meta", __name__)


@bp.get("/healthz")
def healthz() -> tuple[Response, int]:
    """Database and broker reachability (and Redis, when the broker is RabbitMQ); 503 when any is down."""
    runtime: Runtime = current_app.extensions["ccm"]
    checks = {"database": _check(lambda: _ping_database(runtime)), "broker": _check(lambda: ping(runtime.broker))}
    if runtime.guards.client is not None and not isinstance(runtime.broker, RedisBroker):
        checks["redis"] = _check(runtime.guards.client.ping)  # rate limits and the tracking-hit buffer
    healthy = all(value == "ok" for value in checks.values())
    return jsonify(status="ok" if healthy else "degraded", **checks), 200 if healthy else 503


@bp.get("/v1/openapi.json")
def openapi() -> Response:
    if "openapi" not in current_app.extensions:
        current_app.extensions["openapi"] = openapi_document()
    return jsonify(current_app.extensions["openapi"])


def _check(probe: Callable[[], object]) -> str:
    try:
        probe()
    except Exception as exc:
        return f"error: {exc.__class__.__name__}: {exc}"
    return "ok"


def _ping_database(runtime: Runtime) -> None:
    with runtime.db.read_only() as session:  # no write lock on SQLite: health never waits for a writer
        session.execute(text("SELECT 1"))
