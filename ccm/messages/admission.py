"""What a send must pass before anything is written: its recipient found (by external id or an
inline profile), its template's latest published version, the template's needs met (declared
variables, a variant for the channel, the category) and, for marketing email, the workspace's
postal address. Shared by the single send (:mod:`ccm.messages.accept`), the batch
(:mod:`ccm.messages.bulk`), the queued re-check (:mod:`ccm.messages.queued`) and the agent's
preview (:mod:`ccm.messages.preview`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import bindparam, select
from sqlalchemy.orm import Session

from ccm.errors import Conflict, NotFound, ValidationFailed
from ccm.message_templates.models import MessageTemplate, TemplateVersion
from ccm.message_templates.rendering import PublishedTemplate, missing_variables
from ccm.messages.schemas import SendFields, SendIn
from ccm.profiles.service import resolve_recipient
from ccm.runtime import Runtime
from ccm.workspaces.compliance import NO_POSTAL_ADDRESS, marketing_email_refusal
from ccm.workspaces.service import workspace_policy

_template, _version = MessageTemplate.__table__, TemplateVersion.__table__


@dataclass(frozen=True)
class Recipient:
    id: str
    attributes: dict[str, Any]
    locale: str | None


LATEST_VERSION = (
    select(_version.c.id)
    .join(_template, _version.c.template_id == _template.c.id)
    .where(
        _template.c.workspace_id == bindparam("workspace_id"),
        _template.c.key == bindparam("template"),
        _version.c.version == _template.c.latest_version,
    )
)


def is_inline(request: SendIn) -> bool:
    return bool(request.to.model_fields_set - {"external_id"})


def found_recipient(session: Session, workspace_id: str, request: SendIn, found: Any) -> Recipient:
    if is_inline(request):
        profile = resolve_recipient(session=session, workspace_id=workspace_id, external_id=None, inline=request.to)
        return Recipient(profile.id, profile.attributes, profile.locale)
    if not request.to.external_id:
        raise ValidationFailed("to: give an external_id or an inline profile", field="to")
    if found.profile_id is None:
        raise NotFound(
            f"to.external_id: no profile with external_id {request.to.external_id!r}", field="to.external_id"
        )
    return Recipient(found.profile_id, found.attributes, found.locale)


def template_of(session: Session, runtime: Runtime, key: str, version_id: str | None) -> PublishedTemplate:
    if version_id is None:
        raise NotFound(f"template: no published template with key {key!r}", field="template")
    return runtime.templates.get(session, version_id, key, runtime.sandbox)


def latest_template(session: Session, runtime: Runtime, workspace_id: str, key: str) -> PublishedTemplate:
    """The latest published version of a template (for sends that come from CCM itself).

    Raises:
      NotFound: no published template has this key.
    """
    version_id = session.connection().execute(LATEST_VERSION, {"workspace_id": workspace_id, "template": key})
    return template_of(session, runtime, key, version_id.scalar())


def check_request(
    template: PublishedTemplate,
    recipient: Recipient,
    *,
    data: dict[str, Any],
    channel: str | None,
    category: str | None = None,
) -> None:
    """Refuse a send the template cannot make for this recipient.

    Raises:
      ValidationFailed: a declared variable missing from ``data`` and the profile, no variant for
        ``channel``, or a marketing template sent as transactional.
    """
    missing = missing_variables(template.variables, data, recipient.attributes)
    if missing:
        raise ValidationFailed(
            f"data.{missing[0]}: the template needs {', '.join(missing)}; give it in data or as a profile attribute",
            field=f"data.{missing[0]}",
            details={"missing": missing},
        )
    if channel and template.variant_for(channel, recipient.locale) is None:
        raise ValidationFailed(f"channel: template {template.key!r} has no {channel} variant", field="channel")
    if template.category == "marketing" and category == "transactional":
        raise ValidationFailed("category: a marketing template cannot be sent as transactional", field="category")


def email_refusal(
    session: Session, workspace_id: str, template: PublishedTemplate, recipient: Recipient, send: SendFields
) -> str | None:
    """Why this send may not go (it is marketing email, and the workspace has no postal address:
    :func:`ccm.workspaces.compliance.marketing_email_refusal`), or None. It is email when it is
    sent on email, or may be routed there (email allowed, and the template has an email variant
    for the recipient). The workspace is read only for marketing sends."""
    if (send.category or template.category) != "marketing":
        return None
    if send.channel is not None and send.channel != "email":
        return None
    if send.channels is not None and "email" not in send.channels:
        return None
    if template.variant_for("email", recipient.locale) is None:
        return None
    return marketing_email_refusal(workspace_policy(session=session, workspace_id=workspace_id))


def check_marketing_email(
    session: Session, workspace_id: str, template: PublishedTemplate, recipient: Recipient, send: SendFields
) -> None:
    """Refuse marketing email from a workspace without a postal address (see :func:`email_refusal`).

    Raises:
      Conflict: 409 naming ``policy.postal_address``, with ``details.reason`` ``no_postal_address``;
        the message says what to PATCH. Nothing is written.
    """
    refusal = email_refusal(session, workspace_id, template, recipient, send)
    if refusal:
        raise Conflict(refusal, field="policy.postal_address", details={"reason": NO_POSTAL_ADDRESS})
