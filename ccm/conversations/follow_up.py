"""An agent's follow-up in a conversation: on the thread's channel, with its reply address, and on
email threaded in the person's mail client (``In-Reply-To``, ``References``, ``Re: <subject>``)."""

from __future__ import annotations

import re
from email.utils import parseaddr
from typing import TYPE_CHECKING, Any

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from ccm.channels.email_mime import message_id_for
from ccm.conversations.models import Conversation, InboundMessage
from ccm.db import utcnow
from ccm.errors import Conflict, NotFound
from ccm.message_templates.schemas import EmailVariant, TemplateIn
from ccm.message_templates.service import ensure_internal_template, is_internal
from ccm.messages.models import Message, MessageStatus
from ccm.messages.service import SYSTEM_TEMPLATE, send_system_text, send_to_profile
from ccm.validation import check_header_value
from ccm.workspaces.models import Workspace

if TYPE_CHECKING:
    from ccm.runtime import Runtime


# Plain-text email follow-ups have their own template: its subject is given (the thread's "Re: …"),
# where ccm.system-text's is the start of the text. Published versions are immutable, so changing
# this definition needs a new key.
_FOLLOW_UP = TemplateIn(
    key="ccm.email-follow-up",
    category="transactional",
    variables=["text", "subject"],
    description="CCM's own: an agent's plain-text email follow-up in a conversation",
    variants=[EmailVariant(channel="email", subject="{{ subject }}", text="{{ text }}", html="<p>{{ text }}</p>")],
)
_REPLY_PREFIX = re.compile(r"^(\s*(re|aw|sv|antw)\s*(\[\d+\])?\s*:)+\s*", re.IGNORECASE)
_CONTROL = re.compile(r"[\x00-\x1f\x7f\x85\u2028\u2029]+")
_REFERENCE = re.compile(r"[\x21-\x3b\x3d\x3f-\x7e]+@[\x21-\x3b\x3d\x3f-\x7e]+")
_MAX_REFERENCES = 10


def send_in_conversation(
    *,
    session: Session,
    runtime: Runtime,
    conversation: Conversation,
    template: str | None,
    data: dict[str, Any],
    text: str | None,
) -> str:
    """A support agent's follow-up in a thread: on the thread's channel, with its reply address,
    through the same checks as every message (a template, or plain ``text``). On email it threads
    in the person's mail client: ``In-Reply-To`` the thread's last message, ``References`` the
    chain, and — for plain text — ``Re: <the thread's subject>``.

    Raises:
      ValidationFailed: the person was erased (or the send itself does not check).
      NotFound: the template is not a published one of the workspace's own (CCM's internal
        templates are not there for the asking, as if absent).
    """
    if conversation.profile_id is None:
        raise Conflict("id: the person in this conversation was erased", field="id")
    if template is not None and is_internal(template):
        raise NotFound(f"template: no published template with key {template!r}", field="template")
    common: dict[str, Any] = dict(
        session=session,
        runtime=runtime,
        workspace_id=conversation.workspace_id,
        profile_id=conversation.profile_id,
        source="support",
        conversation_id=conversation.id,
    )
    if conversation.channel == "email":
        message_id = _send_email_follow_up(conversation, template, data, text, common)
    elif text is not None:
        message_id = send_system_text(channel=conversation.channel, text=text, **common)
    else:
        message_id = send_to_profile(
            template=template or SYSTEM_TEMPLATE, data=data, channel=conversation.channel, **common
        )
    conversation.last_message_at = utcnow()
    return message_id


def _send_email_follow_up(
    conversation: Conversation, template: str | None, data: dict[str, Any], text: str | None, common: dict[str, Any]
) -> str:
    session, runtime = common["session"], common["runtime"]
    if text is not None:
        ensure_internal_template(
            session=session, sandbox=runtime.sandbox, workspace_id=conversation.workspace_id, data=_FOLLOW_UP
        )
        message_id = send_to_profile(
            template=_FOLLOW_UP.key,
            channel="email",
            track=False,
            data={"text": text, "subject": reply_subject(conversation.subject, text)},
            **common,
        )
    else:
        message_id = send_to_profile(template=template or SYSTEM_TEMPLATE, data=data, channel="email", **common)
    message = session.get(Message, message_id)
    assert message is not None
    message.headers = _thread_headers(session, runtime, conversation)
    return message_id


def reply_subject(subject: str | None, text: str) -> str:
    """``Re: <subject>`` without piling up prefixes (``Re: RE: Aw:`` → one ``Re:``); the start of
    ``text`` when the thread has no subject."""
    base = _REPLY_PREFIX.sub("", " ".join(_CONTROL.sub(" ", subject or "").split()))
    return f"Re: {base}" if base else " ".join(text.split())[:60]


def _thread_headers(session: Session, runtime: Runtime, conversation: Conversation) -> dict[str, str] | None:
    """``In-Reply-To`` (the thread's last email, ours or theirs) and ``References`` (the chain:
    the first and the latest ones when it is long); None when nothing in the thread has an id."""
    mail_from = session.scalar(select(Workspace.mail_from).where(Workspace.id == conversation.workspace_id))
    envelope_from = parseaddr(mail_from or runtime.settings.mail_from)[1]
    ours = session.execute(
        select(Message.id, Message.created_at).where(
            or_(Message.conversation_id == conversation.id, Message.id == conversation.origin_message_id),
            Message.workspace_id == conversation.workspace_id,
            Message.channel == "email",
            Message.status.in_((MessageStatus.SENT, MessageStatus.DELIVERED)),
        )
    )
    theirs = session.execute(
        select(InboundMessage.provider_message_id, InboundMessage.received_at).where(
            InboundMessage.conversation_id == conversation.id, InboundMessage.channel == "email"
        )
    )
    dated = [(at, message_id_for(message_id, envelope_from)) for message_id, at in ours]
    dated += [
        (at, f"<{reference}>") for reference, at in theirs if _REFERENCE.fullmatch(reference) and "=?" not in reference
    ]  # an encoded-word lookalike would be re-encoded, breaking the id
    chain = list(dict.fromkeys(reference for _, reference in sorted(dated)))
    if not chain:
        return None
    if len(chain) > _MAX_REFERENCES:
        chain = chain[:1] + chain[-(_MAX_REFERENCES - 1) :]
    return {"In-Reply-To": check_header_value(chain[-1]), "References": check_header_value(" ".join(chain))}
