"""Provider reports applied to messages: recorded once per report (deduplicated by the provider's
event id), then handed to the message lifecycle (:func:`ccm.messages.state.report`: ``sent`` →
``delivered`` or ``failed``, a final state never goes back) and to the one opt-out
(:func:`ccm.consent.optout.opt_out`): a late bounce or complaint still suppresses the address."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from ccm.channels.base import StatusEvent
from ccm.channels.models import ProviderAccount
from ccm.consent.optout import OptOutReason, opt_out
from ccm.engagement.service import record_events
from ccm.messages import state
from ccm.messages.models import DeliveryAttempt, Message, MessageStatus
from ccm.profiles.service import find_by_address

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
_m, _a = Message.__table__, DeliveryAttempt.__table__


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
        source = f"provider:{account.kind}"
        event = _event(account.workspace_id, account.channel, source, account.kind, report, message)
        if not record_events(session, [event]):
            continue
        if message is not None:
            _transition(session, message, report, source)
        elif report.kind == "unsubscribed" and report.recipient:
            _opt_out_address(session, account, report.recipient, chat_key)
        applied += 1
    return applied


def _opt_out_address(session: Session, account: ProviderAccount, address: str, chat_key: str | None) -> None:
    """A report about a person rather than a message (a Telegram user blocking the bot): the
    address gets nothing more on this channel, and its profile's consent is revoked."""
    profile = find_by_address(
        session=session, workspace_id=account.workspace_id, channel=account.channel, address=address, chat_key=chat_key
    )
    opt_out(
        session,
        workspace_id=account.workspace_id,
        profile_id=profile.id if profile is not None else None,
        channel=account.channel,
        address=address,
        reason=OptOutReason.BLOCKED,
        source="provider_unsubscribe",
        actor="provider",
        proof={"provider": account.kind, "address": address},
        detail=f"opted out through {account.kind}",
    )


def apply_message_reports(session: Session, message: Any, reports: Iterable[StatusEvent], *, source: str) -> int:
    """Reports about a message CCM already identified (bounce emails name it in their headers)."""
    row = session.execute(
        select(_m.c.id, _m.c.workspace_id, _m.c.profile_id, _m.c.channel, _m.c.to_address, _m.c.status).where(
            _m.c.id == message.id
        )
    ).one()
    applied = 0
    for report in reports:
        if record_events(session, [_event(row.workspace_id, row.channel, source, source, report, row)]):
            _transition(session, row, report, source)
            applied += 1
    return applied


def _message(session: Session, workspace_id: str, provider_message_id: str) -> Any:
    """The message a provider id belongs to, through the attempt that got it: messages are not
    indexed on it, so that recording it keeps their update heap-only (see ccm.messages.models)."""
    if not provider_message_id:
        return None
    return session.execute(
        select(_m.c.id, _m.c.workspace_id, _m.c.profile_id, _m.c.channel, _m.c.to_address, _m.c.status)
        .join(_a, _a.c.message_id == _m.c.id)
        .where(_a.c.provider_message_id == provider_message_id, _m.c.workspace_id == workspace_id)
        .limit(1)
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


def _transition(session: Session, message: Any, report: StatusEvent, source: str) -> None:
    kind, reason = report.kind, report.detail.get("description") or report.detail.get("message") or report.kind
    if kind == "delivered":
        state.report(session, message.id, to=MessageStatus.DELIVERED, reason="delivered: reported by the provider")
    elif kind in ("bounced_hard", "failed"):
        outcome = "bounced" if kind == "bounced_hard" else "failed"
        state.report(session, message.id, to=MessageStatus.FAILED, reason=f"{outcome}: {reason}")
    opted_out = OPTS_OUT.get(kind)
    if opted_out is not None:
        why, ledger_source = opted_out
        opt_out(
            session,
            workspace_id=message.workspace_id,
            profile_id=message.profile_id,
            channel=message.channel or "email",
            address=message.to_address,
            reason=why,
            source=ledger_source,
            actor="provider",
            proof={"message_id": message.id, "via": source},
            detail=str(reason),
        )


OPTS_OUT = {
    "bounced_hard": (OptOutReason.HARD_BOUNCE, "provider_bounce"),
    "complained": (OptOutReason.COMPLAINT, "provider_complaint"),
    "unsubscribed": (OptOutReason.UNSUBSCRIBE, "provider_unsubscribe"),
}
"""Reports about a message that opt its address or its person out (see :mod:`ccm.consent.optout`),
and the source the consent ledger records."""
