"""The rules a message is checked against at send time, every time it is about to go out:
suppression and consent per candidate channel, then frequency caps and quiet hours for the chosen
one; and the SMS body as sent. Each refusal carries a reason that ends up on the message."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from sqlalchemy import bindparam, func, select
from sqlalchemy.orm import Session

from ccm.channels.sms import SmsSize, sms_size
from ccm.consent import service as consent
from ccm.db import UTCDateTime, utcnow
from ccm.messages.models import Message, MessageStatus
from ccm.messages.timing import Window, cap_exceeded, next_allowed, quiet_window
from ccm.suppression.service import Known, suppressed
from ccm.workspaces.compliance import NO_POSTAL_ADDRESS, marketing_email_refusal
from ccm.workspaces.schemas import WorkspacePolicy

_m = Message.__table__
# Messages other runs are sending right now count too: two campaigns reaching one person at once
# must not both slip under a cap of one.
_sent_at = func.coalesce(_m.c.finished_at, _m.c.claimed_at, type_=UTCDateTime)
_SENT_SINCE = select(_m.c.channel, _m.c.topic, _sent_at.label("sent_at")).where(
    _m.c.workspace_id == bindparam("b_workspace"),
    _m.c.profile_id == bindparam("b_profile"),
    _m.c.category == "marketing",
    _m.c.id != bindparam("b_self"),
    _m.c.status.in_((MessageStatus.SENT, MessageStatus.DELIVERED, MessageStatus.SENDING)),
    _sent_at >= bindparam("b_since"),
)


class NotSendable(Exception):
    """The message ends here, without a provider call, in ``status`` with ``reason``."""

    def __init__(self, status: MessageStatus, reason: str, route: list[dict[str, Any]] | None = None) -> None:
        super().__init__(reason)
        self.status, self.reason, self.route = status, reason, route or []


class Deferred(Exception):
    """The message may not go now (quiet hours): it waits, queued, until ``until``."""

    def __init__(self, until: dt.datetime, reason: str, route: list[dict[str, Any]]) -> None:
        super().__init__(reason)
        self.until, self.reason, self.route = until, reason, route


@dataclass(frozen=True)
class ReadAhead:
    """What the rules of a batch of messages read once for all of them, in the transaction that
    checks them: suppression of their addresses and consent of their profiles."""

    suppression: Known
    consent: consent.Known


class SendRules:
    """The rules for one pending message (see the module docstring)."""

    def __init__(
        self,
        session: Session,
        policy: WorkspacePolicy,
        *,
        message_id: str,
        workspace_id: str,
        profile_id: str,
        category: str,
        topic: str | None,
        timezone: str | None,
        preferences: dict[str, Any] | None,
        source: str = "api",
        known: ReadAhead | None = None,
    ) -> None:
        self.session, self.policy = session, policy
        self.message_id, self.workspace_id, self.profile_id = message_id, workspace_id, profile_id
        self.category, self.topic, self.timezone = category, topic, timezone
        self.preferences = preferences or {}
        self.source = source
        self.known = known
        self._blocked: dict[tuple[str, str], str | None] = {}

    def blocked(self, channel: str, address: str) -> str | None:
        """Why ``address`` may not be used on ``channel`` now, or None. Suppression applies to
        every message; topic consent, and the workspace's postal address on email (CAN-SPAM), to
        marketing only."""
        key = (channel, address)
        if key not in self._blocked:
            self._blocked[key] = self._check(channel, address)
        return self._blocked[key]

    def _check(self, channel: str, address: str) -> str | None:
        if self.category == "marketing" and channel == "email" and marketing_email_refusal(self.policy):
            return NO_POSTAL_ADDRESS  # read again at every send: removing the address stops the mail
        reason = suppressed(
            session=self.session,
            workspace_id=self.workspace_id,
            channel=channel,
            address=address,
            known=self.known.suppression if self.known else None,
        )
        # A keyword's confirmation answers the very STOP that just suppressed the address — and
        # only a STOP: a bounced or erased address gets nothing.
        if reason and not (reason == "stop" and self.source == "keyword"):
            return f"suppressed:{reason}"
        if self.category == "marketing" and not consent.allows(
            session=self.session,
            profile_id=self.profile_id,
            channel=channel,
            topic=self.topic,
            policy=self.policy,
            known=self.known.consent if self.known else None,
        ):
            return "no_consent"
        return None

    def check_caps(self, channel: str, route: list[dict[str, Any]]) -> None:
        if self.category != "marketing":
            return
        cap = cap_exceeded(
            self.policy.frequency_caps, now=utcnow(), channel=channel, topic=self.topic, sent=self._sent_since
        )
        if cap is not None:
            raise NotSendable(
                MessageStatus.SKIPPED,
                f"frequency_cap: at most {cap.max} per {cap.days:g} days on {cap.channel} for topic {cap.topic}",
                route,
            )

    def check_quiet_hours(self, channel: str, route: list[dict[str, Any]], deadline: dt.datetime) -> None:
        window = quiet_window(
            self.policy, category=self.category, channel=channel, profile_window=self._profile_window()
        )
        zones = [self.timezone] if self.timezone else (self.policy.audience_timezones or [self.policy.timezone])
        try:
            until = next_allowed(utcnow(), window, zones)
        except ValueError as exc:
            raise NotSendable(MessageStatus.SKIPPED, f"quiet_hours: {exc}", route) from None
        if until is None:
            return
        if until >= deadline:
            raise NotSendable(MessageStatus.SKIPPED, "quiet_hours: the deadline passes before the window opens", route)
        where = self.timezone or f"{', '.join(zones)} (time zone unknown)"
        raise Deferred(until, f"deferred: quiet_hours on {channel} in {where} until {until:%Y-%m-%dT%H:%MZ}", route)

    def _profile_window(self) -> Window | None:
        hours = self.preferences.get("quiet_hours")
        return (dt.time.fromisoformat(hours[0]), dt.time.fromisoformat(hours[1])) if hours else None

    def _sent_since(self, since: dt.datetime) -> list[tuple[str | None, str | None, dt.datetime]]:
        rows = self.session.execute(
            _SENT_SINCE,
            {
                "b_workspace": self.workspace_id,
                "b_profile": self.profile_id,
                "b_self": self.message_id,
                "b_since": since,
            },
        )
        return [(row.channel, row.topic, row.sent_at) for row in rows]


def with_opt_out_footer(policy: WorkspacePolicy, category: str, body: str) -> str:
    """An SMS body as it is sent: a marketing one ends with the workspace's opt-out footer, unless
    it carries it already. Delivery and template previews both use this."""
    footer = policy.sms_opt_out_footer
    if category == "marketing" and footer and footer.lower() not in body.lower():
        return f"{body}\n{footer}"
    return body


def sms_body(policy: WorkspacePolicy, category: str, body: str, route: list[dict[str, Any]]) -> tuple[str, SmsSize]:
    """The body as sent (:func:`with_opt_out_footer`) and its size.

    Raises:
      NotSendable: the body takes more segments than the workspace allows (failed).
    """
    body = with_opt_out_footer(policy, category, body)
    size = sms_size(body)
    if size.segments > policy.sms_segment_cap:
        raise NotSendable(
            MessageStatus.FAILED,
            f"sms_too_long: {size.segments} segments ({size.encoding}), the workspace allows {policy.sms_segment_cap}",
            route,
        )
    return body, size
