"""The segment builder's form, both ways: rows of conditions (``rows-<i>-<name>`` fields) to the
rule tree of :mod:`ccm.segments.rules`, a stored tree back to rows, and an error's field path
(``rules.and.1.within_last.days``) to the row and control it is about.

The rows are a flat ``and`` / ``or`` of conditions; anything deeper is edited as JSON (the
``rules_json`` textarea, used when ``use_json`` is ticked). Validation is the API's
(:class:`ccm.segments.schemas.RulesIn`): this module only reshapes the form.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

from werkzeug.datastructures import MultiDict

from ccm.segments.ops import OP_SHAPE, PROFILE_FIELDS

KINDS = ("attribute", "event", "engagement", "reachable", "in_segment")
FIELDS = {
    "attribute": ("field", "op", "value"),
    "event": ("event", "count_op", "count", "days"),
    "engagement": ("engagement", "channel", "count_op", "count", "days"),
    "reachable": ("reachable", "topic"),
    "in_segment": ("segment",),
}
"""The controls of a row of each kind."""
ROW_KEYS = ("kind", *sorted({name for names in FIELDS.values() for name in names}))
OPS = tuple(OP_SHAPE)
LIST_OPS = frozenset({"in", "not_in"})
DAY_OPS = frozenset({"within_last", "more_than"})
NO_VALUE_OPS = frozenset({"exists", "not_exists"})
_ROW = re.compile(r"^rows-([0-9]{1,3})-kind$")
_NUMBER = re.compile(r"^-?(0|[1-9][0-9]*)(\.[0-9]+)?$")
_VALUE_ERROR = re.compile(r"^(?:[^ ]+: )?(?:Value error, )?([a-z_]+): ")
_TO_CONTROL = {
    "attribute": "field",
    "values": "value",
    "within_last": "days",
    "in_segment": "segment",
    "between": "days",
}


@dataclass
class Builder:
    """What the builder form says: the name, ``and``/``or``, the rows, and the JSON escape hatch."""

    name: str = ""
    combine: str = "and"
    rows: list[dict[str, str]] = field(default_factory=list)
    use_json: bool = False
    rules_json: str = ""


def blank_row(kind: str = "attribute") -> dict[str, str]:
    row = dict.fromkeys(ROW_KEYS, "")
    row.update(kind=kind if kind in KINDS else "attribute", op="equals", count_op="at_least", count="1")
    row.update(engagement="opened", reachable="email")
    return row


def read_form(form: MultiDict[str, str]) -> Builder:
    """The builder as submitted; rows keep the order of their indices."""
    indices = sorted(int(match.group(1)) for key in form if (match := _ROW.match(key)))
    rows = [{key: form.get(f"rows-{i}-{key}", "").strip() for key in ROW_KEYS} for i in indices]
    return Builder(
        name=form.get("name", "").strip(),
        combine="or" if form.get("combine") == "or" else "and",
        rows=rows,
        use_json=form.get("use_json") == "on",
        rules_json=form.get("rules_json", ""),
    )


def tree_of(builder: Builder) -> Any:
    """The rule tree to validate: the JSON text as written, or the rows under ``and``/``or``."""
    if builder.use_json:
        return builder.rules_json
    return {builder.combine: [_condition(row) for row in builder.rows]}


def _condition(row: dict[str, str]) -> dict[str, Any]:
    kind = row["kind"]
    if kind == "event":
        return {"event": row["event"], **_windowed(row)}
    if kind == "engagement":
        channel = {"channel": row["channel"]} if row["channel"] else {}
        return {"engagement": row["engagement"], **channel, **_windowed(row)}
    if kind == "reachable":
        return {"reachable": row["reachable"], **({"topic": row["topic"]} if row["topic"] else {})}
    if kind == "in_segment":
        return {"in_segment": row["segment"]}
    return {"attribute": row["field"], "op": row["op"], **_operand(row["field"], row["op"], row["value"])}


def _windowed(row: dict[str, str]) -> dict[str, Any]:
    shaped: dict[str, Any] = {"count": {"op": row["count_op"], "value": _integer(row["count"])}}
    if row["days"]:
        shaped["within_last"] = {"days": _integer(row["days"])}
    return shaped


def _integer(text: str) -> int | str:
    """A number when it reads as one; otherwise the text, for validation to name the field."""
    return int(text) if text.isdigit() and len(text) < 19 else text


def _operand(path: str, op: str, text: str) -> dict[str, Any]:
    if op in NO_VALUE_OPS:
        return {}
    if op in DAY_OPS:
        return {"value": {"days": _integer(text)}}
    if op in LIST_OPS:
        return {"values": [_scalar(path, part.strip()) for part in text.split(",") if part.strip()]}
    if op == "between":
        return {"values": [_scalar(path, part.strip()) for part in text.split(",")]}
    if op in ("before", "after", "contains", "starts_with"):
        return {"value": text}
    return {"value": _scalar(path, text)}


def _scalar(path: str, text: str) -> Any:
    """A text, number or boolean as typed: a profile column takes its own kind; an attribute a
    number or ``true``/``false`` when it reads as one, and ``"01234"`` (quoted) stays a text."""
    kind = PROFILE_FIELDS.get(path)
    if len(text) >= 2 and text[0] == text[-1] == '"':
        return text[1:-1]
    if kind == "string":
        return text
    if _NUMBER.match(text):
        return float(text) if "." in text else int(text)
    if kind is None and text in ("true", "false"):
        return text == "true"
    return text


def builder_of(name: str, tree: dict[str, Any] | None) -> Builder:
    """A stored segment in the form: as rows when its rules are a flat group of conditions the
    rows can show, else as JSON."""
    text = json.dumps(tree or {}, indent=2, ensure_ascii=False)
    rows = _rows_of(tree)
    if rows is None or tree is None:
        return Builder(name=name, use_json=True, rules_json=text)
    combine = next(iter(tree))
    return Builder(name=name, combine=combine, rows=rows, rules_json=text)


def _rows_of(tree: dict[str, Any] | None) -> list[dict[str, str]] | None:
    if not tree or len(tree) != 1 or next(iter(tree)) not in ("and", "or"):
        return None
    rows = [_row_of(node) for node in next(iter(tree.values()))]
    return None if any(row is None for row in rows) else [row for row in rows if row is not None]


def _row_of(node: dict[str, Any]) -> dict[str, str] | None:
    kind = next((key for key in KINDS if key in node), None)
    row = blank_row(kind or "attribute")
    if kind == "attribute" and set(node) <= {"attribute", "op", "value", "values"}:
        row.update(field=node["attribute"], op=node["op"], value=_text_of(node.get("value", node.get("values"))))
        return row
    if kind in ("event", "engagement") and set(node) <= {kind, "channel", "count", "within_last"}:
        count = node.get("count", {"op": "at_least", "value": 1})
        days = node.get("within_last", {}).get("days", "")
        row.update({kind: node[kind], "channel": node.get("channel", "")})
        row.update(count_op=count["op"], count=str(count["value"]), days=str(days))
        return row
    if kind == "reachable" and set(node) <= {"reachable", "topic"}:
        row.update(reachable=node["reachable"], topic=node.get("topic", ""))
        return row
    if kind == "in_segment" and set(node) == {"in_segment"}:
        row.update(segment=node["in_segment"])
        return row
    return None


def _text_of(value: Any) -> str:
    if isinstance(value, list):
        return ", ".join(_text_of(item) for item in value)
    if isinstance(value, dict):
        return str(value.get("days", ""))
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str) and (_NUMBER.match(value) or value in ("true", "false")):
        return f'"{value}"'
    return "" if value is None else str(value)


def place_error(builder: Builder, path: str, message: str) -> str:
    """Where an error about ``path`` is shown: ``rows-<i>-<control>`` for a row's control,
    ``rules_json`` in JSON mode, ``rows`` when it is about the rows as a whole, else the path."""
    parts = path.split(".")
    if path == "rules" and not builder.use_json:
        return _segment_row(builder, message)
    if parts[0] != "rules":
        return parts[0] if parts[0] in ("name", "kind") else "rows"
    if builder.use_json:
        return "rules_json"
    if len(parts) < 3 or not parts[2].isdigit():
        return "rows"
    index, rest = int(parts[2]), parts[3:]
    if index >= len(builder.rows):
        return "rows"
    return f"rows-{index}-{_control(builder.rows[index]['kind'], rest, message)}"


def _segment_row(builder: Builder, message: str) -> str:
    """The service names a segment that does not exist only by its name, in the message."""
    for index, row in enumerate(builder.rows):
        if row["kind"] == "in_segment" and repr(row["segment"]) in message:
            return f"rows-{index}-segment"
    return "rows"


def _control(kind: str, rest: list[str], message: str) -> str:
    if not rest:
        found = _VALUE_ERROR.match(message)
        rest = [found.group(1)] if found else []
    if not rest:
        return "kind"
    name = _TO_CONTROL.get(rest[0], rest[0])
    if name == "count" and rest[1:2] == ["op"]:
        name = "count_op"
    return name if name in FIELDS.get(kind, ()) else "kind"
