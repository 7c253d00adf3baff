"""The local outbox: where messages go when no real provider is configured (the embedded default).

For email it stores the exact bytes an SMTP server would have received, so what you see in
``GET /v1/outbox`` is what a customer's mail client would get.
"""

from __future__ import annotations

from typing import ClassVar

from sqlalchemy.orm import Session

from ccm.channels.base import CommitPoint, OutboundMessage, Receipt
from ccm.channels.models import OutboxItem


class LocalOutboxProvider:
    name: ClassVar[str] = "local_outbox"
    channel: ClassVar[str] = "email"
    in_transaction: ClassVar[bool] = True

    def send(self, message: OutboundMessage, *, commit_point: CommitPoint, session: Session) -> Receipt:
        raw = message.raw.decode("utf-8") if message.raw else message.body
        item = OutboxItem(workspace_id=message.workspace_id, message_id=message.message_id,
                          channel=message.channel, to_address=message.to, raw=raw)
        session.add(item)
        session.flush()
        return Receipt(provider_message_id=item.id, status="delivered")

    def close(self) -> None:
        pass
