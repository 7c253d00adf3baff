from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from ccm.validation import SEMANTIC_HINT, Channel, ExternalId, Locale, RequestModel, Version, free_form

Category = Literal["transactional", "marketing"]
TEMPLATE_KEY = r"^[a-z0-9][a-z0-9_.-]{0,199}$"
TemplateKey = Annotated[
    str,
    Field(
        pattern=TEMPLATE_KEY,
        description=(
            "checked beyond this schema: lowercase letters, digits, '_', '.', '-'; keys starting 'ccm.' are CCM's own"
        ),
    ),
]
SNIPPET_NAME = r"^[A-Za-z0-9_-]{1,60}(/[A-Za-z0-9_-]{1,60}){0,3}\.(html|txt)$"
SnippetName = Annotated[
    str,
    Field(max_length=200, pattern=SNIPPET_NAME, description="a path such as layouts/base.html or partials/footer.txt"),
]
Source = Annotated[str, Field(description=SEMANTIC_HINT + "Jinja2 that compiles in the CCM sandbox")]
VariableName = Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,99}$")]


class EmailVariant(RequestModel):
    channel: Literal["email"]
    locale: Locale = "en"
    subject: Source = Field(min_length=1, max_length=2000, pattern=r"^[^\r\n]+$")
    html: Source = Field(min_length=1)
    text: Source | None = Field(None, description="generated from the HTML when absent")


class SmsVariant(RequestModel):
    channel: Literal["sms"]
    locale: Locale = "en"
    body: Source = Field(min_length=1)


class ChatVariant(RequestModel):
    channel: Literal["chat"]
    locale: Locale = "en"
    body: Source = Field(min_length=1)


Variant = Annotated[EmailVariant | SmsVariant | ChatVariant, Field(discriminator="channel")]


def _unique_variants(variants: list[Variant]) -> list[Variant]:
    seen = set()
    for variant in variants:
        if (variant.channel, variant.locale) in seen:
            raise ValueError(f"two variants for channel {variant.channel!r} and locale {variant.locale!r}")
        seen.add((variant.channel, variant.locale))
    return variants


def _unique_names(names: list[str]) -> list[str]:
    if len(set(names)) != len(names):
        raise ValueError("each variable may be declared once")
    return names


Variants = Annotated[
    list[Variant],
    Field(
        min_length=1,
        max_length=200,
        description=SEMANTIC_HINT + ("one variant per channel and locale; each part must compile in the sandbox"),
    ),
    AfterValidator(_unique_variants),
]
Variables = Annotated[
    list[VariableName], Field(max_length=200, json_schema_extra={"uniqueItems": True}), AfterValidator(_unique_names)
]


class TemplateIn(RequestModel):
    key: TemplateKey
    category: Category
    description: str = Field("", max_length=2000)
    default_locale: Locale = "en"
    variables: Variables = Field(default_factory=list)
    variants: Variants


class TemplatePatch(RequestModel):
    """Edit the draft. Published versions never change."""

    category: Category | None = None
    description: str | None = Field(None, max_length=2000)
    default_locale: Locale | None = None
    variables: Variables | None = None
    variants: Variants | None = None


class TemplateOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    key: str
    category: str
    description: str
    default_locale: str
    variables: list[str]
    variants: list[dict[str, Any]]
    latest_version: int | None
    created_at: dt.datetime
    updated_at: dt.datetime


class TemplateList(BaseModel):
    items: list[TemplateOut]


class VersionOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    version: int
    category: str
    default_locale: str
    variables: list[str]
    variants: list[dict[str, Any]]
    snippets: dict[str, str]
    created_at: dt.datetime


class PublishOut(BaseModel):
    version: int
    created: bool = Field(description="false when the draft equals the latest version")


class PreviewIn(RequestModel):
    version: Version | Literal["draft", "latest"] = "latest"
    external_id: ExternalId | None = Field(None, description="render with this stored profile")
    data: dict[str, Any] = free_form("sample variables")
    channel: Channel | None = None
    locale: Locale | None = None


class ProblemOut(BaseModel):
    part: str
    line: int | None
    code: str
    message: str


class RenderedPart(BaseModel):
    channel: str
    locale: str
    subject: str | None = None
    html: str | None = None
    text: str | None = None
    body: str | None = None
    segments: int | None = Field(
        None, description="SMS: segments the body takes as sent (a marketing SMS with its opt-out footer)"
    )
    encoding: str | None = Field(None, description="SMS: GSM-7 or UCS-2")


class PreviewOut(BaseModel):
    version: int | None
    parts: list[RenderedPart]
    problems: list[ProblemOut]


class SnippetIn(RequestModel):
    source: Source = Field(min_length=1)


class SnippetOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    name: str
    source: str
    updated_at: dt.datetime


class SnippetList(BaseModel):
    items: list[SnippetOut]
