"""The development outbox: what the local outbox "sent" (the embedded default's email, SMS and
chat), as ``GET /v1/outbox`` lists it. An email is shown as received, its HTML in a sandboxed
iframe (no scripts, no same-origin: it cannot reach this page or its cookies), with its headers;
an SMS with its encoding and segment count; a chat payload as pretty JSON."""

from __future__ import annotations

import json
from dataclasses import dataclass
from email import message_from_string, policy
from email.message import EmailMessage
from typing import Any, cast
from urllib.parse import urlencode

from flask import current_app, g, request
from pydantic import ValidationError
from werkzeug.wrappers import Response

from ccm.access import Permission
from ccm.channels.models import OutboxItem
from ccm.channels.schemas import OutboxQuery
from ccm.channels.service import get_outbox_item, list_outbox, outbox_in_use
from ccm.channels.sms import sms_size
from ccm.errors import CCMError
from ccm.http import validation_failed
from ccm.web.pages import db, page, screen
from ccm.web.security import EMAIL_PREVIEW_CSP, requires

bp = screen("outbox", __name__, url_prefix="/outbox")


@dataclass(frozen=True)
class Email:
    headers: list[tuple[str, str]]
    html: str | None
    text: str | None


def parse_email(raw: str) -> Email:
    """The headers and the HTML and plain-text bodies of an RFC 5322 message."""
    message = message_from_string(raw, policy=policy.default)
    html, text = message.get_body(preferencelist=("html",)), message.get_body(preferencelist=("plain",))
    return Email(
        headers=[(name, str(value)) for name, value in message.items()],
        html=cast(EmailMessage, html).get_content() if html is not None else None,
        text=cast(EmailMessage, text).get_content() if text is not None else None,
    )


def pretty_payload(raw: str) -> str:
    """A chat payload indented when it is JSON, else as it is."""
    try:
        return json.dumps(json.loads(raw), indent=2, ensure_ascii=False, sort_keys=True)
    except ValueError:
        return raw


def shown(item: OutboxItem) -> dict[str, Any]:
    """What the page shows of one item, by channel."""
    view: dict[str, Any] = {"item": item}
    if item.channel == "email":
        view["email"] = parse_email(item.raw)
    elif item.channel == "sms":
        view["sms"] = sms_size(item.raw)
    else:
        view["payload"] = pretty_payload(item.raw)
    return view


def in_use() -> bool:
    """The nav shows "Outbox" only where the local outbox is in use."""
    with db().unit_of_work() as session:
        return outbox_in_use(
            session=session,
            workspace_id=g.user.workspace_id,
            default_channels=current_app.extensions["ccm"].settings.local_outbox_channels,
        )


@bp.get("/")
@requires(Permission.VIEW)
def index() -> Response:
    given = {name: request.args[name] for name in ("to", "cursor") if request.args.get(name, "").strip()}
    try:
        query = OutboxQuery.model_validate({**given, "limit": 20})
    except ValidationError as exc:
        error = validation_failed(exc)
        return page("outbox/index.html", error.status, items=[], given=given, next_url=None, notices=[error.message])
    with db().unit_of_work() as session:
        items, cursor = list_outbox(session=session, workspace_id=g.user.workspace_id, page=query, to=query.to)
        views = [shown(item) for item in items]
    next_url = None if cursor is None else request.path + "?" + urlencode({**given, "cursor": cursor})
    return page("outbox/index.html", items=views, given=given, next_url=next_url, in_use=in_use())


@bp.get("/<item_id>")
@requires(Permission.VIEW)
def item(item_id: str) -> Response:
    try:
        with db().unit_of_work() as session:
            view = shown(get_outbox_item(session=session, workspace_id=g.user.workspace_id, item_id=item_id))
    except CCMError as exc:
        return page("outbox/index.html", exc.status, items=[], given={}, next_url=None, notices=[exc.message])
    if "email" in view:
        g.csp = EMAIL_PREVIEW_CSP
    return page("outbox/item.html", **view)
