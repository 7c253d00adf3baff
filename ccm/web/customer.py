"""What the profile page shows, gathered from the services that own each part: the profile and
its rollups, consent per channel and topic, suppression of each address, the timeline, and the
compose form with what a send would meet now (:func:`ccm.messages.preview.check_send`)."""

from __future__ import annotations

import re
import secrets
from collections.abc import Mapping
from typing import Any

from pydantic import ValidationError
from sqlalchemy.orm import Session

from ccm.consent.service import current, history
from ccm.errors import ValidationFailed
from ccm.message_templates.service import list_templates
from ccm.messages.admission import latest_template
from ccm.messages.preview import check_send
from ccm.messages.support import CHANNELS
from ccm.pagination import PageQuery
from ccm.profiles.models import Profile
from ccm.profiles.search import NAME_ATTRIBUTES
from ccm.profiles.service import get_profile_by_id
from ccm.runtime import Runtime
from ccm.suppression.service import suppressed
from ccm.timeline.service import CURSOR_PATTERN, timeline
from ccm.workspaces.service import workspace_policy

VARIABLE_FIELD = "data."
_MAX_VARIABLE = 2000


def summary(profile: Profile) -> dict[str, Any]:
    """A row of the search results."""
    attributes = profile.attributes or {}
    parts = [str(attributes[name]) for name in ("first_name", "last_name") if attributes.get(name)]
    return {
        "id": profile.id,
        "external_id": profile.external_id,
        "email": profile.email,
        "phone": profile.phone,
        "name": attributes.get("name") or " ".join(parts),
    }


def profile_in(session: Session, workspace_id: str, profile_id: str) -> Profile:
    return get_profile_by_id(session=session, workspace_id=workspace_id, profile_id=profile_id)


def profile_page(
    session: Session, runtime: Runtime, workspace_id: str, profile_id: str, args: Mapping[str, str], *, page_size: int
) -> dict[str, Any]:
    """Everything ``profiles/show.html`` shows. ``args``: ``before`` (the timeline's cursor) and
    the compose form's fields.

    Raises:
      NotFound: no such profile; ValidationFailed: ``before`` is not a timeline cursor.
    """
    profile = profile_in(session, workspace_id, profile_id)
    before = args.get("before") or None
    if before is not None and not re.fullmatch(CURSOR_PATTERN, before):
        raise ValidationFailed("before: not a cursor this timeline gave", field="before")
    entries, older = timeline(session=session, profile_id=profile.id, limit=page_size, cursor=before)
    return {
        "profile": profile,
        "profile_id": profile.id,
        "person": summary(profile),
        "name_attributes": NAME_ATTRIBUTES,
        "channels": _channels(session, workspace_id, profile),
        "topics": workspace_policy(session=session, workspace_id=workspace_id).topics,
        "rollups": profile.engagement or {},
        "entries": entries,
        "older": older,
        "before": before,
        "compose": compose_form(session, runtime, workspace_id, profile.id, args),
    }


def _channels(session: Session, workspace_id: str, profile: Profile) -> list[dict[str, Any]]:
    """Per channel: the address, its rank, whether it is suppressed, and the current consent
    per topic."""
    consent = current(history(session=session, profile_id=profile.id))
    ranking = list(profile.channels or [])
    addresses: dict[str, Any] = {"email": profile.email, "sms": profile.phone, "chat": profile.chat or None}
    rows = []
    for channel in CHANNELS:
        address = addresses[channel]
        blocked = (
            suppressed(session=session, workspace_id=workspace_id, channel=channel, address=address)
            if isinstance(address, str)
            else None
        )
        rows.append(
            {
                "channel": channel,
                "address": ", ".join(f"{k}: {v}" for k, v in address.items()) if isinstance(address, dict) else address,
                "rank": ranking.index(channel) + 1 if channel in ranking else None,
                "suppressed": blocked,
                "consent": [state for state in consent if state.channel == channel],
            }
        )
    return rows


def compose_form(
    session: Session, runtime: Runtime, workspace_id: str, profile_id: str, args: Mapping[str, str]
) -> dict[str, Any]:
    """The compose form's choices and values, and the send check for them.

    Raises:
      NotFound: the template chosen has no published version; ValidationFailed: an unknown channel.
    """
    profile_in(session, workspace_id, profile_id)
    templates = [t.key for t in list_templates(session=session, workspace_id=workspace_id) if t.latest_version]
    template = args.get("template") or None
    channel = args.get("channel") or None
    if channel is not None and channel not in CHANNELS:
        raise ValidationFailed(f"channel: must be one of {', '.join(CHANNELS)}", field="channel")
    variables = list(latest_template(session, runtime, workspace_id, template).variables) if template else []
    checked = check_send(
        session=session,
        runtime=runtime,
        workspace_id=workspace_id,
        profile_id=profile_id,
        template=template,
        channel=channel,
    )
    return {
        "templates": templates,
        "template": template,
        "channels": CHANNELS,
        "channel": channel,
        "text": args.get("text", ""),
        "variables": [(name, args.get(VARIABLE_FIELD + name, "")) for name in variables],
        "check": checked,
    }


def variables_of(form: Mapping[str, str]) -> dict[str, str]:
    """The template variables typed in the form (``data.<name>`` fields; blank ones left out, so
    the profile's attribute of that name is used).

    Raises:
      ValidationFailed: a value too long to be meant.
    """
    data = {}
    for name, value in form.items():
        if name.startswith(VARIABLE_FIELD) and value.strip():
            if len(value) > _MAX_VARIABLE:
                raise ValidationFailed(f"{name}: at most {_MAX_VARIABLE} characters", field=name)
            data[name.removeprefix(VARIABLE_FIELD)] = value
    return data


def page_query(cursor: str | None, size: int) -> PageQuery:
    """A page of a list; a cursor the list did not give is refused naming ``cursor``."""
    try:
        return PageQuery(limit=size, cursor=cursor or None)
    except ValidationError:
        raise ValidationFailed("cursor: not a cursor this list gave", field="cursor") from None


def idempotency_key(user_id: str, key: str) -> str:
    """The stored key of a form's send: the form's random key, scoped to the user."""
    if not key or len(key) > 64 or not key.isprintable():
        raise ValidationFailed("idempotency_key: reload the page; the form lost its key", field="idempotency_key")
    return f"web:{user_id}:{key}"


def new_key() -> str:
    """A form's idempotency key: a double click posts it twice, and sends once."""
    return secrets.token_urlsafe(16)
