"""What every web request goes through: the session cookie, CSRF, the cross-site check, the CSP,
and the permission a page needs (from :mod:`ccm.access`, the table the API uses for keys)."""

from __future__ import annotations

import functools
import hashlib
import hmac
from collections.abc import Callable
from typing import Any

from flask import current_app, g, redirect, render_template, request, url_for
from werkzeug.wrappers import Response

from ccm.access import Permission, allows
from ccm.crypto import derive_key, secret_keys
from ccm.users.service import SessionUser, session_user

COOKIE = "ccm_session"
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; frame-src 'self'; "
    "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
EMAIL_PREVIEW_CSP = CSP.replace("style-src 'self'", "style-src 'self' 'unsafe-inline'")
"""The CSP of a page showing a stored email in a sandboxed ``srcdoc`` iframe, which inherits its
parent's policy: emails carry inline styles. Scripts stay refused, and so do remote images, so
that looking at an email never fires its open-tracking pixel."""
UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


def _runtime() -> Any:
    return current_app.extensions["ccm"]


def load_user() -> None:
    """``before_request``: the logged-in user (or None) in ``g.user``, read in a short unit of work of
    its own, since noting "last seen" writes and GET requests' sessions are read-only."""
    token = request.cookies.get(COOKIE)
    g.user = None
    if token:
        with _runtime().db.unit_of_work() as session:
            g.user = session_user(session=session, token=token)


def csrf_token(user: SessionUser) -> str:
    """The session's CSRF token: an HMAC of its id under a key derived for this purpose alone, so
    nothing more is stored and no other page or origin can compute it."""
    key = derive_key(secret_keys(_runtime().settings.resolved_secret_key())[0], "web-csrf")
    return hmac.new(key, user.session_id.encode(), hashlib.sha256).hexdigest()


def _cross_site() -> bool:
    if request.headers.get("Sec-Fetch-Site", "same-origin") not in ("same-origin", "none"):
        return True
    origin = request.headers.get("Origin")
    return origin is not None and origin != request.host_url.rstrip("/")


def check_unsafe_request() -> Response | None:
    """``before_request``: an unsafe method from another site, or without this session's CSRF token
    (form field ``csrf_token`` or header ``X-CSRF-Token``, which htmx sends), is refused with 403.
    The login form has no session yet: the cross-site check alone guards it."""
    if request.method not in UNSAFE_METHODS:
        return None
    if _cross_site():
        return forbidden("This request came from another site.")
    if request.endpoint == "web.login":
        return None
    sent = request.form.get("csrf_token") or request.headers.get("X-CSRF-Token") or ""
    if g.user is None or not hmac.compare_digest(sent, csrf_token(g.user)):
        return forbidden("This form has expired or did not come from this site; reload the page and try again.")
    return None


def add_headers(response: Response) -> Response:
    """``after_request``: the strict CSP, unless the view chose its own (a header it set, or
    ``g.csp``: a sandboxed preview frame, an email in the outbox), and no caching of pages that
    show a user's data."""
    response.headers.setdefault("Content-Security-Policy", g.get("csp", CSP))
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "same-origin"
    if request.endpoint != "web.static":  # the assets are versioned files, cacheable
        response.headers["Cache-Control"] = "no-store"
    return response


def forbidden(reason: str) -> Response:
    return Response(render_template("forbidden.html", reason=reason), status=403, mimetype="text/html")


def requires(permission: Permission) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """A page needing ``permission``: to /login when not logged in, to the password form while the
    password must be changed, and a 403 page when the user's role lacks it."""

    def decorate(view: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(view)
        def guarded(*args: Any, **kwargs: Any) -> Any:
            user: SessionUser | None = g.user
            if user is None:
                return redirect(url_for("web.login_form", next=request.path))
            if user.must_change_password and request.endpoint != "web.password":
                return redirect(url_for("web.password"))
            if not allows(user.role, permission):
                return forbidden(f"Your role ({user.role}) does not include {permission.value}.")
            return view(*args, **kwargs)

        return guarded

    return decorate


def actor() -> str:
    """Who services record as acting: ``user:<email>``."""
    return f"user:{g.user.email}"
