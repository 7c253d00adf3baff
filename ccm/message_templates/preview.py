"""Previews: render any version (or the draft) with a stored profile or sample data, and report
every problem instead of stopping at the first. SMS bodies are shown as they are sent (with the
opt-out footer of a marketing SMS) and sized on that; a marketing email with the postal address
and unsubscribe footer it is sent with (a problem ``no_postal_address`` when the workspace has none).

A preview writes nothing. It reads everything it needs first and ends the request's transaction
before it renders, so a slow template (up to ``CCM_RENDER_TIMEOUT``) holds no database lock."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy.orm import Session

from ccm.channels.sms import sms_size
from ccm.db import end_transaction
from ccm.errors import Conflict, ValidationFailed
from ccm.message_templates import service
from ccm.message_templates.footer import MarketingFooter
from ccm.message_templates.rendering import (
    RenderedParts,
    build_context,
    make_bundle,
    missing_variables,
    pick_variant,
    render_parts,
    source_name,
)
from ccm.message_templates.sandbox import RenderError, TemplateBundle, TemplateSandbox
from ccm.message_templates.schemas import PreviewIn, PreviewOut, ProblemOut, RenderedPart
from ccm.messages.rules import NotSendable, sms_body, with_opt_out_footer
from ccm.profiles.service import get_profile, template_context
from ccm.workspaces.compliance import NO_POSTAL_ADDRESS, marketing_email_refusal
from ccm.workspaces.schemas import WorkspacePolicy
from ccm.workspaces.service import workspace_policy


@dataclass(frozen=True)
class DraftContent:
    """A draft as an editor holds it, not saved yet: previewed as if it were the saved draft."""

    category: str
    default_locale: str
    variables: Sequence[str]
    variants: Sequence[Mapping[str, Any]]


@dataclass(frozen=True)
class _Source:
    """Everything a preview renders, read before rendering starts."""

    number: int | None
    category: str
    default_locale: str
    variables: Sequence[str]
    variants: Sequence[Mapping[str, Any]]
    snippets: Mapping[str, str]
    bundle: TemplateBundle
    profile: dict[str, Any]
    policy: WorkspacePolicy


def preview_template(
    *,
    session: Session,
    sandbox: TemplateSandbox,
    workspace_id: str,
    key: str,
    request: PreviewIn,
    public_url: str,
    unsaved: DraftContent | None = None,
) -> PreviewOut:
    """Render a version or the draft. Ends the session's transaction before rendering (see the
    module docstring): call it only from a unit of work with nothing else to write.

    Parameters:
      unsaved: the editor's content, rendered instead of the saved draft (``request.version`` is
        then ignored); each of its parts must pass ``TemplateSandbox.validate`` first.
    """
    problems: list[ProblemOut] = []
    source = _read(session, sandbox, workspace_id, key, request, problems, unsaved)
    end_transaction(session)
    problems += _variable_problems(
        sandbox, source.variables, source.variants, source.snippets, request.data, source.profile["attributes"]
    )
    unsubscribe_url = f"{public_url}/u/preview"
    context = build_context(
        variables=source.variables,
        data=request.data,
        profile=source.profile,
        extras={"unsubscribe_url": unsubscribe_url, "message": {"id": "msg_preview", "category": source.category}},
    )
    parts = []
    locale = request.locale or source.profile["locale"]
    for variant in _chosen(source.variants, request.channel, locale, source.default_locale):
        footer = _footer(source, variant, unsubscribe_url, problems)
        try:
            rendered = render_parts(sandbox, source.bundle, variant, context, footer=footer)
            parts.append(_part(source, rendered, problems))
        except RenderError as exc:
            problems.append(
                ProblemOut(
                    part=exc.name or source_name(variant, "?"), line=exc.line, code=exc.code, message=exc.message
                )
            )
    return PreviewOut(version=source.number, parts=parts, problems=problems)


def _read(
    session: Session,
    sandbox: TemplateSandbox,
    workspace_id: str,
    key: str,
    request: PreviewIn,
    problems: list[ProblemOut],
    unsaved: DraftContent | None,
) -> _Source:
    template = service.get_template(session=session, workspace_id=workspace_id, key=key)
    profile = template_context(
        get_profile(session=session, workspace_id=workspace_id, external_id=request.external_id)
        if request.external_id
        else None
    )
    policy = workspace_policy(session=session, workspace_id=workspace_id)
    if unsaved is not None or request.version == "draft":
        draft = unsaved or DraftContent(
            template.category, template.default_locale, template.variables, template.variants
        )
        snippets = _draft_snippets(session, sandbox, workspace_id, draft.variants, problems)
        return _Source(
            None,
            draft.category,
            draft.default_locale,
            draft.variables,
            draft.variants,
            snippets,
            make_bundle(template.id, draft.variants, snippets, cacheable=False),
            profile,
            policy,
        )
    if request.version == "latest" and template.latest_version is None:
        # The template is there; what it lacks is a state (nothing published yet), not a resource.
        raise Conflict(f"version: template {key!r} has nothing published yet; preview the draft", field="version")
    version = service.get_version(
        session=session,
        workspace_id=workspace_id,
        key=key,
        version=None if request.version == "latest" else request.version,
    )
    return _Source(
        version.version,
        version.category,
        template.default_locale,
        version.variables,
        version.variants,
        version.snippets,
        make_bundle(version.id, version.variants, version.snippets, cacheable=True),
        profile,
        policy,
    )


def _footer(
    source: _Source, variant: Mapping[str, Any], unsubscribe_url: str, problems: list[ProblemOut]
) -> MarketingFooter | None:
    """The footer a marketing email is sent with; without a postal address, a placeholder and
    the problem that stops it at send time."""
    if source.category != "marketing" or variant["channel"] != "email":
        return None
    refusal = marketing_email_refusal(source.policy)
    if refusal:
        part = f"email.{variant['locale']}.html"
        problems.append(ProblemOut(part=part, line=None, code=NO_POSTAL_ADDRESS, message=refusal))
    return MarketingFooter(source.policy.postal_address or "[postal address: not set]", unsubscribe_url)


def _part(source: _Source, rendered: RenderedParts, problems: list[ProblemOut]) -> RenderedPart:
    """A rendered variant as the API shows it; an SMS body as sent, sized as the carrier bills it."""
    part = RenderedPart(**{k: v for k, v in vars(rendered).items() if k in RenderedPart.model_fields})
    if rendered.channel == "sms":
        try:
            part.body, size = sms_body(source.policy, source.category, rendered.body, [])
        except NotSendable as too_long:  # delivery would fail it: say so, and show it all the same
            problems.append(
                ProblemOut(part=f"sms.{rendered.locale}.body", line=None, code="sms_too_long", message=too_long.reason)
            )
            part.body = with_opt_out_footer(source.policy, source.category, rendered.body)
            size = sms_size(part.body)
        part.segments, part.encoding = size.segments, size.encoding
    return part


def _chosen(
    variants: Sequence[Mapping[str, Any]], channel: str | None, locale: str | None, default_locale: str
) -> list[Mapping[str, Any]]:
    """Every variant, or the ones a message to this channel and locale would use."""
    if locale is None and channel is None:
        return list(variants)
    channels = [channel] if channel else list(dict.fromkeys(v["channel"] for v in variants))
    chosen = [pick_variant(variants, name, locale, default_locale) for name in channels]
    return [variant for variant in chosen if variant is not None]


def _draft_snippets(
    session: Session,
    sandbox: TemplateSandbox,
    workspace_id: str,
    variants: Sequence[Mapping[str, Any]],
    problems: list[ProblemOut],
) -> dict[str, str]:
    try:
        return service.collect_snippets(session, sandbox, workspace_id, variants)
    except ValidationFailed as exc:
        problems.append(ProblemOut(part="snippets", line=None, code="missing_snippet", message=exc.message))
        return {}


def _variable_problems(
    sandbox: TemplateSandbox,
    variables: Sequence[str],
    variants: Sequence[Mapping[str, Any]],
    snippets: Mapping[str, str],
    data: Mapping[str, Any],
    attributes: Mapping[str, Any],
) -> list[ProblemOut]:
    problems = [
        ProblemOut(
            part=part,
            line=None,
            code="undeclared_variable",
            message=f"{part} uses {name!r}, which the template does not declare",
        )
        for part, names in service.undeclared_variables(sandbox, variables, variants, snippets).items()
        for name in sorted(names)
    ]
    problems += [
        ProblemOut(
            part="data",
            line=None,
            code="missing_variable",
            message=f"declared variable {name!r} is not in the data or the profile's attributes",
        )
        for name in missing_variables(variables, data, attributes)
    ]
    return problems
