"""A support agent's message to one person outside any conversation (the web app's profile page):
a published template with its variables, or plain text, queued by the same functions the
conversation follow-up uses (:func:`ccm.conversations.follow_up.send_in_conversation`)."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from ccm.errors import ValidationFailed
from ccm.message_templates.service import is_internal
from ccm.messages.preview import check_send
from ccm.messages.service import send_system_text, send_to_profile
from ccm.runtime import Runtime

CHANNELS = ("email", "sms", "chat")


def send_from_agent(
    *,
    session: Session,
    runtime: Runtime,
    workspace_id: str,
    profile_id: str,
    template: str | None,
    data: dict[str, Any],
    text: str | None,
    channel: str | None,
) -> str:
    """Queue the message (source ``support``) and return its id. Without ``channel`` it goes on
    the one delivery would choose now (:func:`ccm.messages.preview.check_send`).

    Raises:
      ValidationFailed: neither or both of ``template`` and ``text``, an unknown channel, no
        channel that can reach the person, or what :func:`send_to_profile` refuses.
      NotFound: no published template with this key (CCM's own are not offered).
    """
    if (template is None) == (text is None):
        raise ValidationFailed("template: give either a template or a text", field="template")
    if text is not None and not text.strip():
        raise ValidationFailed("text: the text is empty", field="text")
    if template is not None and is_internal(template):
        raise ValidationFailed(f"template: no published template with key {template!r}", field="template")
    if channel is not None and channel not in CHANNELS:
        raise ValidationFailed(f"channel: must be one of {', '.join(CHANNELS)}", field="channel")
    if channel is None:
        checked = check_send(
            session=session,
            runtime=runtime,
            workspace_id=workspace_id,
            profile_id=profile_id,
            template=template,
            channel=None,
        )
        if checked.channel is None:
            reasons = "; ".join(checked.warnings)
            raise ValidationFailed(f"channel: no channel can reach this person now ({reasons})", field="channel")
        channel = checked.channel
    common: dict[str, Any] = dict(
        session=session, runtime=runtime, workspace_id=workspace_id, profile_id=profile_id, channel=channel
    )
    if text is not None:
        return send_system_text(text=text, source="support", **common)
    assert template is not None
    return send_to_profile(template=template, data=data, source="support", **common)
