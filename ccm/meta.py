"""Unauthenticated endpoints: health and the OpenAPI document."""

from __future__ import annotations

from dramatiq.brokers.redis import RedisBroker
from flask import Blueprint, current_app, jsonify
from sqlalchemy import text

from ccm.brokers import ping
from ccm.openapi import openapi_document

bp = Blueprint("meta", __name__)


@bp.get("/healthz")
def healthz():  # type: ignore[no-untyped-def]
    """Database and broker reachability (and Redis, when the broker is RabbitMQ); 503 when any is down."""
    runtime = current_app.extensions["ccm"]
    checks = {"database": _check(lambda: _ping_database(runtime)), "broker": _check(lambda: ping(runtime.broker))}
    if runtime.guards.client is not None and not isinstance(runtime.broker, RedisBroker):
        checks["redis"] = _check(runtime.guards.client.ping)  # rate limits and the tracking-hit buffer
    healthy = all(value == "ok" for value in checks.values())
    return jsonify(status="ok" if healthy else "degraded", **checks), 200 if healthy else 503


@bp.get("/v1/openapi.json")
def openapi():  # type: ignore[no-untyped-def]
    if "openapi" not in current_app.extensions:
        current_app.extensions["openapi"] = openapi_document()
    return jsonify(current_app.extensions["openapi"])


def _check(probe) -> str:  # type: ignore[no-untyped-def]
    try:
        probe()
    except Exception as exc:
        return f"error: {exc.__class__.__name__}: {exc}"
    return "ok"


def _ping_database(runtime) -> None:  # type: ignore[no-untyped-def]
    with runtime.db.read_only() as session:  # no write lock on SQLite: health never waits for a writer
        session.execute(text("SELECT 1"))
