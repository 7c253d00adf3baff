"""The validation layer's shared rules: what any input may contain, the identifier types with
their limits, and field validators for addresses, time zones, locales and header values.

Every input path — JSON bodies, path parameters, query strings, forms, provider callbacks, raw
email — runs through :func:`check_input` before anything reaches a service, so a value no
database column can hold (a NUL, a lone surrogate, NaN, an integer wider than 64 bits) is a 422
naming the field on PostgreSQL and SQLite alike, never a driver error.
"""

from __future__ import annotations

import datetime as dt
import functools
import math
import re
import typing
import zoneinfo
from email.utils import getaddresses
from typing import Annotated, Any, Literal

from email_validator import EmailNotValidError, validate_email
from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, PlainSerializer, WithJsonSchema

from ccm.errors import ValidationFailed

Channel = Literal["email", "sms", "chat"]
CHANNELS: tuple[Channel, ...] = ("email", "sms", "chat")

INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
INT32_MAX = 2**31 - 1

_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")
_LOCALE = re.compile(r"^[a-zA-Z]{2,3}(-[a-zA-Z0-9]{2,8}){0,4}$")
_PHONE = r"^\+?[0-9][0-9 ().-]{5,23}$"
_HEADER_BREAKS = re.compile("[\r\n\x00\u2028\u2029]")
_LOCAL_TIME = re.compile(r"^([01][0-9]|2[0-3]):[0-5][0-9](:[0-5][0-9])?$")


class RequestModel(BaseModel):
    """The base of every request body: unknown fields are refused and types are strict (``0`` is
    not a boolean, ``"5"`` not an integer); NaN and Infinity are never numbers."""

    model_config = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False)


class QueryModel(BaseModel):
    """The base of query-string models: values arrive as text, so numbers are parsed from it."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


def check_input(value: Any, field: str) -> None:
    """Refuse anything no column can store, anywhere inside ``value``.

    Raises:
      ValidationFailed: naming the innermost field (``attributes.nick``, ``variants.2.html``).
    """
    found = unstorable(value, field)
    if found is not None:
        path, problem = found
        raise ValidationFailed(f"{path}: {problem}", field=path)


def unstorable(value: Any, field: str) -> tuple[str, str] | None:
    """The first (field, problem) that :func:`check_input` refuses, or None. Iterative, so a
    deeply nested value cannot exhaust the stack."""
    stack: list[tuple[Any, str]] = [(value, field)]
    while stack:
        item, path = stack.pop()
        if isinstance(item, str):
            if _UNSTORABLE.search(item):
                return path, "NUL characters and unpaired surrogates are not allowed"
        elif isinstance(item, bool) or item is None:
            continue
        elif isinstance(item, int):
            if not INT64_MIN <= item <= INT64_MAX:
                return path, "integers must fit in 64 bits (±9223372036854775807)"
        elif isinstance(item, float):
            if not math.isfinite(item):
                return path, "NaN and Infinity are not numbers here"
        elif isinstance(item, dict):
            for key, child in item.items():
                child_path = f"{path}.{key}" if path else str(key)
                if isinstance(key, str) and _UNSTORABLE.search(key):
                    return child_path, "NUL characters and unpaired surrogates are not allowed in names"
                stack.append((child, child_path))
        elif isinstance(item, list | tuple):
            stack.extend((child, f"{path}.{index}" if path else str(index)) for index, child in enumerate(item))
        elif isinstance(item, BaseModel):
            stack.extend(_model_children(item, path))
    return None


def _model_children(model: BaseModel, path: str) -> list[tuple[Any, str]]:
    """A model's values with their paths as pydantic writes them: a member of a discriminated
    union in a list carries its tag (``variants.0.email.html``)."""
    children = []
    for name in type(model).model_fields:
        value, child_path = getattr(model, name), f"{path}.{name}" if path else name
        tag = _list_discriminator(type(model), name)
        if tag and isinstance(value, list):
            children += [(member, f"{child_path}.{index}.{getattr(member, tag)}") for index, member in enumerate(value)]
        else:
            children.append((value, child_path))
    extra = model.__pydantic_extra__ or {}
    children += [(value, f"{path}.{name}" if path else name) for name, value in extra.items()]
    return children


@functools.cache
def _list_discriminator(model: type[BaseModel], name: str) -> str | None:
    """``channel`` when the field ``name`` of ``model`` is
    ``list[Annotated[A | B, Field(discriminator="channel")]]``, else None."""
    for arg in typing.get_args(model.model_fields[name].annotation):
        for meta in typing.get_args(arg)[1:] if typing.get_origin(arg) is Annotated else ():
            if isinstance(getattr(meta, "discriminator", None), str):
                return meta.discriminator
    return None


def id_field(prefix: str) -> Any:
    """The constraints of a CCM id with ``prefix`` (``msg_01JD3Q8W6ZJ5V0M4S2K7XH3N9C``, see
    :mod:`ccm.ids`): ``Annotated[str, id_field("msg")]``."""
    return Field(pattern=rf"^{prefix}_[0-9A-Z]{{26}}$", description=f"a CCM id: {prefix}_ and 26 characters")


ExternalId = Annotated[
    str,
    Field(
        min_length=1,
        max_length=255,
        pattern=r"^[^\x00-\x1f\x7f]+$",
        description="your own id for the person: 1 to 255 characters, no control characters",
    ),
]


def integral(value: Any) -> Any:
    """``5.0`` as ``5``: JSON Schema counts it as an integer, so the API does too (``5.5`` and
    ``"5"`` stay refused)."""
    if isinstance(value, float) and value.is_integer() and abs(value) <= INT64_MAX:
        return int(value)
    return value


INTEGRAL = BeforeValidator(integral)
"""Put after the bounds of an integer in a request body: ``Annotated[int, Field(ge=0), INTEGRAL]``
(strict: no strings, no booleans; integral floats are integers). Before them, the bounds would
not reach the document."""
Version = Annotated[int, Field(ge=1, le=INT32_MAX, description="a published version number"), INTEGRAL]
Topic = Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9_.-]{0,99}$", description="a consent topic, e.g. news")]
Name = Annotated[str, Field(min_length=1, max_length=100, pattern=r"^[^\x00-\x1f\x7f]+$")]


def normalize_email(value: str) -> str:
    """The normalized ASCII form of an address (IDN domains punycoded), or ValueError."""
    try:
        result = validate_email(value, check_deliverability=False, allow_smtputf8=False)
    except EmailNotValidError as exc:
        raise ValueError(f"not a valid email address: {exc}") from None
    return result.ascii_email or result.normalized


def check_timezone(value: str) -> str:
    try:
        zoneinfo.ZoneInfo(value)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown IANA time zone {value!r}") from None
    return value


def check_locale(value: str) -> str:
    language, *rest = value.split("-")
    return "-".join([language.lower(), *(part.upper() if len(part) == 2 else part for part in rest)])


def check_header_value(value: str) -> str:
    if _HEADER_BREAKS.search(value):
        raise ValueError("line breaks and NUL are not allowed in header values")
    return value


def check_mailbox(value: str) -> str:
    """A From value: ``addr@example.com`` or ``Display Name <addr@example.com>``."""
    check_header_value(value)
    found = getaddresses([value])
    address = found[0][1] if len(found) == 1 else ""
    if not address:
        raise ValueError(f"not an address like 'Shop <hello@shop.example>': {value!r}")
    normalize_email(address)
    return value.strip()


def check_unique_channels(value: list[Channel]) -> list[Channel]:
    if len(set(value)) != len(value):
        raise ValueError("each channel may appear once")
    return value


def parse_local_time(value: Any) -> Any:
    """``"08:00"`` or ``"08:00:30"`` as a time of day; other input is left for pydantic to refuse."""
    if isinstance(value, str) and _LOCAL_TIME.match(value):
        return dt.time.fromisoformat(value)
    if isinstance(value, str):
        raise ValueError(f"not a time of day like '08:00': {value!r}")
    return value


_EMAIL_SHAPE = r"^[^@\s\x00-\x1f\x7f]{1,64}@[^@\s\x00-\x1f\x7f]{1,253}$"
_CHECKED = "checked beyond this schema: "

Email = Annotated[
    str,
    Field(max_length=320, pattern=_EMAIL_SHAPE, description=_CHECKED + "a deliverable address syntax (RFC 5321)"),
    AfterValidator(normalize_email),
]
TimeZone = Annotated[
    str,
    Field(
        max_length=64,
        json_schema_extra={"enum": sorted(zoneinfo.available_timezones())},
        description="an IANA time zone name, e.g. Europe/Paris",
    ),
    AfterValidator(check_timezone),
]
Locale = Annotated[
    str, Field(max_length=35, pattern=_LOCALE.pattern, description="e.g. en, es-MX"), AfterValidator(check_locale)
]
Phone = Annotated[
    str,
    Field(
        max_length=24,
        pattern=_PHONE,
        description=_CHECKED + "a valid number: E.164 (+14155550100), or national in the workspace's default region",
    ),
]
HeaderValue = Annotated[str, AfterValidator(check_header_value)]
Mailbox = Annotated[
    str,
    Field(
        max_length=320,
        pattern=r"^[^\r\n\x00\u2028\u2029]*@[^\r\n\x00\u2028\u2029]*$",
        description=_CHECKED + "one address, optionally with a display name",
    ),
    AfterValidator(check_mailbox),
]
ChannelRanking = Annotated[
    list[Channel], Field(max_length=3, json_schema_extra={"uniqueItems": True}), AfterValidator(check_unique_channels)
]
LocalTime = Annotated[
    dt.time,
    BeforeValidator(parse_local_time),
    PlainSerializer(lambda t: t.isoformat("seconds" if t.second else "minutes"), return_type=str),
    WithJsonSchema({"type": "string", "pattern": _LOCAL_TIME.pattern, "description": "local time, HH:MM"}),
]
"""A time of day written ``HH:MM`` (no date, no offset: it is read in the recipient's zone)."""
SEMANTIC_HINT = _CHECKED
"""Descriptions that start with this mark fields whose rules go beyond what a schema can say."""


def free_form(description: str) -> Any:
    """A field of free-form JSON data (attributes, template data, proof): any object whose
    numbers are finite and whose integers fit in 64 bits — rules no schema of "any JSON" states."""
    return Field(default_factory=dict, description=f"{_CHECKED}{description}; numbers finite, integers 64-bit")
