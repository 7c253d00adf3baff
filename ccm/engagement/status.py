"""Provider reports applied to messages: recorded once per report (deduplicated by the provider's
event id), then moved through a monotonic state machine — ``sent`` → ``delivered`` or ``failed``;
a terminal state never goes back, but a late bounce or complaint still suppresses the address."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from ccm.channels.base import StatusEvent
from ccm.channels.models import ProviderAccount
from ccm.consent.models import ALL_TOPICS
from ccm.consent.schemas import ConsentIn
from ccm.consent.service import record_consent
from ccm.db import utcnow
from ccm.engagement.service import record_events
from ccm.messages.models import Message, MessageStatus
from ccm.messages.outcomes import announce
from ccm.profiles.service import find_by_address
from ccm.suppression.service import suppress

EVENT_KIND = {
    "delivered": "delivered",
    "bounced_hard": "bounced",
    "bounced_soft": "bounced",
    "complained": "complained",
    "failed": "failed",
    "read": "read",
    "opened": "opened",
    "clicked": "clicked",
    "unsubscribed": "unsubscribed",
}
OPEN = (MessageStatus.SENDING, MessageStatus.SENT)
"""States a report may still move a message out of."""

_m = Message.__table__


class ReportTooEarly(Exception):
    """A report names a provider message id CCM has not recorded yet, while messages on that
    channel are still being handed over: the provider should send it again shortly."""


def apply_reports(
    session: Session, account: ProviderAccount, reports: Iterable[StatusEvent], *, chat_key: str | None = None
) -> int:
    """Record a provider's reports; returns how many were new (duplicates change nothing).

    Raises:
      ReportTooEarly: a report may have overtaken the send it is about (see the class).
    """
    applied = 0
    for report in reports:
        message = _message(session, account.workspace_id, report.provider_message_id)
        if message is None and report.provider_message_id and _handing_over(session, account):
            raise ReportTooEarly(report.provider_message_id)
        event = _event(account.workspace_id, account.channel, f"provider:{account.kind}", account.kind, report, message)
        if not record_events(session, [event]):
            continue
        if message is not None:
            _transition(session, message, report)
        elif report.kind == "unsubscribed" and report.recipient:
            _opt_out_address(session, account, report.recipient, chat_key)
        applied += 1
    return applied


def _opt_out_address(session: Session, account: ProviderAccount, address: str, chat_key: str | None) -> None:
    """A report about a person rather than a message (a Telegram user blocking the bot): the
    address gets nothing more on this channel, and its profile's consent is revoked."""
    suppress(
        session=session,
        workspace_id=account.workspace_id,
        channel=account.channel,
        address=address,
        reason="stop",
        detail=f"opted out through {account.kind}",
        strict=False,
    )
    profile = find_by_address(
        session=session, workspace_id=account.workspace_id, channel=account.channel, address=address, chat_key=chat_key
    )
    if profile is not None:
        _revoke(
            session, account.workspace_id, profile.id, account.channel, {"provider": account.kind, "address": address}
        )


def _revoke(session: Session, workspace_id: str, profile_id: str, channel: str, proof: dict[str, Any]) -> None:
    record_consent(
        session=session,
        workspace_id=workspace_id,
        profile_id=profile_id,
        actor="provider",
        data=ConsentIn(
            channel=channel,
            topic=ALL_TOPICS,
            status="revoked",  # type: ignore[arg-type]
            source="provider_unsubscribe",
            proof=proof,
        ),
    )


def apply_message_reports(session: Session, message: Any, reports: Iterable[StatusEvent], *, source: str) -> int:
    """Reports about a message CCM already identified (bounce emails name it in their headers)."""
    row = session.execute(
        select(_m.c.id, _m.c.workspace_id, _m.c.profile_id, _m.c.channel, _m.c.to_address, _m.c.status).where(
            _m.c.id == message.id
        )
    ).first()
    applied = 0
    for report in reports:
        if record_events(session, [_event(row.workspace_id, row.channel, source, source, report, row)]):
            _transition(session, row, report)
            applied += 1
    return applied


def _message(session: Session, workspace_id: str, provider_message_id: str) -> Any:
    if not provider_message_id:
        return None
    return session.execute(
        select(_m.c.id, _m.c.workspace_id, _m.c.profile_id, _m.c.channel, _m.c.to_address, _m.c.status).where(
            _m.c.workspace_id == workspace_id, _m.c.provider_message_id == provider_message_id
        )
    ).first()


def _handing_over(session: Session, account: ProviderAccount) -> bool:
    return (
        session.execute(
            select(_m.c.id)
            .where(
                _m.c.workspace_id == account.workspace_id,
                _m.c.channel == account.channel,
                _m.c.status == MessageStatus.SENDING,
            )
            .limit(1)
        ).first()
        is not None
    )


def _event(
    workspace_id: str, channel: str, source: str, namespace: str, report: StatusEvent, message: Any
) -> dict[str, Any]:
    detail = {**report.detail, "report": report.kind}
    if report.recipient:
        detail["recipient"] = report.recipient
    return {
        "workspace_id": workspace_id,
        "profile_id": message.profile_id if message else None,
        "message_id": message.id if message else None,
        "channel": message.channel if message else channel,
        "kind": EVENT_KIND.get(report.kind, report.kind),
        "source": source,
        "dedupe_key": f"{namespace}:{report.event_id}",
        "detail": detail,
    }


def _transition(session: Session, message: Any, report: StatusEvent) -> None:
    kind, reason = report.kind, report.detail.get("description") or report.detail.get("message") or report.kind
    if kind == "delivered":
        _move(session, message, MessageStatus.DELIVERED, "delivered: reported by the provider")
    elif kind in ("bounced_hard", "failed"):
        _move(session, message, MessageStatus.FAILED, f"{'bounced' if kind == 'bounced_hard' else 'failed'}: {reason}")
    if kind == "bounced_hard" and message.to_address:
        suppress(
            session=session,
            workspace_id=message.workspace_id,
            channel=message.channel,
            address=message.to_address,
            reason="hard_bounce",
            detail=str(reason)[:500],
            strict=False,
        )
    elif kind == "complained" and message.to_address:
        suppress(
            session=session,
            workspace_id=message.workspace_id,
            channel=message.channel,
            address=message.to_address,
            reason="complaint",
            strict=False,
        )
    elif kind == "unsubscribed" and message.profile_id:
        _revoke(
            session, message.workspace_id, message.profile_id, message.channel or "email", {"message_id": message.id}
        )


def _move(session: Session, message: Any, status: MessageStatus, reason: str) -> None:
    moved = session.execute(
        update(_m)
        .where(_m.c.id == message.id, _m.c.status.in_(OPEN))
        .values(status=status, reason=reason, updated_at=utcnow(), finished_at=utcnow())
    )
    if moved.rowcount:  # type: ignore[attr-defined]
        announce(session, message.workspace_id, message.id, status, reason, message.channel)
