"""The rule tree of a segment, as JSON validated here, then compiled to SQL by
:mod:`ccm.segments.compiler`.

A node is one object whose key says what it is: ``{"and": [...]}``, ``{"or": [...]}``,
``{"not": {...}}``, or a condition — ``{"attribute": ...}``, ``{"event": ...}``,
``{"engagement": ...}``, ``{"reachable": ...}``, ``{"in_segment": ...}``. Comparisons
(``attribute`` conditions and event property filters) are told apart by their ``op``. The unions
use callable discriminators whose tags are written ``<like-this>``; :func:`untagged` drops them
from error paths, so a bad field is named as the client wrote it (``rules.and.1.within_last.days``).
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Annotated, Any, Literal, Union

from pydantic import (
    AfterValidator,
    BaseModel,
    Discriminator,
    Field,
    Tag,
    TypeAdapter,
    ValidationError,
    create_model,
    model_validator,
)
from pydantic_core import InitErrorDetails, PydanticCustomError

from ccm.validation import INT64_MAX, INT64_MIN, INTEGRAL, Channel, RequestModel, Topic, check_timezone

MAX_DEPTH = 8
"""Groups nest at most this deep."""
MAX_NODES = 200
"""Conditions and groups in one tree, at most."""
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


class Count(RequestModel):
    """How many times: ``at_least`` 2; "never" is ``at_most`` 0."""

    op: Literal["at_least", "at_most", "exactly"] = "at_least"
    value: Annotated[int, Field(ge=0, le=1_000_000), INTEGRAL] = 1


class _Windowed(RequestModel):
    within_last: DaysAgo | None = Field(None, description="from the start of the day this many days ago until now")
    between: tuple[When, When] | None = Field(
        None, description="from the first moment of the first date to the last moment of the second (dates in timezone)"
    )
    timezone: Zone | None = Field(None, description="the zone days are counted in (default: the workspace's)")
    count: Count = Field(default_factory=Count)

    @model_validator(mode="after")
    def _one_window(self) -> Any:
        if self.within_last is not None and self.between is not None:
            raise ValueError("between: give within_last or between, not both")
        return self


class EventCondition(_Windowed):
    """The profile performed ``event`` (a track event's name) a number of times in a window."""

    event: EventName
    where: list[PropertyFilter] = Field(
        default_factory=list, max_length=20, description="property filters, all must pass"
    )


EngagementKind = Literal[
    "delivered", "opened", "clicked", "replied", "unsubscribed", "bounced", "complained", "converted"
]


class EngagementCondition(_Windowed):
    """Something happened to a message the profile received: opened, clicked, replied …"""

    engagement: EngagementKind
    channel: Channel | None = None
    include_machine: bool = Field(
        False, description="count opens and clicks made by machines (privacy proxies, scanners)"
    )


class ReachableCondition(RequestModel):
    """A marketing message on the channel could go: an address, not suppressed, consent for
    ``topic`` (or all topics) not refused as the workspace's policy decides."""

    reachable: Literal["email", "sms"]
    topic: Topic | None = None


class InSegmentCondition(RequestModel):
    """A member of another segment (a static list, or a rules segment: its rules, evaluated now)."""

    in_segment: Annotated[str, Field(min_length=1, max_length=200, pattern=r"^[^\x00-\x1f\x7f]+$")] = Field(
        description="the segment's id or name"
    )


class And(RequestModel):
    and_: list[Node] = Field(alias="and", min_length=1, max_length=50)


class Or(RequestModel):
    or_: list[Node] = Field(alias="or", min_length=1, max_length=50)


class Not(RequestModel):
    not_: Node = Field(alias="not")


NODE_KEYS = {
    "and": And,
    "or": Or,
    "not": Not,
    "attribute": None,
    "event": EventCondition,
    "engagement": EngagementCondition,
    "reachable": ReachableCondition,
    "in_segment": InSegmentCondition,
}


def _node_tag(value: Any) -> str | None:
    if isinstance(value, dict):
        return next((f"<{key}>" for key in NODE_KEYS if key in value), None)
    for key, model in NODE_KEYS.items():
        if model is not None and isinstance(value, model) or model is None and hasattr(value, "attribute"):
            return f"<{key}>"
    return None


Node = Annotated[
    Annotated[And, Tag("<and>")]
    | Annotated[Or, Tag("<or>")]
    | Annotated[Not, Tag("<not>")]
    | Annotated[AttributeCondition, Tag("<attribute>")]
    | Annotated[EventCondition, Tag("<event>")]
    | Annotated[EngagementCondition, Tag("<engagement>")]
    | Annotated[ReachableCondition, Tag("<reachable>")]
    | Annotated[InSegmentCondition, Tag("<in_segment>")],
    Discriminator(
        _node_tag,
        custom_error_type="invalid_rule",
        custom_error_message="a rule is an object with one of the keys " + ", ".join(NODE_KEYS),
    ),
]
for _model in (And, Or, Not):
    _model.model_rebuild()
NODE_ADAPTER: TypeAdapter[Any] = TypeAdapter(Node)


def measure(node: Any, depth: int = 1) -> tuple[int, int]:
    """(nodes, depth) of a validated tree."""
    children = _children(node)
    nodes, deepest = 1, depth
    for child in children:
        count, reached = measure(child, depth + 1)
        nodes, deepest = nodes + count, max(deepest, reached)
    return nodes, deepest


def _children(node: Any) -> list[Any]:
    if isinstance(node, And):
        return list(node.and_)
    if isinstance(node, Or):
        return list(node.or_)
    if isinstance(node, Not):
        return [node.not_]
    return []


def check_size(node: Any) -> Any:
    """Refuse a tree over :data:`MAX_NODES` nodes or :data:`MAX_DEPTH` levels."""
    nodes, depth = measure(node)
    if nodes > MAX_NODES:
        raise ValueError(f"a segment has at most {MAX_NODES} rules and groups (this one {nodes})")
    if depth > MAX_DEPTH:
        raise ValueError(f"rules nest at most {MAX_DEPTH} levels deep (these {depth})")
    return node


def untagged(exc: ValidationError) -> ValidationError:
    """The same errors without the union tags in their paths (see the module docstring)."""
    details: list[InitErrorDetails] = []
    for error in exc.errors(include_url=False):
        loc = tuple(part for part in error["loc"] if not (isinstance(part, str) and part.startswith("<")))
        details.append(
            {"type": PydanticCustomError(error["type"], error["msg"]), "loc": loc, "input": error.get("input")}
        )
    return ValidationError.from_exception_data(exc.title, details)
