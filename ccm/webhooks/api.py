from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

from flask import Blueprint, current_app
from pydantic import BaseModel, ConfigDict, Field, field_validator

from ccm.access import Permission
from ccm.audit.api import audit
from ccm.audit.service import Target
from ccm.auth.api import current_workspace_id, require_api_key
from ccm.http import db_session, endpoint, permissions
from ccm.validation import SEMANTIC_HINT, RequestModel, id_field
from ccm.webhooks import service
from ccm.webhooks.models import EVENT_TYPES, EventType

EndpointId = Annotated[str, id_field("whk")]

bp = Blueprint("webhooks", __name__, url_prefix="/v1/webhooks")
bp.before_request(require_api_key)
permissions(bp, writes=Permission.ADMIN, reads=Permission.ADMIN)


class WebhookIn(RequestModel):
    url: str = Field(
        min_length=8,
        max_length=2000,
        pattern=r"^https?://[\x21-\x7e]+$",
        description=(
            SEMANTIC_HINT + "an http(s) URL, IDN hosts punycoded, whose host resolves to a public address (unless "
            "policy.webhooks_allow_private)"
        ),
    )
    events: list[EventType] = Field(min_length=1, max_length=len(EVENT_TYPES), json_schema_extra={"uniqueItems": True})

    @field_validator("events")
    @classmethod
    def _once(cls, value: list[str]) -> list[str]:
        if len(set(value)) != len(value):
            raise ValueError("each event type may appear once")
        return sorted(value)


class WebhookOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    url: str
    events: list[str]
    enabled: bool
    created_at: dt.datetime


class WebhookCreated(WebhookOut):
    secret: str = Field(description="whsec_…: verifies our signatures; shown this once")


class WebhookList(BaseModel):
    items: list[WebhookOut]


class DeliveryOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    event_type: str
    payload: dict[str, Any]
    status: str
    attempts: int
    last_status_code: int | None
    last_error: str | None
    next_attempt_at: dt.datetime | None
    created_at: dt.datetime
    finished_at: dt.datetime | None


class DeliveryList(BaseModel):
    items: list[DeliveryOut]


@endpoint(
    bp,
    "",
    method="POST",
    body=WebhookIn,
    responses={201: WebhookCreated},
    summary="Subscribe a URL to events; the signing secret is shown once",
)
def create_webhook(body: WebhookIn) -> tuple[WebhookCreated, int]:
    session, runtime = db_session(), current_app.extensions["ccm"]
    created, secret = service.create_endpoint(
        session=session, box=runtime.secret_box, workspace_id=current_workspace_id(), url=body.url, events=body.events
    )
    runtime.webhooks.forget(session, current_workspace_id())
    out = WebhookOut.model_validate(created)
    audit("webhook.create", Target("webhook", created.id), after=out.model_dump(mode="json"))
    return WebhookCreated(**out.model_dump(), secret=secret), 201


@endpoint(bp, "", method="GET", responses={200: WebhookList}, summary="List webhook subscriptions")
def list_webhooks() -> WebhookList:
    items = service.list_endpoints(session=db_session(), workspace_id=current_workspace_id())
    return WebhookList(items=[WebhookOut.model_validate(item) for item in items])


@endpoint(
    bp,
    "/<endpoint_id>",
    method="DELETE",
    responses={204: None},
    summary="Remove a webhook subscription, with its delivery log; deliveries still pending are not made",
)
def delete_webhook(endpoint_id: EndpointId) -> tuple[None, int]:
    session = db_session()
    webhook = service.delete_endpoint(session=session, workspace_id=current_workspace_id(), endpoint_id=endpoint_id)
    before = WebhookOut.model_validate(webhook).model_dump(mode="json")
    audit("webhook.delete", Target("webhook", endpoint_id), before=before)
    current_app.extensions["ccm"].webhooks.forget(session, current_workspace_id())
    return None, 204


@endpoint(
    bp,
    "/<endpoint_id>/deliveries",
    method="GET",
    responses={200: DeliveryList},
    summary="The delivery log of a webhook, newest first",
)
def list_deliveries(endpoint_id: EndpointId) -> DeliveryList:
    items = service.list_deliveries(
        session=db_session(), workspace_id=current_workspace_id(), endpoint_id=endpoint_id, limit=100
    )
    return DeliveryList(items=[DeliveryOut.model_validate(item) for item in items])
