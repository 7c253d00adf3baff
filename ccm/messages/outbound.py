"""Everything between a claimed message and a provider call: route, render, build the outbound."""

from __future__ import annotations

from email.utils import parseaddr

from sqlalchemy.orm import Session

from ccm.channels.base import OutboundMessage, Provider
from ccm.channels.email_mime import EmailContent, HeaderInjectionError, build_email
from ccm.message_templates.rendering import RenderedParts, build_context, render_parts
from ccm.message_templates.sandbox import RenderError
from ccm.messages.models import Message, MessageStatus
from ccm.messages.routing import candidate_channels, choose_route
from ccm.profiles.models import Profile
from ccm.profiles.service import template_context
from ccm.runtime import Runtime
from ccm.tokens import UNSUBSCRIBE
from ccm.workspaces.models import Workspace


class NotSendable(Exception):
    """The message ends here, without a provider call, in ``status`` with ``reason``."""

    def __init__(self, status: MessageStatus, reason: str) -> None:
        super().__init__(reason)
        self.status, self.reason = status, reason


def prepare_outbound(runtime: Runtime, session: Session, message: Message) -> tuple[Provider, OutboundMessage]:
    """Route and render ``message``; record the route on it.

    Raises:
      NotSendable: no channel qualifies (skipped), or rendering or headers failed (failed).
    """
    profile = session.get(Profile, message.profile_id) if message.profile_id else None
    if profile is None:
        raise NotSendable(MessageStatus.SKIPPED, "profile_deleted")
    workspace = session.get(Workspace, message.workspace_id)
    assert workspace is not None
    template = runtime.templates.get(session, message.template_version_id, message.template_key)
    route = choose_route(
        candidates=candidate_channels(override=message.channel_override, ranking=profile.channels,
                                      workspace_order=workspace.channel_order),
        template=template, locale=profile.locale or workspace.default_locale,
        addresses={"email": profile.email, "sms": profile.phone, "chat": _chat_handle(profile)},
        providers=lambda channel: runtime.providers.for_channel(workspace.id, channel),
    )
    message.route = [hop.as_dict() for hop in route.hops]
    if route.channel is None or route.variant is None or route.provider is None or route.address is None:
        raise NotSendable(MessageStatus.SKIPPED, route.skip_reason)
    message.channel, message.locale, message.to_address = route.channel, route.variant["locale"], route.address
    unsubscribe_url = _unsubscribe_url(runtime, message)
    context = build_context(variables=template.variables, data=message.data, profile=template_context(profile),
                            extras={"unsubscribe_url": unsubscribe_url, "message": {
                                "id": message.id, "category": message.category, "topic": message.topic}})
    try:
        parts = render_parts(runtime.sandbox, template.bundle, route.variant, context)
    except RenderError as exc:
        raise NotSendable(MessageStatus.FAILED, f"render_error: {exc.code}: {exc.message}") from None
    return route.provider, _outbound(runtime, workspace, message, parts, unsubscribe_url)


def _outbound(runtime: Runtime, workspace: Workspace, message: Message, parts: RenderedParts,
              unsubscribe_url: str) -> OutboundMessage:
    assert message.to_address is not None
    if parts.channel != "email":
        return OutboundMessage(message.id, workspace.id, parts.channel, message.to_address, body=parts.body)
    from_addr = workspace.mail_from or runtime.settings.mail_from
    envelope_from = parseaddr(from_addr)[1]
    message_id_header = f"<{message.id}@{envelope_from.rpartition('@')[2] or 'ccm.local'}>"
    headers = {"X-CCM-Message-Id": message.id}
    if message.category == "marketing":
        headers["List-Unsubscribe"] = f"<{unsubscribe_url}>"
        headers["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
    content = EmailContent(from_addr=from_addr, to_addr=message.to_address, subject=parts.subject, html=parts.html,
                           text=parts.text, message_id=message_id_header, reply_to=message.reply_to, headers=headers)
    try:
        raw = build_email(content)
    except HeaderInjectionError as exc:
        raise NotSendable(MessageStatus.FAILED, f"invalid_header: {exc}") from None
    return OutboundMessage(message.id, workspace.id, "email", message.to_address, raw=raw,
                           envelope_from=envelope_from, subject=parts.subject,
                           headers={"Message-ID": message_id_header})


def _unsubscribe_url(runtime: Runtime, message: Message) -> str:
    token = runtime.signer.sign(UNSUBSCRIBE, {"w": message.workspace_id, "p": message.profile_id,
                                              "m": message.id, "c": message.channel, "t": message.topic})
    return f"{runtime.settings.public_url}/u/{token}"


def _chat_handle(profile: Profile) -> str | None:
    return next(iter(profile.chat.values()), None) if profile.chat else None
