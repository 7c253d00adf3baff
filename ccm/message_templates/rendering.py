"""Turning a published template version, a profile and send data into message parts."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from ccm.channels.email_mime import inline_css
from ccm.channels.html_text import html_to_text
from ccm.message_templates.footer import MarketingFooter
from ccm.message_templates.sandbox import TemplateBundle, TemplateSandbox

BUILTINS = frozenset({"profile", "message", "unsubscribe_url"})
"""Names every template may use without declaring them."""

PARTS = {"email": ("subject", "html", "text"), "sms": ("body",), "chat": ("body",)}


@dataclass(frozen=True)
class RenderedParts:
    channel: str
    locale: str
    subject: str = ""
    html: str | None = None
    text: str = ""
    body: str = ""
    unsubscribe_url: str = ""


@dataclass(frozen=True)
class PublishedTemplate:
    """An immutable template version, loaded once per process and cached by id."""

    id: str
    key: str
    version: int
    category: str
    default_locale: str
    variables: tuple[str, ...]
    variants: tuple[Mapping[str, Any], ...]
    bundle: TemplateBundle
    builtins_used: frozenset[str] = frozenset(BUILTINS)
    """The builtins some source reads, so the costly ones (a signed unsubscribe link) are made
    only for templates that show them."""

    def variant_for(self, channel: str, locale: str | None) -> Mapping[str, Any] | None:
        return pick_variant(self.variants, channel, locale, self.default_locale)


def source_name(variant: Mapping[str, Any], part: str) -> str:
    return f"{variant['channel']}.{variant['locale']}.{part}"


def make_bundle(
    key: str, variants: Iterable[Mapping[str, Any]], snippets: Mapping[str, str], *, cacheable: bool
) -> TemplateBundle:
    sources = dict(snippets)
    for variant in variants:
        for part in PARTS[variant["channel"]]:
            if variant.get(part):
                sources[source_name(variant, part)] = variant[part]
    return TemplateBundle(key=key, sources=sources, cacheable=cacheable)


def locale_chain(locale: str | None, default_locale: str) -> list[str]:
    """``es-MX`` → ``es-MX, es, <default>``."""
    chain: list[str] = []
    if locale:
        parts = locale.split("-")
        chain.extend("-".join(parts[:n]) for n in range(len(parts), 0, -1))
    chain.append(default_locale)
    return chain


def pick_variant(
    variants: Iterable[Mapping[str, Any]], channel: str, locale: str | None, default_locale: str
) -> Mapping[str, Any] | None:
    by_locale = {v["locale"].lower(): v for v in variants if v["channel"] == channel}
    for candidate in locale_chain(locale, default_locale):
        if candidate.lower() in by_locale:
            return by_locale[candidate.lower()]
    return None


def build_context(
    *, variables: Iterable[str], data: Mapping[str, Any], profile: Mapping[str, Any], extras: Mapping[str, Any]
) -> dict[str, Any]:
    """Declared variables (from the send data, else the profile's attributes) plus the builtins.
    Undeclared data stays out of reach, so a template only sees what it promised to use."""
    attributes = profile.get("attributes", {})
    context = {
        name: data[name] if name in data else attributes[name]
        for name in variables
        if name in data or name in attributes
    }
    context.update(extras)
    context["profile"] = dict(profile)
    return context


def missing_variables(variables: Iterable[str], data: Mapping[str, Any], attributes: Mapping[str, Any]) -> list[str]:
    return [name for name in variables if name not in data and name not in attributes]


def render_parts(
    sandbox: TemplateSandbox,
    bundle: TemplateBundle,
    variant: Mapping[str, Any],
    context: Mapping[str, Any],
    *,
    footer: MarketingFooter | None = None,
) -> RenderedParts:
    """Render every part of one variant. Raises :class:`RenderError` on the first failure.

    ``footer``: given for a marketing email, whose HTML and text then end with the sender's postal
    address and an unsubscribe link, added here after the template and its layout have rendered,
    so that no template can leave them out."""

    def render(part: str, *, html: bool = False) -> str:
        return sandbox.render(bundle, source_name(variant, part), context, autoescape=html)

    channel, locale = variant["channel"], variant["locale"]
    if channel != "email":
        return RenderedParts(channel, locale, body=render("body").strip())
    html = inline_css(render("html", html=True))
    text = render("text") if variant.get("text") else html_to_text(html)
    if footer is not None:
        html, text = footer.add_to_html(html), footer.add_to_text(text)
    return RenderedParts(channel, locale, subject=render("subject").strip(), html=html, text=text)
