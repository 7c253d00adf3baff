"""Imports: accept a file, then run it chunk by chunk; pause, resume, cancel; read the report.

:func:`create_import` parses the whole file while the upload is answered (so a bad file is
refused with nothing written) and stores its rows in chunks. :func:`run_import` then takes one
chunk per transaction: the chunk's writes, its report lines and the new checkpoint commit
together, and the import row is locked while they are made, so a worker killed mid-chunk loses
only that chunk's uncommitted work and a second worker waits rather than doubling it. The job's
outbox row stays until the import stops (completed, paused, cancelled): a dead worker's import
is published again by the relay and resumes from its checkpoint.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select, text
from sqlalchemy.orm import Session

from ccm import jobs
from ccm.csvsafe import csv_lines
from ccm.db import Database, dialect_of, insert_many, utcnow
from ccm.errors import CCMError, Conflict, NotFound, PayloadTooLarge
from ccm.imports.chunk import ImportContext, apply_chunk
from ccm.imports.mapping import auto_mapping, build_mapping
from ccm.imports.models import FINAL, ImportChunk, ImportJob, ImportRowError, ImportStatus
from ccm.imports.parsing import ParsedFile, parse_file
from ccm.imports.rows import identity_keys
from ccm.pagination import PageQuery, paginate, split_page
from ccm.workspaces.service import workspace_policy

RUN = jobs.Job("imports.run", queue="maintenance", time_limit_ms=10 * 60 * 1000)
PREVIEW_ROWS = 5
CHUNKS_PER_INSERT = 20
COUNTERS = ("created", "updated", "unchanged", "invalid", "duplicate")
REPORT_HEADER = ("row", "column", "value", "reason")
_CUSTOM_PLANS = text("SET LOCAL plan_cache_mode = force_custom_plan")
_ASYNC_COMMIT = text("SET LOCAL synchronous_commit = off")


@dataclass(frozen=True)
class Upload:
    """A file to import and how to read it."""

    filename: str
    raw: bytes
    mapping: Mapping[str, str] | None = None
    consent_source: str | None = None
    encoding: str | None = None
    delimiter: str | None = None
    field: str = "file"
    """The input that carried the file, named by errors about it."""


@dataclass(frozen=True)
class Created:
    job: ImportJob
    preview: list[dict[str, str]]


@dataclass(frozen=True)
class Inspected:
    """How a file would be imported, before it is: the encoding, delimiter and header read, each
    column's target (by name, overridden by the upload's mapping), the first rows, and what
    :func:`create_import` would refuse in that mapping (``problem``), if anything."""

    encoding: str
    delimiter: str
    header: list[str]
    mapping: dict[str, str]
    total_rows: int
    preview: list[dict[str, str]]
    problem: CCMError | None


def inspect_upload(*, upload: Upload, max_bytes: int) -> Inspected:
    """Read ``upload`` as :func:`create_import` would, and store nothing (the column mapping a
    person checks before starting).

    Raises:
      PayloadTooLarge, ValidationFailed: the file itself is refused, as by :func:`create_import`.
    """
    _check_size(upload, max_bytes)
    parsed = parse_file(upload.raw, field=upload.field, encoding=upload.encoding, delimiter=upload.delimiter)
    mapping, problem = {**auto_mapping(parsed.header), **(upload.mapping or {})}, None
    try:
        mapping = build_mapping(parsed.header, upload.mapping)
    except CCMError as exc:
        problem = exc
    return Inspected(
        parsed.encoding, parsed.delimiter, parsed.header, mapping, len(parsed.rows), _preview(parsed), problem
    )


def _check_size(upload: Upload, max_bytes: int) -> None:
    if len(upload.raw) > max_bytes:
        raise PayloadTooLarge(
            f"{upload.field}: larger than {max_bytes} bytes (CCM_IMPORT_MAX_BYTES)", field=upload.field
        )


def create_import(*, session: Session, workspace_id: str, upload: Upload, max_bytes: int, chunk_rows: int) -> Created:
    """Parse and store the file as a pending import (the caller asks for it to run).

    Raises:
      PayloadTooLarge: the file is larger than ``max_bytes``.
      ValidationFailed: the file cannot be read, or the mapping does not fit it (naming the field).
    """
    _check_size(upload, max_bytes)
    parsed = parse_file(upload.raw, field=upload.field, encoding=upload.encoding, delimiter=upload.delimiter)
    mapping = build_mapping(parsed.header, upload.mapping)
    job = ImportJob(
        workspace_id=workspace_id,
        filename=upload.filename,
        status=ImportStatus.PENDING,
        encoding=parsed.encoding,
        delimiter=parsed.delimiter,
        header=parsed.header,
        mapping=mapping,
        consent_source=upload.consent_source,
        chunk_rows=chunk_rows,
        total_rows=len(parsed.rows),
        **dict.fromkeys((*COUNTERS, "processed_rows", "checkpoint"), 0),
    )
    session.add(job)
    session.flush()
    _store_rows(session, job.id, _with_duplicates(parsed, mapping), chunk_rows)
    return Created(job, _preview(parsed))


def _with_duplicates(parsed: ParsedFile, mapping: dict[str, str]) -> list[list[Any]]:
    """``[row number, cells, the earlier row it repeats or None]`` for every row."""
    first: dict[str, int] = {}
    rows = []
    for number, cells in parsed.rows:
        keys = identity_keys(cells, parsed.header, mapping)
        earlier = next((first[key] for key in keys if key in first), None)
        for key in keys:
            first.setdefault(key, number)
        rows.append([number, cells, earlier])
    return rows


def _store_rows(session: Session, import_id: str, rows: list[list[Any]], chunk_rows: int) -> None:
    chunks = [
        {"import_id": import_id, "start": start, "row_count": len(part), "rows": part}
        for start in range(0, len(rows), chunk_rows)
        if (part := rows[start : start + chunk_rows])
    ]
    for first in range(0, len(chunks), CHUNKS_PER_INSERT):
        insert_many(
            session.connection(), ImportChunk.__table__, chunks[first : first + CHUNKS_PER_INSERT], ignoring=False
        )


def _preview(parsed: ParsedFile) -> list[dict[str, str]]:
    return [
        {name: cells[index] if index < len(cells) else "" for index, name in enumerate(parsed.header) if name}
        for _, cells in parsed.rows[:PREVIEW_ROWS]
    ]


def start(session: Session, job: ImportJob, *, grace: float, delay: float = 0.0) -> None:
    """Ask for ``job`` to be run by a worker once this transaction commits (or after ``delay``)."""
    jobs.reschedule(session, RUN, job.id, delay=delay, grace=grace)


def get_import(*, session: Session, workspace_id: str, import_id: str, lock: bool = False) -> ImportJob:
    """Raises NotFound (naming ``id``) unless the workspace has this import."""
    statement = select(ImportJob).where(ImportJob.id == import_id, ImportJob.workspace_id == workspace_id)
    job = session.scalar(statement.with_for_update() if lock else statement)
    if job is None:
        raise NotFound(f"no import {import_id!r}", field="id")
    return job


def list_imports(*, session: Session, workspace_id: str, page: PageQuery) -> tuple[list[ImportJob], str | None]:
    statement = select(ImportJob).where(ImportJob.workspace_id == workspace_id)
    rows = session.scalars(paginate(statement, ImportJob.id, page)).all()
    items, cursor = split_page(rows, page, lambda job: job.id)
    return list(items), cursor


_MOVES = {
    "pause": ({ImportStatus.PENDING, ImportStatus.RUNNING}, ImportStatus.PAUSED),
    "resume": ({ImportStatus.PAUSED, ImportStatus.FAILED}, ImportStatus.PENDING),
    "cancel": ({ImportStatus.PENDING, ImportStatus.RUNNING, ImportStatus.PAUSED}, ImportStatus.CANCELLED),
}


def actions(job: ImportJob) -> list[str]:
    """What :func:`change_status` would do to ``job`` now, of pause, resume and cancel."""
    return [action for action, (allowed, _) in _MOVES.items() if job.status in allowed]


def change_status(*, session: Session, workspace_id: str, import_id: str, action: str, grace: float) -> ImportJob:
    """Pause, resume or cancel. A running worker sees it before its next chunk.

    Raises:
      NotFound: no such import.
      Conflict: the import is in a state the action does not apply to.
    """
    job = get_import(session=session, workspace_id=workspace_id, import_id=import_id, lock=True)
    allowed, target = _MOVES[action]
    if job.status == target:
        return job
    if job.status not in allowed:
        raise Conflict(
            f"the import is {job.status}: it cannot be {'resumed' if action == 'resume' else action + 'ed'}",
            field="status",
        )
    job.status, job.updated_at = target, utcnow()
    if target == ImportStatus.PENDING:
        job.error = None
        start(session, job, grace=grace)
    else:
        job.finished_at = utcnow() if target == ImportStatus.CANCELLED else None
        jobs.finish(session, RUN, job.id)
    return job


def list_errors(*, session: Session, import_id: str, after: int, limit: int) -> tuple[list[ImportRowError], str | None]:
    """Report lines in row order, ``limit`` from after the line with id ``after``."""
    rows = session.scalars(
        select(ImportRowError)
        .where(ImportRowError.import_id == import_id, ImportRowError.id > after)
        .order_by(ImportRowError.id)
        .limit(limit + 1)
    ).all()
    more = len(rows) > limit
    return list(rows[:limit]), str(rows[limit - 1].id) if more else None


def iter_errors(*, session: Session, import_id: str, batch: int = 5000) -> Any:
    """Every report line, in row order, read ``batch`` at a time."""
    after = 0
    while True:
        rows, cursor = list_errors(session=session, import_id=import_id, after=after, limit=batch)
        yield from rows
        if cursor is None:
            return
        after = int(cursor)


def report_lines(*, session: Session, import_id: str) -> Iterator[str]:
    """The row report as formula-safe CSV lines (row, column, value, reason), header first."""
    rows = ((e.row_number, e.column_name, e.value, e.reason) for e in iter_errors(session=session, import_id=import_id))
    yield from csv_lines(REPORT_HEADER, rows)


def error_count(*, session: Session, import_id: str) -> int:
    return session.scalar(select(func.count()).where(ImportRowError.import_id == import_id)) or 0


def run_import(
    db: Database,
    import_id: str,
    *,
    grace: float,
    budget: float | None = None,
    after_chunk: Callable[[ImportJob], None] | None = None,
) -> str:
    """Take the import's chunks, one transaction each, until it stops (completed, paused,
    cancelled, failed) or ``budget`` seconds are spent — then it is published again to go on.
    Returns the status it was left in."""
    deadline = None if budget is None else time.monotonic() + budget
    while True:
        with db.unit_of_work() as session:
            job = take_chunk(session, import_id)
            if job is None:
                return "missing"
            going = job.status == ImportStatus.RUNNING
            if not going:
                jobs.finish(session, RUN, import_id)
            elif deadline is not None and time.monotonic() > deadline:
                start(session, job, grace=grace)
                going = False
        if after_chunk is not None:
            after_chunk(job)
        if not going:
            return job.status


def take_chunk(session: Session, import_id: str) -> ImportJob | None:
    """Apply the next chunk of a pending or running import (in ``session``'s transaction, with
    the import row locked) and move its checkpoint on; None when the import does not exist."""
    if dialect_of(session) == "postgresql":
        # An import grows the profile table faster than its statistics follow: a generic plan,
        # cached after five chunks from the statistics of a nearly empty table, would scan the
        # whole table for each chunk's ids. A plan made for each chunk's own values uses the index.
        session.execute(_CUSTOM_PLANS)
        # A chunk and its checkpoint commit together, so a commit lost to a database crash is
        # only a chunk done again from the checkpoint before: no need to wait for the WAL flush.
        session.execute(_ASYNC_COMMIT)
    job = session.scalar(select(ImportJob).where(ImportJob.id == import_id).with_for_update())
    if job is None or job.status not in (ImportStatus.PENDING, ImportStatus.RUNNING):
        return job
    now = utcnow()
    if job.status == ImportStatus.PENDING:
        job.status, job.started_at = ImportStatus.RUNNING, job.started_at or now
    chunk = session.get(ImportChunk, (job.id, job.checkpoint)) if job.checkpoint < job.total_rows else None
    if chunk is None and job.checkpoint < job.total_rows:
        job.status, job.error = ImportStatus.FAILED, f"the stored file has no rows from index {job.checkpoint}"
    elif chunk is not None:
        counts = apply_chunk(session, _context(session, job), chunk.rows)
        for name in COUNTERS:
            setattr(job, name, getattr(job, name) + getattr(counts, name))
        job.processed_rows += chunk.row_count
        job.checkpoint += chunk.row_count
    if job.checkpoint >= job.total_rows and job.status == ImportStatus.RUNNING:
        job.status = ImportStatus.COMPLETED
    if job.status in FINAL:
        job.finished_at = now
    job.updated_at = now
    return job


def _context(session: Session, job: ImportJob) -> ImportContext:
    region = workspace_policy(session=session, workspace_id=job.workspace_id).default_region
    return ImportContext(job.id, job.workspace_id, job.filename, job.header, job.mapping, region, job.consent_source)


def progress(job: ImportJob) -> dict[str, Any]:
    """Percent done, rows per second while it ran, and seconds left at that rate."""
    percent = 100.0 if not job.total_rows else round(100.0 * job.processed_rows / job.total_rows, 1)
    end = job.finished_at or (job.updated_at if job.status != ImportStatus.RUNNING else utcnow())
    seconds = (end - job.started_at).total_seconds() if job.started_at else 0.0
    rate = round(job.processed_rows / seconds, 1) if seconds > 0 and job.processed_rows else None
    left = job.total_rows - job.processed_rows
    eta = round(left / rate, 1) if rate and job.status == ImportStatus.RUNNING else None
    return {"percent": percent, "rate": rate, "eta_seconds": eta}


def summary_line(job: ImportJob) -> str:
    """``imported 1,000 rows: 950 created, 20 updated, 5 unchanged, 20 invalid, 5 duplicates (report: …)``."""
    counts = ", ".join(f"{getattr(job, name):,} {'duplicates' if name == 'duplicate' else name}" for name in COUNTERS)
    line = f"imported {job.processed_rows:,} rows: {counts}"
    if job.status != ImportStatus.COMPLETED:
        line += f" — the import is {job.status}" + (f": {job.error}" if job.error else "")
    if job.invalid or job.duplicate:
        line += f" (report: ccm imports report {job.id} or GET /v1/imports/{job.id}/report.csv)"
    return line
