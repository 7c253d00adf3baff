"""The workspace's users (admins): add one (its one-time password shown once), change a role,
disable (which ends that user's sessions) or enable. The users service audits each change."""

from __future__ import annotations

from flask import g, request
from werkzeug.wrappers import Response

from ccm.access import USER_ROLES, Permission
from ccm.users.service import change_role, create_user, get_user, list_users, set_disabled
from ccm.web.admin_forms import Outcome, run_write
from ccm.web.pages import db, page
from ccm.web.security import actor, requires


def _page(outcome: Outcome) -> Response:
    with db().unit_of_work() as session:
        rows = list_users(session=session, workspace_id=g.user.workspace_id)
    roles = [role.value for role in USER_ROLES]
    return page("admin/users.html", outcome.status, users=rows, roles=roles, **outcome.shown())


@requires(Permission.ADMIN)
def index() -> Response:
    return _page(Outcome())


@requires(Permission.ADMIN)
def create() -> Response:
    outcome = Outcome()
    made = run_write(
        outcome,
        lambda session: create_user(
            session=session,
            workspace_id=g.user.workspace_id,
            email=request.form.get("email", "")[:320],
            role=request.form.get("role", ""),
            actor=actor(),
        ),
    )
    if made is not None:
        user, one_time = made
        outcome.notices.append(f"Created {user.email}; one-time password (shown once): {one_time}")
    return _page(outcome)


@requires(Permission.ADMIN)
def role(user_id: str) -> Response:
    outcome = Outcome()
    changed = run_write(
        outcome,
        lambda session: change_role(
            session=session,
            user=get_user(session=session, workspace_id=g.user.workspace_id, user_id=user_id),
            role=request.form.get("role", ""),
            actor=actor(),
        ),
    )
    if changed is not None:
        outcome.notices.append(f"{changed.email} is now {changed.role}.")
    return _page(outcome)


@requires(Permission.ADMIN)
def disable(user_id: str) -> Response:
    return _set_disabled(user_id, disabled=True)


@requires(Permission.ADMIN)
def enable(user_id: str) -> Response:
    return _set_disabled(user_id, disabled=False)


def _set_disabled(user_id: str, *, disabled: bool) -> Response:
    outcome = Outcome()
    changed = run_write(
        outcome,
        lambda session: set_disabled(
            session=session,
            user=get_user(session=session, workspace_id=g.user.workspace_id, user_id=user_id),
            disabled=disabled,
            actor=actor(),
        ),
    )
    if changed is not None:
        outcome.notices.append(f"{changed.email} is {'disabled: their sessions ended' if disabled else 'enabled'}.")
    return _page(outcome)
