"""Reply addresses: the ``Reply-To`` CCM gives its email when an inbound domain is configured, and
what a reply's recipient address says when it comes back.

``reply+c-<conversation token>@<domain>`` for a message in a conversation (the token is random),
``reply+m-<message id>.<short MAC>@<domain>`` for any other. Both carry a secret, so a reply to
either is trusted from anyone. Delivery writes them (:mod:`ccm.messages.outbound`) and the inbound
layer reads them: this module imports neither.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from ccm.conversations.inbound_email import reply_address_token
from ccm.conversations.models import Conversation
from ccm.engagement.tracking import LinkSigner


def reply_address(
    session: Session, *, domain: str | None, signer: LinkSigner, message_id: str, conversation_id: str | None
) -> str | None:
    """The Reply-To of a message: its conversation's address, else its own; None without a domain."""
    if not domain:
        return None
    token = (
        session.scalar(select(Conversation.reply_token).where(Conversation.id == conversation_id))
        if conversation_id
        else None
    )
    if token:
        return f"reply+c-{token}@{domain}"
    return f"reply+m-{message_id}.{signer.short_mac({'r': message_id})}@{domain}"


@dataclass(frozen=True)
class ReplyTo:
    """What one of our reply addresses names: a conversation (by token) or a message (by id)."""

    conversation_token: str | None = None
    message_id: str | None = None


def read_reply_address(address: str, *, domain: str | None, signer: LinkSigner) -> ReplyTo | None:
    """What ``address`` names, when it is one of our reply addresses (a message's only when its MAC
    matches); None for any other address. Some MTAs fold the case of addresses: tokens are matched
    whatever their case."""
    kind, _, value = (reply_address_token(address, domain=domain) or "").partition("-") if domain else ("", "", "")
    if kind.lower() == "c":
        return ReplyTo(conversation_token=value.lower())
    if kind.lower() == "m":
        message_id, _, mac = value.partition(".")
        message_id = message_id[:4].lower() + message_id[4:].upper()  # "msg_" + an upper-case ULID
        if signer.short_mac_matches({"r": message_id}, mac):
            return ReplyTo(message_id=message_id)
    return None
