"""Fixtures and helpers of the trigger tests: a cart-reminder template, and events posted the
way the Segment clients post them."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from sqlalchemy import select

from ccm.jobs import PendingJob
from ccm.messages.models import Message
from ccm.triggers.models import TriggerFire
from tests.ingest.test_tracking_api import post

CART_HTML = "<p>You left cart {{ cart_id }} behind: {{ total }} EUR.</p>"


@pytest.fixture
def client(app: Any) -> Any:
    return app.test_client()


def publish_cart_template(api: Any, key: str = "cart-reminder", *, category: str = "transactional", **extra: Any):
    body = {
        "key": key,
        "category": category,
        "variables": ["cart_id", "total"],
        "variants": [{"channel": "email", "subject": "Still thinking about cart {{ cart_id }}?", "html": CART_HTML}],
        **extra,
    }
    assert api.post("/v1/templates", json=body).status_code == 201
    assert api.post(f"/v1/templates/{key}/publish").status_code == 201


def trigger_body(key: str = "cart-reminder", **overrides: Any) -> dict[str, Any]:
    return {"key": key, "event": "cart_abandoned", "template": "cart-reminder", **overrides}


def make_trigger(api: Any, **overrides: Any) -> dict[str, Any]:
    answer = api.post("/v1/triggers", json=trigger_body(**overrides))
    assert answer.status_code == 201, answer.json
    return answer.json


def identify(client: Any, key: str, user: str, email: str | None = None, **traits: Any) -> None:
    body = {"userId": user, "traits": {"email": email or f"{user}@example.com", **traits}}
    assert post(client, "/v1/identify", body, key).status_code == 200


def track(client: Any, key: str, user: str, event: str, properties: dict[str, Any] | None = None, **extra: Any) -> Any:
    body = {"userId": user, "event": event, "properties": properties or {}, **extra}
    body.setdefault("messageId", str(uuid.uuid4()))
    answer = post(client, "/v1/track", body, key)
    assert answer.status_code == 200, answer.json
    return answer


def messages(runtime: Any) -> list[Message]:
    with runtime.db.read_only() as session:
        return list(session.scalars(select(Message).order_by(Message.id)))


def fires(runtime: Any) -> list[TriggerFire]:
    with runtime.db.read_only() as session:
        return list(session.scalars(select(TriggerFire).order_by(TriggerFire.id)))


def outbox_row(runtime: Any, message_id: str) -> PendingJob | None:
    with runtime.db.read_only() as session:
        return session.scalar(select(PendingJob).where(PendingJob.key == f"messages.deliver:{message_id}"))
