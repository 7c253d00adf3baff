"""Cursor pagination over time-ordered ids (see :mod:`ccm.ids`), newest first.

A cursor is the id of the last item of the previous page, so any string of that shape is a valid
cursor (the schema says all there is to know) and a page after a deleted item still works.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, Any, TypeVar

from pydantic import Field
from sqlalchemy import Select
from sqlalchemy.orm import InstrumentedAttribute

from ccm.validation import QueryModel

T = TypeVar("T")

ID_PATTERN = r"[a-z]{1,8}_[0-9A-Z]{26}"
Cursor = Annotated[
    str, Field(pattern=rf"^{ID_PATTERN}$", max_length=35, description="next_cursor of the previous page")
]


class PageQuery(QueryModel):
    limit: int = Field(50, ge=1, le=500)
    cursor: Cursor | None = None


def paginate(statement: Select[Any], id_column: InstrumentedAttribute[str], page: PageQuery) -> Select[Any]:
    """Newest first; the cursor is the last id of the previous page."""
    if page.cursor:
        statement = statement.where(id_column < page.cursor)
    return statement.order_by(id_column.desc()).limit(page.limit + 1)


def split_page(rows: Sequence[T], page: PageQuery, id_of: Any) -> tuple[Sequence[T], str | None]:
    if len(rows) <= page.limit:
        return rows, None
    rows = rows[: page.limit]
    return rows, id_of(rows[-1])
