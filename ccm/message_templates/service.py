"""Message templates: drafts, checked on save; immutable numbered versions, made by publishing."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from ccm.audit import service as audit
from ccm.audit.service import Target
from ccm.errors import Conflict, NotFound, ValidationFailed
from ccm.message_templates.models import MessageTemplate, Snippet, TemplateVersion
from ccm.message_templates.rendering import BUILTINS, PARTS, PublishedTemplate, make_bundle, source_name
from ccm.message_templates.sandbox import TemplateSandbox
from ccm.message_templates.schemas import TemplateIn, TemplatePatch

DRAFT_FIELDS = ("category", "description", "default_locale", "variables", "variants")

INTERNAL_PREFIX = "ccm."
"""Keys of CCM's own templates (``ccm.system-text``), which CCM makes when it first needs them.
They are not user objects: agents' replies and keyword answers depend on them, so to the API they
do not exist (not listed, read, edited, published or previewed) and their keys cannot be taken."""


def is_internal(key: str) -> bool:
    return key.startswith(INTERNAL_PREFIX)


def get_template(*, session: Session, workspace_id: str, key: str, internal: bool = False) -> MessageTemplate:
    """The template with ``key``; CCM's own (``ccm.…``) only when ``internal``.

    Raises:
      NotFound: no such template, or an internal one and not ``internal``.
    """
    template = (
        None
        if is_internal(key) and not internal
        else session.scalar(
            select(MessageTemplate).where(MessageTemplate.workspace_id == workspace_id, MessageTemplate.key == key)
        )
    )
    if template is None:
        raise NotFound(f"no template with key {key!r}", field="key")
    return template


def list_templates(*, session: Session, workspace_id: str) -> list[MessageTemplate]:
    """The workspace's templates, without CCM's own."""
    return list(
        session.scalars(
            select(MessageTemplate)
            .where(
                MessageTemplate.workspace_id == workspace_id,
                ~MessageTemplate.key.startswith(INTERNAL_PREFIX, autoescape=True),
            )
            .order_by(MessageTemplate.key)
        )
    )


def create_template(
    *, session: Session, sandbox: TemplateSandbox, workspace_id: str, data: TemplateIn, internal: bool = False
) -> MessageTemplate:
    """Create a template with its first draft.

    Raises:
      ValidationFailed: a part does not parse or uses a forbidden construct (names part and line),
        or the key starts with ``ccm.`` and the caller is not CCM itself (``internal``).
      Conflict: the key is taken.
    """
    if is_internal(data.key) and not internal:
        raise ValidationFailed(
            f"key: keys starting with {INTERNAL_PREFIX!r} are reserved for CCM's own templates", field="key"
        )
    variants = [v.model_dump() for v in data.variants]
    check_variants(sandbox, variants)
    if session.scalar(
        select(MessageTemplate.id).where(MessageTemplate.workspace_id == workspace_id, MessageTemplate.key == data.key)
    ):
        raise Conflict(f"a template with key {data.key!r} exists; edit its draft instead", field="key")
    template = MessageTemplate(
        workspace_id=workspace_id,
        key=data.key,
        category=data.category,
        description=data.description,
        default_locale=data.default_locale,
        variables=list(data.variables),
        variants=variants,
    )
    session.add(template)
    session.flush()
    return template


def update_draft(
    *, session: Session, sandbox: TemplateSandbox, workspace_id: str, key: str, data: TemplatePatch
) -> MessageTemplate:
    template = get_template(session=session, workspace_id=workspace_id, key=key)
    changes: dict[str, Any] = {name: getattr(data, name) for name in data.model_fields_set}
    if changes.get("variants") is not None:
        changes["variants"] = [v.model_dump() for v in data.variants or []]
        check_variants(sandbox, changes["variants"])
    for name, value in changes.items():
        if value is not None:
            setattr(template, name, value)
    session.flush()
    return template


def publish(
    *, session: Session, sandbox: TemplateSandbox, workspace_id: str, key: str, internal: bool = False
) -> tuple[int, bool]:
    """Freeze the draft, with the layouts and partials it uses, into the next version.

    Returns:
      (version, created); created is False when the draft equals the latest version.

    Raises:
      NotFound: no such template (CCM's own exist only when ``internal``).
      ValidationFailed: a referenced layout/partial does not exist, or a part uses a variable
        that is neither declared nor built in.
    """
    template = get_template(session=session, workspace_id=workspace_id, key=key, internal=internal)
    snippets = collect_snippets(session, sandbox, workspace_id, template.variants)
    check_declared(sandbox, template.variables, template.variants, snippets)
    return _add_version(session, template, snippets)


def rollback(*, session: Session, workspace_id: str, key: str, version: int) -> tuple[int, bool]:
    """Publish an earlier version's content, with the layouts and partials frozen in it, as the
    next version; the draft becomes that content too, so the next edit starts from it.

    Returns:
      (version, created), as :func:`publish`: created is False when the latest version already
      has that content.

    Raises:
      NotFound: no such template or version.
    """
    template = get_template(session=session, workspace_id=workspace_id, key=key)
    old = get_version(session=session, workspace_id=workspace_id, key=key, version=version)
    template.category, template.default_locale = old.category, old.default_locale
    template.variables, template.variants = list(old.variables), list(old.variants)
    return _add_version(session, template, dict(old.snippets))


def list_versions(*, session: Session, workspace_id: str, key: str) -> list[TemplateVersion]:
    """A template's published versions, newest first."""
    template = get_template(session=session, workspace_id=workspace_id, key=key)
    return list(
        session.scalars(
            select(TemplateVersion)
            .where(TemplateVersion.template_id == template.id)
            .order_by(TemplateVersion.version.desc())
        )
    )


def record_publish(
    *,
    session: Session,
    workspace_id: str,
    key: str,
    version: int,
    actor: str,
    ip: str | None,
    rolled_back_from: int | None = None,
) -> None:
    """The audit entry of a publish (or a rollback, naming the version it restored) that made
    ``version``: one shape, whether the API or the web app published."""
    after: dict[str, Any] = {"version": version}
    if rolled_back_from is not None:
        after["from_version"] = rolled_back_from
    audit.record(
        session=session,
        workspace_id=workspace_id,
        actor=actor,
        action="template.publish" if rolled_back_from is None else "template.rollback",
        target=Target("template", key),
        before={"version": version - 1} if version > 1 else None,
        after=after,
        ip=ip,
    )


def _add_version(session: Session, template: MessageTemplate, snippets: dict[str, str]) -> tuple[int, bool]:
    latest = _latest_version(session, template)
    if latest is not None and _same_content(latest, template, snippets):
        return latest.version, False
    number = (template.latest_version or 0) + 1
    session.add(
        TemplateVersion(
            workspace_id=template.workspace_id,
            template_id=template.id,
            version=number,
            category=template.category,
            default_locale=template.default_locale,
            variables=list(template.variables),
            variants=list(template.variants),
            snippets=snippets,
        )
    )
    template.latest_version = number
    session.flush()
    return number, True


def ensure_internal_template(
    *, session: Session, sandbox: TemplateSandbox, workspace_id: str, data: TemplateIn
) -> None:
    """Create and publish one of CCM's own templates (``data.key`` starts with ``ccm.``) unless
    the workspace has it already."""
    assert is_internal(data.key), data.key
    exists = session.scalar(
        select(MessageTemplate.id).where(MessageTemplate.workspace_id == workspace_id, MessageTemplate.key == data.key)
    )
    if exists is None:
        create_template(session=session, sandbox=sandbox, workspace_id=workspace_id, data=data, internal=True)
        publish(session=session, sandbox=sandbox, workspace_id=workspace_id, key=data.key, internal=True)


def get_version(*, session: Session, workspace_id: str, key: str, version: int | None) -> TemplateVersion:
    """A published version; ``None`` means the latest."""
    template = get_template(session=session, workspace_id=workspace_id, key=key)
    number = template.latest_version if version is None else version
    row = (
        None
        if number is None
        else session.scalar(
            select(TemplateVersion).where(TemplateVersion.template_id == template.id, TemplateVersion.version == number)
        )
    )
    if row is None:
        what = "no published version" if version is None else f"no version {version}"
        raise NotFound(f"template {key!r} has {what}", field="version")
    return row


def snapshot(version: TemplateVersion, key: str, sandbox: TemplateSandbox) -> PublishedTemplate:
    bundle = make_bundle(version.id, version.variants, version.snippets, cacheable=True)
    used = set().union(*(sandbox.variables(source) for source in bundle.sources.values()))
    return PublishedTemplate(
        id=version.id,
        key=key,
        version=version.version,
        category=version.category,
        default_locale=version.default_locale,
        variables=tuple(version.variables),
        variants=tuple(version.variants),
        bundle=bundle,
        builtins_used=frozenset(used & BUILTINS),
    )


def check_variants(sandbox: TemplateSandbox, variants: list[dict[str, Any]]) -> None:
    """Parse every part; the first problem is a 422 naming the variant, part and line."""
    for index, variant in enumerate(variants):
        for part in PARTS[variant["channel"]]:
            source = variant.get(part)
            if not source:
                continue
            field = f"variants.{index}.{variant['channel']}.{part}"  # the path pydantic gives its own errors
            if part == "subject" and ("\n" in source or "\r" in source):
                raise ValidationFailed(f"{field}: a subject is one line", field=field)
            problems = sandbox.validate(source, name=source_name(variant, part))
            if problems:
                first = problems[0]
                raise ValidationFailed(
                    f"{field}: {first.message}",
                    field=field,
                    details={"line": first.line, "problems": [vars(p) for p in problems]},
                )


def collect_snippets(
    session: Session, sandbox: TemplateSandbox, workspace_id: str, variants: Iterable[Mapping[str, Any]]
) -> dict[str, str]:
    """Every layout and partial the variants use, transitively, by name."""
    pending = [
        name for v in variants for part in PARTS[v["channel"]] if v.get(part) for name in sandbox.snippets_used(v[part])
    ]
    found: dict[str, str] = {}
    while pending:
        name = pending.pop()
        if name in found:
            continue
        source = session.scalar(
            select(Snippet.source).where(Snippet.workspace_id == workspace_id, Snippet.name == name)
        )
        if source is None:
            raise Conflict(
                f"the template uses {name!r}, which does not exist", field="snippets", details={"snippet": name}
            )
        found[name] = source
        pending.extend(sandbox.snippets_used(source))
    return found


def undeclared_variables(
    sandbox: TemplateSandbox,
    variables: Iterable[str],
    variants: Iterable[Mapping[str, Any]],
    snippets: Mapping[str, str],
) -> dict[str, set[str]]:
    """Per source name, the variables it reads that are neither declared nor built in."""
    allowed = set(variables) | BUILTINS
    sources = {source_name(v, part): v[part] for v in variants for part in PARTS[v["channel"]] if v.get(part)}
    sources.update(snippets)
    found = {name: sandbox.variables(source) - allowed for name, source in sources.items()}
    return {name: names for name, names in found.items() if names}


def check_declared(
    sandbox: TemplateSandbox,
    variables: Iterable[str],
    variants: Iterable[Mapping[str, Any]],
    snippets: Mapping[str, str],
) -> None:
    undeclared = undeclared_variables(sandbox, variables, variants, snippets)
    if undeclared:
        names = sorted(set().union(*undeclared.values()))
        raise Conflict(
            f"variables used but not declared: {', '.join(names)}",
            field="variables",
            details={"undeclared": {k: sorted(v) for k, v in undeclared.items()}},
        )


def _latest_version(session: Session, template: MessageTemplate) -> TemplateVersion | None:
    if template.latest_version is None:
        return None
    return session.scalar(
        select(TemplateVersion).where(
            TemplateVersion.template_id == template.id, TemplateVersion.version == template.latest_version
        )
    )


def _same_content(version: TemplateVersion, template: MessageTemplate, snippets: dict[str, str]) -> bool:
    return (version.category, version.default_locale, version.variables, version.variants, version.snippets) == (
        template.category,
        template.default_locale,
        template.variables,
        template.variants,
        snippets,
    )
