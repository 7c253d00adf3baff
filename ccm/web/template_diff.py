"""What changed between two template versions, part by part, as rows a table can show: difflib
on the server, so the page needs no script and a screen reader reads each row's change."""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from typing import Any

from ccm.message_templates.rendering import PARTS

CONTEXT = 2
"""Unchanged lines shown around each change."""


@dataclass(frozen=True)
class Row:
    change: str  # "added", "removed" or "" (context)
    old: int | None
    new: int | None
    text: str


@dataclass(frozen=True)
class PartDiff:
    title: str
    rows: list[Row]


def version_sources(version: Any) -> dict[str, str]:
    """A version's content as named texts: its settings, each variant's parts, its snippets."""
    sources = {
        "Settings": f"category: {version.category}\ndefault locale: {version.default_locale}\n"
        f"variables: {', '.join(version.variables)}",
    }
    for variant in version.variants:
        for part in PARTS[variant["channel"]]:
            if variant.get(part):
                sources[f"{variant['channel']}.{variant['locale']}.{part}"] = variant[part]
    sources.update({f"snippet {name}": source for name, source in version.snippets.items()})
    return sources


def diff_versions(old: Any, new: Any) -> list[PartDiff]:
    """The parts that differ between ``old`` and ``new``; a part only one has is all added or removed."""
    before, after = version_sources(old), version_sources(new)
    names = list(dict.fromkeys([*before, *after]))
    diffs = [PartDiff(name, diff_lines(before.get(name, ""), after.get(name, ""))) for name in names]
    return [diff for diff in diffs if diff.rows]


def diff_lines(old: str, new: str) -> list[Row]:
    """Changed lines with a little context, numbered on each side."""
    a, b = old.splitlines(), new.splitlines()
    rows: list[Row] = []
    for group in difflib.SequenceMatcher(None, a, b, autojunk=False).get_grouped_opcodes(CONTEXT):
        for tag, i1, i2, j1, j2 in group:
            if tag == "equal":
                rows += [Row("", i + 1, j + 1, a[i]) for i, j in zip(range(i1, i2), range(j1, j2), strict=True)]
                continue
            rows += [Row("removed", i + 1, None, a[i]) for i in range(i1, i2)]
            rows += [Row("added", None, j + 1, b[j]) for j in range(j1, j2)]
    return rows
