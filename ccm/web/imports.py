"""The imports screens: upload a CSV file, check how it was read and map its columns, start it,
watch its progress (htmx polling every second), pause, resume or cancel it, and download its row
report — through the same services as ``/v1/imports`` (:mod:`ccm.imports.service`), which parse
and validate the file; nothing here reads CSV."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from typing import Any

from flask import abort, current_app, g, redirect, request, url_for
from werkzeug.wrappers import Response

from ccm.access import Permission, allows
from ccm.audit.service import Target, record
from ccm.db import Database
from ccm.errors import CCMError, NotFound
from ccm.imports import service
from ccm.imports.mapping import CONSENT_CHANNELS, FIELDS, SKIP
from ccm.imports.models import FINAL, ImportJob
from ccm.imports.parsing import DELIMITERS
from ccm.pagination import PageQuery
from ccm.web.pages import db, page, screen
from ccm.web.security import actor, requires


def _largest_upload() -> int:
    """A file may be as large as the API takes (CCM_IMPORT_MAX_BYTES), plus the form around it."""
    return _settings().import_max_bytes + 1_000_000


bp = screen("imports", __name__, url_prefix="/imports", max_body=_largest_upload)
MAP_PREFIX = "map:"
"""A column's target is the form field ``map:<column header>``."""
ENCODINGS = ("utf-8", "utf-16-le", "utf-16-be", "windows-1252", "iso-8859-1")
DELIMITER_NAMES = {",": "comma", ";": "semicolon", "\t": "tab", "|": "pipe"}
TARGETS = (*FIELDS, *(f"consent.{channel}" for channel in CONSENT_CHANNELS), SKIP)
LIST_SIZE = 20


@bp.get("/")
@requires(Permission.VIEW)
def index() -> Response:
    return _index_page()


@bp.post("/inspect")
@requires(Permission.IMPORTS)
def inspect() -> Response:
    """How the chosen file reads and where each column goes (htmx): as detected when a file was
    just chosen (``fresh``: the form's options were another file's), else as the options say."""
    upload = _upload()
    if request.form.get("fresh"):
        upload = replace(upload, mapping=None, encoding=None, delimiter=None)
    try:
        inspected = service.inspect_upload(upload=upload, max_bytes=_settings().import_max_bytes)
    except CCMError as exc:
        return page("imports/_mapping.html", exc.status, inspected=None, errors={_control(exc): exc.message})
    errors = _errors(inspected, inspected.problem) if inspected.problem else {}
    return page("imports/_mapping.html", inspected=inspected, errors=errors, **_choices())


@bp.post("/")
@requires(Permission.IMPORTS)
def create() -> Response:
    """Accept the file and start it (as ``POST /v1/imports``), then show its progress."""
    settings, upload = _settings(), _upload()
    try:
        with db().unit_of_work() as session:
            created = service.create_import(
                session=session,
                workspace_id=g.user.workspace_id,
                upload=upload,
                max_bytes=settings.import_max_bytes,
                chunk_rows=settings.import_chunk_rows,
            )
            service.start(session, created.job, grace=settings.relay_grace)
            import_id = created.job.id
    except CCMError as exc:
        return _refused(upload, exc)
    target = url_for(".show", import_id=import_id)
    if request.headers.get("HX-Request"):
        return Response(status=204, headers={"HX-Redirect": target})
    return redirect(target)


@bp.get("/<import_id>")
@requires(Permission.VIEW)
def show(import_id: str) -> Response:
    return page("imports/show.html", job=_job(import_id), can_write=_can_write(), delimiters=DELIMITER_NAMES)


@bp.get("/<import_id>/progress")
@requires(Permission.VIEW)
def progress(import_id: str) -> Response:
    """The progress panel alone (polled every second until the import stops)."""
    return page("imports/_progress.html", job=_job(import_id), can_write=_can_write())


@bp.post("/<import_id>/<any(pause, resume, cancel):action>")
@requires(Permission.IMPORTS)
def change(import_id: str, action: str) -> Response:
    notices, status = [], 200
    try:
        with db().unit_of_work() as session:
            service.change_status(
                session=session,
                workspace_id=g.user.workspace_id,
                import_id=import_id,
                action=action,
                grace=_settings().relay_grace,
            )
    except NotFound:
        abort(404)
    except CCMError as exc:
        notices, status = [exc.message], exc.status
    job = _job(import_id)
    if request.headers.get("HX-Request"):
        return page("imports/_progress.html", status, job=job, can_write=True, progress_notices=notices)
    if status == 200:
        return redirect(url_for(".show", import_id=import_id))
    return page("imports/show.html", status, job=job, can_write=True, notices=notices, delimiters=DELIMITER_NAMES)


@bp.get("/<import_id>/report.csv")
@requires(Permission.IMPORTS)
def report(import_id: str) -> Response:
    """The row report, the same CSV as ``GET /v1/imports/{id}/report.csv``; the download is audited."""
    job = _job(import_id)
    with db().unit_of_work() as session:
        record(
            session=session,
            workspace_id=g.user.workspace_id,
            actor=actor(),
            action="export.import_report",
            target=Target("import", job["id"]),
            ip=request.remote_addr,
        )
    headers = {"Content-Disposition": f'attachment; filename="{job["id"]}-report.csv"'}
    return Response(_report_lines(db(), job["id"]), mimetype="text/csv", headers=headers)


def _report_lines(database: Database, import_id: str) -> Iterator[str]:
    """Streamed with a session of its own (the request's ends before the body is sent), from the
    database passed in: the application context is gone by then."""
    with database.read_only() as session:
        yield from service.report_lines(session=session, import_id=import_id)


def _upload() -> service.Upload:
    """The file and the options of the form; an empty option is the default (detected)."""
    file = request.files.get("file")
    mapping = {
        key.removeprefix(MAP_PREFIX): value.strip() for key, value in request.form.items() if key.startswith(MAP_PREFIX)
    }
    return service.Upload(
        filename=((file.filename if file else None) or "upload.csv")[:255],
        raw=file.read() if file else b"",
        mapping=mapping or None,
        consent_source=request.form.get("consent_source", "").strip() or None,
        encoding=request.form.get("encoding") if request.form.get("encoding") in ENCODINGS else None,
        delimiter=request.form.get("delimiter") if request.form.get("delimiter") in DELIMITERS else None,
    )


def _refused(upload: service.Upload, exc: CCMError) -> Response:
    """The form again with the error next to its control: the mapping (htmx), or the whole page."""
    inspected = None
    if _control(exc) != "file":
        try:
            inspected = service.inspect_upload(upload=upload, max_bytes=_settings().import_max_bytes)
        except CCMError:
            inspected = None
    errors = _errors(inspected, exc)
    if request.headers.get("HX-Request"):
        return page("imports/_mapping.html", exc.status, inspected=inspected, errors=errors, **_choices())
    return _index_page(exc.status, inspected=inspected, errors=errors)


def _errors(inspected: service.Inspected | None, exc: CCMError) -> dict[str, str]:
    """The error by the control it is shown at; a column the file lacks is about the mapping."""
    control = _control(exc)
    if control.startswith(MAP_PREFIX) and (inspected is None or control[len(MAP_PREFIX) :] not in inspected.header):
        control = "mapping"
    return {control: exc.message}


def _control(exc: CCMError) -> str:
    """The control an error is about: ``file``, ``mapping`` (no identifying column), a column's
    ``map:<header>``, or ``consent_source``."""
    field = str(exc.details.get("field", "file"))
    if field.startswith("mapping."):
        return MAP_PREFIX + field.removeprefix("mapping.")
    return field if field in ("mapping", "consent_source") else "file"


def _index_page(status: int = 200, **context: Any) -> Response:
    with db().read_only() as session:
        jobs, _ = service.list_imports(
            session=session, workspace_id=g.user.workspace_id, page=PageQuery(limit=LIST_SIZE)
        )
        rows = [_view(job) for job in jobs]
    context.setdefault("errors", {})
    context.setdefault("inspected", None)
    return page("imports/index.html", status, imports=rows, can_write=_can_write(), **_choices(), **context)


def _job(import_id: str) -> dict[str, Any]:
    with db().read_only() as session:
        try:
            job = service.get_import(session=session, workspace_id=g.user.workspace_id, import_id=import_id)
        except NotFound:
            abort(404)
        return _view(job)


def _view(job: ImportJob) -> dict[str, Any]:
    """What the pages show of an import, read while its session is open."""
    shown = {name: getattr(job, name) for name in ("id", "filename", "status", "encoding", "delimiter", "error")}
    shown.update({name: getattr(job, name) for name in (*service.COUNTERS, "total_rows", "processed_rows")})
    shown.update(service.progress(job), created_at=job.created_at, final=job.status in FINAL)
    shown["columns"] = [(name, job.mapping.get(name, SKIP)) for name in job.header if name]
    shown["actions"] = service.actions(job)
    return shown


def _choices() -> dict[str, Any]:
    return {"targets": TARGETS, "encodings": ENCODINGS, "delimiters": DELIMITER_NAMES}


def _can_write() -> bool:
    return allows(g.user.role, Permission.IMPORTS)


def _settings() -> Any:
    return current_app.extensions["ccm"].settings
