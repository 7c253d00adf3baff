"""Requests and answers of ``/v1/imports``."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

from pydantic import BaseModel, Field

from ccm.imports.models import ImportStatus
from ccm.pagination import PageQuery
from ccm.validation import SEMANTIC_HINT, QueryModel, id_field

ImportId = Annotated[str, id_field("imp")]
_TEXT = r"^[^\x00-\x1f\x7f]+$"

MAPPING_HELP = (
    'a JSON object {"Column Header": target}; target is external_id, email, phone, timezone, locale, '
    "attributes.<name>, consent.<email|sms|chat>[:<topic>] or skip; unmapped columns are matched by name"
)
FILE_HELP = (
    "a CSV file with a header row: UTF-8 (with or without BOM), UTF-16 with BOM, Windows-1252 or "
    "ISO-8859-1; delimiter , ; tab or |; at most CCM_IMPORT_MAX_BYTES"
)


class UploadQuery(QueryModel):
    """How to read the file (for a multipart upload these may be form fields instead)."""

    filename: str | None = Field(
        None, min_length=1, max_length=255, pattern=_TEXT, description="for a raw text/csv body"
    )
    consent_source: str | None = Field(
        None, min_length=1, max_length=200, pattern=_TEXT, description="where the file's consent was collected"
    )
    encoding: str | None = Field(None, pattern="^(utf-8|utf-16-le|utf-16-be|windows-1252|iso-8859-1)$")
    delimiter: str | None = Field(None, pattern="^(,|;|\t|\\|)$", description="default: detected")
    mapping: str | None = Field(None, max_length=100_000, description=SEMANTIC_HINT + MAPPING_HELP)


def upload_content() -> dict[str, Any]:
    """The request body of ``POST /v1/imports``, for the OpenAPI document."""
    file = {"type": "string", "format": "binary", "minLength": 1, "description": SEMANTIC_HINT + FILE_HELP}
    return {
        "multipart/form-data": {
            "schema": {
                "type": "object",
                "required": ["file"],
                "properties": {
                    "file": file,
                    "mapping": {"type": "string", "description": SEMANTIC_HINT + MAPPING_HELP},
                    "consent_source": {"type": "string", "minLength": 1, "maxLength": 200, "pattern": _TEXT},
                },
            }
        },
        "text/csv": {"schema": file},
    }


class Counts(BaseModel):
    created: int
    updated: int
    unchanged: int
    invalid: int
    duplicate: int


class Column(BaseModel):
    header: str
    field: str = Field(description="what the column fills (skip: nothing)")


class ImportOut(BaseModel):
    id: str
    status: ImportStatus
    filename: str
    encoding: str
    delimiter: str
    columns: list[Column]
    mapping: dict[str, str]
    consent_source: str | None
    total_rows: int
    processed_rows: int
    checkpoint: int = Field(description="rows done; a resumed import goes on from here")
    percent: float
    counts: Counts
    rate: float | None = Field(description="rows per second while it ran")
    eta_seconds: float | None
    error: str | None
    report_url: str
    created_at: dt.datetime
    started_at: dt.datetime | None
    finished_at: dt.datetime | None
    updated_at: dt.datetime


class ImportCreated(ImportOut):
    preview: list[dict[str, str]] = Field(description="the first rows, by column header")


class ImportList(BaseModel):
    items: list[ImportOut]
    next_cursor: str | None


class ErrorQuery(QueryModel):
    limit: int = Field(100, ge=1, le=1000)
    cursor: str | None = Field(None, pattern=r"^[0-9]{1,18}$", description="next_cursor of the previous page")


class RowErrorOut(BaseModel):
    row: int = Field(description="the row in the file, the header being row 1")
    column: str | None
    value: str | None
    reason: str


class RowErrorList(BaseModel):
    items: list[RowErrorOut]
    next_cursor: str | None


__all__ = ["PageQuery"]
