"""Reading the local outbox."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from ccm.channels.models import OutboxItem
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
