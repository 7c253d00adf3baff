"""The message-template screens: the list, the editor (with a live preview rendered by the
server), publishing, the version history with diffs, and rollback.

Everyone who may read the workspace sees them; only roles with ``templates.write`` get the
editing controls, and the views refuse a forced write from the others. The work is done by the
services the ``/v1`` template API calls; the forms are read by :mod:`ccm.web.template_editor`."""

from __future__ import annotations

import re
from typing import Any

from flask import current_app, g, redirect, request, url_for
from werkzeug.wrappers import Response

from ccm.access import Permission, allows
from ccm.errors import CCMError, NotFound
from ccm.message_templates import service
from ccm.message_templates.preview import DraftContent, preview_template
from ccm.message_templates.schemas import TEMPLATE_KEY, PreviewIn
from ccm.validation import CHANNELS, Channel
from ccm.web import template_editor as editing
from ccm.web.pages import db, page, screen
from ccm.web.security import actor, requires
from ccm.web.template_diff import diff_versions

bp = screen("templates", __name__, url_prefix="/templates")

CATEGORIES = ("transactional", "marketing")
KEY = re.compile(TEMPLATE_KEY)
FRAME_CSP = (
    "default-src 'none'; style-src 'unsafe-inline'; img-src data: https:; font-src data: https:; "
    "base-uri 'none'; form-action 'none'; frame-ancestors 'self'; sandbox"
)
"""The email preview's own policy: the message's inline styles apply, and nothing in it can run."""


@bp.before_request
def _check_key() -> Response | None:
    """A key no template can have is a 404 naming it, before any query (PostgreSQL refuses NUL)."""
    key = (request.view_args or {}).get("key")
    if key is not None and not KEY.fullmatch(key):
        return _failed(NotFound(f"key: no template with key {key[:200]!r}", field="key"))
    return None


def _sandbox() -> Any:
    return current_app.extensions["ccm"].sandbox


def _can_edit() -> bool:
    return allows(g.user.role, Permission.TEMPLATES)


def _failed(error: CCMError, **context: Any) -> Response:
    return page("message_templates/error.html", error.status, error=error, **context)


@bp.get("/")
@requires(Permission.VIEW)
def index() -> Response:
    query = request.args.get("q", "").strip()[:200]
    with db().unit_of_work() as session:
        rows = [_summary(t) for t in service.list_templates(session=session, workspace_id=g.user.workspace_id)]
    if query:
        rows = [row for row in rows if query.lower() in f"{row['key']} {row['description']}".lower()]
    return page("message_templates/index.html", templates=rows, query=query, can_edit=_can_edit())


def _summary(template: Any) -> dict[str, Any]:
    locales: dict[str, list[str]] = {}
    for variant in template.variants:
        locales.setdefault(variant["channel"], []).append(variant["locale"])
    return {
        "key": template.key,
        "description": template.description,
        "category": template.category,
        "latest_version": template.latest_version,
        "channels": locales,
    }


@bp.get("/new")
@requires(Permission.TEMPLATES)
def new() -> Response:
    return page("message_templates/new.html", form={}, categories=CATEGORIES, channels=CHANNELS)


@bp.post("/")
@requires(Permission.TEMPLATES)
def create() -> Response:
    form = request.form
    try:
        channel = editing.check_choice(form.get("channel", ""), CHANNELS, "channel")
        data = editing.parse_new(form, editing.starter_variant(channel, form.get("locale", "en").strip() or "en"))
        with db().unit_of_work() as session:
            service.create_template(session=session, sandbox=_sandbox(), workspace_id=g.user.workspace_id, data=data)
    except CCMError as exc:
        notice = f"{editing.label_of(str(exc.details.get('field', '')), editing.from_form(form))}: {exc.message}"
        return page(
            "message_templates/new.html",
            exc.status,
            form=form,
            categories=CATEGORIES,
            channels=CHANNELS,
            notices=[notice],
        )
    return redirect(url_for(".edit", key=data.key))


@bp.get("/<key>")
@requires(Permission.VIEW)
def edit(key: str) -> Response:
    return _editor(key, None)


def _editor(
    key: str, editor: editing.EditorForm | None, status: int = 200, notices: list[str] | None = None
) -> Response:
    """The editor page for ``key``: the saved draft, or ``editor`` (the form as submitted)."""
    try:
        with db().unit_of_work() as session:
            template = service.get_template(session=session, workspace_id=g.user.workspace_id, key=key)
            shown = editor or editing.from_template(template)
            latest = template.latest_version
    except CCMError as exc:
        return _failed(exc)
    return page(
        "message_templates/edit.html",
        status,
        key=key,
        editor=shown,
        latest=latest,
        can_edit=_can_edit(),
        categories=CATEGORIES,
        channels=CHANNELS,
        labels=editing.LABELS,
        channel_labels=editing.CHANNEL_LABELS,
        notices=notices or [],
    )


@bp.post("/<key>")
@requires(Permission.TEMPLATES)
def save(key: str) -> Response:
    editor = editing.from_form(request.form)
    try:
        with db().unit_of_work() as session:
            _save_draft(session, key, editor)
    except CCMError as exc:
        return _refused(key, editor, exc)
    return _editor(key, None, notices=["Draft saved."])


@bp.post("/<key>/variants")
@requires(Permission.TEMPLATES)
def add_variant(key: str) -> Response:
    """The form as typed plus an empty variant for the channel and locale asked for; nothing is
    saved until the draft is."""
    editor = editing.from_form(request.form)
    try:
        channel = editing.check_choice(request.form.get("new_channel", ""), CHANNELS, "new_channel")
    except CCMError as exc:
        return _refused(key, editor, exc)
    index = max((v["index"] for v in editor.variants), default=-1) + 1
    locale = request.form.get("new_locale", "").strip()[:35] or editor.default_locale or "en"
    editor.variants.append(editing.blank_variant(channel, locale, index))
    return _editor(key, editor)


@bp.post("/<key>/publish")
@requires(Permission.TEMPLATES)
def publish(key: str) -> Response:
    """Save the form as the draft and publish it, in one transaction: a draft that cannot be
    published (undeclared variables, a missing layout) is not saved either."""
    editor = editing.from_form(request.form)
    try:
        with db().unit_of_work() as session:
            _save_draft(session, key, editor)
            version, created = service.publish(
                session=session, sandbox=_sandbox(), workspace_id=g.user.workspace_id, key=key
            )
            if created:
                _record(session, key, version)
    except CCMError as exc:
        return _refused(key, editor, exc)
    return redirect(url_for(".versions", key=key, published=version, created=int(created)))


def _save_draft(session: Any, key: str, editor: editing.EditorForm) -> None:
    service.update_draft(
        session=session, sandbox=_sandbox(), workspace_id=g.user.workspace_id, key=key, data=editing.to_patch(editor)
    )


def _record(session: Any, key: str, version: int, rolled_back_from: int | None = None) -> None:
    service.record_publish(
        session=session,
        workspace_id=g.user.workspace_id,
        key=key,
        version=version,
        actor=actor(),
        ip=request.remote_addr,
        rolled_back_from=rolled_back_from,
    )


def _refused(key: str, editor: editing.EditorForm, error: CCMError) -> Response:
    """The editor again, as submitted, with the error next to its field and above the form."""
    name = editor.field_of_error(error)
    if name:
        editor.add_error(name, error.message)
    return _editor(key, editor, error.status, [editing.notice_for(error, editor)])


@bp.post("/<key>/preview")
@requires(Permission.VIEW)
def preview(key: str) -> Response:
    """The live preview (an htmx request on input): each variant rendered as the form has it,
    the SMS segment counts, and every problem next to its field; writes nothing."""
    editor = editing.from_form(request.form)
    editing.lint(editor, _sandbox())
    rendered, general = _render(key, editor, editing.previewable(editor, "transactional"), None)
    parts = {(part.channel, part.locale): part for part in rendered}
    return page("message_templates/_preview.html", editor=editor, parts=parts, general=general)


@bp.post("/<key>/frame/<int:index>")
@requires(Permission.VIEW)
def frame(key: str, index: int) -> Response:
    """One email variant's HTML as the form has it, for the preview's sandboxed frame, under a
    policy of its own: the page's would strip the message's inline styles."""
    editor = editing.from_form(request.form)
    editing.lint(editor, _sandbox())
    draft = editing.previewable(editor, "transactional")
    variant = next((v for v in editor.variants if v["index"] == index and v["channel"] == "email"), None)
    html = None
    if variant is not None and not any(n.startswith(f"variants.{index}.") for n in editor.errors):
        only = DraftContent(draft.category, variant["locale"], draft.variables, [editor.content_of(variant)])
        rendered, _ = _render(key, editor, only, "email")
        html = rendered[0].html if rendered else None
    body = html or page("message_templates/_frame_empty.html").get_data(as_text=True)
    return Response(body, mimetype="text/html", headers={"Content-Security-Policy": FRAME_CSP})


def _render(
    key: str, editor: editing.EditorForm, draft: DraftContent, channel: Channel | None
) -> tuple[list[Any], list[str]]:
    """Render ``draft`` with the form's sample data; problems tied to a part go next to its field,
    the others are returned."""
    general: list[str] = []
    data = editing.sample_data(editor)
    if not draft.variants:
        return [], general
    try:
        with db().unit_of_work() as session:
            result = preview_template(
                session=session,
                sandbox=_sandbox(),
                workspace_id=g.user.workspace_id,
                key=key,
                request=PreviewIn(version="draft", data=data, channel=channel),
                public_url=current_app.extensions["ccm"].settings.public_url,
                unsaved=draft,
            )
    except CCMError as exc:
        return [], [exc.message]
    for problem in result.problems:
        name = editor.field_of_part(problem.part)
        if name:
            editor.add_error(name, problem.message)
        else:
            general.append(problem.message)
    return result.parts, general


@bp.get("/<key>/versions")
@requires(Permission.VIEW)
def versions(key: str) -> Response:
    notices = []
    if request.args.get("published", "").isdigit():
        made = "Published" if request.args.get("created") != "0" else "Unchanged since"
        notices.append(f"{made} version {request.args['published']}.")
    try:
        with db().unit_of_work() as session:
            rows = service.list_versions(session=session, workspace_id=g.user.workspace_id, key=key)
    except CCMError as exc:
        return _failed(exc)
    return page("message_templates/versions.html", key=key, versions=rows, can_edit=_can_edit(), notices=notices)


@bp.get("/<key>/diff")
@requires(Permission.VIEW)
def diff(key: str) -> Response:
    """Two versions compared: ``from`` and ``to``, by default the one before the latest and the latest."""
    try:
        wanted = [editing.version_number(request.args[n], n) if n in request.args else None for n in ("from", "to")]
        with db().unit_of_work() as session:
            new = service.get_version(session=session, workspace_id=g.user.workspace_id, key=key, version=wanted[1])
            number = wanted[0] if wanted[0] is not None else max(new.version - 1, 1)
            old = service.get_version(session=session, workspace_id=g.user.workspace_id, key=key, version=number)
            parts = diff_versions(old, new)
    except CCMError as exc:
        return _failed(exc, key=key)
    return page("message_templates/diff.html", key=key, old=old.version, new=new.version, parts=parts)


@bp.post("/<key>/versions/<int:version>/rollback")
@requires(Permission.TEMPLATES)
def rollback(key: str, version: int) -> Response:
    try:
        with db().unit_of_work() as session:
            number, created = service.rollback(
                session=session, workspace_id=g.user.workspace_id, key=key, version=version
            )
            if created:
                _record(session, key, number, rolled_back_from=version)
    except CCMError as exc:
        return _failed(exc, key=key)
    return redirect(url_for(".versions", key=key, published=number, created=int(created)))
