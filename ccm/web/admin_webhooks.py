"""Outbound webhooks (admins): the subscriptions, a new one (URL and events; its signing secret
shown once), and each one's recent deliveries with their status, attempts and response code.
The webhooks service of ``/v1/webhooks``, audited as there."""

from __future__ import annotations

import json
from typing import Any

from flask import current_app, g, request
from sqlalchemy.orm import Session
from werkzeug.wrappers import Response

from ccm.access import Permission
from ccm.audit.service import Target
from ccm.errors import CCMError
from ccm.web.admin_forms import Outcome, audit, run_write
from ccm.web.pages import db, page
from ccm.web.security import requires
from ccm.webhooks import service
from ccm.webhooks.api import WebhookIn, WebhookOut
from ccm.webhooks.models import EVENT_TYPES

DELIVERIES_SHOWN = 50


def _page(outcome: Outcome, secret: str | None = None, typed: dict[str, Any] | None = None) -> Response:
    with db().unit_of_work() as session:
        rows = service.list_endpoints(session=session, workspace_id=g.user.workspace_id)
    return page(
        "admin/webhooks.html",
        outcome.status,
        webhooks=rows,
        event_types=EVENT_TYPES,
        secret=secret,
        typed=typed or {"url": "", "events": []},
        **outcome.shown(),
    )


@requires(Permission.ADMIN)
def index() -> Response:
    return _page(Outcome())


@requires(Permission.ADMIN)
def create() -> Response:
    outcome = Outcome()
    typed = {"url": request.form.get("url", "").strip(), "events": request.form.getlist("events")}

    def work(session: Session) -> str:
        body = WebhookIn.model_validate_json(json.dumps(typed))
        runtime = current_app.extensions["ccm"]
        created, secret = service.create_endpoint(
            session=session, box=runtime.secret_box, workspace_id=g.user.workspace_id, url=body.url, events=body.events
        )
        runtime.webhooks.forget(session, g.user.workspace_id)
        after = WebhookOut.model_validate(created).model_dump(mode="json")
        audit(session, "webhook.create", Target("webhook", created.id), after=after)
        return secret

    secret = run_write(outcome, work)
    if secret is None:
        return _page(outcome, typed=typed)
    outcome.notices.append(f"Subscribed {typed['url']}; copy its signing secret now, it is not shown again.")
    return _page(outcome, secret=secret)


@requires(Permission.ADMIN)
def deliveries(endpoint_id: str) -> Response:
    outcome = Outcome()
    try:
        with db().unit_of_work() as session:
            webhook = service.get_endpoint(session=session, workspace_id=g.user.workspace_id, endpoint_id=endpoint_id)
            rows = service.list_deliveries(
                session=session, workspace_id=g.user.workspace_id, endpoint_id=endpoint_id, limit=DELIVERIES_SHOWN
            )
    except CCMError as exc:
        outcome.failed(exc)
        return _page(outcome)
    return page("admin/webhook.html", webhook=webhook, deliveries=rows, **outcome.shown())
