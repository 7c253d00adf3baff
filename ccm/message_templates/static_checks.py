"""The static checks `TemplateSandbox.validate` runs on a parsed template, and the names both layers block.

The walk refuses at save time what the sandbox would refuse at render time, so that the editor
can show line numbers; `name_problem` is shared with the sandbox so the two agree.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

from jinja2 import nodes

BLOCKED_ATTRIBUTES = {
    "format": "string formatting methods are blocked; use the format filter",
    "format_map": "string formatting methods are blocked; use the format filter",
    "mro": "type internals are blocked",
}
BLOCKED_NAMES = frozenset({"self", "lipsum", "cycler", "joiner"})

_CHECKED_NODES = (nodes.Getattr, nodes.Getitem, nodes.NSRef, nodes.Name, nodes.Filter)
# Where the attribute name sits among a filter's positional arguments.
_ATTRIBUTE_POSITION = {
    "attr": 0,
    "selectattr": 0,
    "rejectattr": 0,
    "groupby": 0,
    "sum": 0,
    "min": 1,
    "max": 1,
    "unique": 1,
    "sort": 2,
}


def find_forbidden_constructs(tree: nodes.Template) -> Iterator[tuple[int, str]]:
    """Yield the line and description of every forbidden construct in ``tree``, in tree order."""
    for node in tree.find_all(_CHECKED_NODES):
        message = _static_problem(node)
        if message is not None:
            yield node.lineno, message


def name_problem(name: str) -> str | None:
    """Why the attribute or key ``name`` may not be read in a template, or None if it may."""
    if name.startswith("_"):
        return f"{name!r} is not allowed: attributes starting with '_' are blocked"
    if name in BLOCKED_ATTRIBUTES:
        return f"{name!r} is not allowed: {BLOCKED_ATTRIBUTES[name]}"
    return None


def _static_problem(node: nodes.Node) -> str | None:
    if isinstance(node, (nodes.Getattr, nodes.NSRef)):
        return name_problem(node.attr)
    if isinstance(node, nodes.Getitem):
        key = _const(node.arg)
        return name_problem(key) if isinstance(key, str) else None
    if isinstance(node, nodes.Name):
        return f"{node.name!r} is not available in templates" if node.name in BLOCKED_NAMES else None
    assert isinstance(node, nodes.Filter)  # the last of _CHECKED_NODES
    return _filter_problem(node)


def _filter_problem(node: nodes.Filter) -> str | None:
    names = list(_attribute_arguments(node))
    if _applies_attr(node) and (node.dyn_args or node.dyn_kwargs or not names or not all(map(_is_str_const, names))):
        return "the attr filter needs a literal attribute name"
    for arg in filter(_is_str_const, names):
        for part in re.split(r"[.,]", _const(arg)):
            problem = name_problem(part.strip())
            if problem:
                return problem
    return None


def _applies_attr(node: nodes.Filter) -> bool:
    return node.name == "attr" or (node.name == "map" and bool(node.args) and _const(node.args[0]) == "attr")


def _attribute_arguments(node: nodes.Filter) -> Iterator[nodes.Expr]:
    """Yield the arguments of a filter call that name attributes to look up."""
    if node.name == "map" and _applies_attr(node):
        yield from node.args[1:2]
    position = _ATTRIBUTE_POSITION.get(node.name)
    if position is not None and position < len(node.args):
        yield node.args[position]
    for keyword in node.kwargs:
        if keyword.key == "attribute" or (node.name == "attr" and keyword.key == "name"):
            yield keyword.value


def _const(node: nodes.Node) -> Any:
    return node.value if isinstance(node, nodes.Const) else None


def _is_str_const(node: nodes.Node) -> bool:
    return isinstance(_const(node), str)
