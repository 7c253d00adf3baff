"""Reading Segment HTTP Tracking API calls: bodies, batches, times, traits. Pure functions, no database.

The official clients (analytics-python, analytics-node, the mobile SDKs) post single calls to
``/v1/{identify,track,page,screen,group,alias}`` or many to ``/v1/batch`` (some to ``/v1/import``),
gzip-compressed or not, authenticated by the source's write key. An answer other than 2xx must be
``{"code": …, "message": …}``: analytics-python raises ``APIError(status, payload["code"],
payload["message"])`` from it, and retries 429 and 5xx, never another 4xx.
"""

from __future__ import annotations

import datetime as dt
import json
import uuid
import zlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

MAX_EVENT_BYTES = 32 * 1024
MAX_BATCH_BYTES = 500 * 1024
MAX_BATCH_EVENTS = 2500
MAX_MESSAGE_ID = 100
MAX_ID = 255
MAX_NAME = 200
KINDS = ("identify", "track", "page", "screen", "group", "alias")

RESERVED_TRAITS: Mapping[str, str] = {
    "email": "email",
    "phone": "phone",
    "timezone": "timezone",
    "locale": "locale",
}
"""Traits that are profile fields (the rest become attributes, under the names below)."""

ATTRIBUTE_NAMES: Mapping[str, str] = {
    "firstName": "first_name",
    "lastName": "last_name",
    "createdAt": "created_at",
    "avatar": "avatar",
    "birthday": "birthday",
    "company": "company",
    "description": "description",
    "gender": "gender",
    "name": "name",
    "title": "title",
    "username": "username",
    "website": "website",
    "address": "address",
    "age": "age",
}
"""Segment's reserved traits in camelCase, stored in the snake_case the templates use
(``{{ first_name }}``); any other trait keeps its own name."""


class SpecError(Exception):
    """The request breaks the tracking API's rules: a 400 naming the field, nothing stored."""

    def __init__(self, message: str, *, field: str | None = None, code: str = "invalid_request") -> None:
        super().__init__(message)
        self.message, self.field, self.code = message, field, code


@dataclass(frozen=True)
class Call:
    """One event as read from the request, before it touches the database."""

    kind: str
    message_id: str
    user_id: str | None
    anonymous_id: str | None
    name: str | None
    occurred_at: dt.datetime
    properties: dict[str, Any]
    traits: dict[str, Any]
    context: dict[str, Any]
    previous_id: str | None = None
    group_id: str | None = None
    integrations: dict[str, Any] = field(default_factory=dict)


def read_json(raw: bytes, *, encoding: str | None) -> dict[str, Any]:
    """The JSON object in a request body, gunzipped when ``encoding`` says so, at most 500 KB
    once inflated (a small gzip body cannot expand into a huge one).

    Raises:
      SpecError: an unknown encoding, a broken gzip stream, oversize, not a JSON object.
    """
    body = _inflate(raw, encoding)
    if len(body) > MAX_BATCH_BYTES:
        raise SpecError(f"body: larger than {MAX_BATCH_BYTES // 1024} KB", field="body", code="too_large")
    try:
        value = json.loads(body)
    except (UnicodeDecodeError, ValueError) as exc:
        raise SpecError(f"body: not valid JSON ({exc})", field="body") from None
    if not isinstance(value, dict):
        raise SpecError("body: must be a JSON object", field="body")
    return value


def _inflate(raw: bytes, encoding: str | None) -> bytes:
    if not encoding or encoding.strip().lower() == "identity":
        return raw
    if encoding.strip().lower() != "gzip":
        raise SpecError(f"Content-Encoding: {encoding!r} is not supported (gzip or none)", field="Content-Encoding")
    inflater = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
    try:
        body = inflater.decompress(raw, MAX_BATCH_BYTES + 1)
    except zlib.error as exc:
        raise SpecError(f"body: not a valid gzip stream ({exc})", field="body") from None
    if len(body) <= MAX_BATCH_BYTES and not inflater.eof:
        raise SpecError("body: the gzip stream is truncated", field="body")
    return body


def calls_of(body: dict[str, Any], *, kind: str | None, received_at: dt.datetime, ip: str | None) -> list[Call]:
    """The calls in a body: one (``kind`` given by the path) or a ``batch`` of them, with the
    batch's ``context`` and ``integrations`` merged into each and its ``sentAt`` applied.

    Raises:
      SpecError: naming the first field at fault (``batch.3.messageId``).
    """
    if kind is not None:
        return [_call({**body, "type": kind}, "", received_at, _sent_at(body, ""), ip)]
    batch = body.get("batch")
    if not isinstance(batch, list):
        raise SpecError("batch: must be a list of events", field="batch")
    if len(batch) > MAX_BATCH_EVENTS:
        raise SpecError(f"batch: more than {MAX_BATCH_EVENTS} events", field="batch", code="too_large")
    shared_context = _object(body.get("context"), "context")
    shared_integrations = _object(body.get("integrations"), "integrations")
    sent_at = _sent_at(body, "")
    calls = []
    for index, event in enumerate(batch):
        where = f"batch.{index}."
        if not isinstance(event, dict):
            raise SpecError(f"{where[:-1]}: must be an object", field=where[:-1])
        merged = {
            **event,
            "context": {**shared_context, **_object(event.get("context"), where + "context")},
            "integrations": {**shared_integrations, **_object(event.get("integrations"), where + "integrations")},
        }
        calls.append(_call(merged, where, received_at, _sent_at(event, where) or sent_at, ip))
    return calls


def _call(
    event: dict[str, Any], where: str, received_at: dt.datetime, sent_at: dt.datetime | None, ip: str | None
) -> Call:
    if len(json.dumps(event, separators=(",", ":"), default=str)) > MAX_EVENT_BYTES:
        raise SpecError(
            f"{where}event: larger than {MAX_EVENT_BYTES // 1024} KB", field=where or "body", code="too_large"
        )
    kind = event.get("type")
    if kind not in KINDS:
        raise SpecError(f"{where}type: must be one of {', '.join(KINDS)}", field=where + "type")
    user_id = _id(event.get("userId"), where + "userId")
    anonymous_id = _id(event.get("anonymousId"), where + "anonymousId")
    if user_id is None and anonymous_id is None:
        raise SpecError(f"{where}userId: a userId or an anonymousId is required", field=where + "userId")
    context = _object(event.get("context"), where + "context")
    if context.get("direct") is True and ip:
        context = {**context, "ip": ip}
    traits = _object(event.get("traits"), where + "traits") or _object(context.get("traits"), where + "context.traits")
    _require_ids(event, kind, where, user_id)
    return Call(
        kind=kind,
        message_id=_message_id(event.get("messageId"), where + "messageId"),
        user_id=user_id,
        anonymous_id=anonymous_id,
        name=_name(event, kind, where),
        occurred_at=_occurred_at(event, where, received_at, sent_at),
        properties=_object(event.get("properties"), where + "properties"),
        traits=traits,
        context=context,
        previous_id=_id(event.get("previousId"), where + "previousId"),
        group_id=_id(event.get("groupId"), where + "groupId"),
        integrations=_object(event.get("integrations"), where + "integrations"),
    )


def _require_ids(event: dict[str, Any], kind: str, where: str, user_id: str | None) -> None:
    """An alias joins ``previousId`` to a ``userId``; a group names its ``groupId``."""
    if kind == "alias" and (user_id is None or event.get("previousId") in (None, "")):
        missing = "userId" if user_id is None else "previousId"
        raise SpecError(f"{where}{missing}: an alias call needs a userId and a previousId", field=where + missing)
    if kind == "group" and event.get("groupId") in (None, ""):
        raise SpecError(f"{where}groupId: a group call needs the groupId", field=where + "groupId")


def _name(event: dict[str, Any], kind: str, where: str) -> str | None:
    if kind == "track":
        name = event.get("event")
        if not isinstance(name, str) or not name.strip():
            raise SpecError(f"{where}event: a track call needs the event's name", field=where + "event")
        if len(name) > MAX_NAME:
            raise SpecError(f"{where}event: longer than {MAX_NAME} characters", field=where + "event")
        return name
    name = event.get("name")
    if name is None or kind not in ("page", "screen"):
        return None
    if not isinstance(name, str) or len(name) > MAX_NAME:
        raise SpecError(f"{where}name: a string of at most {MAX_NAME} characters", field=where + "name")
    return name


def _occurred_at(
    event: dict[str, Any], where: str, received_at: dt.datetime, sent_at: dt.datetime | None
) -> dt.datetime:
    """``timestamp`` as given; else ``originalTimestamp`` moved by the sender's clock skew,
    ``receivedAt − (sentAt − originalTimestamp)``; else when CCM received it."""
    timestamp = _time(event.get("timestamp"), where + "timestamp")
    if timestamp is not None:
        return timestamp
    original = _time(event.get("originalTimestamp"), where + "originalTimestamp")
    if original is None:
        return received_at
    return received_at - (sent_at - original) if sent_at is not None else original


def _sent_at(event: dict[str, Any], where: str) -> dt.datetime | None:
    return _time(event.get("sentAt"), where + "sentAt")


def _time(value: Any, where: str) -> dt.datetime | None:
    if value is None:
        return None
    if not isinstance(value, str) or len(value) > 40:
        raise SpecError(f"{where}: an ISO 8601 date and time", field=where)
    try:
        parsed = dt.datetime.fromisoformat(value.replace("z", "Z"))
    except ValueError:
        raise SpecError(f"{where}: {value!r} is not an ISO 8601 date and time", field=where) from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=dt.UTC)
    try:
        return parsed.astimezone(dt.UTC)
    except OverflowError:
        raise SpecError(f"{where}: {value!r} is out of range", field=where) from None


def _message_id(value: Any, where: str) -> str:
    if value is None:
        return f"ccm-{uuid.uuid4()}"  # no id: stored, but a retry cannot be recognised
    if not isinstance(value, str) or not value or len(value) > MAX_MESSAGE_ID:
        raise SpecError(f"{where}: a string of 1 to {MAX_MESSAGE_ID} characters", field=where)
    return value


def _id(value: Any, where: str) -> str | None:
    if value is None or value == "":
        return None
    if isinstance(value, int | float) and not isinstance(value, bool):
        value = str(value)  # some clients send numeric user ids
    if not isinstance(value, str) or len(value) > MAX_ID or "\x00" in value:
        raise SpecError(f"{where}: a string of at most {MAX_ID} characters", field=where)
    return value


def _object(value: Any, where: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise SpecError(f"{where}: must be an object", field=where)
    return value


def profile_fields(traits: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Split identify traits into profile fields (email, phone, timezone, locale) and attributes
    (Segment's camelCase reserved traits under snake_case names, the rest as they are)."""
    fields: dict[str, Any] = {}
    attributes: dict[str, Any] = {}
    for name, value in traits.items():
        if name in RESERVED_TRAITS:
            fields[RESERVED_TRAITS[name]] = value
        else:
            attributes[ATTRIBUTE_NAMES.get(name, name)] = value
    return fields, attributes
