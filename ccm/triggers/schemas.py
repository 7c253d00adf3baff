"""Request and response shapes of ``/v1/triggers``.

A trigger's definition — the event, its property filters, the template and how to send it, the
delay and what cancels it — is one model, :class:`TriggerDefinition`; creating, replacing and
editing a trigger all end in it, so one set of rules holds for every version.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field, ValidationInfo, field_validator

from ccm.message_templates.schemas import TemplateKey
from ccm.pagination import PageQuery
from ccm.triggers.models import FireStatus
from ccm.validation import INT64_MAX, INT64_MIN, INTEGRAL, SEMANTIC_HINT, ChannelRanking, RequestModel, Topic

MAX_DELAY = 90 * 24 * 3600
"""The longest delay: 90 days (the message's send window starts when it falls due)."""

TriggerKey = Annotated[
    str,
    Field(
        pattern=r"^[a-z0-9][a-z0-9_.-]{0,99}$",
        description="lowercase letters, digits, '_', '.', '-': the trigger's name in URLs, fixed once made",
    ),
]
EventName = Annotated[
    str,
    Field(min_length=1, max_length=200, pattern=r"^[^\x00-\x1f\x7f]+$", description="a track event's name, as sent"),
]
PropertyPath = Annotated[
    str,
    Field(
        max_length=400,
        pattern=r"^[^.\x00-\x1f\x7f]{1,100}(\.[^.\x00-\x1f\x7f]{1,100}){0,7}$",
        description="a property of the event, dotted for nested objects (cart.id); a number indexes a list",
    ),
]
Scalar = Annotated[str, Field(max_length=500)] | Annotated[int, Field(ge=INT64_MIN, le=INT64_MAX)] | float | bool


class EqualsFilter(RequestModel):
    """The property is present and equal to ``value`` (``1`` equals ``1.0``; ``true`` is not ``1``)."""

    property: PropertyPath
    op: Literal["equals"]
    value: Scalar


class InFilter(RequestModel):
    """The property is present and equal to one of ``values``."""

    property: PropertyPath
    op: Literal["in"]
    values: list[Scalar] = Field(min_length=1, max_length=100)


class ExistsFilter(RequestModel):
    """The property is present and not null."""

    property: PropertyPath
    op: Literal["exists"]


PropertyFilter = Annotated[EqualsFilter | InFilter | ExistsFilter, Field(discriminator="op")]


class CancelOn(RequestModel):
    """The event that cancels a waiting message: ``event`` for the same profile, before the
    message is due; with ``match_property``, only one whose property has the firing event's value."""

    event: EventName
    match_property: PropertyPath | None = Field(
        None, description="e.g. cart_id: the cancel event must carry the firing event's cart_id"
    )


Delay = Annotated[int, Field(ge=0, le=MAX_DELAY, description="seconds to wait before sending (0: at once)"), INTEGRAL]


class TriggerDefinition(RequestModel):
    """What a trigger does. Every version is one of these."""

    event: EventName
    where: list[PropertyFilter] = Field(
        default_factory=list, max_length=20, description="property filters the event must all pass"
    )
    template: TemplateKey
    category: Literal["transactional", "marketing"] | None = Field(
        None,
        description=SEMANTIC_HINT + "default: the template's; a marketing template cannot be sent as transactional",
    )
    topic: Topic | None = None
    channels: ChannelRanking | None = Field(None, description="the channels it may use (default: any)")
    delay_seconds: Delay = 0
    cancel: CancelOn | None = Field(
        None, description=SEMANTIC_HINT + "needs a delay: the cancel event can only come while the message waits"
    )

    @field_validator("cancel")
    @classmethod
    def _needs_delay(cls, cancel: CancelOn | None, info: ValidationInfo) -> CancelOn | None:
        if cancel is not None and not info.data.get("delay_seconds"):
            raise ValueError("a cancel event needs delay_seconds above 0")
        return cancel


class TriggerIn(TriggerDefinition):
    key: TriggerKey
    name: str = Field("", max_length=200, pattern=r"^[^\x00-\x1f\x7f]*$")


class TriggerPut(TriggerDefinition):
    """The whole definition; a change makes the next version. ``name`` absent: unchanged."""

    name: str | None = Field(None, max_length=200, pattern=r"^[^\x00-\x1f\x7f]*$")


class TriggerPatch(RequestModel):
    """Some fields of the definition; a change makes the next version. For event, where,
    template and delay_seconds, null is the same as absent (unchanged); for the others, null
    removes them."""

    name: str | None = Field(None, max_length=200, pattern=r"^[^\x00-\x1f\x7f]*$")
    event: EventName | None = None
    where: list[PropertyFilter] | None = Field(None, max_length=20)
    template: TemplateKey | None = None
    category: Literal["transactional", "marketing"] | None = Field(
        None, description=SEMANTIC_HINT + "a marketing template cannot be sent as transactional"
    )
    topic: Topic | None = None
    channels: ChannelRanking | None = None
    delay_seconds: Delay | None = None
    cancel: CancelOn | None = Field(None, description=SEMANTIC_HINT + "needs a delay above 0")


class CancelOut(BaseModel):
    event: str
    match_property: str | None


class DefinitionOut(BaseModel):
    """What a version of a trigger says: which events fire it, what it sends, what cancels it."""

    event: str
    where: list[dict[str, Any]]
    template: str
    category: str | None
    topic: str | None
    channels: list[str] | None
    delay_seconds: int
    cancel: CancelOut | None


class TriggerOut(DefinitionOut):
    key: str
    name: str
    active: bool
    version: int = Field(description="the current version: events that arrive now use it")
    created_at: dt.datetime
    updated_at: dt.datetime


class TriggerList(BaseModel):
    items: list[TriggerOut]


class VersionOut(DefinitionOut):
    version: int
    created_at: dt.datetime


class VersionList(BaseModel):
    items: list[VersionOut] = Field(description="newest first")


class FireOut(BaseModel):
    id: str
    version: int
    profile_id: str
    event_id: str
    event_message_id: str
    message_id: str | None
    message_status: str | None = Field(description="the message's own status (delivered, skipped …)")
    status: FireStatus
    reason: str | None
    due_at: dt.datetime
    created_at: dt.datetime


class FireList(BaseModel):
    items: list[FireOut]
    next_cursor: str | None


class FireQuery(PageQuery):
    status: FireStatus | None = None
