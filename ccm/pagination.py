"""Cursor pagination over time-ordered string ids (see :mod:`ccm.ids`)."""

from __future__ import annotations

import base64
from collections.abc import Sequence
from typing import Any, TypeVar

from pydantic import BaseModel, Field
from sqlalchemy import Select
from sqlalchemy.orm import InstrumentedAttribute

from ccm.errors import ValidationFailed

T = TypeVar("T")


class PageQuery(BaseModel):
    limit: int = Field(50, ge=1, le=500)
    cursor: str | None = None


def encode_cursor(last_id: str) -> str:
    return base64.urlsafe_b64encode(last_id.encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> str:
    try:
        return base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
    except (ValueError, UnicodeDecodeError):
        raise ValidationFailed("query.cursor: not a cursor returned by this API", field="query.cursor") from None


def paginate(statement: Select[Any], id_column: InstrumentedAttribute[str], page: PageQuery) -> Select[Any]:
    """Newest first; the cursor is the last id of the previous page."""
    if page.cursor:
        statement = statement.where(id_column < decode_cursor(page.cursor))
    return statement.order_by(id_column.desc()).limit(page.limit + 1)


def split_page(rows: Sequence[T], page: PageQuery, id_of: Any) -> tuple[Sequence[T], str | None]:
    if len(rows) <= page.limit:
        return rows, None
    rows = rows[: page.limit]
    return rows, encode_cursor(id_of(rows[-1]))
