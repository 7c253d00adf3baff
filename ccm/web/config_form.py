"""A form generated from a provider kind's config model: one control per field, chosen from its
type, and the posted form turned back into the ``config`` the accounts service validates.

Secret fields are write-only: their control is a password input that is never filled in, and
leaving it empty keeps the value already sealed."""

from __future__ import annotations

import types
import typing
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, SecretStr
from pydantic.fields import FieldInfo
from werkzeug.datastructures import MultiDict

Control = Literal["text", "password", "checkbox", "select", "number", "lines"]


@dataclass(frozen=True)
class ConfigField:
    name: str
    control: Control
    required: bool
    optional: bool
    options: tuple[str, ...]
    hint: str


def _unwrapped(annotation: Any) -> tuple[Any, bool]:
    """The type inside ``X | None``, and whether None is allowed."""
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        members = [arg for arg in typing.get_args(annotation) if arg is not type(None)]
        return (members[0] if len(members) == 1 else str), len(members) < len(typing.get_args(annotation))
    return annotation, False


def _control(annotation: Any) -> tuple[Control, tuple[str, ...]]:
    if annotation is SecretStr:
        return "password", ()
    if annotation is bool:
        return "checkbox", ()
    if typing.get_origin(annotation) is Literal:
        return "select", tuple(str(arg) for arg in typing.get_args(annotation))
    if annotation in (int, float):
        return "number", ()
    if typing.get_origin(annotation) is list:
        return "lines", ()
    return "text", ()


def _field(name: str, info: FieldInfo) -> ConfigField:
    annotation, optional = _unwrapped(info.annotation)
    control, options = _control(annotation)
    default = "" if info.is_required() or info.default in (None, [], "") else f"default {info.default}"
    hint = "; ".join(part for part in (info.description or "", default) if part)
    return ConfigField(name, control, info.is_required(), optional, options, hint)


def config_fields(model: type[BaseModel]) -> list[ConfigField]:
    """The form's controls, in the model's field order."""
    return [_field(name, info) for name, info in model.model_fields.items()]


def config_from_form(model: type[BaseModel], form: MultiDict[str, str]) -> dict[str, Any]:
    """The ``config`` a form posted (fields named ``config.<name>``). An empty secret is left out
    (the current value stays); an empty optional field is None; any other empty field is left
    out, so that its default (or, when editing, its current value) applies."""
    config: dict[str, Any] = {}
    for item in config_fields(model):
        raw = form.get(f"config.{item.name}", "").strip()
        if item.control == "checkbox":
            config[item.name] = f"config.{item.name}" in form
        elif item.control == "lines":
            config[item.name] = [line.strip() for line in raw.splitlines() if line.strip()]
        elif raw:
            config[item.name] = raw
        elif item.optional and item.control != "password":
            config[item.name] = None
    return config


def shown_value(item: ConfigField, settings: dict[str, Any]) -> Any:
    """What a control shows for the stored ``settings`` (secrets are never among them)."""
    value = settings.get(item.name)
    if isinstance(value, list):
        return "\n".join(str(line) for line in value)
    return "" if value is None else value
