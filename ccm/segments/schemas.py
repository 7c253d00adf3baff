"""Request and response shapes of ``/v1/segments``."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field, ValidationError, WithJsonSchema, field_validator

from ccm.pagination import PageQuery
from ccm.profiles.schemas import ProfileOut
from ccm.segments.models import SegmentKind
from ccm.segments.rules import MAX_DEPTH, MAX_NODES, Node, check_size, untagged
from ccm.validation import ExternalId, QueryModel, RequestModel

SegmentName = Annotated[str, Field(min_length=1, max_length=200, pattern=r"^[^\x00-\x1f\x7f]+$")]
SegmentId = Annotated[
    str, Field(min_length=1, max_length=200, pattern=r"^[^\x00-\x1f\x7f]+$", description="the segment's id or name")
]
RULES_HINT = (
    "checked beyond this schema: a rule tree, every node one object whose key says what it is — "
    '{"and": [nodes]}, {"or": [nodes]}, {"not": node}, or a condition: {"attribute": field, "op", …}, '
    '{"event": name, …}, {"engagement": kind, …}, {"reachable": channel, …}, {"in_segment": id or name}; '
    f"at most {MAX_NODES} nodes nested {MAX_DEPTH} deep (every field and op: docs/segments.md)"
)
_EXAMPLE = {
    "and": [
        {"attribute": "attributes.country", "op": "equals", "value": "FR"},
        {"event": "order_completed", "count": {"op": "at_least", "value": 2}, "within_last": {"days": 30}},
    ]
}
Rules = Annotated[
    Node,
    WithJsonSchema({"type": "object", "minProperties": 1, "description": RULES_HINT, "examples": [_EXAMPLE]}),
]
"""The rule tree, validated in full by pydantic but documented as one object: the schema of every
node and op is large and recursive, and a generator of examples (the contract test's
schemathesis) would spend minutes in it for requests that test nothing more."""


class _HasRules(RequestModel):
    """A body with a rule tree: its errors name fields as the client wrote them (see
    :func:`ccm.segments.rules.untagged`)."""

    @classmethod
    def model_validate_json(cls, json_data: Any, **kwargs: Any) -> Any:
        try:
            return super().model_validate_json(json_data, **kwargs)
        except ValidationError as exc:
            raise untagged(exc) from None

    @field_validator("rules", check_fields=False)
    @classmethod
    def _size(cls, tree: Any) -> Any:
        return None if tree is None else check_size(tree)


class SegmentIn(_HasRules):
    """``rules`` makes a segment of whoever they match; ``kind: static`` an empty list to add members to."""

    name: SegmentName
    kind: Literal["rules", "static"] = "rules"
    rules: Rules | None = Field(None, description=RULES_HINT)


class SegmentPatch(_HasRules):
    name: SegmentName | None = None
    rules: Rules | None = Field(None, description=RULES_HINT)


class RulesIn(_HasRules):
    rules: Rules = Field(description=RULES_HINT)


class SegmentOut(BaseModel):
    id: str
    name: str
    kind: SegmentKind
    rules: dict[str, Any] | None = Field(description="the rule tree as stored (in_segment names resolved to ids)")
    created_at: dt.datetime
    updated_at: dt.datetime


class SegmentList(BaseModel):
    items: list[SegmentOut]
    next_cursor: str | None


class MembersIn(RequestModel):
    profiles: list[ExternalId] = Field(min_length=1, max_length=10_000, description="external ids")


class MembersOut(BaseModel):
    added: int | None = None
    removed: int | None = None
    unknown: list[str] = Field(description="external ids no profile of the workspace has")


class CountOut(BaseModel):
    count: int
    approximate: bool = Field(description="the count ran out of its time budget: this is an estimate")


class SampleQuery(QueryModel):
    limit: int = Field(10, ge=1, le=100)


class SampleOut(BaseModel):
    data: list[ProfileOut]


class SegmentPage(PageQuery):
    pass
