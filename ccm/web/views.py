"""The pages: log in and out, the dashboard and the user's password (the workspace's users are in
:mod:`ccm.web.admin_users`).

Each view validates its form, calls one service and renders; writes go through a unit of work of
their own, so that a page answered with 401 or 429 still keeps what it must (a failed login)."""

from __future__ import annotations

from flask import current_app, g, redirect, request, url_for
from sqlalchemy import func, select
from werkzeug.wrappers import Response

from ccm.access import Permission
from ccm.db import utcnow
from ccm.errors import CCMError
from ccm.messages.day_counts import VIEW_GRACE
from ccm.messages.overview import DAYS, read_overview
from ccm.profiles.models import Profile
from ccm.users import throttle
from ccm.users.service import change_password, check_password, revoke_session, start_session
from ccm.web.dashboard import dashboard_charts
from ccm.web.pages import db, page, screen
from ccm.web.security import COOKIE, requires

bp = screen("web", __name__, template_folder="templates", static_folder="static", static_url_path="/assets")


@bp.get("/login")
def login_form() -> Response:
    return page("login.html", email="", notices=[])


@bp.post("/login")
def login() -> Response:
    email, password = request.form.get("email", "")[:320], request.form.get("password", "")[:1000]
    settings, ip = current_app.extensions["ccm"].settings, request.remote_addr or "?"
    limits = {"max_failures": settings.login_max_failures, "window": settings.login_window}
    with db().unit_of_work() as session:
        wait = throttle.retry_after(session=session, email=email, ip=ip, **limits)
        user = None if wait else check_password(session=session, email=email, password=password)
        if user is None and wait is None:
            throttle.record_failure(session=session, email=email, ip=ip, window=settings.login_window)
        if user is not None:
            throttle.clear_failures(session=session, email=email)
            token = start_session(session=session, user_id=user.id, hours=settings.session_hours)
    if wait:
        notice = f"Too many failed logins; try again in {wait} seconds."
        return page("login.html", 429, {"Retry-After": str(wait)}, email=email, notices=[notice])
    if user is None:
        return page("login.html", 401, email=email, notices=["Wrong email or password."])
    response = redirect(_safe_next(request.args.get("next")))
    response.set_cookie(
        COOKIE,
        token,
        max_age=int(settings.session_hours * 3600),
        httponly=True,
        samesite="Lax",
        secure=request.is_secure,
    )
    return response


def _safe_next(target: str | None) -> str:
    """Only a path on this site: ``//evil.example`` and ``https://…`` would be an open redirect."""
    if target and target.startswith("/") and not target.startswith("//") and "\\" not in target:
        return target
    return url_for("web.dashboard")


@bp.post("/logout")
def logout() -> Response:
    if g.user is not None:
        with db().unit_of_work() as session:
            revoke_session(session=session, session_id=g.user.session_id)
    response = redirect(url_for("web.login_form"))
    response.delete_cookie(COOKIE)
    return response


@bp.get("/")
@requires(Permission.VIEW)
def dashboard() -> Response:
    workspace_id, now = g.user.workspace_id, utcnow()
    with db().read_only() as session:
        profiles = session.scalar(select(func.count()).select_from(Profile).where(Profile.workspace_id == workspace_id))
    overview = read_overview(db(), workspace_id, now=now, grace=VIEW_GRACE)
    return page("dashboard.html", profiles=profiles, days=DAYS, **dashboard_charts(overview))


@bp.route("/account/password", methods=["GET", "POST"])
@requires(Permission.VIEW)
def password() -> Response:
    if request.method == "GET":
        return page("password.html", notices=[], forced=g.user.must_change_password)
    try:
        with db().unit_of_work() as session:
            change_password(
                session=session,
                user_id=g.user.user_id,
                current=request.form.get("current_password", ""),
                new=request.form.get("new_password", ""),
                keep_session=g.user.session_id,
            )
    except CCMError as exc:
        return page("password.html", 422, notices=[exc.message], forced=g.user.must_change_password)
    return redirect(url_for("web.dashboard"))
