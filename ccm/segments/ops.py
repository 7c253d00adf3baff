"""Comparisons: what an ``attribute`` condition or an event property filter does with its value
(``op`` and its operand), and the value types rules are written with.

One model per shape of operand (:class:`Equals`, :class:`OneOf` …), each told apart by ``op``
through a callable discriminator tagged ``<ModelName>`` (see :mod:`ccm.segments.rules` for how
the tags leave error paths). The ``attribute`` and ``property`` variants are made from them with
the subject field added.
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Annotated, Any, Literal, Union

from pydantic import AfterValidator, BaseModel, Discriminator, Field, Tag, create_model, model_validator

from ccm.validation import INT64_MAX, INT64_MIN, INTEGRAL, RequestModel, check_timezone

MAX_DAYS = 3660

PROFILE_FIELDS: dict[str, str] = {
    "external_id": "string",
    "email": "string",
    "phone": "string",
    "timezone": "string",
    "locale": "string",
    "best_channel": "string",
    "engagement_score": "number",
    "created_at": "datetime",
}
"""The profile's own columns a condition may name, with their kind; anything else is
``attributes.<path>`` (free JSON: geography, demography, whatever the profiles carry)."""

_KEY = r"[^.\x00-\x1f\x7f\"\\]{1,100}"
FieldPath = Annotated[
    str,
    Field(
        max_length=400,
        pattern=rf"^({'|'.join(PROFILE_FIELDS)}|attributes(\.{_KEY}){{1,8}})$",
        description="a profile field (" + ", ".join(PROFILE_FIELDS) + ") or attributes.<dotted.path>",
        examples=["attributes.country", "engagement_score"],
    ),
]
PropertyPath = Annotated[
    str,
    Field(
        max_length=400,
        pattern=rf"^properties(\.{_KEY}){{1,8}}$",
        description="an event property: properties.<dotted.path>",
        examples=["properties.total"],
    ),
]
EventName = Annotated[str, Field(min_length=1, max_length=200, pattern=r"^[^\x00-\x1f\x7f]+$")]
Text = Annotated[str, Field(max_length=500)]
Number = Annotated[int, Field(ge=INT64_MIN, le=INT64_MAX)] | float
Scalar = Text | Number | bool
Ordered = Number | Text
Days = Annotated[int, Field(ge=0, le=MAX_DAYS), INTEGRAL]
When = dt.datetime | dt.date
Zone = Annotated[
    str,
    Field(max_length=64, description="checked beyond this schema: an IANA time zone name, e.g. Europe/Paris"),
    AfterValidator(check_timezone),
]


class DaysAgo(RequestModel):
    days: Days = Field(description="calendar days in the condition's time zone; 0 is today")


class _Compared(RequestModel):
    timezone: Zone | None = Field(
        None, description="for dates: the zone days are counted in (default: the workspace's time zone)"
    )


class Equals(_Compared):
    """``equals`` / ``not_equals`` one value (``1`` equals ``1.0``; a text never equals a number).
    ``not_equals`` also matches a profile without the field."""

    op: Literal["equals", "not_equals"]
    value: Scalar


class OneOf(_Compared):
    """``in`` / ``not_in`` a list (``not_in`` also matches a profile without the field)."""

    op: Literal["in", "not_in"]
    values: list[Scalar] = Field(min_length=1, max_length=1000)


class Matches(_Compared):
    """``contains`` / ``starts_with`` a text, ignoring case."""

    op: Literal["contains", "starts_with"]
    value: Annotated[str, Field(min_length=1, max_length=500)]


class Compares(_Compared):
    """``gt`` / ``gte`` / ``lt`` / ``lte``: numbers against numbers, texts against texts."""

    op: Literal["gt", "gte", "lt", "lte"]
    value: Ordered


class Between(_Compared):
    """Both ends included: ``[low, high]``, both numbers or both texts."""

    op: Literal["between"]
    values: tuple[Ordered, Ordered]

    @model_validator(mode="after")
    def _same_kind(self) -> Between:
        low, high = self.values
        if isinstance(low, str) != isinstance(high, str):
            raise ValueError("values: both ends must be numbers, or both texts")
        return self


class Exists(_Compared):
    """``exists``: present and not null; ``not_exists``: absent or null."""

    op: Literal["exists", "not_exists"]


class OnDate(_Compared):
    """``before`` a date (earlier than its first moment) or ``after`` it (from the next day on),
    days taken in ``timezone``; a date with a time is that instant (its offset, else UTC)."""

    op: Literal["before", "after"]
    value: When


class WithinLast(_Compared):
    """From the start of the day ``days`` ago, in ``timezone``, until now: ``{"days": 0}`` is today."""

    op: Literal["within_last"]
    value: DaysAgo


class MoreThan(_Compared):
    """Before the start of the day ``days`` ago, in ``timezone``: "more than 30 days ago"."""

    op: Literal["more_than"]
    value: DaysAgo


Comparison = Equals | OneOf | Matches | Compares | Between | Exists | OnDate | WithinLast | MoreThan
COMPARISONS: tuple[type[_Compared], ...] = (
    Equals,
    OneOf,
    Matches,
    Compares,
    Between,
    Exists,
    OnDate,
    WithinLast,
    MoreThan,
)
OP_SHAPE = {op: model.__name__ for model in COMPARISONS for op in model.model_fields["op"].annotation.__args__}  # type: ignore[union-attr]
"""Each op and the name of the model its condition validates with."""
DATE_OPS = frozenset({"before", "after", "within_last", "more_than"})


def _op_tag(value: Any) -> str | None:
    op = value.get("op") if isinstance(value, dict) else getattr(value, "op", None)
    shape = OP_SHAPE.get(op) if isinstance(op, str) else None
    return f"<{shape}>" if shape else None


def _comparisons(subject: str, subject_type: Any, base: type[BaseModel], prefix: str) -> Any:
    """One model per comparison with ``subject`` added, in a union discriminated by ``op``."""
    members = []
    for model in COMPARISONS:
        made = create_model(  # type: ignore[call-overload]
            f"{prefix}{model.__name__}", __base__=(model, base), **{subject: (subject_type, ...)}
        )
        made.__doc__ = model.__doc__
        members.append(Annotated[made, Tag(f"<{model.__name__}>")])
    message = "op: one of " + ", ".join(OP_SHAPE)
    return Annotated[
        Union[tuple(members)],  # noqa: UP007 (built at run time)
        Discriminator(_op_tag, custom_error_type="invalid_op", custom_error_message=message),
    ]


class _AttributeSubject(BaseModel):
    """Checks that the op suits a profile column's kind (``attributes.*`` take any op)."""

    @model_validator(mode="after")
    def _suits_field(self) -> Any:
        field = getattr(self, "attribute", "")
        kind = PROFILE_FIELDS.get(field)
        problem = _misfit(kind, self) if kind else None
        if problem:
            raise ValueError(f"op: {field} is a {kind}: {problem}")
        return self


def _misfit(kind: str, condition: Any) -> str | None:
    op = condition.op
    if kind == "datetime":
        return None if op in DATE_OPS | {"exists", "not_exists"} else "use before, after, within_last or more_than"
    if op in DATE_OPS:
        return f"{op} is for dates"
    values = [getattr(condition, "value", None), *getattr(condition, "values", ())]
    want_text = kind == "string"
    for value in values:
        if value is None or isinstance(value, DaysAgo | dt.date):
            continue
        if isinstance(value, bool) or isinstance(value, str) != want_text:
            return f"compare it with {'texts' if want_text else 'numbers'}"
    if kind == "number" and op in ("contains", "starts_with"):
        return f"{op} is for texts"
    return None


class _PropertySubject(BaseModel):
    pass


if TYPE_CHECKING:
    AttributeCondition = Comparison
    PropertyFilter = Comparison
else:
    AttributeCondition = _comparisons("attribute", FieldPath, _AttributeSubject, "Attribute")
    PropertyFilter = _comparisons("property", PropertyPath, _PropertySubject, "Property")
