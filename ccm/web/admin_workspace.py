"""The workspace's settings (admins): sender, default locale, and the delivery policy's quiet
hours, frequency caps, topics, postal address, help text and time zones. The form becomes the
JSON body ``PATCH /v1/workspace`` takes and is validated by the same model and service, so an
error names the same field (``policy.quiet_hours.marketing.sms``), shown next to its control."""

from __future__ import annotations

import json
from typing import Any

from flask import g, request
from sqlalchemy.orm import Session
from werkzeug.datastructures import MultiDict
from werkzeug.wrappers import Response

from ccm.access import Permission
from ccm.audit.service import Target
from ccm.web.admin_forms import Outcome, audit, run_write
from ccm.web.pages import db, page
from ccm.web.security import requires
from ccm.workspaces import service
from ccm.workspaces.models import Workspace
from ccm.workspaces.schemas import WorkspaceOut, WorkspacePatch

CHANNELS = ("email", "sms", "chat")
CATEGORIES = ("marketing", "transactional")
BLANK_ROWS = 2


def _out(workspace: Workspace) -> WorkspaceOut:
    return WorkspaceOut(
        id=workspace.id,
        name=workspace.name,
        mail_from=workspace.mail_from,
        default_locale=workspace.default_locale,
        policy=service.policy_of(workspace.settings),
    )


def _number(raw: str) -> Any:
    """A number typed in a form, or the text itself for the model to refuse by name."""
    try:
        return int(raw) if raw.lstrip("-").isdigit() else float(raw)
    except ValueError:
        return raw


def _rows(
    form: MultiDict[str, str], prefix: str, names: tuple[str, ...], filled: tuple[str, ...]
) -> list[dict[str, str]]:
    """The table rows ``<prefix>-<i>-<name>`` of a form, in order; a row none of whose ``filled``
    fields has a value is a blank one, left out."""
    rows, index = [], 0
    while f"{prefix}-{index}-{names[0]}" in form:
        row = {name: form.get(f"{prefix}-{index}-{name}", "").strip() for name in names}
        if any(row[name] for name in filled):
            rows.append(row)
        index += 1
    return rows


def _window(form: MultiDict[str, str], category: str, channel: str) -> list[str] | None:
    start, end = (form.get(f"qh-{category}-{channel}-{edge}", "").strip() for edge in ("start", "end"))
    return [start, end] if start or end else None


def _lines(raw: str) -> list[str]:
    return [line.strip() for line in raw.replace(",", "\n").splitlines() if line.strip()]


def body_from_form(form: MultiDict[str, str]) -> dict[str, Any]:
    """The ``PATCH /v1/workspace`` body the settings form describes."""
    quiet: dict[str, Any] = {c: {ch: _window(form, c, ch) for ch in CHANNELS} for c in CATEGORIES}
    quiet["transactional_bypass"] = "transactional_bypass" in form
    caps = [
        {
            "channel": row["channel"] or "*",
            "topic": row["topic"] or "*",
            "max": _number(row["max"]),
            "days": _number(row["days"]),
        }
        for row in _rows(form, "cap", ("channel", "topic", "max", "days"), filled=("max", "days"))
    ]
    topics = {
        row["name"]: {"mode": row["mode"], "description": row["description"]}
        for row in _rows(form, "topic", ("name", "mode", "description"), filled=("name",))
    }
    policy = {
        "timezone": form.get("timezone", "").strip(),
        "audience_timezones": _lines(form.get("audience_timezones", "")),
        "quiet_hours": quiet,
        "frequency_caps": caps,
        "topics": topics,
        "help_text": form.get("help_text", "").strip(),
        "postal_address": form.get("postal_address", "").strip() or None,
    }
    return {
        "mail_from": form.get("mail_from", "").strip() or None,
        "default_locale": form.get("default_locale", "").strip() or None,
        "policy": policy,
    }


def _page(outcome: Outcome, shown: dict[str, Any] | None = None) -> Response:
    with db().unit_of_work() as session:
        current = _out(service.get_workspace(session=session, workspace_id=g.user.workspace_id)).model_dump(mode="json")
    return page(
        "admin/settings.html",
        outcome.status,
        ws=shown or current,
        channels=CHANNELS,
        categories=CATEGORIES,
        blank_rows=BLANK_ROWS,
        **outcome.shown(),
    )


@requires(Permission.ADMIN)
def index() -> Response:
    return _page(Outcome())


@requires(Permission.ADMIN)
def update() -> Response:
    outcome, body = Outcome(), body_from_form(request.form)

    def work(session: Session) -> None:
        data = WorkspacePatch.model_validate_json(json.dumps(body))
        before = _out(service.get_workspace(session=session, workspace_id=g.user.workspace_id)).model_dump(mode="json")
        workspace = service.update_workspace(session=session, workspace_id=g.user.workspace_id, data=data)
        after = _out(workspace).model_dump(mode="json")
        audit(
            session,
            "workspace.update",
            Target("workspace", workspace.id),
            before=before,
            after=after,
        )

    run_write(outcome, work)
    if outcome.status != 200:
        return _page(outcome, shown=body)
    outcome.notices.append("Saved the settings.")
    return _page(outcome)
