"""``ccm api-keys …``: create, list and revoke the keys systems call the API with.

The group is registered by :mod:`ccm.cli`, which puts a function opening the database's unit of work
in ``ctx.obj`` (as for ``ccm users``: this module needs nothing from the entry point)."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager

import click
from sqlalchemy import select
from sqlalchemy.orm import Session

from ccm.auth.models import ApiKeyRole
from ccm.auth.service import create_api_key, list_api_keys, revoke_by_id_or_prefix
from ccm.errors import CCMError
from ccm.workspaces.models import Workspace
from ccm.workspaces.service import get_or_create_workspace

UnitOfWork = Callable[[], AbstractContextManager[Session]]
DEFAULT_WORKSPACE = "default"


@click.group("api-keys")
def api_keys() -> None:
    """API keys: admin keys may also manage keys through the API; standard keys may not."""


@api_keys.command("create")
@click.option("--workspace", default=DEFAULT_WORKSPACE, show_default=True, help="created if it does not exist")
@click.option("--name", default="", help="a label for the key")
@click.option(
    "--role",
    type=click.Choice(["admin", "standard", "marketer", "agent", "viewer", "write"]),
    default="admin",
    show_default=True,
    help="standard: everything but admin things; marketer, agent, viewer: as for users; write: only event ingestion",
)
@click.pass_obj
def create_key(unit_of_work: UnitOfWork, workspace: str, name: str, role: str) -> None:
    """Create an API key; it is printed once, alone on the last line."""
    with unit_of_work() as session:
        ws, created = get_or_create_workspace(session=session, name=workspace)
        _, token = create_api_key(session=session, workspace_id=ws.id, name=name, role=ApiKeyRole(role))
    click.echo(
        f"{'created workspace' if created else 'workspace'} {workspace} ({ws.id}); new {role} API key:", err=True
    )
    click.echo(token)


@api_keys.command("list")
@click.option("--workspace", default=None, help="only this workspace's keys (default: every workspace's)")
@click.pass_obj
def list_keys(unit_of_work: UnitOfWork, workspace: str | None) -> None:
    """List the keys not revoked: id, prefix, role, when created, workspace and name."""
    with unit_of_work() as session:
        names = {row.id: row.name for row in session.execute(select(Workspace.id, Workspace.name))}
        workspace_id = next((id_ for id_, name in names.items() if name == workspace), None)
        if workspace is not None and workspace_id is None:
            raise click.ClickException(f"no workspace named {workspace!r}")
        keys = list_api_keys(session=session, workspace_id=workspace_id)
        click.echo(f"{'ID':30}  {'PREFIX':12}  {'ROLE':8}  {'CREATED':16}  {'WORKSPACE':12}  NAME")
        for key in keys:
            click.echo(
                f"{key.id:30}  {key.prefix:12}  {key.role:8}  {key.created_at:%Y-%m-%d %H:%M}  "
                f"{names.get(key.workspace_id, '?'):12}  {key.name}"
            )


@api_keys.command("revoke")
@click.argument("key")
@click.pass_obj
def revoke_key(unit_of_work: UnitOfWork, key: str) -> None:
    """Revoke the key with this id or prefix (as `list` shows them): it stops working at once."""
    try:
        with unit_of_work() as session:
            revoked = revoke_by_id_or_prefix(session=session, ref=key)
            click.echo(f"revoked {revoked.id} ({revoked.prefix}…, {revoked.role})")
    except CCMError as exc:
        raise click.ClickException(exc.message) from None
