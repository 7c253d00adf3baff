"""Checking a send before it is made: the route, and every rule delivery applies (suppression,
consent, frequency caps, quiet hours), as of now and with reads only. A support agent's warnings
come from :func:`ccm.messages.outbound.plan_with`, the very function that decides at send time, so
what the screen warns about is what delivery would do."""

from __future__ import annotations

import datetime as dt
import functools
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.orm import Session

from ccm.db import utcnow
from ccm.errors import NotFound
from ccm.ids import new_id
from ccm.message_templates.rendering import PublishedTemplate, make_bundle
from ccm.messages.admission import latest_template
from ccm.messages.outbound import Pending, plan_with
from ccm.messages.rules import Deferred, NotSendable
from ccm.messages.service import SYSTEM_TEMPLATE, SYSTEM_TEXT
from ccm.profiles.models import Profile
from ccm.runtime import Runtime
from ccm.workspaces.models import Workspace


@dataclass(frozen=True)
class SendCheck:
    """What sending now would do: the channel and address it would use (None when nothing
    qualifies), and each reason it would be refused, deferred or rerouted."""

    channel: str | None
    address: str | None = None
    warnings: list[str] = field(default_factory=list)
    route: list[dict[str, Any]] = field(default_factory=list)
    deferred_until: dt.datetime | None = None
    category: str = "transactional"


def check_send(
    *,
    session: Session,
    runtime: Runtime,
    workspace_id: str,
    profile_id: str,
    template: str | None,
    channel: str | None,
    conversation_id: str | None = None,
) -> SendCheck:
    """What a message to the profile would meet if it were sent now: from the latest published
    ``template``, or plain text (CCM's transactional system text) when it is None; on ``channel``,
    or the person's preferred one when it is None. Writes nothing.

    Raises:
      NotFound: no such profile in the workspace, or no published template with this key.
    """
    published = latest_template(session, runtime, workspace_id, template) if template else _system_text()
    pending = _hypothetical(session, runtime, workspace_id, profile_id, published, channel, conversation_id)
    try:
        planned = plan_with(runtime, session, pending, published)
    except NotSendable as exc:
        return SendCheck(_chosen(exc.route), None, [exc.reason], exc.route, category=published.category)
    except Deferred as exc:
        return SendCheck(_chosen(exc.route), None, [exc.reason], exc.route, exc.until, published.category)
    rerouted = [f"{hop['channel']}: {hop['reason']}" for hop in planned.hops if hop["decision"] == "rejected"]
    return SendCheck(planned.channel, planned.address, rerouted, planned.hops, category=published.category)


def _chosen(route: list[dict[str, Any]]) -> str | None:
    return next((hop["channel"] for hop in route if hop["decision"] == "chosen"), None)


def _hypothetical(
    session: Session,
    runtime: Runtime,
    workspace_id: str,
    profile_id: str,
    template: PublishedTemplate,
    channel: str | None,
    conversation_id: str | None,
) -> Pending:
    """The message as delivery would load it, had it just been queued (the way
    :func:`ccm.messages.service.send_to_profile` writes one)."""
    profile = session.get(Profile, profile_id)
    if profile is None or profile.workspace_id != workspace_id:
        raise NotFound(f"no profile {profile_id!r}", field="profile")
    workspace = session.get(Workspace, workspace_id)
    assert workspace is not None
    now = utcnow()
    return Pending(
        id=new_id("msg"),
        workspace_id=workspace_id,
        profile_id=profile_id,
        status="queued",
        claim_token=None,
        claimed_at=None,
        claims=0,
        updated_at=now,
        next_attempt_at=None,
        deadline_at=now + dt.timedelta(seconds=runtime.settings.default_send_window),
        template_version_id=template.id,
        template_key=template.key,
        channel_override=channel,
        allowed_channels=None,
        failed_channels=[],
        pinned_account=None,
        data={},
        track=False,
        source="support",
        conversation_id=conversation_id,
        category=template.category,
        topic=None,
        reply_to=None,
        headers=None,
        external_id=profile.external_id,
        email=profile.email,
        phone=profile.phone,
        chat=profile.chat,
        channels=profile.channels,
        locale=profile.locale,
        timezone=profile.timezone,
        attributes=profile.attributes,
        preferences=profile.preferences,
        best_channel=profile.best_channel,
        workspace_settings=workspace.settings or {},
        default_locale=workspace.default_locale,
        mail_from=workspace.mail_from,
    )


@functools.cache
def _system_text() -> PublishedTemplate:
    """CCM's plain-text template as it is published on first use, without writing it."""
    variants = tuple(variant.model_dump() for variant in SYSTEM_TEXT.variants)
    return PublishedTemplate(
        id="",
        key=SYSTEM_TEMPLATE,
        version=0,
        category=SYSTEM_TEXT.category,
        default_locale=SYSTEM_TEXT.default_locale,
        variables=tuple(SYSTEM_TEXT.variables),
        variants=variants,
        bundle=make_bundle(SYSTEM_TEMPLATE, variants, {}, cacheable=False),
    )
