"""``/v1/imports``: upload a CSV file of profiles, follow its progress, pause, resume or cancel
it, and read its row report (JSON pages or a CSV file)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from typing import Any

from flask import Blueprint, Response, current_app, request
from pydantic import ValidationError

from ccm.access import Permission
from ccm.audit.api import audit_export
from ccm.audit.service import Target
from ccm.auth.api import current_workspace_id, require_api_key
from ccm.db import Database
from ccm.errors import ValidationFailed
from ccm.http import db_session, endpoint, permissions, validation_failed
from ccm.idempotency.http import HEADER as IDEMPOTENCY_HEADER
from ccm.idempotency.http import respond_idempotently
from ccm.idempotency.service import fingerprint
from ccm.imports import service
from ccm.imports.models import ImportJob
from ccm.imports.schemas import (
    Column,
    Counts,
    ErrorQuery,
    ImportCreated,
    ImportId,
    ImportList,
    ImportOut,
    RowErrorList,
    RowErrorOut,
    UploadQuery,
    upload_content,
)
from ccm.pagination import PageQuery
from ccm.validation import check_input

bp = Blueprint("imports", __name__, url_prefix="/v1/imports")
bp.before_request(require_api_key)
permissions(bp, writes=Permission.IMPORTS)
RAW_TYPES = ("text/csv", "text/plain", "application/octet-stream")


@bp.before_request
def _allow_large_files() -> None:
    """Files may be larger than other requests: up to CCM_IMPORT_MAX_BYTES, plus the form around them."""
    request.max_content_length = current_app.extensions["ccm"].settings.import_max_bytes + 1_000_000


@endpoint(
    bp,
    "",
    method="POST",
    query=UploadQuery,
    body_content=upload_content(),
    responses={202: ImportCreated},
    headers=IDEMPOTENCY_HEADER,
    errors=(409,),
    summary="Import profiles from a CSV file (multipart field file, or a text/csv body): runs in the background",
)
def create_import(query: UploadQuery) -> tuple[ImportCreated, int, dict[str, str]]:
    runtime, session, upload = current_app.extensions["ccm"], db_session(), _upload(query)

    def work() -> tuple[ImportCreated, int]:
        created = service.create_import(
            session=session,
            workspace_id=current_workspace_id(),
            upload=upload,
            max_bytes=runtime.settings.import_max_bytes,
            chunk_rows=runtime.settings.import_chunk_rows,
        )
        service.start(session, created.job, grace=runtime.settings.relay_grace)
        return ImportCreated(**_out(created.job).model_dump(), preview=created.preview), 202

    return respond_idempotently(work, ImportCreated, request_hash=_upload_hash(upload))


def _upload_hash(upload: service.Upload) -> str:
    """What makes two uploads the same: the file's bytes and every option, however they came
    (multipart fields or query; a multipart boundary differs between two sends of one file)."""
    options = {
        "filename": upload.filename,
        "mapping": dict(upload.mapping) if upload.mapping is not None else None,
        "consent_source": upload.consent_source,
        "encoding": upload.encoding,
        "delimiter": upload.delimiter,
        "file": hashlib.sha256(upload.raw).hexdigest(),
    }
    return fingerprint("POST", "/v1/imports", json.dumps(options, sort_keys=True).encode())


@endpoint(bp, "", method="GET", query=PageQuery, responses={200: ImportList}, summary="Imports, newest first")
def list_imports(query: PageQuery) -> ImportList:
    items, cursor = service.list_imports(session=db_session(), workspace_id=current_workspace_id(), page=query)
    return ImportList(items=[_out(job) for job in items], next_cursor=cursor)


@endpoint(
    bp,
    "/<import_id>",
    method="GET",
    responses={200: ImportOut},
    summary="An import's progress: rows done, counts, rate",
)
def get_import(import_id: ImportId) -> ImportOut:
    return _out(service.get_import(session=db_session(), workspace_id=current_workspace_id(), import_id=import_id))


def _change(import_id: str, action: str) -> ImportOut:
    grace = current_app.extensions["ccm"].settings.relay_grace
    job = service.change_status(
        session=db_session(), workspace_id=current_workspace_id(), import_id=import_id, action=action, grace=grace
    )
    return _out(job)


@endpoint(
    bp,
    "/<import_id>/pause",
    method="POST",
    responses={200: ImportOut},
    errors=(409,),
    summary="Pause an import after the chunk being written",
)
def pause_import(import_id: ImportId) -> ImportOut:
    return _change(import_id, "pause")


@endpoint(
    bp,
    "/<import_id>/resume",
    method="POST",
    responses={200: ImportOut},
    errors=(409,),
    summary="Resume a paused (or failed) import from its checkpoint",
)
def resume_import(import_id: ImportId) -> ImportOut:
    return _change(import_id, "resume")


@endpoint(
    bp,
    "/<import_id>/cancel",
    method="POST",
    responses={200: ImportOut},
    errors=(409,),
    summary="Cancel an import: rows already written stay, the rest are not read",
)
def cancel_import(import_id: ImportId) -> ImportOut:
    return _change(import_id, "cancel")


@endpoint(
    bp,
    "/<import_id>/errors",
    method="GET",
    query=ErrorQuery,
    responses={200: RowErrorList},
    summary="An import's row report: each row skipped (invalid or duplicate) and why, in row order",
)
def list_errors(import_id: ImportId, query: ErrorQuery) -> RowErrorList:
    session = db_session()
    service.get_import(session=session, workspace_id=current_workspace_id(), import_id=import_id)
    after = int(query.cursor) if query.cursor else 0
    rows, cursor = service.list_errors(session=session, import_id=import_id, after=after, limit=query.limit)
    return RowErrorList(
        items=[RowErrorOut(row=e.row_number, column=e.column_name, value=e.value, reason=e.reason) for e in rows],
        next_cursor=cursor,
    )


@endpoint(
    bp,
    "/<import_id>/report.csv",
    method="GET",
    responses={200: None},
    produces="text/csv",
    permission=Permission.IMPORTS,
    summary="An import's row report as CSV (row, column, value, reason), safe to open in a spreadsheet",
)
def report_csv(import_id: ImportId) -> Response:
    service.get_import(session=db_session(), workspace_id=current_workspace_id(), import_id=import_id)
    audit_export("export.import_report", Target("import", import_id))
    lines = _report_lines(current_app.extensions["ccm"].db, import_id)
    headers = {"Content-Disposition": f'attachment; filename="{import_id}-report.csv"'}
    return Response(lines, mimetype="text/csv", headers=headers)


def _report_lines(db: Database, import_id: str) -> Iterator[str]:
    """Streamed with a session of its own: the request's ends before the body is sent."""
    with db.read_only() as session:
        yield from service.report_lines(session=session, import_id=import_id)


def _upload(query: UploadQuery) -> service.Upload:
    """The file and its options from a multipart form (fields override the query) or a raw body."""
    if request.mimetype == "multipart/form-data":
        file = request.files.get("file")
        if file is None:
            raise ValidationFailed("file: the multipart form has no file field", field="file")
        form = {name: request.form[name] for name in ("mapping", "consent_source") if name in request.form}
        check_input(form, "")
        query = _merged(query, form)
        raw, field, filename = file.read(), "file", file.filename or query.filename
    elif request.mimetype in RAW_TYPES or not request.mimetype:
        raw, field, filename = request.get_data(cache=False), "body", query.filename
    else:
        raise ValidationFailed(
            "body: send multipart/form-data with a file field, or the CSV as a text/csv body", field="body"
        )
    return service.Upload(
        filename=(filename or "upload.csv")[:255],
        raw=raw,
        mapping=_mapping(query.mapping),
        consent_source=query.consent_source,
        encoding=query.encoding,
        delimiter=query.delimiter,
        field=field,
    )


def _merged(query: UploadQuery, form: dict[str, str]) -> UploadQuery:
    try:
        return UploadQuery.model_validate({**query.model_dump(exclude_none=True), **form})
    except ValidationError as exc:
        raise validation_failed(exc) from None


def _mapping(text: str | None) -> dict[str, str] | None:
    if text is None:
        return None
    try:
        value: Any = json.loads(text)
    except (ValueError, RecursionError):
        raise ValidationFailed('mapping: not JSON; give an object {"Column Header": field}', field="mapping") from None
    if not isinstance(value, dict):
        raise ValidationFailed('mapping: a JSON object {"Column Header": field}', field="mapping")
    return value


def _out(job: ImportJob) -> ImportOut:
    return ImportOut(
        id=job.id,
        status=job.status,
        filename=job.filename,
        encoding=job.encoding,
        delimiter=job.delimiter,
        columns=[Column(header=name, field=job.mapping.get(name, "skip")) for name in job.header],
        mapping=job.mapping,
        consent_source=job.consent_source,
        total_rows=job.total_rows,
        processed_rows=job.processed_rows,
        checkpoint=job.checkpoint,
        counts=Counts(**{name: getattr(job, name) for name in service.COUNTERS}),
        error=job.error,
        report_url=f"/v1/imports/{job.id}/report.csv",
        created_at=job.created_at,
        started_at=job.started_at,
        finished_at=job.finished_at,
        updated_at=job.updated_at,
        **service.progress(job),
    )
