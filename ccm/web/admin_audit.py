"""The audit log (admins): what ``GET /v1/audit`` returns, newest first, filtered by action,
actor, target and time, a page at a time, with each entry's before and after."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlencode

from flask import g, request
from pydantic import ValidationError
from werkzeug.wrappers import Response

from ccm.access import Permission
from ccm.audit.schemas import AuditEntryOut, AuditQuery
from ccm.audit.service import AuditFilter, list_entries
from ccm.http import validation_failed
from ccm.web.admin_forms import Outcome
from ccm.web.pages import db, page
from ccm.web.security import requires

FILTERS = ("action", "actor", "target_type", "target_id", "since", "until")


def _pretty(value: dict[str, Any] | None) -> str:
    return "" if value is None else json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False)


@requires(Permission.ADMIN)
def index() -> Response:
    given = {
        name: request.args[name].strip() for name in (*FILTERS, "limit", "cursor") if request.args.get(name, "").strip()
    }
    outcome = Outcome()
    try:
        query = AuditQuery.model_validate(given)
    except ValidationError as exc:
        outcome.failed(validation_failed(exc))
        return page("admin/audit.html", outcome.status, entries=[], filters=given, next_url=None, **outcome.shown())
    with db().unit_of_work() as session:
        rows, cursor = list_entries(
            session=session, workspace_id=g.user.workspace_id, where=AuditFilter(**query.model_dump())
        )
        entries = [AuditEntryOut.model_validate(row) for row in rows]
    shown = [(entry, _pretty(entry.before), _pretty(entry.after)) for entry in entries]
    next_args = {name: value for name, value in given.items() if name != "cursor"}
    next_url = None if cursor is None else request.path + "?" + urlencode({**next_args, "cursor": cursor})
    return page("admin/audit.html", entries=shown, filters=given, next_url=next_url, **outcome.shown())
