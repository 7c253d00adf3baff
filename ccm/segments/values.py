"""What a comparison compares: a profile column, or a path into a JSON column (profile
attributes, event properties), read the same way on PostgreSQL and SQLite.

A JSON value is read through its type first (``jsonb_typeof`` / ``json_type``), inside a
``CASE``, so a text is never cast to a number (PostgreSQL would fail the whole query) and a text
is never ordered against a number (SQLite would put every text after every number): a value of
the wrong type is simply absent for that comparison.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, Float, and_, case, cast, func, literal, or_, select, true
from sqlalchemy.sql.elements import KeyedColumnElement

_PG_NUMBER = ("number",)
_SQLITE_NUMBER = ("integer", "real")


@dataclass(frozen=True)
class ColumnValue:
    """A plain column of the profile (``email``, ``engagement_score``, ``created_at`` …)."""

    column: KeyedColumnElement[Any]

    def text(self) -> ColumnElement[Any]:
        return self.column

    def number(self) -> ColumnElement[Any]:
        return self.column

    def instant(self) -> ColumnElement[Any]:
        return self.column

    def is_true(self, value: bool) -> ColumnElement[bool]:
        return self.column == value

    def exists(self) -> ColumnElement[bool]:
        return self.column.is_not(None)

    def has_element(self, value: str) -> ColumnElement[bool] | None:
        return None


@dataclass(frozen=True)
class JsonValue:
    """``column`` followed by the object keys ``keys`` (``attributes.address.city``)."""

    column: KeyedColumnElement[Any]
    keys: tuple[str, ...]
    dialect: str

    @property
    def _pg(self) -> bool:
        return self.dialect == "postgresql"

    def _node(self) -> ColumnElement[Any]:
        return func.jsonb_extract_path(self.column, *self.keys)

    def _path(self) -> str:
        return "$" + "".join(f'."{key}"' for key in self.keys)

    def type(self) -> ColumnElement[Any]:
        return func.jsonb_typeof(self._node()) if self._pg else func.json_type(self.column, self._path())

    def _raw(self) -> ColumnElement[Any]:
        if self._pg:
            return func.jsonb_extract_path_text(self.column, *self.keys)
        return func.json_extract(self.column, self._path())

    def text(self) -> ColumnElement[Any]:
        return case((self.type() == ("string" if self._pg else "text"), self._raw()))

    def number(self) -> ColumnElement[Any]:
        if self._pg:
            return case((self.type().in_(_PG_NUMBER), cast(self._raw(), Float)))
        return case((self.type().in_(_SQLITE_NUMBER), self._raw()))

    def instant(self) -> ColumnElement[Any]:
        """An ISO 8601 text as ``YYYY-MM-DDTHH:MM:SS`` (its offset ignored), to order against
        instants written the same way in UTC."""
        return func.replace(func.substr(self.text(), 1, 19), " ", "T")

    def is_true(self, value: bool) -> ColumnElement[bool]:
        if self._pg:
            return and_(self.type() == "boolean", self._raw() == ("true" if value else "false"))
        return self.type() == ("true" if value else "false")

    def exists(self) -> ColumnElement[bool]:
        return and_(self.type().is_not(None), self.type() != "null")

    def has_element(self, value: str) -> ColumnElement[bool] | None:
        """The value is a list holding the text ``value`` (``attributes.tags`` contains vip)."""
        if self._pg:
            return and_(self.type() == "array", self._node().op("@>")(func.jsonb_build_array(literal(value))))
        elements = func.json_each(self.column, self._path()).table_valued("value", "type")
        inside = select(true()).select_from(elements).where(elements.c.type == "text", elements.c.value == value)
        return and_(self.type() == "array", inside.exists())


Value = ColumnValue | JsonValue


def known(value: ColumnElement[Any], comparison: ColumnElement[bool]) -> ColumnElement[bool]:
    """``comparison`` as true or false, never NULL: a missing value fails it, and ``NOT`` of it
    matches the profiles without the value."""
    return and_(value.is_not(None), comparison)


def any_of(clauses: list[ColumnElement[bool]]) -> ColumnElement[bool]:
    return or_(*clauses) if clauses else literal(False)
