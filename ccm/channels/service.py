"""Reading the local outbox, and whether a workspace uses it."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from ccm.channels.models import OutboxItem, ProviderAccount
from ccm.errors import NotFound
from ccm.pagination import PageQuery, paginate, split_page


def list_outbox(
    *, session: Session, workspace_id: str | None, page: PageQuery, message_id: str | None = None, to: str | None = None
) -> tuple[list[OutboxItem], str | None]:
    """Newest first. ``workspace_id=None`` lists every workspace (the CLI, run by the operator)."""
    statement = select(OutboxItem)
    if workspace_id is not None:
        statement = statement.where(OutboxItem.workspace_id == workspace_id)
    if message_id:
        statement = statement.where(OutboxItem.message_id == message_id)
    if to:
        statement = statement.where(OutboxItem.to_address == to)
    rows = session.scalars(paginate(statement, OutboxItem.id, page)).all()
    items, cursor = split_page(rows, page, lambda item: item.id)
    return list(items), cursor


def get_outbox_item(*, session: Session, workspace_id: str, item_id: str) -> OutboxItem:
    item = session.scalar(select(OutboxItem).where(OutboxItem.id == item_id, OutboxItem.workspace_id == workspace_id))
    if item is None:
        raise NotFound(f"id: no outbox item {item_id!r}", field="id")
    return item


def outbox_in_use(*, session: Session, workspace_id: str, default_channels: frozenset[str]) -> bool:
    """Whether messages of the workspace may land in the local outbox: it is the server's default
    for some channel (``CCM_LOCAL_OUTBOX``), or the workspace configured a ``local_outbox`` account,
    or something was delivered there already."""
    if default_channels:
        return True
    account = select(ProviderAccount.id).where(
        ProviderAccount.workspace_id == workspace_id, ProviderAccount.kind == "local_outbox"
    )
    item = select(OutboxItem.id).where(OutboxItem.workspace_id == workspace_id)
    return session.scalar(account.limit(1)) is not None or session.scalar(item.limit(1)) is not None
