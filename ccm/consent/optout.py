"""Opting out, and back in: one function for every way a person or their address says "no more"
— a STOP keyword, an unsubscribe link or the preference page, a provider's unsubscribe or
complaint report, a hard bounce, a blocked bot — and one for its inverse.

The caller says why; :data:`RULES` decides what follows: whether the address is suppressed on
the channel (and as what), and whether the person's consent is revoked. Each opt-out is recorded
once, with its source and proof. One that suppresses is in effect once the address is suppressed:
a second report, or a STOP from an address that bounced, changes nothing. One that only revokes
consent is in effect once the ledger says so.

A bounce or an invalid address says nothing about the person's wishes: it suppresses the address
and leaves their consent alone (a new, working address may still get what they agreed to).
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from sqlalchemy.orm import Session

from ccm.consent.models import ALL_TOPICS
from ccm.consent.schemas import ConsentIn
from ccm.consent.service import latest_status, record_consent
from ccm.suppression.service import lift, suppress


class OptOutReason(enum.StrEnum):
    STOP = "stop"
    """A STOP keyword (or a synonym) from the person."""
    UNSUBSCRIBE = "unsubscribe"
    """An unsubscribe link, the preference page, a provider's unsubscribe report: marketing only."""
    COMPLAINT = "complaint"
    """The person reported the message as spam."""
    BLOCKED = "blocked"
    """The person refused us at the provider: a blocked bot, a carrier-level STOP."""
    HARD_BOUNCE = "hard_bounce"
    INVALID_ADDRESS = "invalid_address"


class OptInReason(enum.StrEnum):
    START = "start"
    """A START keyword: lifts the STOP, never a bounce, complaint or erasure."""
    RESUBSCRIBE = "resubscribe"
    """The preference page: consent only."""


@dataclass(frozen=True)
class Rule:
    suppression: str | None
    """The suppression reason the address gets on the channel; None: the address stays usable."""
    revokes: bool
    """The person asked: their consent on the channel is revoked."""
    on_email: str | None = None
    """The suppression reason on email, where it differs."""

    def suppression_on(self, channel: str) -> str | None:
        return self.on_email if channel == "email" and self.on_email else self.suppression


RULES: Mapping[OptOutReason, Rule] = {
    OptOutReason.STOP: Rule("stop", revokes=True),
    OptOutReason.UNSUBSCRIBE: Rule(None, revokes=True),
    OptOutReason.COMPLAINT: Rule("complaint", revokes=True),
    OptOutReason.BLOCKED: Rule("stop", revokes=True, on_email="complaint"),
    OptOutReason.HARD_BOUNCE: Rule("hard_bounce", revokes=False),
    OptOutReason.INVALID_ADDRESS: Rule("invalid_address", revokes=False, on_email="hard_bounce"),
}


def opt_out(
    session: Session,
    *,
    workspace_id: str,
    profile_id: str | None,
    channel: str,
    address: str | None,
    reason: OptOutReason,
    source: str,
    proof: Mapping[str, Any] | None = None,
    topic: str = ALL_TOPICS,
    actor: str = "recipient",
    detail: str | None = None,
    ip: str | None = None,
    user_agent: str | None = None,
) -> bool:
    """Stop messages to a person or an address on ``channel``, as :data:`RULES` says for ``reason``.

    Parameters:
      profile_id: whose consent is revoked (None: an address CCM knows no one by).
      address: the address suppressed, as the provider gave it.
      source, proof, actor, ip, user_agent: recorded in the consent ledger (``detail``, or else
        ``source``, on the suppression entry).
      topic: what consent is revoked for (an unsubscribe link names its message's topic).

    Returns whether anything changed (False: this opt-out was in effect already).
    """
    rule = RULES[reason]
    suppression = rule.suppression_on(channel)
    if suppression is not None:
        added = address is not None and suppress(
            session=session,
            workspace_id=workspace_id,
            channel=channel,
            address=address,
            reason=suppression,
            detail=(detail or source)[:500],
            strict=False,
        )
        if not added:
            return False
    elif (
        profile_id is None
        or latest_status(session=session, profile_id=profile_id, channel=channel, topic=topic) == "revoked"
    ):
        return False
    if rule.revokes and profile_id is not None:
        _record(session, workspace_id, profile_id, channel, topic, "revoked", source, proof, actor, ip, user_agent)
    return True


def opt_in(
    session: Session,
    *,
    workspace_id: str,
    profile_id: str,
    channel: str,
    address: str | None = None,
    reason: OptInReason,
    source: str,
    proof: Mapping[str, Any] | None = None,
    topic: str = ALL_TOPICS,
    actor: str = "recipient",
    ip: str | None = None,
    user_agent: str | None = None,
) -> bool:
    """The inverse of :func:`opt_out`: START lifts the address's STOP suppression and, only if
    there was one, grants consent again; a re-subscription grants consent unless it is granted.
    Returns whether anything changed."""
    if reason is OptInReason.START:
        if address is None or not lift(
            session=session, workspace_id=workspace_id, channel=channel, address=address, reason="stop"
        ):
            return False  # not stopped, or blocked for a reason START cannot lift
    elif latest_status(session=session, profile_id=profile_id, channel=channel, topic=topic) == "granted":
        return False
    _record(session, workspace_id, profile_id, channel, topic, "granted", source, proof, actor, ip, user_agent)
    return True


def _record(
    session: Session,
    workspace_id: str,
    profile_id: str,
    channel: str,
    topic: str,
    status: Literal["granted", "revoked"],
    source: str,
    proof: Mapping[str, Any] | None,
    actor: str,
    ip: str | None,
    user_agent: str | None,
) -> None:
    record_consent(
        session=session,
        workspace_id=workspace_id,
        profile_id=profile_id,
        actor=actor,
        data=ConsentIn(
            channel=channel,  # type: ignore[arg-type]  # any str: ConsentIn refuses an unknown channel
            topic=topic,
            status=status,
            source=source,
            proof=dict(proof or {}),
            ip=ip[:64] if ip else None,
            user_agent=user_agent[:500] if user_agent else None,
        ),
    )
