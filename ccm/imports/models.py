"""An import is a job row, the uploaded file's rows in ordered chunks, and a row report.

Everything a worker needs lives in the database, so any worker process (on any machine) can run
an import and a later one can resume it: the file is stored parsed, in chunks of
``CCM_IMPORT_CHUNK_ROWS`` rows, and ``checkpoint`` says how many rows are done. One chunk's
profile writes, its report lines and the new checkpoint commit in one transaction.
"""

from __future__ import annotations

import datetime as dt
import enum
from typing import Any

from sqlalchemy import BigInteger, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from ccm.db import Base, utcnow
from ccm.ids import new_id


class ImportStatus(enum.StrEnum):
    """``pending``: waiting for a worker; ``running``: a worker takes its chunks; ``paused``:
    stopped between chunks until resumed; ``completed`` / ``cancelled`` / ``failed``: final."""

    PENDING = "pending"
    RUNNING = "running"
    PAUSED = "paused"
    COMPLETED = "completed"
    CANCELLED = "cancelled"
    FAILED = "failed"


FINAL = frozenset({ImportStatus.COMPLETED, ImportStatus.CANCELLED, ImportStatus.FAILED})


class ImportJob(Base):
    __tablename__ = "import_job"
    __table_args__ = (Index("ix_import_job_workspace", "workspace_id", "id"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=lambda: new_id("imp"))
    workspace_id: Mapped[str] = mapped_column(ForeignKey("workspace.id", ondelete="CASCADE"))
    filename: Mapped[str] = mapped_column(String(255))
    status: Mapped[str] = mapped_column(String(20), default=ImportStatus.PENDING)
    encoding: Mapped[str] = mapped_column(String(20))
    delimiter: Mapped[str] = mapped_column(String(4))
    header: Mapped[list[Any]]
    """The file's column headers, in order."""
    mapping: Mapped[dict[str, Any]]
    """Column header -> target field (``email``, ``attributes.plan``, ``consent.email:news``, ``skip``)."""
    consent_source: Mapped[str | None] = mapped_column(String(200))
    chunk_rows: Mapped[int]
    total_rows: Mapped[int]
    processed_rows: Mapped[int] = mapped_column(default=0)
    created: Mapped[int] = mapped_column(default=0)
    updated: Mapped[int] = mapped_column(default=0)
    unchanged: Mapped[int] = mapped_column(default=0)
    invalid: Mapped[int] = mapped_column(default=0)
    duplicate: Mapped[int] = mapped_column(default=0)
    checkpoint: Mapped[int] = mapped_column(default=0)
    """Rows done (their effects committed): the next chunk starts at this row index."""
    error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    started_at: Mapped[dt.datetime | None]
    finished_at: Mapped[dt.datetime | None]
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class ImportChunk(Base):
    """``row_count`` rows of the file from row index ``start``: ``[[row number, cells, duplicate
    of row number or null], …]``, as parsed at upload (row numbers count the header as row 1)."""

    __tablename__ = "import_chunk"

    import_id: Mapped[str] = mapped_column(ForeignKey("import_job.id", ondelete="CASCADE"), primary_key=True)
    start: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    row_count: Mapped[int]
    rows: Mapped[list[Any]]


class ImportRowError(Base):
    """One line of an import's report: a row skipped, and why (one line per bad value)."""

    __tablename__ = "import_row_error"
    __table_args__ = (Index("ix_import_row_error_import", "import_id", "id"),)

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    import_id: Mapped[str] = mapped_column(ForeignKey("import_job.id", ondelete="CASCADE"))
    row_number: Mapped[int]
    """The row in the file, the header being row 1."""
    column_name: Mapped[str | None] = mapped_column(String(255))
    value: Mapped[str | None] = mapped_column(Text)
    reason: Mapped[str] = mapped_column(Text)
