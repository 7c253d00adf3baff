"""Helpers of the import tests: upload a file through the API and run it as a worker would."""

from __future__ import annotations

import io
import json
from typing import Any

from sqlalchemy import func, select

from ccm.consent.models import ConsentRecord
from ccm.imports.service import run_import
from ccm.profiles.models import Profile


def upload(api: Any, content: bytes | str, *, filename: str = "people.csv", key: str | None = None, **form: Any) -> Any:
    """POST the file as multipart (with ``Idempotency-Key: key`` when given); ``mapping`` may be a dict."""
    data = content.encode() if isinstance(content, str) else content
    fields: dict[str, Any] = {"file": (io.BytesIO(data), filename)}
    for name, value in form.items():
        fields[name] = json.dumps(value) if isinstance(value, dict) else value
    headers = {"Idempotency-Key": key} if key else None
    return api.post("/v1/imports", data=fields, content_type="multipart/form-data", json=None, headers=headers)


def run(runtime: Any, import_id: str) -> str:
    """Run the import to its end in this process, as the ``imports.run`` actor does."""
    return run_import(runtime.db, import_id, grace=runtime.settings.relay_grace)


def imported(api: Any, runtime: Any, content: bytes | str, **form: Any) -> dict[str, Any]:
    """Upload, run, and return the finished import as the API shows it."""
    response = upload(api, content, **form)
    assert response.status_code == 202, response.json
    run(runtime, response.json["id"])
    return api.get(f"/v1/imports/{response.json['id']}").json


def profiles(runtime: Any, workspace_id: str) -> dict[str, Profile]:
    """The workspace's profiles by external id (or email when they have none)."""
    with runtime.db.read_only() as session:
        rows = session.scalars(select(Profile).where(Profile.workspace_id == workspace_id)).all()
        return {p.external_id or p.email or p.id: p for p in rows}


def count(runtime: Any, model: Any) -> int:
    with runtime.db.read_only() as session:
        return session.scalar(select(func.count()).select_from(model)) or 0


def consent_records(runtime: Any) -> list[ConsentRecord]:
    with runtime.db.read_only() as session:
        return list(session.scalars(select(ConsentRecord).order_by(ConsentRecord.id)))
