"""Outbound webhooks: subscriptions, and emitting events into the delivery log (delivered by the
``webhooks.deliver`` actor, see :mod:`ccm.webhooks.delivery`)."""

from __future__ import annotations

import base64
import ipaddress
import secrets
import socket
import threading
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import delete, func, insert, select
from sqlalchemy.orm import Session

from ccm import jobs
from ccm.crypto import SecretBox
from ccm.db import after_commit, end_transaction, utcnow
from ccm.errors import NotFound, ValidationFailed
from ccm.ids import new_id
from ccm.webhooks.models import EventType, WebhookDelivery, WebhookEndpoint
from ccm.workspaces.service import workspace_policy

CACHE_SECONDS = 5.0
DELIVER = jobs.Job("webhooks.deliver", queue="webhooks", max_retries=3)
_DELIVERIES = WebhookDelivery.__table__


class BlockedAddress(Exception):
    """A webhook URL CCM will not call: not http(s), unresolvable, or an internal address."""


def check_destination(url: str, *, allow_private: bool) -> None:
    """The one rule for where webhooks may go, at subscription and again at every delivery (a
    name may resolve elsewhere by then): refuse URLs that resolve to loopback, private,
    link-local or otherwise internal addresses, unless the workspace allows private targets.

    Raises:
      BlockedAddress: saying why.
    """
    try:
        parts = urlsplit(url)
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError as exc:  # a bad port or IPv6 literal
        raise BlockedAddress(f"not a valid URL: {exc}") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise BlockedAddress(f"not an http(s) URL: {url!r}")
    if allow_private:
        return
    try:
        infos = socket.getaddrinfo(parts.hostname, port)
    except (socket.gaierror, UnicodeError) as exc:  # UnicodeError: a host IDNA cannot encode
        raise BlockedAddress(f"cannot resolve {parts.hostname}: {exc}") from None
    for info in infos:
        address = ipaddress.ip_address(info[4][0])
        if not address.is_global or address.is_multicast:
            raise BlockedAddress(f"{parts.hostname} resolves to {address}, an internal address")


def create_endpoint(
    *, session: Session, box: SecretBox, workspace_id: str, url: str, events: list[EventType]
) -> tuple[WebhookEndpoint, str]:
    """Subscribe ``url``. Returns the endpoint and its signing secret, shown this once.

    Raises:
      ValidationFailed: ``url`` is one deliveries would refuse (see :func:`check_destination`):
        better said now than by every delivery failing later.
    """
    allow_private = workspace_policy(session=session, workspace_id=workspace_id).webhooks_allow_private
    end_transaction(session)  # the DNS lookup may take seconds: hold no lock meanwhile
    try:
        check_destination(url, allow_private=allow_private)
    except BlockedAddress as exc:
        hint = "" if allow_private else "; to deliver to private addresses, set policy.webhooks_allow_private"
        raise ValidationFailed(f"url: {exc}{hint}", field="url") from None
    secret = "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode()
    endpoint = WebhookEndpoint(workspace_id=workspace_id, url=url, events=events, sealed_secret=box.seal({"s": secret}))
    session.add(endpoint)
    session.flush()
    return endpoint, secret


def get_endpoint(*, session: Session, workspace_id: str, endpoint_id: str) -> WebhookEndpoint:
    endpoint = session.scalar(
        select(WebhookEndpoint).where(WebhookEndpoint.id == endpoint_id, WebhookEndpoint.workspace_id == workspace_id)
    )
    if endpoint is None:
        raise NotFound(f"no webhook {endpoint_id!r}", field="id")
    return endpoint


@dataclass(frozen=True)
class Removal:
    """What deleting an endpoint takes with it: deliveries not yet made, and its delivery log."""

    endpoint: WebhookEndpoint
    pending: int
    logged: int


def plan_removal(*, session: Session, workspace_id: str, endpoint_id: str) -> Removal:
    """Raises NotFound: the workspace has no such endpoint."""
    endpoint = get_endpoint(session=session, workspace_id=workspace_id, endpoint_id=endpoint_id)
    counts = session.execute(
        select(func.count(), func.count().filter(WebhookDelivery.status == "pending")).where(
            WebhookDelivery.endpoint_id == endpoint_id
        )
    ).one()
    return Removal(endpoint, pending=counts[1], logged=counts[0])


def delete_endpoint(*, session: Session, workspace_id: str, endpoint_id: str) -> WebhookEndpoint:
    """Unsubscribe: the endpoint goes with its delivery log. Nothing is refused: no other
    object depends on an endpoint. A delivery still pending is dropped with the log (its
    queued job finds no delivery and ends): the subscriber asked for no more calls.

    The log is deleted rather than kept: it exists to debug this endpoint, it holds event
    payloads (personal data: addresses, message ids) that no screen or retention rule would
    reach once the endpoint is gone, and the audit log keeps what the endpoint was.

    Raises:
      NotFound: the workspace has no such endpoint.
    """
    endpoint = get_endpoint(session=session, workspace_id=workspace_id, endpoint_id=endpoint_id)
    session.execute(delete(WebhookDelivery).where(WebhookDelivery.endpoint_id == endpoint_id))
    session.delete(endpoint)
    session.flush()
    return endpoint


def list_endpoints(*, session: Session, workspace_id: str) -> list[WebhookEndpoint]:
    return list(
        session.scalars(
            select(WebhookEndpoint)
            .where(WebhookEndpoint.workspace_id == workspace_id)
            .order_by(WebhookEndpoint.created_at)
        )
    )


def list_deliveries(*, session: Session, workspace_id: str, endpoint_id: str, limit: int) -> list[WebhookDelivery]:
    get_endpoint(session=session, workspace_id=workspace_id, endpoint_id=endpoint_id)
    return list(
        session.scalars(
            select(WebhookDelivery)
            .where(WebhookDelivery.endpoint_id == endpoint_id)
            .order_by(WebhookDelivery.created_at.desc(), WebhookDelivery.id.desc())
            .limit(limit)
        )
    )


class Subscriptions:
    """Which endpoints want which event types, per workspace, cached briefly in each process so
    that emitting costs nothing for workspaces without webhooks."""

    def __init__(self, grace: float) -> None:
        self.grace = grace
        self._cache: dict[str, tuple[float, dict[str, list[str]]]] = {}
        self._lock = threading.Lock()

    def emit(self, session: Session, workspace_id: str, event_type: str, data: dict[str, Any]) -> None:
        """Log a delivery of ``event_type`` for every endpoint that wants it, in this transaction."""
        endpoints = self._for(session, workspace_id).get(event_type)
        if not endpoints:
            return
        now = utcnow()
        body = {"type": event_type, "timestamp": now.isoformat(), "data": data}
        for endpoint_id in endpoints:
            delivery_id = new_id("whd")
            session.execute(
                insert(_DELIVERIES),
                {
                    "id": delivery_id,
                    "workspace_id": workspace_id,
                    "endpoint_id": endpoint_id,
                    "event_type": event_type,
                    "payload": body,
                    "status": "pending",
                    "attempts": 0,
                    "next_attempt_at": now,
                    "created_at": now,
                },
            )
            jobs.enqueue(session, DELIVER, delivery_id, grace=self.grace)

    def forget(self, session: Session, workspace_id: str) -> None:
        after_commit(session, lambda: self._cache.pop(workspace_id, None))

    def _for(self, session: Session, workspace_id: str) -> dict[str, list[str]]:
        cached = self._cache.get(workspace_id)
        if cached and cached[0] > time.monotonic():
            return cached[1]
        wanted: dict[str, list[str]] = {}
        for endpoint in session.execute(
            select(WebhookEndpoint.id, WebhookEndpoint.events).where(
                WebhookEndpoint.workspace_id == workspace_id, WebhookEndpoint.enabled.is_(True)
            )
        ):
            for event_type in endpoint.events:
                wanted.setdefault(event_type, []).append(endpoint.id)
        with self._lock:
            self._cache[workspace_id] = (time.monotonic() + CACHE_SECONDS, wanted)
        return wanted


def emit(session: Session, workspace_id: str, event_type: str, data: dict[str, Any]) -> None:
    """Emit through the runtime's subscriptions (set on every session by the runtime).

    Raises:
      RuntimeError: the session has none, so the event would silently reach no endpoint.
    """
    subscriptions: Subscriptions | None = session.info.get("webhooks")
    if subscriptions is None:
        raise RuntimeError(
            'session.info["webhooks"] is not set: events are emitted on sessions of a runtime\'s '
            "sessionmaker (see ccm.runtime.create_runtime)"
        )
    subscriptions.emit(session, workspace_id, event_type, data)
