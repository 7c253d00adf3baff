"""Everything between a pending message and a provider call, in the phases of a claim: load it
with its profile and workspace in one query and plan it (route and checks: reads only), prepare it
(render, build the outbound message: no database at all, so no transaction is open while a slow
template renders), and check it again just before the claim is written. No writes."""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from email.utils import parseaddr
from typing import Any

from sqlalchemy import bindparam, select
from sqlalchemy.orm import Session

from ccm.channels.base import OutboundMessage
from ccm.channels.email_mime import EmailContent, HeaderInjectionError, build_email, message_id_for
from ccm.channels.registry import Configured
from ccm.consent import service as consent
from ccm.conversations.replies import reply_address
from ccm.engagement.tracking import rewrite_html
from ccm.message_templates.footer import MarketingFooter
from ccm.message_templates.rendering import PublishedTemplate, RenderedParts, build_context, render_parts
from ccm.message_templates.sandbox import RenderError
from ccm.messages.models import Message, MessageStatus
from ccm.messages.routing import Route, candidate_channels, choose_route
from ccm.messages.rules import NotSendable, ReadAhead, SendRules, sms_body
from ccm.profiles.models import Profile
from ccm.profiles.service import template_context
from ccm.runtime import Runtime
from ccm.suppression import service as suppression
from ccm.tokens import UNSUBSCRIBE
from ccm.workspaces.models import Workspace
from ccm.workspaces.schemas import WorkspacePolicy
from ccm.workspaces.service import policy_of

_m, _p, _w = Message.__table__, Profile.__table__, Workspace.__table__
_PENDING = select(
    _m.c.id,
    _m.c.workspace_id,
    _m.c.profile_id,
    _m.c.status,
    _m.c.claim_token,
    _m.c.claimed_at,
    _m.c.claims,
    _m.c.updated_at,
    _m.c.next_attempt_at,
    _m.c.deadline_at,
    _m.c.template_version_id,
    _m.c.template_key,
    _m.c.channel_override,
    _m.c.allowed_channels,
    _m.c.failed_channels,
    _m.c.pinned_account,
    _m.c.data,
    _m.c.track,
    _m.c.source,
    _m.c.conversation_id,
    _m.c.category,
    _m.c.topic,
    _m.c.reply_to,
    _m.c.headers,
    _p.c.external_id,
    _p.c.email,
    _p.c.phone,
    _p.c.chat,
    _p.c.channels,
    _p.c.locale,
    _p.c.timezone,
    _p.c.attributes,
    _p.c.preferences,
    _p.c.best_channel,
    _w.c.settings.label("workspace_settings"),
    _w.c.default_locale,
    _w.c.mail_from,
).select_from(_m.join(_w, _w.c.id == _m.c.workspace_id).outerjoin(_p, _p.c.id == _m.c.profile_id))
LOAD_PENDING = _PENDING.where(_m.c.id == bindparam("id"))
LOAD_PENDING_MANY = _PENDING.where(_m.c.id.in_(bindparam("ids", expanding=True)))


@dataclass(frozen=True)
class Pending:
    """A message as loaded for delivery, with the profile and workspace fields it needs."""

    id: str
    workspace_id: str
    profile_id: str | None
    status: str
    claim_token: str | None
    claimed_at: dt.datetime | None
    claims: int
    updated_at: dt.datetime
    """Compared when the claim is written: any change to the message since it was read wins."""
    next_attempt_at: dt.datetime | None
    deadline_at: dt.datetime
    template_version_id: str
    template_key: str
    channel_override: str | None
    allowed_channels: list[str] | None
    failed_channels: list[dict[str, str]]
    pinned_account: str | None
    data: dict[str, Any]
    track: bool
    source: str
    conversation_id: str | None
    category: str
    topic: str | None
    reply_to: str | None
    headers: dict[str, str] | None
    """Extra email headers stored with the message (a follow-up's threading headers)."""
    external_id: str | None
    email: str | None
    phone: str | None
    chat: dict[str, str] | None
    channels: list[str] | None
    locale: str | None
    timezone: str | None
    attributes: dict[str, Any] | None
    preferences: dict[str, Any] | None
    best_channel: str | None
    """Learned from engagement; used when the profile ranks no channels itself."""
    workspace_settings: dict[str, Any]
    default_locale: str
    mail_from: str | None

    @property
    def profile(self) -> dict[str, Any]:
        """The ``profile`` variable templates see."""
        return template_context(self)


@dataclass(frozen=True)
class Plan:
    """Where a pending message goes and everything rendering it needs, decided from reads."""

    pending: Pending
    policy: WorkspacePolicy
    template: PublishedTemplate
    channel: str
    variant: Mapping[str, Any]
    address: str
    targets: list[tuple[Configured, str]]
    hops: list[dict[str, Any]]
    reply_to: str | None


@dataclass(frozen=True)
class Prepared:
    """A message ready for its providers (in failover order), and what to record about the route."""

    targets: list[tuple[Configured, str]]
    """The providers, in failover order, each with the address it sends to."""
    outbound: OutboundMessage
    channel: str
    locale: str
    to_address: str
    route: list[dict[str, Any]]
    segments: int | None = None


def load_pending(session: Session, message_id: str) -> Pending | None:
    row = session.execute(LOAD_PENDING, {"id": message_id}).first()
    return None if row is None else Pending(**row._mapping)


def load_pending_many(session: Session, message_ids: Sequence[str]) -> dict[str, Pending]:
    """:func:`load_pending` for many messages, in one read; those not found are left out."""
    rows = session.execute(LOAD_PENDING_MANY, {"ids": list(message_ids)})
    return {row.id: Pending(**row._mapping) for row in rows}


def read_ahead(session: Session, pendings: Iterable[Pending]) -> ReadAhead:
    """What the send rules of these messages read, read once for all of them in this transaction:
    their addresses' suppression and, for marketing ones, their profiles' consent."""
    pendings = list(pendings)
    return ReadAhead(
        suppression=suppression.read_ahead(session, addresses_of(pendings)),
        consent=consent.read_ahead(
            session=session,
            profile_ids={p.profile_id for p in pendings if p.category == "marketing" and p.profile_id is not None},
        ),
    )


def addresses_of(pendings: Iterable[Pending]) -> list[tuple[str, str, str]]:
    """The (workspace id, channel, address) each message may be sent to, for
    :func:`ccm.suppression.service.read_ahead` (chat ids are each provider's own: read when used)."""
    found = []
    for pending in pendings:
        if pending.email and _may_use(pending, "email"):
            found.append((pending.workspace_id, "email", pending.email))
        if pending.phone and _may_use(pending, "sms"):
            found.append((pending.workspace_id, "sms", pending.phone))
    return found


def _may_use(pending: Pending, channel: str) -> bool:
    # Only a shortcut: an address routing does reach without having been read ahead is read then.
    if pending.channel_override:
        return pending.channel_override == channel
    return pending.allowed_channels is None or channel in pending.allowed_channels


def plan(runtime: Runtime, session: Session, pending: Pending, known: ReadAhead | None = None) -> Plan:
    """Route and check a pending message, as of now, with reads only. ``known``: suppression and
    consent read ahead in this transaction (:func:`read_ahead`).

    Raises:
      NotSendable: no channel qualifies or a frequency cap is reached (skipped).
      Deferred: quiet hours: the message waits until the window opens.
    """
    if pending.profile_id is None:
        raise NotSendable(MessageStatus.SKIPPED, "profile_deleted")
    template = runtime.templates.get(session, pending.template_version_id, pending.template_key, runtime.sandbox)
    return plan_with(runtime, session, pending, template, known)


def plan_with(
    runtime: Runtime, session: Session, pending: Pending, template: PublishedTemplate, known: ReadAhead | None = None
) -> Plan:
    """:func:`plan` with the template given (a send not yet written: :mod:`ccm.messages.preview`)."""
    policy = policy_of(pending.workspace_settings, workspace_id=pending.workspace_id)
    rules = _send_rules(session, pending, policy, known)
    route = _choose_route(runtime, session, pending, policy, template, rules)
    hops = [
        {"channel": entry["channel"], "decision": "failed", "reason": entry["reason"]}
        for entry in pending.failed_channels
    ] + [hop.as_dict() for hop in route.hops]
    if route.channel is None or route.variant is None or route.address is None:
        raise _no_route(pending, route, hops)
    rules.check_caps(route.channel, hops)
    rules.check_quiet_hours(route.channel, hops, pending.deadline_at)
    return Plan(
        pending,
        policy,
        template,
        route.channel,
        route.variant,
        route.address,
        route.targets,
        hops,
        reply_to(runtime, session, pending) if route.channel == "email" else None,
    )


def prepare(runtime: Runtime, planned: Plan) -> Prepared:
    """Render the planned message and build what its providers get. Needs no database: this is
    the slow part (up to ``CCM_RENDER_TIMEOUT``), and no transaction may be open around it.

    Raises:
      NotSendable: rendering, headers or the SMS size failed (failed).
    """
    pending, hops = planned.pending, planned.hops
    parts = _track(runtime, pending, planned.policy, _render(runtime, planned))
    parts, segments = _size_sms(planned, parts)
    try:
        outbound = _outbound(runtime, pending, planned.address, parts, planned.reply_to)
    except HeaderInjectionError as exc:
        raise NotSendable(MessageStatus.FAILED, f"invalid_header: {exc}", hops) from None
    return Prepared(
        planned.targets, outbound, planned.channel, planned.variant["locale"], planned.address, hops, segments
    )


def recheck(session: Session, planned: Plan, prepared: Prepared, known: ReadAhead | None = None) -> Prepared:
    """Suppression, consent and frequency caps once more, inside the claim's transaction: an
    opt-out, a bounce or another send to the person committed while the message rendered still
    counts. Indexed reads only. Returns ``prepared`` without the addresses now blocked.

    Raises:
      NotSendable: every address is blocked now, or a frequency cap is reached (skipped).
    """
    rules = _send_rules(session, planned.pending, planned.policy, known)
    allowed = [
        (configured, address)
        for configured, address in prepared.targets
        if not rules.blocked(prepared.channel, address)
    ]
    if not allowed:
        reason = rules.blocked(prepared.channel, prepared.to_address) or "no_address"
        raise NotSendable(
            MessageStatus.SKIPPED,
            reason,
            [*prepared.route[:-1], {"channel": prepared.channel, "decision": "rejected", "reason": reason}],
        )
    rules.check_caps(prepared.channel, prepared.route)
    return prepared if allowed == prepared.targets else replace(prepared, targets=allowed, to_address=allowed[0][1])


def _send_rules(session: Session, pending: Pending, policy: WorkspacePolicy, known: ReadAhead | None) -> SendRules:
    assert pending.profile_id is not None  # plan() skipped messages whose profile was deleted
    return SendRules(
        session,
        policy,
        message_id=pending.id,
        workspace_id=pending.workspace_id,
        profile_id=pending.profile_id,
        category=pending.category,
        topic=pending.topic,
        timezone=pending.timezone,
        preferences=pending.preferences,
        source=pending.source,
        known=known,
    )


def _choose_route(
    runtime: Runtime,
    session: Session,
    pending: Pending,
    policy: WorkspacePolicy,
    template: PublishedTemplate,
    rules: SendRules,
) -> Route:
    """The first channel, in the message's order of preference, with a variant and a usable provider.
    A profile that ranks no channels is ranked by the channel it engages with most."""
    ranking = pending.channels or ([pending.best_channel] if pending.best_channel else [])
    return choose_route(
        candidates=candidate_channels(
            override=pending.channel_override,
            ranking=ranking,
            workspace_order=policy.channel_order,
            allowed=pending.allowed_channels,
            failed=[entry["channel"] for entry in pending.failed_channels],
        ),
        template=template,
        locale=pending.locale or pending.default_locale,
        addresses={"email": pending.email, "sms": pending.phone, "chat": pending.chat},
        providers=lambda channel: _serving(runtime, session, pending, channel),
        blocked=rules.blocked,
    )


def _no_route(pending: Pending, route: Route, hops: list[dict[str, Any]]) -> NotSendable:
    """Failed when earlier channels failed for good and none is left; otherwise skipped."""
    if pending.failed_channels:
        return NotSendable(
            MessageStatus.FAILED,
            "failed on every channel it may use: "
            + "; ".join(f"{entry['channel']}: {entry['reason']}" for entry in pending.failed_channels),
            hops,
        )
    return NotSendable(MessageStatus.SKIPPED, route.skip_reason, hops)


def _size_sms(planned: Plan, parts: RenderedParts) -> tuple[RenderedParts, int | None]:
    """The parts with an SMS body fitted to the size rules, and its segment count (None off SMS)."""
    if parts.channel != "sms":
        return parts, None
    body, size = sms_body(planned.policy, planned.pending.category, parts.body, planned.hops)
    return replace(parts, body=body), size.segments


def _render(runtime: Runtime, planned: Plan) -> RenderedParts:
    pending, template = planned.pending, planned.template
    unsubscribe_url = (
        _unsubscribe_url(runtime, pending, planned.channel)
        if pending.category == "marketing" or "unsubscribe_url" in template.builtins_used
        else ""
    )
    context = build_context(
        variables=template.variables,
        data=pending.data,
        profile=pending.profile,
        extras={
            "unsubscribe_url": unsubscribe_url,
            "message": {"id": pending.id, "category": pending.category, "topic": pending.topic},
        },
    )
    footer = (
        MarketingFooter(planned.policy.postal_address or "", unsubscribe_url)
        if pending.category == "marketing" and planned.channel == "email"  # routing made sure of the address
        else None
    )
    try:
        parts = render_parts(runtime.sandbox, template.bundle, planned.variant, context, footer=footer)
    except RenderError as exc:
        raise NotSendable(MessageStatus.FAILED, f"render_error: {exc.code}: {exc.message}", planned.hops) from None
    return replace(parts, unsubscribe_url=unsubscribe_url)


def _track(runtime: Runtime, pending: Pending, policy: WorkspacePolicy, parts: RenderedParts) -> RenderedParts:
    """Signed click links and the open pixel in the HTML, when both the workspace and the message
    allow them. The text part keeps the plain links; the unsubscribe link is never rewritten."""
    clicks, opens = policy.tracking.clicks and pending.track, policy.tracking.opens and pending.track
    if parts.html is None or not (clicks or opens):
        return parts
    html = rewrite_html(
        parts.html,
        message_id=pending.id,
        public_url=runtime.settings.public_url,
        signer=runtime.link_signer,
        clicks=clicks,
        opens=opens,
        keep=frozenset({parts.unsubscribe_url}) if parts.unsubscribe_url else frozenset(),
    )
    return replace(parts, html=html)


def reply_to(runtime: Runtime, session: Session, pending: Pending) -> str | None:
    """The message's own Reply-To, else its thread's reply address when inbound mail is set up."""
    if pending.reply_to or not runtime.settings.inbound_domain:
        return pending.reply_to
    return reply_address(
        session,
        domain=runtime.settings.inbound_domain,
        signer=runtime.link_signer,
        message_id=pending.id,
        conversation_id=pending.conversation_id,
    )


def _outbound(
    runtime: Runtime, pending: Pending, address: str, parts: RenderedParts, reply_to_address: str | None
) -> OutboundMessage:
    if parts.channel != "email":
        return OutboundMessage(pending.id, pending.workspace_id, parts.channel, address, body=parts.body)
    from_addr = pending.mail_from or runtime.settings.mail_from
    envelope_from = _address_of(from_addr)
    message_id_header = message_id_for(pending.id, envelope_from)
    headers = {"X-CCM-Message-Id": pending.id, **(pending.headers or {})}
    if pending.category == "marketing":
        headers["List-Unsubscribe"] = f"<{parts.unsubscribe_url}>"
        headers["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
    raw = build_email(
        EmailContent(
            from_addr=from_addr,
            to_addr=address,
            subject=parts.subject,
            html=parts.html,
            text=parts.text,
            message_id=message_id_header,
            reply_to=reply_to_address,
            headers=headers,
        )
    )
    return OutboundMessage(
        pending.id,
        pending.workspace_id,
        "email",
        address,
        raw=raw,
        envelope_from=envelope_from,
        subject=parts.subject,
        headers={"Message-ID": message_id_header},
    )


def _unsubscribe_url(runtime: Runtime, pending: Pending, channel: str) -> str:
    token = runtime.signer.sign(
        UNSUBSCRIBE,
        {"w": pending.workspace_id, "p": pending.profile_id, "m": pending.id, "c": channel, "t": pending.topic},
    )
    return f"{runtime.settings.public_url}/u/{token}"


@functools.lru_cache(maxsize=256)
def _address_of(from_addr: str) -> str:
    return parseaddr(from_addr)[1]


def _serving(runtime: Runtime, session: Session, pending: Pending, channel: str) -> list[Configured]:
    """The channel's providers; only the pinned account when an earlier request may have reached it."""
    serving = runtime.providers.for_channel(session, pending.workspace_id, channel)
    if pending.pinned_account:
        serving = [configured for configured in serving if configured.key == pending.pinned_account]
    return serving
