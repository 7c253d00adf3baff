"""GDPR: export everything CCM holds about a person, and erase them.

Erasure cancels their waiting messages, strips personal data from the messages, attempts and
engagement events kept for the workspace's statistics, deletes their replies and conversations,
outbox copies, consent ledger and profile, redacts the webhook notifications about them (and
cancels those not yet delivered), and leaves only SHA-256 hashes of their addresses on the
suppression list, so a re-import or a late event cannot make CCM message them again.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import delete, or_, select, update
from sqlalchemy.orm import Session

from ccm.channels.models import OutboxItem
from ccm.consent.models import ConsentRecord
from ccm.consent.schemas import ConsentRecordOut
from ccm.conversations.models import Conversation, InboundMessage
from ccm.db import utcnow
from ccm.engagement.models import EngagementEvent
from ccm.messages.models import DeliveryAttempt, Message
from ccm.messages.schemas import MessageOut
from ccm.messages.service import cancel_pending_messages
from ccm.profiles.models import Profile
from ccm.profiles.schemas import ProfileOut
from ccm.profiles.service import get_profile
from ccm.suppression.models import Suppression
from ccm.suppression.service import address_hash, canonical, suppress
from ccm.webhooks.models import WebhookDelivery

ERASED = "erased"


def export_profile(*, session: Session, workspace_id: str, external_id: str) -> dict[str, Any]:
    profile = get_profile(session=session, workspace_id=workspace_id, external_id=external_id)
    messages = session.scalars(select(Message).where(Message.profile_id == profile.id).order_by(Message.id)).all()
    attempts = session.scalars(
        select(DeliveryAttempt).where(DeliveryAttempt.message_id.in_([m.id for m in messages]))
    ).all()
    by_message: dict[str, list[DeliveryAttempt]] = {}
    for attempt in attempts:
        by_message.setdefault(attempt.message_id, []).append(attempt)
    consent = session.scalars(
        select(ConsentRecord).where(ConsentRecord.profile_id == profile.id).order_by(ConsentRecord.recorded_at)
    ).all()
    return {
        "profile": ProfileOut.model_validate(profile).model_dump(mode="json"),
        "consent": [ConsentRecordOut.model_validate(record).model_dump(mode="json") for record in consent],
        "messages": [_message(message, by_message.get(message.id, [])) for message in messages],
        "suppressions": _suppressions(session, workspace_id, profile),
        "conversations": _conversations(session, profile),
        "events": [
            {
                "id": e.id,
                "kind": e.kind,
                "channel": e.channel,
                "message_id": e.message_id,
                "source": e.source,
                "machine": e.machine,
                "detail": e.detail,
                "occurred_at": e.occurred_at.isoformat(),
            }
            for e in session.scalars(
                select(EngagementEvent)
                .where(EngagementEvent.profile_id == profile.id)
                .order_by(EngagementEvent.occurred_at)
            )
        ],
    }


def erase_profile(*, session: Session, workspace_id: str, external_id: str, region: str | None) -> int:
    """Erase the person; returns how many waiting messages were cancelled."""
    profile = get_profile(session=session, workspace_id=workspace_id, external_id=external_id, lock="update")
    # No webhooks for them: every notification about the person is withdrawn below.
    cancelled = cancel_pending_messages(session=session, profile_id=profile.id, reason=ERASED, announce=False)
    for channel, address in _addresses(profile):
        suppress(
            session=session,
            workspace_id=workspace_id,
            channel=channel,
            address=address,
            reason=ERASED,
            region=region,
            keep_address=False,
            strict=False,
        )
        session.execute(
            update(Suppression)
            .where(
                Suppression.workspace_id == workspace_id,
                Suppression.channel == channel,
                Suppression.address_hash == _hash(channel, address, region),
            )
            .values(address=None)
        )
    message_ids = select(Message.id).where(Message.profile_id == profile.id).scalar_subquery()
    session.execute(update(DeliveryAttempt).where(DeliveryAttempt.message_id.in_(message_ids)).values(to_address=None))
    session.execute(delete(OutboxItem).where(OutboxItem.message_id.in_(message_ids)))
    _erase_engagement(session, workspace_id, profile.id, message_ids)
    session.execute(
        update(Message)
        .where(Message.profile_id == profile.id)
        .values(data={}, to_address=None, reply_to=None, profile_id=None)
    )
    session.delete(profile)  # the consent ledger goes with it (ON DELETE CASCADE)
    return cancelled


def _erase_engagement(session: Session, workspace_id: str, profile_id: str, message_ids: Any) -> None:
    """Their own words (replies, conversations) go; events keep only what counts (kind, channel,
    time); webhook notifications about them are redacted, and cancelled when not yet delivered."""
    session.execute(delete(InboundMessage).where(InboundMessage.profile_id == profile_id))
    session.execute(delete(Conversation).where(Conversation.profile_id == profile_id))
    theirs = or_(EngagementEvent.profile_id == profile_id, EngagementEvent.message_id.in_(message_ids))
    event_ids = select(EngagementEvent.id).where(EngagementEvent.workspace_id == workspace_id, theirs).scalar_subquery()
    data = WebhookDelivery.payload["data"]
    deliveries = session.scalars(
        select(WebhookDelivery).where(
            WebhookDelivery.workspace_id == workspace_id,
            or_(data["message_id"].as_string().in_(message_ids), data["event_id"].as_string().in_(event_ids)),
        )
    )
    for delivery in deliveries:
        delivery.payload = {"type": delivery.event_type, "data": {"erased": True}}
        if delivery.status == "pending":
            delivery.status, delivery.last_error, delivery.finished_at = (
                "failed",
                "erased: the person was erased",
                utcnow(),
            )
    session.execute(
        update(EngagementEvent)
        .where(EngagementEvent.workspace_id == workspace_id, theirs)
        .values(detail={}, profile_id=None)
    )


def _conversations(session: Session, profile: Profile) -> list[dict[str, Any]]:
    replies: dict[str | None, list[dict[str, Any]]] = {}
    for reply in session.scalars(
        select(InboundMessage).where(InboundMessage.profile_id == profile.id).order_by(InboundMessage.received_at)
    ):
        replies.setdefault(reply.conversation_id, []).append(
            {
                "id": reply.id,
                "channel": reply.channel,
                "from": reply.from_address,
                "to": reply.to_address,
                "subject": reply.subject,
                "body": reply.body,
                "keyword": reply.keyword,
                "automatic": reply.automatic,
                "received_at": reply.received_at.isoformat(),
            }
        )
    threads = [
        {
            "id": c.id,
            "channel": c.channel,
            "subject": c.subject,
            "status": c.status,
            "created_at": c.created_at.isoformat(),
            "replies": replies.pop(c.id, []),
        }
        for c in session.scalars(
            select(Conversation).where(Conversation.profile_id == profile.id).order_by(Conversation.created_at)
        )
    ]
    loose = [reply for replies_ in replies.values() for reply in replies_]
    return threads + ([{"id": None, "channel": None, "replies": loose}] if loose else [])


def _addresses(profile: Profile) -> list[tuple[str, str]]:
    found = [("email", profile.email), ("sms", profile.phone)] + [("chat", v) for v in (profile.chat or {}).values()]
    return [(channel, address) for channel, address in found if address]


def _hash(channel: str, address: str, region: str | None) -> str:
    return address_hash(channel, canonical(channel, address, region=region, strict=False))


def _suppressions(session: Session, workspace_id: str, profile: Profile) -> list[dict[str, Any]]:
    hashes = [_hash(channel, address, None) for channel, address in _addresses(profile)]
    rows = session.scalars(
        select(Suppression).where(Suppression.workspace_id == workspace_id, Suppression.address_hash.in_(hashes))
    ).all()
    return [
        {"channel": r.channel, "address": r.address, "reason": r.reason, "created_at": r.created_at.isoformat()}
        for r in rows
    ]


def _message(message: Message, attempts: list[DeliveryAttempt]) -> dict[str, Any]:
    message.__dict__["attempts"] = sorted(attempts, key=lambda a: a.number)  # avoid the lazy="raise" loader
    return MessageOut.model_validate(message).model_dump(mode="json") | {"data": message.data}
