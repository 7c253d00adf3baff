"""Deleting a provider account without stranding the messages that wait for it.

Deleting is refused (409) in one case: the account is the last enabled one serving its channel
(no other account, no environment default such as ``CCM_SMTP_URL``) while the workspace still has
messages waiting to be sent (queued, retrying or being sent) that may go out on that channel.
Those messages would all end ``skipped``/``failed`` with ``no_provider`` the moment they are
tried; that is what *disabling* the account does, and disabling is the step that can be undone,
so the admin is asked to take it first (or to add another provider). A disabled account serves
nothing, so deleting it never changes where a message goes.

Whatever happens, a waiting message never breaks: delivery looks its providers up when it runs,
and finding none ends the message with a reason (``no_provider``), or falls back to another
channel. Messages already sent keep their history; a report the provider sends later for them
reaches a callback URL that no longer exists (404), as for a disabled account.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from ccm.channels.accounts import get_account
from ccm.channels.models import ProviderAccount
from ccm.errors import Conflict
from ccm.messages.models import Message, MessageStatus

WAITING = (MessageStatus.QUEUED, MessageStatus.RETRYING, MessageStatus.SENDING)
COUNT_UP_TO = 1000
"""Waiting messages are counted up to this many ("1000 or more"): enough to decide and to say."""


@dataclass(frozen=True)
class Removal:
    """What deleting ``account`` would do: whether its channel is left with no provider, and how
    many messages (up to :data:`COUNT_UP_TO`) wait that could go out on it."""

    account: ProviderAccount
    last_of_channel: bool
    waiting: int

    @property
    def refused(self) -> str | None:
        """Why the deletion is refused, or None when it may go ahead."""
        if not (self.last_of_channel and self.waiting):
            return None
        many = f"{self.waiting}{' or more' if self.waiting >= COUNT_UP_TO else ''}"
        return (
            f"{self.account.label} is the only enabled {self.account.channel} provider and {many} messages "
            f"wait to be sent, which would all end skipped (no_provider): add or enable another "
            f"{self.account.channel} provider, or disable this one first"
        )


def plan_removal(*, session: Session, workspace_id: str, account_id: str, default_channels: Collection[str]) -> Removal:
    """What deleting the account would do (the confirmation page shows it).

    Parameters:
      default_channels: the channels the environment serves when no account does.

    Raises:
      NotFound: the workspace has no such account.
    """
    account = get_account(session=session, workspace_id=workspace_id, account_id=account_id)
    last = account.enabled and account.channel not in default_channels and not _others(session, account)
    return Removal(account, last, _waiting(session, account) if last else 0)


def delete_account(
    *, session: Session, workspace_id: str, account_id: str, default_channels: Collection[str]
) -> ProviderAccount:
    """Delete the account, unless that would strand waiting messages (see the module's docstring).

    Returns:
      The deleted account (detached; for the audit log).

    Raises:
      NotFound: the workspace has no such account.
      Conflict: it is the last enabled provider of its channel and messages wait to be sent.
    """
    removal = plan_removal(
        session=session, workspace_id=workspace_id, account_id=account_id, default_channels=default_channels
    )
    if removal.refused:
        raise Conflict(f"id: {removal.refused}", field="id")
    session.delete(removal.account)
    session.flush()
    return removal.account


def _others(session: Session, account: ProviderAccount) -> bool:
    return (
        session.scalar(
            select(ProviderAccount.id)
            .where(
                ProviderAccount.workspace_id == account.workspace_id,
                ProviderAccount.channel == account.channel,
                ProviderAccount.enabled.is_(True),
                ProviderAccount.id != account.id,
            )
            .limit(1)
        )
        is not None
    )


def _waiting(session: Session, account: ProviderAccount) -> int:
    """Messages not yet sent that may use the account's channel: any, unless pinned to another."""
    waiting = (
        select(Message.id)
        .where(
            Message.workspace_id == account.workspace_id,
            Message.status.in_(WAITING),
            or_(Message.channel_override.is_(None), Message.channel_override == account.channel),
        )
        .order_by(Message.id.desc())  # waiting messages are the recent ones: found early in the index
        .limit(COUNT_UP_TO)
        .subquery()
    )
    return session.scalar(select(func.count()).select_from(waiting)) or 0
