"""Loading templates kept as files (the top-level ``templates/`` folder) into a workspace.

Layout of a template folder::

    layouts/base.html                     snippet "layouts/base.html"
    partials/footer.html                  snippet "partials/footer.html"
    messages/welcome/template.toml        category, description, default_locale, variables
    messages/welcome/email.en.subject     one file per part: <channel>.<locale>.<part>
    messages/welcome/email.en.html
    messages/welcome/email.en.txt         optional: generated from the HTML when absent
    messages/welcome/sms.en.txt
    messages/welcome/chat.es-MX.txt

Every template is saved as a draft and published; a template whose files did not change keeps its
version. The import runs in the caller's transaction: one bad file and nothing is imported. With
``keep_existing`` (demo data), a template or snippet the workspace already has in another form is
left as it is and reported as skipped.
"""

from __future__ import annotations

import tomllib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import ValidationError
from sqlalchemy import select
from sqlalchemy.orm import Session

from ccm.errors import CCMError, NotFound, ValidationFailed
from ccm.message_templates import service, snippets
from ccm.message_templates.models import MessageTemplate, Snippet
from ccm.message_templates.sandbox import TemplateSandbox
from ccm.message_templates.schemas import TemplateIn, TemplatePatch

SNIPPET_FOLDERS = ("layouts", "partials")
PART_FILES = {
    ("email", "subject"): "subject",
    ("email", "html"): "html",
    ("email", "txt"): "text",
    ("sms", "txt"): "body",
    ("chat", "txt"): "body",
}


class ImportFailed(Exception):
    """A file could not be imported; the message names the file."""


@dataclass(frozen=True)
class ImportedTemplate:
    key: str
    version: int
    created: bool


@dataclass(frozen=True)
class ImportReport:
    templates: list[ImportedTemplate]
    """What was published (or was already, unchanged)."""
    skipped: list[str] = field(default_factory=list)
    """``template <key>`` and ``snippet <name>`` left alone because the workspace has its own."""


def import_folder(
    *,
    session: Session,
    sandbox: TemplateSandbox,
    workspace_id: str,
    root: Path,
    progress: Callable[[str], None] = lambda _: None,
) -> list[ImportedTemplate]:
    """Import every snippet, then every template under ``root``, replacing the workspace's
    versions; returns what was published."""
    return import_templates(
        session=session, sandbox=sandbox, workspace_id=workspace_id, root=root, progress=progress
    ).templates


def import_templates(
    *,
    session: Session,
    sandbox: TemplateSandbox,
    workspace_id: str,
    root: Path,
    keep_existing: bool = False,
    progress: Callable[[str], None] = lambda _: None,
) -> ImportReport:
    """Import every snippet, then every template under ``root``. With ``keep_existing``, those
    the workspace already has with other content are skipped instead of replaced.

    Raises:
      ImportFailed: a file is malformed or does not check; nothing is imported.
    """
    if not root.is_dir():
        raise ImportFailed(f"{root}: not a folder")
    report = ImportReport(templates=[])
    for name, path in _snippet_files(root):
        with _naming_file(path):
            source = path.read_text("utf-8")
            if keep_existing and _other_snippet(session, workspace_id, name, source):
                report.skipped.append(f"snippet {name}")
            else:
                snippets.put_snippet(
                    session=session, sandbox=sandbox, workspace_id=workspace_id, name=name, source=source
                )
        progress(name)
    for folder in sorted(p for p in (root / "messages").glob("*") if (p / "template.toml").is_file()):
        with _naming_file(folder):
            definition = read_template(folder)
            if keep_existing and _other_template(session, workspace_id, definition):
                report.skipped.append(f"template {definition.key}")
            else:
                report.templates.append(_save_and_publish(session, sandbox, workspace_id, definition))
        progress(definition.key)
    return report


def read_template(folder: Path) -> TemplateIn:
    meta = tomllib.loads((folder / "template.toml").read_text("utf-8"))
    variants: dict[tuple[str, str], dict[str, Any]] = {}
    for path in sorted(folder.iterdir()):
        if path.name == "template.toml":
            continue
        channel, locale, extension = _part_name(path)
        variant = variants.setdefault((channel, locale), {"channel": channel, "locale": locale})
        variant[PART_FILES[(channel, extension)]] = (
            path.read_text("utf-8").rstrip("\n") if extension == "subject" else path.read_text("utf-8")
        )
    return TemplateIn.model_validate({"key": meta.pop("key", folder.name), **meta, "variants": list(variants.values())})


def _save_and_publish(
    session: Session, sandbox: TemplateSandbox, workspace_id: str, definition: TemplateIn
) -> ImportedTemplate:
    try:
        service.get_template(session=session, workspace_id=workspace_id, key=definition.key)
    except NotFound:
        service.create_template(session=session, sandbox=sandbox, workspace_id=workspace_id, data=definition)
    else:
        patch = TemplatePatch.model_validate(definition.model_dump(exclude={"key"}))
        service.update_draft(
            session=session, sandbox=sandbox, workspace_id=workspace_id, key=definition.key, data=patch
        )
    version, created = service.publish(session=session, sandbox=sandbox, workspace_id=workspace_id, key=definition.key)
    return ImportedTemplate(definition.key, version, created)


def _other_snippet(session: Session, workspace_id: str, name: str, source: str) -> bool:
    """Whether the workspace has a snippet ``name`` with other content."""
    found = session.scalar(select(Snippet.source).where(Snippet.workspace_id == workspace_id, Snippet.name == name))
    return found is not None and found != source


def _other_template(session: Session, workspace_id: str, definition: TemplateIn) -> bool:
    """Whether the workspace has a template with this key whose draft is not ``definition``."""
    found = session.scalar(
        select(MessageTemplate).where(
            MessageTemplate.workspace_id == workspace_id, MessageTemplate.key == definition.key
        )
    )
    if found is None:
        return False
    wanted = definition.model_dump(include=set(service.DRAFT_FIELDS))
    return {name: getattr(found, name) for name in service.DRAFT_FIELDS} != wanted


def _snippet_files(root: Path) -> Iterator[tuple[str, Path]]:
    for folder in SNIPPET_FOLDERS:
        for path in sorted((root / folder).rglob("*")):
            if path.is_file():
                yield path.relative_to(root).as_posix(), path


def _part_name(path: Path) -> tuple[str, str, str]:
    pieces = path.name.split(".")
    if len(pieces) != 3 or (pieces[0], pieces[2]) not in PART_FILES:
        raise ImportFailed(
            f"{path}: expected <channel>.<locale>.<part> such as email.en.html, email.en.subject, "
            "email.en.txt, sms.en.txt or chat.en.txt"
        )
    return pieces[0], pieces[1], pieces[2]


@contextmanager
def _naming_file(path: Path) -> Iterator[None]:
    """Turn the errors a bad file causes into ``ImportFailed`` naming that file."""
    try:
        yield
    except ValidationError as exc:
        first = exc.errors()[0]
        raise ImportFailed(f"{path}: {'.'.join(map(str, first['loc']))}: {first['msg']}") from None
    except (CCMError, ValidationFailed) as exc:
        raise ImportFailed(f"{path}: {exc.message}") from None
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ImportFailed(f"{path}: {exc}") from None
