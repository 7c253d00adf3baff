"""Customers: find a person, read their profile (addresses, consent, engagement, the whole
timeline), and send them a follow-up with the warnings delivery would raise shown first.

Reads run in read-only sessions, the send check among them: it cannot write. The send is
guarded by an idempotency key the form carries, so a double click queues one message."""

from __future__ import annotations

import re
from typing import Any

from flask import current_app, g, redirect, request, url_for
from markupsafe import escape
from werkzeug.wrappers import Response

from ccm.access import Permission, allows
from ccm.errors import CCMError, ValidationFailed
from ccm.idempotency.service import fingerprint, run_idempotent
from ccm.messages.support import send_from_agent
from ccm.pagination import ID_PATTERN
from ccm.profiles.search import search_profiles
from ccm.web import customer
from ccm.web.pages import db, page, screen
from ccm.web.security import requires

bp = screen("profiles", __name__, url_prefix="/profiles")

PAGE_SIZE = 25


@bp.get("/")
@requires(Permission.VIEW)
def index() -> Response:
    query = request.args.get("q", "")
    try:
        if len(query) > 320:
            raise ValidationFailed("q: at most 320 characters", field="q")
        paging = customer.page_query(request.args.get("cursor"), PAGE_SIZE)
        with db().read_only() as session:
            rows, cursor = search_profiles(session=session, workspace_id=g.user.workspace_id, query=query, page=paging)
            found = [customer.summary(profile) for profile in rows]
    except CCMError as exc:
        return page("profiles/index.html", exc.status, q=query, found=[], cursor=None, notices=[exc.message])
    return page("profiles/index.html", q=query, found=found, cursor=cursor)


@bp.get("/<profile_id>")
@requires(Permission.VIEW)
def show(profile_id: str) -> Response:
    sent = request.args.get("sent", "")
    queued = f"Message {sent} queued; it shows on the timeline as it goes out."
    notices = [queued] if re.fullmatch(ID_PATTERN, sent) else []
    return _profile_page(profile_id, request.args, notices=notices)


@bp.get("/<profile_id>/compose")
@requires(Permission.VIEW)
def compose(profile_id: str) -> Response:
    """The compose form again for the template and channel chosen, with their warnings (htmx)."""
    try:
        with db().read_only() as session:
            form = customer.compose_form(session, _runtime(), g.user.workspace_id, profile_id, request.args)
    except CCMError as exc:
        return Response(f'<p class="notice" role="alert">{escape(exc.message)}</p>', exc.status)
    return page("profiles/_compose.html", profile_id=profile_id, compose=form, key=customer.new_key())


@bp.post("/<profile_id>/messages")
@requires(Permission.SEND)
def send(profile_id: str) -> Response:
    form = request.form
    try:
        with db().unit_of_work() as session:
            result = run_idempotent(
                session=session,
                workspace_id=g.user.workspace_id,
                key=customer.idempotency_key(g.user.user_id, form.get("idempotency_key", "")),
                request_hash=fingerprint("POST", request.path, _form_bytes(form)),
                ttl=_runtime().settings.idempotency_ttl,
                work=lambda: ({"id": _send(session, profile_id, form)}, 202),
            )
    except CCMError as exc:
        return _profile_page(profile_id, form, status=exc.status, notices=[exc.message])
    return redirect(url_for("web_profiles.show", profile_id=profile_id, sent=result.body["id"]), 303)


def _send(session: Any, profile_id: str, form: Any) -> str:
    customer.profile_in(session, g.user.workspace_id, profile_id)
    template = form.get("template") or None
    return send_from_agent(
        session=session,
        runtime=_runtime(),
        workspace_id=g.user.workspace_id,
        profile_id=profile_id,
        template=template,
        data=customer.variables_of(form),
        text=None if template else form.get("text", ""),
        channel=form.get("channel") or None,
    )


def _profile_page(profile_id: str, args: Any, *, status: int = 200, notices: list[str] | None = None) -> Response:
    runtime, workspace_id = _runtime(), g.user.workspace_id
    try:
        with db().read_only() as session:
            context = customer.profile_page(session, runtime, workspace_id, profile_id, args, page_size=PAGE_SIZE)
    except CCMError as exc:
        if status != 200 and args:  # a refused form: its own choice (a template) may be what was wrong
            return _profile_page(profile_id, {}, status=status, notices=notices)
        return page("profiles/missing.html", exc.status, notices=[exc.message])  # a bad cursor: say which
    can_send = allows(g.user.role, Permission.SEND)
    context.update(key=customer.new_key(), can_send=can_send, notices=notices or [])
    return page("profiles/show.html", status, **context)


def _form_bytes(form: Any) -> bytes:
    """What makes two posts the same send: every field but the CSRF token, in order."""
    fields = sorted((name, value) for name, value in form.items(multi=True) if name != "csrf_token")
    return repr(fields).encode()


def _runtime() -> Any:
    return current_app.extensions["ccm"]
