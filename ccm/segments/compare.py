"""One comparison (``op`` and its value) as a SQL condition on a :data:`~ccm.segments.values.Value`.

Every condition built here is true or false, never NULL (see :func:`~ccm.segments.values.known`),
so ``not`` and the ``not_*`` ops match the profiles that lack the value.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import ColumnElement, and_, func, not_

from ccm.segments import ops
from ccm.segments.values import ColumnValue, Value, any_of, known


def compare(value: Value, condition: ops.Comparison, *, now: dt.datetime, zone: str) -> ColumnElement[bool]:
    """The SQL for ``condition`` on ``value``; ``zone`` is the time zone days are counted in
    (the condition's own, else the workspace's)."""
    zone = condition.timezone or zone
    handler = next(_HANDLERS[shape] for shape in type(condition).__mro__ if shape in _HANDLERS)
    return handler(value, condition, now, zone)


def _equals(value: Value, condition: Any, now: dt.datetime, zone: str) -> ColumnElement[bool]:
    matched = _equal_to(value, condition.value)
    return matched if condition.op == "equals" else not_(matched)


def _equal_to(value: Value, wanted: Any) -> ColumnElement[bool]:
    if isinstance(wanted, bool):
        return value.is_true(wanted)
    typed = value.text() if isinstance(wanted, str) else value.number()
    return known(typed, typed == wanted)


def _one_of(value: Value, condition: Any, now: dt.datetime, zone: str) -> ColumnElement[bool]:
    texts = [item for item in condition.values if isinstance(item, str)]
    numbers = [item for item in condition.values if not isinstance(item, str | bool)]
    clauses = [value.is_true(item) for item in {item for item in condition.values if isinstance(item, bool)}]
    if texts:
        clauses.append(known(value.text(), value.text().in_(texts)))
    if numbers:
        clauses.append(known(value.number(), value.number().in_(numbers)))
    matched = any_of(clauses)
    return matched if condition.op == "in" else not_(matched)


def _matches(value: Value, condition: Any, now: dt.datetime, zone: str) -> ColumnElement[bool]:
    lowered, wanted = func.lower(value.text()), condition.value.lower()
    if condition.op == "starts_with":
        return known(value.text(), lowered.startswith(wanted, autoescape=True))
    clauses = [known(value.text(), lowered.contains(wanted, autoescape=True))]
    element = value.has_element(condition.value)
    return any_of([*clauses, element] if element is not None else clauses)


_ORDER: dict[str, Callable[[Any, Any], ColumnElement[bool]]] = {
    "gt": lambda a, b: a > b,
    "gte": lambda a, b: a >= b,
    "lt": lambda a, b: a < b,
    "lte": lambda a, b: a <= b,
}


def _typed(value: Value, sample: Any) -> ColumnElement[Any]:
    return value.text() if isinstance(sample, str) else value.number()


def _compares(value: Value, condition: Any, now: dt.datetime, zone: str) -> ColumnElement[bool]:
    typed = _typed(value, condition.value)
    return known(typed, _ORDER[condition.op](typed, condition.value))


def _between(value: Value, condition: Any, now: dt.datetime, zone: str) -> ColumnElement[bool]:
    low, high = condition.values
    typed = _typed(value, low)
    return known(typed, and_(typed >= low, typed <= high))


def _exists(value: Value, condition: Any, now: dt.datetime, zone: str) -> ColumnElement[bool]:
    present = value.exists()
    return present if condition.op == "exists" else not_(present)


def _on_date(value: Value, condition: Any, now: dt.datetime, zone: str) -> ColumnElement[bool]:
    given = condition.value
    if condition.op == "before":
        bound = given if isinstance(given, dt.datetime) else start_of_day(given, zone)
        return _instant(value, "lt", bound)
    if isinstance(given, dt.datetime):
        return _instant(value, "gt", given)
    return _instant(value, "gte", start_of_day(given + dt.timedelta(days=1), zone))


def _within_last(value: Value, condition: Any, now: dt.datetime, zone: str) -> ColumnElement[bool]:
    since = days_ago(now, condition.value.days, zone)
    return and_(_instant(value, "gte", since), _instant(value, "lte", now))


def _more_than(value: Value, condition: Any, now: dt.datetime, zone: str) -> ColumnElement[bool]:
    return _instant(value, "lt", days_ago(now, condition.value.days, zone))


def _instant(value: Value, op: str, at: dt.datetime) -> ColumnElement[bool]:
    """A moment compared with ``at``: a datetime column as it is, a JSON text as ISO 8601 in UTC."""
    bound: Any = at if isinstance(value, ColumnValue) else at.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S")
    instant = value.instant()
    return known(instant, _ORDER[op](instant, bound))


def start_of_day(day: dt.date, zone: str) -> dt.datetime:
    """The first moment of ``day`` in ``zone``, in UTC."""
    return dt.datetime.combine(day, dt.time(0), tzinfo=ZoneInfo(zone)).astimezone(dt.UTC)


def days_ago(now: dt.datetime, days: int, zone: str) -> dt.datetime:
    """The start of the day ``days`` before today, today being ``now``'s date in ``zone``."""
    return start_of_day(now.astimezone(ZoneInfo(zone)).date() - dt.timedelta(days=days), zone)


_HANDLERS: dict[type, Callable[[Value, Any, dt.datetime, str], ColumnElement[bool]]] = {
    ops.Equals: _equals,
    ops.OneOf: _one_of,
    ops.Matches: _matches,
    ops.Compares: _compares,
    ops.Between: _between,
    ops.Exists: _exists,
    ops.OnDate: _on_date,
    ops.WithinLast: _within_last,
    ops.MoreThan: _more_than,
}
