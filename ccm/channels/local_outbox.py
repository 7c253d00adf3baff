"""The local outbox: where messages go when no real provider is configured (the embedded default).

For email it stores the exact bytes an SMTP server would have received, so what you see in
``GET /v1/outbox`` is what a customer's mail client would get. It is a provider like any other:
the delivery core calls its commit point, then it writes the message in its own transaction.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from typing import ClassVar, Literal

from pydantic import BaseModel, ConfigDict
from sqlalchemy.exc import SQLAlchemyError

from ccm.channels.addresses import normalize_email_address
from ccm.channels.base import (
    BatchCommitPoint,
    CommitPoint,
    DeliveryError,
    FinalWrites,
    NoCallbacks,
    OutboundMessage,
    ProviderLimits,
    Receipt,
    TransientDeliveryError,
)
from ccm.channels.models import OutboxItem
from ccm.db import Database


class LocalOutboxConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    channel: Literal["email", "sms", "chat"] = "email"


class LocalOutboxProvider(NoCallbacks):
    """Delivers into the ``outbox_item`` table of CCM's own database."""

    name: ClassVar[str] = "local_outbox"
    handle_key: str | None = None  # any chat handle will do
    limits = ProviderLimits()

    def __init__(self, config: LocalOutboxConfig, *, db: Database) -> None:
        self.channel = config.channel
        self._db = db

    def __repr__(self) -> str:
        return f"LocalOutboxProvider(channel={self.channel!r})"

    def normalize_address(self, address: str) -> str:
        return normalize_email_address(address) if self.channel == "email" else address

    def check(self) -> None:
        """Nothing to check: the outbox is a table in CCM's own database."""

    def send(self, message: OutboundMessage, *, commit_point: CommitPoint) -> Receipt:
        """Store the message, after ``commit_point``.

        Raises:
          TransientDeliveryError: the write failed (``may_have_been_sent``: retried on the outbox
            only). The write is one transaction: a failed one stored nothing.
        """
        commit_point()
        stored = self._store([message])[message.message_id]
        if isinstance(stored, DeliveryError):
            raise stored
        return stored

    def send_batch(
        self, messages: Sequence[OutboundMessage], *, commit_point: BatchCommitPoint
    ) -> dict[str, Receipt | DeliveryError]:
        """Store every message the commit point still owns, in one transaction."""
        owned = set(commit_point([message.message_id for message in messages], _nothing_to_release))
        return self._store([message for message in messages if message.message_id in owned])

    def _store(self, messages: Sequence[OutboundMessage]) -> dict[str, Receipt | DeliveryError]:
        try:
            with self._db.unit_of_work() as session:
                items = [
                    OutboxItem(
                        workspace_id=message.workspace_id,
                        message_id=message.message_id,
                        channel=message.channel,
                        to_address=message.to,
                        raw=message.raw.decode("utf-8") if message.raw else message.body,
                    )
                    for message in messages
                ]
                session.add_all(items)
                session.flush()
                receipts: dict[str, Receipt | DeliveryError] = {
                    message.message_id: Receipt(provider_message_id=item.id, status="delivered")
                    for message, item in zip(messages, items, strict=True)
                }
        except SQLAlchemyError as exc:
            failed = TransientDeliveryError(
                f"the outbox write failed: {type(exc).__name__}", reason="outbox_unavailable", may_have_been_sent=True
            )
            return {message.message_id: failed for message in messages}
        return receipts

    def close(self) -> None:
        pass


def _nothing_to_release(ids: Collection[str]) -> FinalWrites:
    """The outbox stores the messages after the commit point: there is nothing to write early."""
    return FinalWrites([], lambda failed: None)
