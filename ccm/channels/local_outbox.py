"""The local outbox: where messages go when no real provider is configured (the embedded default).

For email it stores the exact bytes an SMTP server would have received, so what you see in
``GET /v1/outbox`` is what a customer's mail client would get.
"""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import BaseModel, ConfigDict
from sqlalchemy.orm import Session

from ccm.channels.addresses import normalize_email_address
from ccm.channels.base import CommitPoint, NoCallbacks, OutboundMessage, ProviderLimits, Receipt
from ccm.channels.models import OutboxItem


class LocalOutboxConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    channel: Literal["email", "sms", "chat"] = "email"


class LocalOutboxProvider(NoCallbacks):
    """Delivers into the ``outbox_item`` table, in the delivery's own transaction."""

    name: ClassVar[str] = "local_outbox"
    config_model: ClassVar[type[BaseModel]] = LocalOutboxConfig
    channels: ClassVar[tuple[str, ...]] = ("email", "sms", "chat")
    in_transaction: ClassVar[bool] = True
    callbacks: ClassVar[frozenset[str]] = frozenset()  # a table has nothing to report
    handle_key: ClassVar[str | None] = None  # any chat handle will do
    limits = ProviderLimits()

    def __init__(self, config: LocalOutboxConfig | None = None) -> None:
        self.channel = (config or LocalOutboxConfig()).channel

    def __repr__(self) -> str:
        return f"LocalOutboxProvider(channel={self.channel!r})"

    def normalize_address(self, address: str) -> str:
        return normalize_email_address(address) if self.channel == "email" else address

    def check(self) -> None:
        """Nothing to check: the outbox is a table in CCM's own database."""

    def send(self, message: OutboundMessage, *, commit_point: CommitPoint, session: Session) -> Receipt:
        raw = message.raw.decode("utf-8") if message.raw else message.body
        item = OutboxItem(
            workspace_id=message.workspace_id,
            message_id=message.message_id,
            channel=message.channel,
            to_address=message.to,
            raw=raw,
        )
        session.add(item)
        session.flush()
        return Receipt(provider_message_id=item.id, status="delivered")

    def close(self) -> None:
        pass
