"""Property filters and cancel matches, on an event's properties (plain JSON).

Values compare as JSON does, not as Python does: ``1`` equals ``1.0``, but ``true`` is not ``1``
and ``"1"`` is not ``1`` — so a filter means the same whatever language sent the event.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

_MISSING = object()


def value_at(properties: Mapping[str, Any], path: str) -> Any:
    """The value at a dotted path (``cart.id``, ``items.0.sku``), or ``_MISSING``."""
    current: Any = properties
    for part in path.split("."):
        if isinstance(current, Mapping) and part in current:
            current = current[part]
        elif isinstance(current, list) and part.isdigit() and int(part) < len(current):
            current = current[int(part)]
        else:
            return _MISSING
    return current


def passes(filters: Sequence[Mapping[str, Any]], properties: Mapping[str, Any]) -> bool:
    """Whether the properties pass every filter (``[{"property", "op", "value"/"values"}]``)."""
    return all(_passes(one, value_at(properties, one["property"])) for one in filters)


def _passes(one: Mapping[str, Any], found: Any) -> bool:
    if found is _MISSING or found is None:
        return False
    if one["op"] == "equals":
        return same(found, one["value"])
    if one["op"] == "in":
        return any(same(found, value) for value in one["values"])
    return True  # exists


def same(a: Any, b: Any) -> bool:
    """JSON equality of two values."""
    if isinstance(a, bool) or isinstance(b, bool):
        return a is b
    if isinstance(a, int | float) and isinstance(b, int | float):
        return a == b
    return type(a) is type(b) and a == b


def match_value(properties: Mapping[str, Any], path: str | None) -> str | None:
    """The value a cancel event must repeat, as canonical JSON; None when there is none (no
    match property, or the event lacks it or holds null there)."""
    if path is None:
        return None
    found = value_at(properties, path)
    if found is _MISSING or found is None:
        return None
    if isinstance(found, float) and found.is_integer():
        found = int(found)  # 5.0 and 5 are one value
    return json.dumps(found, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
