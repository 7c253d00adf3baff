"""``ccm users …``: create, list, disable and enable the people who log in to the web app, and
change their role; each change is in the audit log, by ``cli:<the operator's login name>``.

The group is registered by :mod:`ccm.cli`, which puts a function opening the database's unit of work
in ``ctx.obj`` (so this module needs nothing from the entry point and makes no import cycle)."""

from __future__ import annotations

import getpass
import sys
from collections.abc import Callable
from contextlib import AbstractContextManager

import click
from sqlalchemy import select
from sqlalchemy.orm import Session

from ccm.access import USER_ROLES
from ccm.errors import CCMError
from ccm.users.service import change_role, create_user, find_user, list_users, set_disabled
from ccm.workspaces.models import Workspace
from ccm.workspaces.service import get_or_create_workspace

UnitOfWork = Callable[[], AbstractContextManager[Session]]


@click.group("users")
def users() -> None:
    """Users of the web app: each has one role (admin, marketer, agent, viewer) in one workspace."""


@users.command("create")
@click.option("--workspace", default="default", show_default=True, help="created if it does not exist")
@click.option("--email", required=True, help="the address the user logs in with (unique, whatever the case)")
@click.option("--role", type=click.Choice([role.value for role in USER_ROLES]), required=True)
@click.option("--password-stdin", is_flag=True, help="read the password from stdin instead of generating one")
@click.pass_obj
def create(unit_of_work: UnitOfWork, workspace: str, email: str, role: str, password_stdin: bool) -> None:
    """Create a user; a generated one-time password is printed alone on the last line, and must be
    changed at first login."""
    password = sys.stdin.readline().rstrip("\r\n") if password_stdin else None
    try:
        with unit_of_work() as session:
            ws, _ = get_or_create_workspace(session=session, name=workspace)
            user, one_time = create_user(
                session=session, workspace_id=ws.id, email=email, role=role, password=password, actor=_actor()
            )
    except CCMError as exc:
        raise click.ClickException(exc.message) from None
    click.echo(f"created {user.role} {user.email} ({user.id}) in workspace {workspace}", err=one_time is not None)
    if one_time is not None:
        click.echo(one_time)


def _actor() -> str:
    """Who the audit log says acted: the operator's login name on this host."""
    try:
        return f"cli:{getpass.getuser()}"
    except OSError:  # no login name (a container without USER nor a passwd entry)
        return "cli:?"


def _workspace_id(session: Session, name: str) -> str:
    found = session.scalar(select(Workspace.id).where(Workspace.name == name))
    if found is None:
        raise click.ClickException(f"no workspace named {name!r}")
    return found


@users.command("disable")
@click.option("--workspace", default="default", show_default=True)
@click.option("--email", required=True)
@click.pass_obj
def disable(unit_of_work: UnitOfWork, workspace: str, email: str) -> None:
    """Disable a user: they cannot log in, and their open sessions end now."""
    _set_disabled(unit_of_work, workspace, email, disabled=True)


@users.command("enable")
@click.option("--workspace", default="default", show_default=True)
@click.option("--email", required=True)
@click.pass_obj
def enable(unit_of_work: UnitOfWork, workspace: str, email: str) -> None:
    """Let a disabled user log in again."""
    _set_disabled(unit_of_work, workspace, email, disabled=False)


def _set_disabled(unit_of_work: UnitOfWork, workspace: str, email: str, *, disabled: bool) -> None:
    try:
        with unit_of_work() as session:
            user = find_user(session=session, workspace_id=_workspace_id(session, workspace), email=email)
            set_disabled(session=session, user=user, disabled=disabled, actor=_actor())
    except CCMError as exc:
        raise click.ClickException(exc.message) from None
    click.echo(f"{'disabled' if disabled else 'enabled'} {user.email} in workspace {workspace}")


@users.command("role")
@click.option("--workspace", default="default", show_default=True)
@click.option("--email", required=True)
@click.option("--role", type=click.Choice([role.value for role in USER_ROLES]), required=True)
@click.pass_obj
def role(unit_of_work: UnitOfWork, workspace: str, email: str, role: str) -> None:
    """Give a user another role (effective on their next page)."""
    try:
        with unit_of_work() as session:
            user = find_user(session=session, workspace_id=_workspace_id(session, workspace), email=email)
            change_role(session=session, user=user, role=role, actor=_actor())
    except CCMError as exc:
        raise click.ClickException(exc.message) from None
    click.echo(f"{user.email} is now {user.role} in workspace {workspace}")


@users.command("list")
@click.option("--workspace", default=None, help="only this workspace's users (default: every workspace's)")
@click.pass_obj
def list_(unit_of_work: UnitOfWork, workspace: str | None) -> None:
    """List the users: email, role, workspace, when created, and whether disabled or to change password."""
    with unit_of_work() as session:
        names = {row.id: row.name for row in session.execute(select(Workspace.id, Workspace.name))}
        workspace_id = next((id_ for id_, name in names.items() if name == workspace), None)
        if workspace is not None and workspace_id is None:
            raise click.ClickException(f"no workspace named {workspace!r}")
        click.echo(f"{'EMAIL':40}  {'ROLE':8}  {'WORKSPACE':12}  {'CREATED':16}  STATE")
        for user in list_users(session=session, workspace_id=workspace_id):
            state = "disabled" if user.disabled_at else "must change password" if user.must_change_password else ""
            click.echo(
                f"{user.email:40}  {user.role:8}  {names.get(user.workspace_id, '?'):12}  "
                f"{user.created_at:%Y-%m-%d %H:%M}  {state}"
            )
