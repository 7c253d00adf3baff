"""Layouts and partials: named sources that templates extend or include."""

from __future__ import annotations

import re

from sqlalchemy import select
from sqlalchemy.orm import Session

from ccm.errors import NotFound, ValidationFailed
from ccm.message_templates import schemas
from ccm.message_templates.models import Snippet
from ccm.message_templates.sandbox import TemplateSandbox

SNIPPET_NAME = re.compile(schemas.SNIPPET_NAME)


def put_snippet(
    *, session: Session, sandbox: TemplateSandbox, workspace_id: str, name: str, source: str
) -> tuple[Snippet, bool]:
    """Create or replace a snippet. Published versions keep the copy they were published with."""
    if not SNIPPET_NAME.match(name):
        raise ValidationFailed(f"name: {name!r} is not a snippet name such as layouts/base.html", field="name")
    problems = sandbox.validate(source, name=name)
    if problems:
        raise ValidationFailed(
            f"source: {problems[0].message}",
            field="source",
            details={"line": problems[0].line, "problems": [vars(p) for p in problems]},
        )
    snippet = session.scalar(select(Snippet).where(Snippet.workspace_id == workspace_id, Snippet.name == name))
    created = snippet is None
    if snippet is None:
        snippet = Snippet(workspace_id=workspace_id, name=name, source=source)
        session.add(snippet)
    else:
        snippet.source = source
    session.flush()
    return snippet, created


def get_snippet(*, session: Session, workspace_id: str, name: str) -> Snippet:
    snippet = session.scalar(select(Snippet).where(Snippet.workspace_id == workspace_id, Snippet.name == name))
    if snippet is None:
        raise NotFound(f"no snippet named {name!r}", field="name")
    return snippet


def list_snippets(*, session: Session, workspace_id: str) -> list[Snippet]:
    return list(session.scalars(select(Snippet).where(Snippet.workspace_id == workspace_id).order_by(Snippet.name)))


def delete_snippet(*, session: Session, workspace_id: str, name: str) -> None:
    session.delete(get_snippet(session=session, workspace_id=workspace_id, name=name))
