"""Outbound webhooks (admins): the subscriptions, a new one (URL and events; its signing secret
shown once), each one's recent deliveries with their status, attempts and response code, and
deleting one after a confirmation that says what goes with it. The webhooks service of
``/v1/webhooks``, audited as there."""

from __future__ import annotations

import json
from typing import Any

from flask import current_app, g, request, url_for
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


def _consequences(plan: service.Removal) -> list[str]:
    return [
        "CCM stops calling this URL at once (other processes within a few seconds).",
        f"{plan.pending} deliveries still pending are not made."
        if plan.pending
        else "No delivery is pending: nothing is dropped.",
        f"Its delivery log ({plan.logged} deliveries) is deleted with it; the audit log keeps the URL and events.",
    ]


@requires(Permission.ADMIN)
def confirm_delete(endpoint_id: str) -> Response:
    """The confirmation step: what deleting the endpoint drops, and the button that does it."""
    outcome = Outcome()
    plan = run_write(
        outcome,
        lambda session: service.plan_removal(
            session=session, workspace_id=g.user.workspace_id, endpoint_id=endpoint_id
        ),
    )
    if plan is None:
        return _page(outcome)
    webhook = plan.endpoint
    return page(
        "admin/confirm_delete.html",
        heading=f"Delete the webhook to {webhook.url}?",
        facts=[("Events", ", ".join(webhook.events)), ("State", "enabled" if webhook.enabled else "disabled")],
        consequences=_consequences(plan),
        refused=None,
        action=url_for("web_admin.webhook_delete", endpoint_id=endpoint_id),
        cancel=url_for("web_admin.webhooks"),
        button="Delete webhook",
    )


@requires(Permission.ADMIN)
def delete(endpoint_id: str) -> Response:
    """Delete the endpoint and its log, audited as ``webhook.delete`` with what it was."""
    outcome = Outcome()

    def work(session: Session) -> str:
        webhook = service.delete_endpoint(session=session, workspace_id=g.user.workspace_id, endpoint_id=endpoint_id)
        current_app.extensions["ccm"].webhooks.forget(session, g.user.workspace_id)
        before = WebhookOut.model_validate(webhook).model_dump(mode="json")
        audit(session, "webhook.delete", Target("webhook", endpoint_id), before=before)
        return webhook.url

    url = run_write(outcome, work)
    if url is not None:
        outcome.notices.append(f"Deleted the webhook to {url}.")
    return _page(outcome)
