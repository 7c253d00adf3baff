from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from ccm.validation import Channel, Locale

Category = Literal["transactional", "marketing"]
TemplateKey = Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9_.-]{0,199}$",
                                   description="lowercase letters, digits, '_', '.', '-'")]
VariableName = Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,99}$")]


class EmailVariant(BaseModel):
    model_config = ConfigDict(extra="forbid")

    channel: Literal["email"]
    locale: Locale = "en"
    subject: str = Field(min_length=1, max_length=2000)
    html: str = Field(min_length=1)
    text: str | None = Field(None, description="generated from the HTML when absent")


class SmsVariant(BaseModel):
    model_config = ConfigDict(extra="forbid")

    channel: Literal["sms"]
    locale: Locale = "en"
    body: str = Field(min_length=1)


class ChatVariant(BaseModel):
    model_config = ConfigDict(extra="forbid")

    channel: Literal["chat"]
    locale: Locale = "en"
    body: str = Field(min_length=1)


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


Variants = Annotated[list[Variant], Field(min_length=1, max_length=200), AfterValidator(_unique_variants)]
Variables = Annotated[list[VariableName], Field(max_length=200), AfterValidator(_unique_names)]


class TemplateIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    key: TemplateKey
    category: Category
    description: str = ""
    default_locale: Locale = "en"
    variables: Variables = Field(default_factory=list)
    variants: Variants


class TemplatePatch(BaseModel):
    """Edit the draft. Published versions never change."""

    model_config = ConfigDict(extra="forbid")

    category: Category | None = None
    description: str | None = None
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


class PreviewIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    version: int | Literal["draft", "latest"] = "latest"
    external_id: str | None = Field(None, description="render with this stored profile")
    data: dict[str, Any] = Field(default_factory=dict)
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
    segments: int | None = Field(None, description="SMS: segments the body takes (before any opt-out footer)")
    encoding: str | None = Field(None, description="SMS: GSM-7 or UCS-2")


class PreviewOut(BaseModel):
    version: int | None
    parts: list[RenderedPart]
    problems: list[ProblemOut]


class SnippetIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    source: str = Field(min_length=1)


class SnippetOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    name: str
    source: str
    updated_at: dt.datetime


class SnippetList(BaseModel):
    items: list[SnippetOut]
