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

from typing import Annotated, Any, Literal

from pydantic import Discriminator, Field, Tag, TypeAdapter, ValidationError, model_validator
from pydantic_core import InitErrorDetails, PydanticCustomError

from ccm.segments.ops import AttributeCondition, DaysAgo, EventName, PropertyFilter, When, Zone
from ccm.validation import INTEGRAL, Channel, RequestModel, Topic

MAX_DEPTH = 8
"""Groups nest at most this deep."""
MAX_NODES = 200
"""Conditions and groups in one tree, at most."""


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
