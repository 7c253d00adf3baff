"""Imports run by the command line, in its own process (no worker needed).

The import is stored exactly as an upload is, and its job row is written with a delay that the
run keeps pushing on (a lease): should this process die, a worker or ``ccm serve`` takes the
import over from its checkpoint once the lease runs out."""

from __future__ import annotations

import time
from pathlib import Path
from typing import IO, Any

import click

from ccm import jobs
from ccm.errors import CCMError
from ccm.imports import service
from ccm.imports.mapping import parse_mapping_pairs
from ccm.imports.models import ImportJob, ImportStatus
from ccm.runtime import Runtime
from ccm.workspaces.service import get_or_create_workspace

LEASE_EVERY = 10.0
"""Seconds between two renewals of the run's lease on its job row."""


def import_file(
    runtime: Runtime, path: Path, *, workspace: str, maps: list[str], consent_source: str | None, bar: Any
) -> str:
    """Import ``path`` into ``workspace``, advancing the click progress ``bar``; the summary line.

    Raises:
      click.ClickException: the file was refused (nothing imported), or the import did not complete.
    """
    settings = runtime.settings
    if path.stat().st_size > settings.import_max_bytes:
        raise click.ClickException(
            f"nothing imported: {path} is larger than CCM_IMPORT_MAX_BYTES ({settings.import_max_bytes:,} bytes)"
        )
    try:
        with runtime.db.unit_of_work() as session:
            ws, _ = get_or_create_workspace(session=session, name=workspace)
            upload = service.Upload(
                filename=path.name,
                raw=path.read_bytes(),
                mapping=parse_mapping_pairs(maps),
                consent_source=consent_source,
            )
            created = service.create_import(
                session=session,
                workspace_id=ws.id,
                upload=upload,
                max_bytes=settings.import_max_bytes,
                chunk_rows=settings.import_chunk_rows,
            )
            service.start(session, created.job, grace=settings.relay_grace, delay=_lease_seconds(runtime))
    except CCMError as exc:
        raise click.ClickException(f"nothing imported: {exc.message}") from None
    job = _run(runtime, created.job.id, created.job.total_rows, bar)
    if job.status != ImportStatus.COMPLETED:
        raise click.ClickException(service.summary_line(job))
    return service.summary_line(job)


def _run(runtime: Runtime, import_id: str, total: int, bar: Any) -> ImportJob:
    bar.length = total
    leased = [time.monotonic()]
    last: list[ImportJob] = []

    def after_chunk(job: ImportJob) -> None:
        bar.update(job.processed_rows - bar.pos)
        last[:] = [job]
        if time.monotonic() - leased[0] > LEASE_EVERY:
            jobs.lease(runtime, service.RUN, import_id)
            leased[0] = time.monotonic()

    service.run_import(runtime.db, import_id, grace=runtime.settings.relay_grace, after_chunk=after_chunk)
    return last[0]


def _lease_seconds(runtime: Runtime) -> float:
    return runtime.settings.claim_timeout + runtime.settings.relay_grace


def write_report(runtime: Runtime, import_id: str, out: IO[str]) -> None:
    """Write the import's report as formula-safe CSV to ``out``.

    Raises:
      click.ClickException: no such import.
    """
    with runtime.db.read_only() as session:
        if session.get(ImportJob, import_id) is None:
            raise click.ClickException(f"no import {import_id!r}")
        for line in service.report_lines(session=session, import_id=import_id):
            out.write(line)
