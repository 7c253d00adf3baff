"""Previews: render any version (or the draft) with a stored profile or sample data, and report
every problem instead of stopping at the first."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy.orm import Session

from ccm.channels.sms import sms_size
from ccm.errors import ValidationFailed
from ccm.message_templates import service
from ccm.message_templates.rendering import (
    RenderedParts,
    build_context,
    make_bundle,
    missing_variables,
    pick_variant,
    render_parts,
    source_name,
)
from ccm.message_templates.sandbox import RenderError, TemplateSandbox
from ccm.message_templates.schemas import PreviewIn, PreviewOut, ProblemOut, RenderedPart
from ccm.profiles.service import get_profile, template_context


def preview_template(*, session: Session, sandbox: TemplateSandbox, workspace_id: str, key: str,
                     request: PreviewIn, public_url: str) -> PreviewOut:
    template = service.get_template(session=session, workspace_id=workspace_id, key=key)
    problems: list[ProblemOut] = []
    if request.version == "draft":
        number, variables, variants = None, template.variables, template.variants
        snippets = _draft_snippets(session, sandbox, workspace_id, variants, problems)
        bundle = make_bundle(template.id, variants, snippets, cacheable=False)
    else:
        version = service.get_version(session=session, workspace_id=workspace_id, key=key,
                                      version=None if request.version == "latest" else request.version)
        number, variables, variants, snippets = version.version, version.variables, version.variants, version.snippets
        bundle = make_bundle(version.id, variants, snippets, cacheable=True)
    profile = template_context(get_profile(session=session, workspace_id=workspace_id, external_id=request.external_id)
                               if request.external_id else None)
    problems += _variable_problems(sandbox, variables, variants, snippets, request.data, profile["attributes"])
    context = build_context(variables=variables, data=request.data, profile=profile, extras={
        "unsubscribe_url": f"{public_url}/u/preview", "message": {"id": "msg_preview", "category": template.category}})
    parts = []
    locale = request.locale or profile["locale"]
    for variant in _chosen(variants, request.channel, locale, template.default_locale):
        try:
            parts.append(_part(render_parts(sandbox, bundle, variant, context)))
        except RenderError as exc:
            problems.append(ProblemOut(part=exc.name or source_name(variant, "?"), line=exc.line,
                                       code=exc.code, message=exc.message))
    return PreviewOut(version=number, parts=parts, problems=problems)


def _part(rendered: RenderedParts) -> RenderedPart:
    part = RenderedPart(**{k: v for k, v in vars(rendered).items() if k in RenderedPart.model_fields})
    if rendered.channel == "sms":
        size = sms_size(rendered.body)
        part.segments, part.encoding = size.segments, size.encoding
    return part


def _chosen(variants: Sequence[Mapping[str, Any]], channel: str | None, locale: str | None,
            default_locale: str) -> list[Mapping[str, Any]]:
    """Every variant, or the ones a message to this channel and locale would use."""
    if locale is None and channel is None:
        return list(variants)
    channels = [channel] if channel else list(dict.fromkeys(v["channel"] for v in variants))
    chosen = [pick_variant(variants, name, locale, default_locale) for name in channels]
    return [variant for variant in chosen if variant is not None]


def _draft_snippets(session: Session, sandbox: TemplateSandbox, workspace_id: str,
                    variants: Sequence[Mapping[str, Any]], problems: list[ProblemOut]) -> dict[str, str]:
    try:
        return service.collect_snippets(session, sandbox, workspace_id, variants)
    except ValidationFailed as exc:
        problems.append(ProblemOut(part="snippets", line=None, code="missing_snippet", message=exc.message))
        return {}


def _variable_problems(sandbox: TemplateSandbox, variables: Sequence[str], variants: Sequence[Mapping[str, Any]],
                       snippets: Mapping[str, str], data: Mapping[str, Any],
                       attributes: Mapping[str, Any]) -> list[ProblemOut]:
    problems = [
        ProblemOut(part=part, line=None, code="undeclared_variable",
                   message=f"{part} uses {name!r}, which the template does not declare")
        for part, names in service.undeclared_variables(sandbox, variables, variants, snippets).items()
        for name in sorted(names)
    ]
    problems += [
        ProblemOut(part="data", line=None, code="missing_variable",
                   message=f"declared variable {name!r} is not in the data or the profile's attributes")
        for name in missing_variables(variables, data, attributes)
    ]
    return problems

