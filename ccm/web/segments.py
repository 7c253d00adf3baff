"""The segments screens: the list with each segment's count, the builder (rows of conditions or
JSON, with a live count and a sample as the rules change), saving, and static lists' members.

The rules are validated exactly as ``/v1/segments`` validates them (:class:`RulesIn`), counted by
:func:`ccm.segments.counting.count_audience` under ``CCM_SEGMENT_COUNT_BUDGET_MS`` and saved by
:mod:`ccm.segments.service`; :mod:`ccm.web.segment_form` only turns the form into a tree."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, get_args

from flask import abort, current_app, g, redirect, request, url_for
from pydantic import TypeAdapter, ValidationError
from sqlalchemy import select
from sqlalchemy.orm import Session
from werkzeug.wrappers import Response

from ccm.access import Permission, allows
from ccm.db import utcnow
from ccm.errors import CCMError, NotFound
from ccm.http import validation_failed
from ccm.pagination import PageQuery
from ccm.profiles.models import Profile
from ccm.segments import members, service
from ccm.segments.compiler import compile_node, segment_condition
from ccm.segments.counting import Count, count_audience
from ccm.segments.models import Segment, SegmentKind
from ccm.segments.ops import PROFILE_FIELDS
from ccm.segments.rules import EngagementKind
from ccm.segments.schemas import MembersIn, RulesIn, SegmentName
from ccm.validation import CHANNELS, check_input
from ccm.web import segment_form as form
from ccm.web.pages import db, page, screen
from ccm.web.security import requires

bp = screen("segments", __name__, url_prefix="/segments")
SAMPLE_SIZE = 10
LIST_SIZE = 100
_NAME_ADAPTER: TypeAdapter[str] = TypeAdapter(SegmentName)
CHOICES = {
    "kinds": form.KINDS,
    "ops": form.OPS,
    "fields": (*PROFILE_FIELDS, "attributes."),
    "engagements": get_args(EngagementKind),
    "channels": CHANNELS,
    "count_ops": ("at_least", "at_most", "exactly"),
}


@dataclass
class Checked:
    """The builder checked: its tree (None when invalid) and the errors by control name."""

    tree: Any = None
    errors: dict[str, str] = field(default_factory=dict)


@bp.get("/")
@requires(Permission.VIEW)
def index() -> Response:
    return _index_page()


@bp.get("/new")
@requires(Permission.SEGMENTS)
def new() -> Response:
    return _builder_page(form.Builder(rows=[form.blank_row()]))


@bp.post("/")
@requires(Permission.SEGMENTS)
def create() -> Response:
    builder = form.read_form(request.form)
    checked = check(builder)
    if checked.tree is None:
        return _builder_page(builder, checked.errors, 422)
    try:
        with db().unit_of_work() as session:
            segment = service.create_segment(
                session=session,
                workspace_id=g.user.workspace_id,
                name=builder.name,
                kind=SegmentKind.RULES,
                tree=checked.tree,
            )
            segment_id = segment.id
    except CCMError as exc:
        return _builder_page(builder, {_where(builder, exc): exc.message}, exc.status)
    return redirect(url_for(".show", segment_id=segment_id, saved=1))


@bp.post("/static")
@requires(Permission.SEGMENTS)
def create_static() -> Response:
    name = request.form.get("name", "").strip()
    error = _name_error(name)
    try:
        if error:
            raise error
        with db().unit_of_work() as session:
            segment = service.create_segment(
                session=session, workspace_id=g.user.workspace_id, name=name, kind=SegmentKind.STATIC, tree=None
            )
            segment_id = segment.id
    except CCMError as exc:
        return _index_page(exc.status, static_name=name, errors={"static_name": exc.message})
    return redirect(url_for(".show", segment_id=segment_id))


@bp.post("/builder")
@requires(Permission.SEGMENTS)
def builder_rows() -> Response:
    """The rows again (htmx), with one added (``add``: its kind) or removed (``remove``: its index),
    or re-rendered for a row whose kind changed."""
    builder = form.read_form(request.form)
    if request.form.get("add"):
        builder.rows.append(form.blank_row(request.form.get("add_kind", "attribute")))
    remove = request.form.get("remove", "")
    if remove.isdigit() and int(remove) < len(builder.rows):
        del builder.rows[int(remove)]
    builder.rows = [_with_kind_fields(row) for row in builder.rows]
    headers = {"HX-Trigger-After-Settle": "rules-changed"}
    return page("segments/_rows.html", headers=headers, builder=builder, errors={}, choices=_choices())


@bp.post("/preview")
@requires(Permission.SEGMENTS)
def preview() -> Response:
    """The live count and a sample of the rules in the form (htmx), or why they are invalid (422)."""
    builder = form.read_form(request.form)
    checked = check(builder, named=False)
    counted: Count | None = None
    sample: list[dict[str, str | None]] = []
    if checked.tree is not None:
        try:
            counted, sample = _count_and_sample(checked.tree)
        except CCMError as exc:
            checked.errors[_where(builder, exc)] = exc.message
    status = 422 if checked.errors else 200
    if not builder.use_json and checked.tree is not None:
        builder.rules_json = json.dumps(form.tree_of(builder), indent=2, ensure_ascii=False)
    headers = {"HX-Trigger": json.dumps({"rules-errors": {"errors": checked.errors}})}
    context = {"builder": builder, "errors": checked.errors, "counted": counted, "sample": sample}
    return page("segments/_preview.html", status, headers, **context)


@bp.get("/<segment_id>")
@requires(Permission.VIEW)
def show(segment_id: str) -> Response:
    segment = _segment(segment_id)
    notices = ["Saved."] if request.args.get("saved") else []
    if segment["kind"] == SegmentKind.RULES and _can_write():
        return _builder_page(form.builder_of(segment["name"], segment["rules"]), segment=segment, notices=notices)
    return page("segments/show.html", segment=segment, can_write=_can_write(), errors={}, notices=notices)


@bp.post("/<segment_id>")
@requires(Permission.SEGMENTS)
def update(segment_id: str) -> Response:
    segment = _segment(segment_id)
    builder = form.read_form(request.form)
    checked = check(builder)
    if checked.tree is None:
        return _builder_page(builder, checked.errors, 422, segment=segment)
    try:
        with db().unit_of_work() as session:
            service.update_segment(
                session=session,
                workspace_id=g.user.workspace_id,
                segment_id=segment["id"],
                name=builder.name,
                tree=checked.tree,
            )
    except CCMError as exc:
        return _builder_page(builder, {_where(builder, exc): exc.message}, exc.status, segment=segment)
    return redirect(url_for(".show", segment_id=segment["id"], saved=1))


@bp.post("/<segment_id>/members")
@requires(Permission.SEGMENTS)
def change_members(segment_id: str) -> Response:
    """Add or remove (``action``) the profiles whose external ids are listed, one a line."""
    segment = _segment(segment_id)
    text = request.form.get("profiles", "")
    ids = [line.strip() for line in text.splitlines() if line.strip()]
    change_of = members.remove_members if request.form.get("action") == "remove" else members.add_members
    try:
        checked = _members_in(ids)
        with db().unit_of_work() as session:
            change = change_of(
                session=session, workspace_id=g.user.workspace_id, segment_id=segment["id"], external_ids=checked
            )
    except CCMError as exc:
        return page(
            "segments/show.html",
            exc.status,
            segment=segment,
            can_write=True,
            profiles=text,
            errors={"profiles": exc.message},
        )
    verb = "Removed" if change_of is members.remove_members else "Added"
    unknown = f" No profile has the external id(s): {', '.join(change.unknown)}." if change.unknown else ""
    notice = f"{verb} {change.changed} profile(s).{unknown}"
    return page("segments/show.html", segment=_segment(segment_id), can_write=True, errors={}, notices=[notice])


@bp.post("/<segment_id>/delete")
@requires(Permission.SEGMENTS)
def delete(segment_id: str) -> Response:
    """Delete the segment, unless another segment's rules name it (409, shown on its page)."""
    segment = _segment(segment_id)
    try:
        with db().unit_of_work() as session:
            service.delete_segment(session=session, workspace_id=g.user.workspace_id, segment_id=segment["id"])
    except CCMError as exc:
        return page("segments/show.html", exc.status, segment=segment, can_write=True, errors={}, notices=[exc.message])
    return redirect(url_for(".index"))


@bp.get("/<segment_id>/count")
@requires(Permission.VIEW)
def count(segment_id: str) -> Response:
    """A saved segment's count now (htmx: the list and the segment's page load it)."""
    workspace_id = g.user.workspace_id
    try:
        with db().read_only() as session:
            segment = service.get_segment(session, workspace_id, segment_id)
            counted: Count | None = count_audience(
                session, workspace_id, lambda ctx: segment_condition(segment, ctx), now=utcnow(), budget_ms=_budget()
            )
            error = None
    except NotFound:
        abort(404)
    except CCMError as exc:
        counted, error = None, exc.message
    return page("segments/_count.html", counted=counted, error=error)


def check(builder: form.Builder, *, named: bool = True) -> Checked:
    """The builder's rules (and its name when ``named``), validated as the API validates a body."""
    errors: dict[str, str] = {}
    if named and (name_error := _name_error(builder.name)) is not None:
        errors["name"] = name_error.message
    if not builder.use_json and not builder.rows:
        return Checked(errors={**errors, "rows": "rows: add a condition"})
    tree = form.tree_of(builder)
    try:
        body = tree if not isinstance(tree, str) else json.loads(tree)
    except (ValueError, RecursionError) as exc:
        return Checked(errors={**errors, "rules_json": f"rules: not JSON ({exc})"})
    try:
        check_input(body, "rules")
        rules = RulesIn.model_validate_json(json.dumps({"rules": body})).rules
    except ValidationError as exc:
        failed = validation_failed(exc)
        return Checked(errors={**errors, _where(builder, failed): failed.message})
    except CCMError as exc:
        return Checked(errors={**errors, _where(builder, exc): exc.message})
    return Checked(tree=None if errors else rules, errors=errors)


def _name_error(name: str) -> CCMError | None:
    try:
        _NAME_ADAPTER.validate_python(name)
    except ValidationError as exc:
        return validation_failed(exc, prefix="name")
    return None


def _where(builder: form.Builder, exc: CCMError) -> str:
    return form.place_error(builder, str(exc.details.get("field", "rules")), exc.message)


def _count_and_sample(tree: Any) -> tuple[Count, list[dict[str, str | None]]]:
    workspace_id = g.user.workspace_id
    with db().read_only() as session:
        counted = count_audience(
            session, workspace_id, lambda ctx: compile_node(tree, ctx), now=utcnow(), budget_ms=_budget()
        )
        return counted, _sample(session, service.rules_query(session, workspace_id, tree, now=utcnow()))


def _sample(session: Session, ids: Any) -> list[dict[str, str | None]]:
    profiles = session.scalars(
        select(Profile).where(Profile.id.in_(ids)).order_by(Profile.id.desc()).limit(SAMPLE_SIZE)
    )
    return [{"external_id": p.external_id, "email": p.email, "phone": p.phone} for p in profiles]


def _members_in(ids: list[str]) -> list[str]:
    try:
        return MembersIn.model_validate({"profiles": ids}).profiles
    except ValidationError as exc:
        raise validation_failed(exc) from None


def _segment(segment_id: str) -> dict[str, Any]:
    with db().read_only() as session:
        try:
            s: Segment = service.get_segment(session, g.user.workspace_id, segment_id)
        except NotFound:
            abort(404)
        return {"id": s.id, "name": s.name, "kind": s.kind, "rules": s.rules, "updated_at": s.updated_at}


def _with_kind_fields(row: dict[str, str]) -> dict[str, str]:
    """A row with the defaults of its kind filled where the form had none."""
    return {**form.blank_row(row["kind"]), **{key: value for key, value in row.items() if value}}


def _builder_page(
    builder: form.Builder,
    errors: dict[str, str] | None = None,
    status: int = 200,
    *,
    segment: dict[str, Any] | None = None,
    notices: list[str] | None = None,
) -> Response:
    if not builder.use_json and not builder.rules_json and builder.rows:
        builder.rules_json = json.dumps(form.tree_of(builder), indent=2, ensure_ascii=False)
    return page(
        "segments/builder.html",
        status,
        builder=builder,
        errors=errors or {},
        segment=segment,
        choices=_choices(),
        notices=notices or [],
    )


def _index_page(status: int = 200, **context: Any) -> Response:
    with db().read_only() as session:
        rows, _ = service.list_segments(
            session=session, workspace_id=g.user.workspace_id, page=PageQuery(limit=LIST_SIZE)
        )
        segments = [{"id": s.id, "name": s.name, "kind": s.kind, "updated_at": s.updated_at} for s in rows]
    context.setdefault("errors", {})
    return page("segments/index.html", status, segments=segments, can_write=_can_write(), **context)


def _choices() -> dict[str, Any]:
    with db().read_only() as session:
        named = session.execute(
            select(Segment.id, Segment.name).where(Segment.workspace_id == g.user.workspace_id).order_by(Segment.name)
        ).all()
    return {**CHOICES, "segments": [(segment_id, name) for segment_id, name in named]}


def _can_write() -> bool:
    return allows(g.user.role, Permission.SEGMENTS)


def _budget() -> int:
    return int(current_app.extensions["ccm"].settings.segment_count_budget_ms)
