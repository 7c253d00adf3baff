"""Receiving what people send us: SMS and chat replies (provider webhooks), email replies (the
SMTP listener or the raw-MIME endpoint) and bounces; threading them into conversations; and
acting on keywords (STOP, START, HELP).

A reply lands in its thread by, in order: the reply address (``reply+c-<conversation token>`` or
``reply+m-<message id>.<signature>``), the ``In-Reply-To``/``References`` headers naming one of our
``Message-ID``s, and — for SMS and chat, which carry neither — the person's latest open
conversation on that channel. The subject plays no part, so a changed subject does not matter.
"""

from __future__ import annotations

import logging
import secrets
from typing import TYPE_CHECKING, Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from ccm.channels.base import InboundText, StatusEvent
from ccm.conversations import keywords
from ccm.conversations.inbound_email import MalformedEmail, ParsedEmail, parse_email, reply_address_token
from ccm.conversations.inbox import reopen
from ccm.conversations.models import Conversation, ConversationStatus, InboundMessage
from ccm.db import dialect_of, insert_ignoring_conflicts, utcnow
from ccm.engagement.service import record_events
from ccm.engagement.status import apply_message_reports
from ccm.ids import new_id
from ccm.messages.models import Message
from ccm.profiles.models import Profile
from ccm.profiles.service import find_by_address

if TYPE_CHECKING:
    from ccm.channels.models import ProviderAccount
    from ccm.runtime import Runtime

log = logging.getLogger(__name__)
_inbound = InboundMessage.__table__


def receive_texts(runtime: Runtime, session: Session, account: ProviderAccount, texts: list[InboundText]) -> None:
    """SMS and chat messages from people, through one provider account."""
    provider = runtime.providers.instance(account).provider
    for text in texts:
        profile = _profile_for_text(session, account.workspace_id, text, provider)
        keyword = keywords.keyword_of(text.body)
        if keyword is not None:
            # Stored first: a provider retrying the webhook must not get a second confirmation.
            if _store(
                session,
                account.workspace_id,
                None,
                profile,
                text.channel,
                text.from_address,
                text.to_address,
                None,
                text.body,
                text.provider_message_id,
                None,
                keyword=keyword,
            ):
                keywords.handle(runtime, session, account.workspace_id, profile, text)
            continue
        replied_to = _latest_sent(session, profile.id, text.channel)
        conversation = _open_conversation(session, account.workspace_id, profile.id, text.channel, replied_to)
        _record_reply(
            session,
            account.workspace_id,
            conversation,
            profile,
            text.channel,
            text.from_address,
            text.to_address,
            None,
            text.body,
            text.provider_message_id,
            replied_to,
            automatic=False,
        )


def receive_email(
    runtime: Runtime, session: Session, raw: bytes, rcpt_tos: tuple[str, ...] = (), workspace_id: str | None = None
) -> str:
    """An email someone sent us: a bounce report, or a reply. Returns what it was taken for
    (``bounce``, ``reply``, ``unmatched``, ``malformed``). ``workspace_id`` scopes unmatched
    replies (the posting API). Never raises for bad input: the SMTP listener must not make a
    sender retry a message that will never parse."""
    try:
        parsed = parse_email(raw)
    except MalformedEmail as exc:
        log.warning("inbound email dropped: not an email (%s)", exc)
        return "malformed"
    if parsed.dsn is not None:
        _apply_bounce(session, parsed, workspace_id)
        return "bounce"
    message, conversation = _thread_of(runtime, session, parsed, rcpt_tos, workspace_id)
    workspace = conversation.workspace_id if conversation else message.workspace_id if message else workspace_id
    if workspace is None:
        log.warning("inbound email %s matches no conversation or message; dropped", parsed.message_id)
        return "unmatched"
    profile = _profile_for_email(session, workspace, parsed.from_address)
    if conversation is None:
        conversation = _open_conversation(
            session, workspace, profile.id, "email", message.id if message else None, subject=parsed.subject
        )
    _record_reply(
        session,
        workspace,
        conversation,
        profile,
        "email",
        parsed.from_address,
        (parsed.to_addresses or (None,))[0],
        parsed.subject,
        parsed.text,
        parsed.message_id or new_id("mid"),
        message.id if message else None,
        automatic=parsed.auto_submitted,
    )
    return "reply"


def reply_address(runtime: Runtime, *, message_id: str, conversation_token: str | None) -> str | None:
    """The Reply-To for an email, when an inbound domain is configured."""
    domain = runtime.settings.inbound_domain
    if not domain:
        return None
    if conversation_token:
        return f"reply+c-{conversation_token}@{domain}"
    return f"reply+m-{message_id}.{runtime.link_signer.short_mac({'r': message_id})}@{domain}"


def _thread_of(
    runtime: Runtime, session: Session, parsed: ParsedEmail, rcpt_tos: tuple[str, ...], workspace_id: str | None
) -> tuple[Message | None, Conversation | None]:
    """The message and conversation an email replies to. Reply addresses carry a secret (a random
    conversation token, or a signed message id), so they are trusted from anyone; the
    ``In-Reply-To``/``References`` headers name guessable ids, so they count only when the email
    comes from the address the message went to. Nothing outside ``workspace_id`` (when given) is
    ever matched."""
    domain = runtime.settings.inbound_domain or ""
    for address in (*rcpt_tos, *parsed.to_addresses):
        # Some MTAs fold the case of addresses: tokens are matched whatever their case.
        kind, _, value = (reply_address_token(address, domain=domain) or "").partition("-") if domain else ("", "", "")
        if kind.lower() == "c":
            conversation = session.scalar(select(Conversation).where(Conversation.reply_token == value.lower()))
            if conversation is not None and workspace_id in (None, conversation.workspace_id):
                return None, conversation
        if kind.lower() == "m":
            message_id, _, mac = value.partition(".")
            message_id = message_id[:4].lower() + message_id[4:].upper()  # "msg_" + an upper-case ULID
            if runtime.link_signer.short_mac_matches({"r": message_id}, mac):
                message = _message_in(session, message_id, workspace_id)
                if message is not None:
                    return message, _conversation_of(session, message)
    for reference in (*parsed.in_reply_to, *reversed(parsed.references)):
        message = (
            _message_in(session, reference.split("@", 1)[0], workspace_id) if reference.startswith("msg_") else None
        )
        if message is not None and (message.to_address or "").lower() == parsed.from_address:
            return message, _conversation_of(session, message)
    return None, None


def _message_in(session: Session, message_id: str, workspace_id: str | None) -> Message | None:
    message = session.get(Message, message_id)
    return message if message is not None and workspace_id in (None, message.workspace_id) else None


def _conversation_of(session: Session, message: Message) -> Conversation | None:
    if message.conversation_id:
        return session.get(Conversation, message.conversation_id)
    return session.scalar(
        select(Conversation).where(
            Conversation.workspace_id == message.workspace_id, Conversation.origin_message_id == message.id
        )
    )


def _open_conversation(
    session: Session,
    workspace_id: str,
    profile_id: str,
    channel: str,
    origin_message_id: str | None,
    *,
    subject: str | None = None,
) -> Conversation:
    if origin_message_id:
        found = session.scalar(
            select(Conversation).where(
                Conversation.workspace_id == workspace_id, Conversation.origin_message_id == origin_message_id
            )
        )
        if found is not None:
            return found
    if channel != "email":
        found = session.scalar(
            select(Conversation)
            .where(
                Conversation.workspace_id == workspace_id,
                Conversation.profile_id == profile_id,
                Conversation.channel == channel,
                Conversation.status != ConversationStatus.RESOLVED,
            )
            .order_by(Conversation.last_message_at.desc())
            .limit(1)
        )
        if found is not None:
            return found
    conversation = Conversation(
        workspace_id=workspace_id,
        profile_id=profile_id,
        channel=channel,
        subject=subject,
        reply_token=secrets.token_hex(16),  # lower case, so folding cannot change it
        origin_message_id=origin_message_id,
    )
    session.add(conversation)
    session.flush()
    return conversation


def _record_reply(
    session: Session,
    workspace_id: str,
    conversation: Conversation,
    profile: Profile,
    channel: str,
    from_address: str | None,
    to_address: str | None,
    subject: str | None,
    body: str,
    provider_message_id: str,
    replied_to: str | None,
    *,
    automatic: bool,
) -> None:
    stored = _store(
        session,
        workspace_id,
        conversation.id,
        profile,
        channel,
        from_address,
        to_address,
        subject,
        body,
        provider_message_id,
        replied_to,
        automatic=automatic,
    )
    if not stored:
        return  # the provider sent it before: nothing more to do
    conversation.last_message_at = utcnow()
    reopen(conversation)
    if not automatic:
        record_events(
            session,
            [
                {
                    "workspace_id": workspace_id,
                    "profile_id": profile.id,
                    "message_id": replied_to,
                    "channel": channel,
                    "kind": "replied",
                    "source": "inbound",
                    "dedupe_key": f"reply:{channel}:{provider_message_id}",
                    "detail": {"conversation_id": conversation.id, "inbound_id": stored, "text": body[:500]},
                }
            ],
        )


def _store(
    session: Session,
    workspace_id: str,
    conversation_id: str | None,
    profile: Profile,
    channel: str,
    from_address: str | None,
    to_address: str | None,
    subject: str | None,
    body: str,
    provider_message_id: str,
    replied_to: str | None,
    *,
    automatic: bool = False,
    keyword: str | None = None,
) -> str | None:
    """Insert the inbound message; None when it was already stored (provider retries)."""
    inbound_id = new_id("inb")
    inserted = session.execute(
        insert_ignoring_conflicts(dialect_of(session), _inbound, _inbound.c.id),
        {
            "id": inbound_id,
            "workspace_id": workspace_id,
            "conversation_id": conversation_id,
            "profile_id": profile.id,
            "channel": channel,
            "from_address": from_address,
            "to_address": to_address,
            "subject": subject,
            "body": body,
            "provider_message_id": provider_message_id[:300],
            "in_reply_to": replied_to,
            "automatic": automatic,
            "keyword": keyword,
            "received_at": utcnow(),
        },
    ).scalar()
    return inserted


def _latest_sent(session: Session, profile_id: str, channel: str) -> str | None:
    return session.scalar(
        select(Message.id)
        .where(Message.profile_id == profile_id, Message.channel == channel)
        .order_by(Message.id.desc())
        .limit(1)
    )


def _profile_for_text(session: Session, workspace_id: str, text: InboundText, provider: Any) -> Profile:
    """The sender's profile, created when CCM has never heard of them."""
    key = provider.handle_key or provider.name
    found = find_by_address(
        session=session, workspace_id=workspace_id, channel=text.channel, address=text.from_address, chat_key=key
    )
    if found is not None:
        return found
    if text.channel == "sms":
        return _new_profile(session, workspace_id, phone=text.from_address)
    return _new_profile(session, workspace_id, chat={key: text.from_address})


def _profile_for_email(session: Session, workspace_id: str, address: str) -> Profile:
    found = find_by_address(session=session, workspace_id=workspace_id, channel="email", address=address)
    return found or _new_profile(session, workspace_id, email=address)


def _new_profile(session: Session, workspace_id: str, **values: Any) -> Profile:
    profile = Profile(workspace_id=workspace_id, **values)
    session.add(profile)
    session.flush()
    return profile


def _apply_bounce(session: Session, parsed: ParsedEmail, workspace_id: str | None) -> None:
    """Bounce reports (DSNs) become the same reports a provider webhook would give — for the
    recipients the message actually went to, so a forged bounce naming a message id cannot
    suppress anyone else."""
    dsn = parsed.dsn
    assert dsn is not None
    message = _message_in(session, dsn.ccm_message_id, workspace_id) if dsn.ccm_message_id else None
    if message is None:
        log.warning("bounce for an unknown message (%s); ignored", dsn.original_message_id)
        return
    sent_to = (message.to_address or "").lower()
    reports = [
        StatusEvent(
            provider_message_id=message.id,
            recipient=r.address,
            event_id=f"dsn:{message.id}:{r.address}:{r.action}",
            kind="bounced_hard" if r.permanent else "bounced_soft",
            detail={"status": r.status, "description": r.diagnostic[:300], "action": r.action},
        )
        for r in dsn.recipients
        if r.action in ("failed", "delayed") and r.address.lower() == sent_to
    ]
    if not reports:
        log.warning("bounce for %s names none of its recipients; ignored", message.id)
        return
    apply_message_reports(session, message, reports, source="dsn")
