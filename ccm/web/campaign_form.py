"""The campaign composer's form, read into the body ``POST /v1/campaigns`` takes, and the errors
of that body shown next to the form's fields.

The form's field names are the body's paths (``schedule.at``, ``variants.1.weight``,
``calendar.hours.0``), so an error the schema or the service names a field by lands next to that
field. Numbers are read from the text; text that is no number is passed on as it is, for the
schema to refuse by its field. A group of optional settings (the A/B test, the calendar, the goal)
is sent when any of its fields is filled in, and a part left empty is left out of the body, so
that the schema says it is required: every rule stays the schema's or the service's."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, get_args

from pydantic import ValidationError
from werkzeug.datastructures import MultiDict

from ccm.campaigns.schemas import CampaignIn, Metric
from ccm.campaigns.timing import DAYS
from ccm.errors import CCMError
from ccm.http import validation_failed
from ccm.validation import CHANNELS, check_input

VARIANT_ROWS = 3
"""Rows of A/B variants the form offers."""
SCHEDULES = ("now", "at", "local")
_LABELS = {"opened": "Opens", "clicked": "Clicks", "replied": "Replies", "converted": "Conversions (the goal)"}
METRICS = tuple((metric, _LABELS.get(metric, metric)) for metric in get_args(Metric))
"""The A/B test's metrics as the form offers them: the schema's, in its order (its default first)."""
WEEK = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
DAY_LABELS = dict(zip(DAYS, WEEK, strict=True))
LISTS = ("channels", "calendar.days")
"""Fields that may be given more than once (check boxes)."""


@dataclass
class Composed:
    """What the form said: the values to show again, and errors by field (``""``: not a field of the form)."""

    values: dict[str, Any]
    errors: dict[str, str] = field(default_factory=dict)


def blank() -> Composed:
    return Composed({"schedule": "now", "channels": [], "calendar.days": [], "variant_rows": VARIANT_ROWS})


def read_form(form: MultiDict[str, str]) -> tuple[Composed, CampaignIn | None]:
    """The form as it was filled in, and the campaign it describes (None, with errors, when invalid)."""
    values: dict[str, Any] = {name: form.get(name, "").strip()[:2000] for name in form if name not in LISTS}
    values |= {name: form.getlist(name) for name in LISTS} | {"variant_rows": VARIANT_ROWS}
    values.setdefault("schedule", "now")
    composed = Composed(values)
    if values["schedule"] not in SCHEDULES:
        composed.errors["schedule"] = "schedule: choose now, at a time, or at a local time"
        return composed, None
    try:
        data = CampaignIn.model_validate_json(json.dumps(_body(values)))
        check_input(data, "")
    except ValidationError as exc:
        show_error(composed, validation_failed(exc))
        return composed, None
    except CCMError as exc:
        show_error(composed, exc)
        return composed, None
    return composed, data


def show_error(composed: Composed, error: CCMError) -> None:
    """Put each error by the field it names (the first of a field wins); the others go on top."""
    found = error.details.get("errors")
    if not found:
        composed.errors.setdefault(_form_field(str(error.details.get("field", ""))), error.message)
    for item in found or []:
        composed.errors.setdefault(_form_field(item["field"]), f"{item['field']}: {item['message']}")


def _form_field(name: str) -> str:
    """The place on the form for an error of the body's field ``name``: the longest part of its
    path the form shows errors at (``calendar.hours.1`` → ``calendar.hours``); ``""``: none."""
    parts = name.split(".")
    for end in range(len(parts), 0, -1):
        if ".".join(parts[:end]) in SLOTS:
            return ".".join(parts[:end])
    return ""


SLOTS = frozenset(
    {"name", "template", "variants", "segment", "channels", "topic", "deadline", "holdout_percent"}
    | {"schedule", "schedule.at", "schedule.local_time", "throttle.per_second"}
    | {"ab_test", "ab_test.sample_percent", "ab_test.wait_hours", "ab_test.metric"}
    | {"calendar", "calendar.days", "calendar.hours", "goal", "goal.event", "goal.within_hours"}
    | {f"variants.{i}.{part}" for i in range(VARIANT_ROWS) for part in ("template", "weight")}
)
"""Where new.html shows an error (each has its ``error(...)``)."""


def _body(values: dict[str, Any]) -> dict[str, Any]:
    body: dict[str, Any] = {"name": values.get("name", ""), "segment": values.get("segment", "")}
    variants = _variants(values)
    if values.get("template") or not variants:
        body["template"] = values.get("template", "")
    if variants:
        body["variants"] = variants
    if values["channels"]:
        body["channels"] = [channel for channel in CHANNELS if channel in values["channels"]]
    if values.get("topic"):
        body["topic"] = values["topic"]
    for name in ("holdout_percent", "deadline"):
        if values.get(name):
            body[name] = _number(values[name])
    if values.get("throttle.per_second"):
        body["throttle"] = {"per_second": _number(values["throttle.per_second"])}
    if values["schedule"] == "at":
        body["schedule"] = {"at": values.get("schedule.at") or None}
    elif values["schedule"] == "local":
        body["schedule"] = {"local_time": values.get("schedule.local_time") or None}
    return body | _ab_test(values) | _calendar(values) | _goal(values)


def _ab_test(values: dict[str, Any]) -> dict[str, Any]:
    test = _filled(values, {"sample_percent": True, "wait_hours": True}, prefix="ab_test.")
    if not test:
        return {}
    metric = values.get("ab_test.metric")
    return {"ab_test": test | ({"metric": metric} if metric else {})}


def _calendar(values: dict[str, Any]) -> dict[str, Any]:
    days = values.get("calendar.days") or []
    hours = [hour for hour in (values.get("calendar.hours.0"), values.get("calendar.hours.1")) if hour]
    if not days and not hours:
        return {}
    return {"calendar": {"days": days or None, "hours": hours or None}}


def _goal(values: dict[str, Any]) -> dict[str, Any]:
    goal = _filled(values, {"event": False, "within_hours": True}, prefix="goal.")
    return {"goal": goal} if goal else {}


def _filled(values: dict[str, Any], names: dict[str, bool], *, prefix: str) -> dict[str, Any]:
    """The group's fields that were filled in (``names``: whether each is a number)."""
    given = {name: values[prefix + name] for name in names if values.get(prefix + name)}
    return {name: _number(text) if names[name] else text for name, text in given.items()}


def _variants(values: dict[str, Any]) -> list[dict[str, Any]]:
    """The variant rows up to the last one filled in (an empty row between is refused, by its index)."""
    rows = [
        (values.get(f"variants.{i}.template", ""), values.get(f"variants.{i}.weight", "")) for i in range(VARIANT_ROWS)
    ]
    while rows and rows[-1] == ("", ""):
        rows.pop()
    return [{"template": template, "weight": _number(weight) if weight else 1.0} for template, weight in rows]


def _number(text: str) -> Any:
    try:
        value = float(text)
    except ValueError:
        return text
    return int(value) if value.is_integer() and "." not in text else value
