"""The support inbox: conversations by status, one thread with everything sent and received in
it, the one place a conversation's status changes (an agent's choice, or a reply reopening it),
and its assignment to an agent."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from ccm.access import Permission, allows
from ccm.conversations.models import Conversation, ConversationStatus, InboundMessage
from ccm.errors import NotFound, ValidationFailed
from ccm.messages.models import Message
from ccm.pagination import PageQuery, paginate, split_page
from ccm.users.models import User


@dataclass(frozen=True)
class ThreadEntry:
    """One message of a thread: ``out`` (ours) or ``in`` (theirs)."""

    direction: str
    id: str
    at: dt.datetime
    channel: str | None
    body: str | None = None
    subject: str | None = None
    status: str | None = None
    automatic: bool = False
    keyword: str | None = None


def list_conversations(
    *,
    session: Session,
    workspace_id: str,
    page: PageQuery,
    status: str | None = None,
    profile_id: str | None = None,
    assignee_id: str | None = None,
    unassigned: bool = False,
) -> tuple[list[Conversation], str | None]:
    """The workspace's conversations, newest first; only those in ``status``, with the profile or
    assigned to the user, when given, or assigned to no one when ``unassigned``.

    Raises:
      ValidationFailed: an unknown status.
    """
    statement = select(Conversation).where(Conversation.workspace_id == workspace_id)
    if status is not None:
        statement = statement.where(Conversation.status == _status(status))
    if profile_id is not None:
        statement = statement.where(Conversation.profile_id == profile_id)
    if assignee_id is not None:
        statement = statement.where(Conversation.assignee_id == assignee_id)
    if unassigned:
        statement = statement.where(Conversation.assignee_id.is_(None))
    rows = session.scalars(paginate(statement, Conversation.id, page)).all()
    items, cursor = split_page(rows, page, lambda conversation: conversation.id)
    return list(items), cursor


def get_conversation(*, session: Session, workspace_id: str, conversation_id: str) -> Conversation:
    """Raises NotFound: the workspace has no such conversation."""
    conversation = session.scalar(
        select(Conversation).where(Conversation.id == conversation_id, Conversation.workspace_id == workspace_id)
    )
    if conversation is None:
        raise NotFound(f"no conversation {conversation_id!r}", field="id")
    return conversation


def thread(*, session: Session, conversation: Conversation) -> list[ThreadEntry]:
    """Everything sent and received in the conversation, oldest first (the message whose reply
    opened it included)."""
    sent = session.scalars(
        select(Message).where(
            or_(Message.conversation_id == conversation.id, Message.id == conversation.origin_message_id),
            Message.workspace_id == conversation.workspace_id,
        )
    )
    received = session.scalars(select(InboundMessage).where(InboundMessage.conversation_id == conversation.id))
    entries = [ThreadEntry("out", m.id, m.created_at, m.channel, body=_text_of(m.data), status=m.status) for m in sent]
    entries += [
        ThreadEntry("in", m.id, m.received_at, m.channel, m.body, m.subject, automatic=m.automatic, keyword=m.keyword)
        for m in received
    ]
    return sorted(entries, key=lambda entry: (entry.at, entry.id))


def _text_of(data: dict[str, Any] | None) -> str | None:
    text = (data or {}).get("text")
    return text if isinstance(text, str) else None


def set_status(*, session: Session, conversation: Conversation, status: str) -> None:
    """An agent marks the thread open, pending (waiting on the person) or resolved.

    Raises:
      ValidationFailed: an unknown status.
    """
    conversation.status = _status(status)
    session.flush()


def assignable(*, session: Session, workspace_id: str) -> list[User]:
    """The workspace's users who may answer conversations (their role has ``conversations.write``)."""
    users = session.scalars(
        select(User).where(User.workspace_id == workspace_id, User.disabled_at.is_(None)).order_by(User.email_key)
    )
    return [user for user in users if allows(user.role, Permission.CONVERSATIONS)]


def assign(*, session: Session, conversation: Conversation, assignee_id: str | None) -> None:
    """Give the conversation to one of the workspace's agents (or admins), or to nobody (None).

    Raises:
      ValidationFailed: the user is not one of :func:`assignable`.
    """
    if assignee_id is not None:
        ids = {user.id for user in assignable(session=session, workspace_id=conversation.workspace_id)}
        if assignee_id not in ids:
            raise ValidationFailed("assignee: not a user of this workspace who answers conversations", field="assignee")
    conversation.assignee_id = assignee_id
    session.flush()


def reopen(conversation: Conversation) -> None:
    """The person wrote: the thread needs an answer again, whatever it was."""
    conversation.status = ConversationStatus.OPEN


def _status(status: str) -> ConversationStatus:
    try:
        return ConversationStatus(status)
    except ValueError:
        choices = ", ".join(ConversationStatus)
        raise ValidationFailed(f"status: must be one of {choices}", field="status") from None
