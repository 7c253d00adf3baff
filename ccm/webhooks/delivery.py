"""Delivering webhook events: POSTed with Standard Webhooks signatures, retried with backoff for
more than a day, every try logged on the delivery; never to loopback or private addresses unless
the workspace allows it (server-side request forgery)."""

from __future__ import annotations

import datetime as dt
import functools
import json
import logging

import httpx
from sqlalchemy.orm import Session

from ccm import jobs
from ccm.channels.callbacks import decode_whsec, standard_webhook_headers
from ccm.channels.http import make_client
from ccm.db import utcnow
from ccm.runtime import Runtime
from ccm.webhooks.models import WebhookDelivery, WebhookEndpoint
from ccm.webhooks.service import DELIVER, BlockedAddress, check_destination
from ccm.workspaces.service import workspace_policy

log = logging.getLogger(__name__)

RETRY_DELAYS = (5, 30, 120, 600, 1800, 3600, 7200, 14400, 21600, 28800, 28800)
"""Seconds before each retry: ~30 hours in all, so an endpoint down for a day misses nothing."""


def deliver_webhook(runtime: Runtime, delivery_id: str) -> None:
    """The ``webhooks.deliver`` actor: one try, then done, failed, or rescheduled."""
    with runtime.db.unit_of_work() as session:
        delivery = session.get(WebhookDelivery, delivery_id, with_for_update=True)
        if delivery is None or delivery.status != "pending":
            jobs.finish(session, DELIVER, delivery_id)
            return
        if delivery.next_attempt_at and delivery.next_attempt_at > utcnow() + dt.timedelta(seconds=1):
            return  # published early (by the relay) for a retry; the delayed run will come
        endpoint = session.get(WebhookEndpoint, delivery.endpoint_id)
        if endpoint is None or not endpoint.enabled:
            _finish(session, delivery, "failed", "the endpoint was removed or disabled")
            return
        allow_private = workspace_policy(session=session, workspace_id=delivery.workspace_id).webhooks_allow_private
        secret = runtime.secret_box.open(endpoint.sealed_secret)["s"]
        url, body, delivery.attempts = endpoint.url, json.dumps(delivery.payload), delivery.attempts + 1
    status, error = _post(url, body, delivery_id, secret, allow_private=allow_private)
    with runtime.db.unit_of_work() as session:
        delivery = session.get(WebhookDelivery, delivery_id)
        assert delivery is not None
        delivery.last_status_code, delivery.last_error = status, error
        if status is not None and 200 <= status < 300:
            _finish(session, delivery, "delivered", None)
        elif error and error.startswith("blocked:"):
            _finish(session, delivery, "failed", error)
        else:
            _retry(runtime, session, delivery)


def _post(url: str, body: str, delivery_id: str, secret: str, *, allow_private: bool) -> tuple[int | None, str | None]:
    try:
        check_destination(url, allow_private=allow_private)
    except BlockedAddress as exc:
        return None, f"blocked: {exc}"
    headers = {
        **standard_webhook_headers(decode_whsec(secret), delivery_id, body.encode()),
        "user-agent": "CCM-Webhooks/1",
    }
    try:
        response = _client().post(url, content=body.encode(), headers=headers)
    except httpx.HTTPError as exc:
        return None, f"{type(exc).__name__}: {exc}"[:500]
    return response.status_code, None if response.is_success else f"HTTP {response.status_code}"


@functools.cache
def _client() -> httpx.Client:
    """One client for every delivery: its connections and TLS context are reused."""
    return make_client(timeout=10.0, connect_timeout=5.0)  # seconds


def _retry(runtime: Runtime, session: Session, delivery: WebhookDelivery) -> None:
    if delivery.attempts > len(RETRY_DELAYS):
        _finish(session, delivery, "failed", delivery.last_error)
        return
    delay = RETRY_DELAYS[delivery.attempts - 1]
    delivery.next_attempt_at = utcnow() + dt.timedelta(seconds=delay)
    jobs.reschedule(session, DELIVER, delivery.id, delay=delay, grace=runtime.settings.relay_grace)


def _finish(session: Session, delivery: WebhookDelivery, status: str, error: str | None) -> None:
    delivery.status, delivery.finished_at, delivery.next_attempt_at = status, utcnow(), None
    if error:
        delivery.last_error = error
    jobs.finish(session, DELIVER, delivery.id)
