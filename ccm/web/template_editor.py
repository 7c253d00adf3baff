"""The template editor's form: reading it into the draft the services take, the problems the
sandbox finds in each field, and where a service's or a preview's problem belongs in the form.

Form fields are named as the API names its errors (``variants.0.email.subject``), so an error
from :func:`ccm.http.validation_failed` or the services lands next to its field unchanged. The
index is the form's own; a removed variant leaves a gap that :class:`EditorForm` maps across."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError
from werkzeug.datastructures import MultiDict

from ccm.errors import CCMError, ValidationFailed
from ccm.http import validation_failed
from ccm.message_templates.preview import DraftContent
from ccm.message_templates.rendering import PARTS
from ccm.message_templates.sandbox import TemplateSandbox
from ccm.message_templates.schemas import TemplateIn, TemplatePatch
from ccm.validation import CHANNELS, check_input

MAX_VARIANTS = 200
REQUIRED = {"subject", "html", "body"}
LABELS = {"subject": "Subject", "html": "HTML", "text": "Plain text", "body": "Body", "locale": "Locale"}
FIELD_LABELS = {"default_locale": "Default locale", "sample": "Sample data", "description": "Name"}
CHANNEL_LABELS = {"email": "Email", "sms": "SMS", "chat": "Chat"}
_VARIANT_FIELD = re.compile(r"^variants\.(\d{1,3})\.channel$")
_ERROR_FIELD = re.compile(r"^variants\.(\d+)(\..*)?$")
_VARIABLE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,99}$")


@dataclass
class EditorForm:
    """The editor's content, from the saved draft or as submitted, and what is wrong with it."""

    category: str
    description: str
    default_locale: str
    variables: list[str]
    variants: list[dict[str, Any]]  # each with "index", "channel", "locale" and its parts
    sample: str = "{}"
    errors: dict[str, list[str]] = field(default_factory=dict)

    def add_error(self, name: str, message: str) -> None:
        self.errors.setdefault(name, []).append(message)

    def content(self) -> list[dict[str, Any]]:
        """The variants as the services store them, without the form's indexes."""
        return [self.content_of(variant) for variant in self.variants]

    def content_of(self, variant: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in variant.items() if k != "index"}

    def field_of_error(self, error: CCMError) -> str:
        """The form field a service error names, with the list position turned into the form's index."""
        name = str(error.details.get("field") or "")
        found = _ERROR_FIELD.match(name)
        if found and int(found.group(1)) < len(self.variants):
            variant, rest = self.variants[int(found.group(1))], found.group(2) or ""
            if rest and not rest.startswith(f".{variant['channel']}."):  # check_input names no channel
                rest = f".{variant['channel']}{rest}"
            name = f"variants.{variant['index']}{rest}"
        return "variables" if name.startswith("variables.") else name

    def field_of_part(self, part: str) -> str | None:
        """The form field of a source named ``email.en.html`` (a preview's problem), if it is one."""
        for variant in self.variants:
            for name in PARTS[variant["channel"]]:
                if part == f"{variant['channel']}.{variant['locale']}.{name}":
                    return f"variants.{variant['index']}.{variant['channel']}.{name}"
        return None


def from_template(template: Any) -> EditorForm:
    """The form showing a saved draft (or a version: anything with the draft's fields)."""
    return EditorForm(
        category=template.category,
        description=getattr(template, "description", ""),
        default_locale=template.default_locale,
        variables=list(template.variables),
        variants=[{"index": i, **variant} for i, variant in enumerate(template.variants)],
        sample=json.dumps({name: f"[{name}]" for name in template.variables}),
    )


def from_form(form: MultiDict[str, str]) -> EditorForm:
    """The form as submitted; a variant whose "Remove" box is ticked is left out."""
    indexes = sorted({int(m.group(1)) for name in form if (m := _VARIANT_FIELD.match(name))})[:MAX_VARIANTS]
    variants = []
    for index in indexes:
        channel = form.get(f"variants.{index}.channel", "")
        if channel not in CHANNELS or form.get(f"variants.{index}.remove"):
            continue
        prefix = f"variants.{index}.{channel}."
        variant: dict[str, Any] = {
            "index": index,
            "channel": channel,
            "locale": form.get(prefix + "locale", "").strip(),
        }
        for part in PARTS[channel]:
            variant[part] = form.get(prefix + part, "").replace("\r\n", "\n")
        if channel == "email" and not variant["text"].strip():
            variant["text"] = None
        variants.append(variant)
    return EditorForm(
        category=form.get("category", ""),
        description=form.get("description", ""),
        default_locale=form.get("default_locale", "").strip(),
        variables=[name for name in re.split(r"[\s,]+", form.get("variables", "")) if name],
        variants=variants,
        sample=form.get("sample", "{}"),
    )


def to_patch(editor: EditorForm) -> TemplatePatch:
    """The draft as the API's PATCH body; the first problem is a 422 naming its field.

    Raises:
      ValidationFailed: as the API would answer the same content.
    """
    body = {
        "category": editor.category,
        "description": editor.description,
        "default_locale": editor.default_locale,
        "variables": editor.variables,
        "variants": editor.content(),
    }
    check_input(body, "")
    try:
        return TemplatePatch.model_validate(body)
    except ValidationError as exc:
        raise validation_failed(exc) from None


def parse_new(form: MultiDict[str, str], variant: dict[str, Any]) -> TemplateIn:
    """A new template from its form, starting with ``variant``.

    Raises:
      ValidationFailed: naming the field, as the API would.
    """
    body = {
        "key": form.get("key", "").strip(),
        "category": form.get("category", ""),
        "description": form.get("description", ""),
        "default_locale": variant["locale"],
        "variables": [name for name in re.split(r"[\s,]+", form.get("variables", "")) if name],
        "variants": [variant],
    }
    check_input(body, "")
    try:
        return TemplateIn.model_validate(body)
    except ValidationError as exc:
        error = validation_failed(exc)
        if str(error.details.get("field", "")).startswith("variants.0"):
            error = ValidationFailed(error.message.replace("variants.0.", "", 1), field="locale")
        raise error from None


def version_number(value: str, field_name: str) -> int:
    """A version number from the query string.

    Raises:
      ValidationFailed: naming ``field_name`` when it is not a whole number from 1.
    """
    if not value.isdigit() or not 1 <= int(value) <= 2**31 - 1:
        raise ValidationFailed(f"{field_name}: a version number (1, 2, …)", field=field_name)
    return int(value)


def lint(editor: EditorForm, sandbox: TemplateSandbox) -> None:
    """Note, per field, what the sandbox's checks refuse (syntax, forbidden constructs) and the
    required parts left empty; the API refuses the same at save time."""
    for variant in editor.variants:
        for part in PARTS[variant["channel"]]:
            name, source = f"variants.{variant['index']}.{variant['channel']}.{part}", variant.get(part)
            if not source:
                if part in REQUIRED:
                    editor.add_error(name, f"{LABELS[part]} is required")
                continue
            if part == "subject" and "\n" in source:
                editor.add_error(name, "a subject is one line")
            source_name = f"{variant['channel']}.{variant['locale']}.{part}"
            for problem in sandbox.validate(source, name=source_name):
                editor.add_error(name, problem.message)
    for name in editor.variables:
        if not _VARIABLE.match(name):
            editor.add_error("variables", f"{name!r} is not a variable name (letters, digits and _)")


def sample_data(editor: EditorForm) -> dict[str, Any]:
    """The sample variables to preview with: the JSON object typed, and a visible placeholder for
    each declared variable it leaves out (a preview without them could only say "undefined")."""
    try:
        data = json.loads(editor.sample or "{}")
    except ValueError as exc:
        editor.add_error("sample", f"not JSON: {exc}")
        data = {}
    if not isinstance(data, dict):
        editor.add_error("sample", 'sample data is a JSON object, such as {"first_name": "Ada"}')
        data = {}
    return {**{name: f"[{name}]" for name in editor.variables}, **data}


def previewable(editor: EditorForm, category: str) -> DraftContent:
    """The variants without problems, to preview; the others show their problems instead."""
    clean = [
        {k: v for k, v in variant.items() if k != "index"}
        for variant in editor.variants
        if not any(name.startswith(f"variants.{variant['index']}.") for name in editor.errors)
    ]
    variables = [name for name in editor.variables if _VARIABLE.match(name)]
    return DraftContent(editor.category or category, editor.default_locale or "en", variables, clean)


def notice_for(error: CCMError, editor: EditorForm) -> str:
    """A service error as the notice above the form, naming the field the way its label does."""
    name = editor.field_of_error(error)
    return f"{label_of(name, editor)}: {error.message}" if name else error.message


def label_of(name: str, editor: EditorForm) -> str:
    """``variants.2.email.subject`` → ``Email (es) Subject``."""
    parts = name.split(".")
    if len(parts) >= 3 and parts[0] == "variants":
        variant = next((v for v in editor.variants if str(v["index"]) == parts[1]), None)
        if variant is not None:
            part = LABELS.get(parts[3], parts[3]) if len(parts) > 3 else ""
            return f"{CHANNEL_LABELS[variant['channel']]} ({variant['locale']}) {part}".strip()
    return FIELD_LABELS.get(name, name.capitalize())


def blank_variant(channel: str, locale: str, index: int) -> dict[str, Any]:
    """A variant to fill in, added to the form (saved only with the rest of the draft)."""
    return {"index": index, "channel": channel, "locale": locale, **{part: "" for part in PARTS[channel]}}


def starter_variant(channel: str, locale: str) -> dict[str, Any]:
    """The content a new template starts with: a draft, edited before anything is published."""
    if channel == "email":
        return {"channel": channel, "locale": locale, "subject": "Hello", "html": "<p>Hello!</p>"}
    return {"channel": channel, "locale": locale, "body": "Hello!"}


def check_choice(value: str, choices: Mapping[str, Any] | tuple[str, ...], field_name: str) -> str:
    """``value`` if it is one of ``choices``.

    Raises:
      ValidationFailed: naming ``field_name``.
    """
    if value not in choices:
        raise ValidationFailed(f"{field_name}: choose one of {', '.join(choices)}", field=field_name)
    return value
