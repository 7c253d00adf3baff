"""The import structure: no function-local imports of ``ccm`` modules outside the entry points,
and no import cycles among ``ccm`` modules.

A function-local import is a cycle in disguise; these tests read the source with ``ast``, so they
run nothing of the project. Imports under ``if TYPE_CHECKING:`` are annotations only and count for
neither rule.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ENTRY_POINTS = frozenset(
    {"ccm/__main__.py", "ccm/app.py", "ccm/bootstrap.py", "ccm/cli.py", "ccm/worker.py", "ccm/wsgi.py"}
)
"""Modules that build and wire the application (with everything under ``workers/``): they may
import late, to keep start-up cheap or to pick what to build."""


@dataclass(frozen=True)
class Import:
    target: str
    line: int


Graph = Mapping[str, Mapping[str, int]]
"""module -> {imported module: line of the import}"""


def module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def source_files(root: Path, packages: tuple[str, ...] = ("ccm", "workers")) -> Iterator[Path]:
    for package in packages:
        yield from sorted((root / package).rglob("*.py"))


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _targets(node: ast.Import | ast.ImportFrom, module: str, is_package: bool, known: set[str]) -> Iterator[str]:
    """The project modules an import statement loads (``from a import b`` loads ``a.b`` when that
    is a module, else ``a``)."""
    if isinstance(node, ast.Import):
        yield from (alias.name for alias in node.names)
        return
    base = node.module or ""
    if node.level:
        package = module.split(".") if is_package else module.split(".")[:-1]
        anchor = ".".join(package[: len(package) - node.level + 1])
        base = f"{anchor}.{base}" if base else anchor
    for alias in node.names:
        yield f"{base}.{alias.name}" if f"{base}.{alias.name}" in known else base


def _walk(body: list[ast.stmt], in_function: bool) -> Iterator[tuple[ast.Import | ast.ImportFrom, bool]]:
    """Every import statement outside ``if TYPE_CHECKING:``, and whether a function body holds it."""
    for node in body:
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            yield from _walk(node.orelse, in_function)
            continue
        if isinstance(node, ast.Import | ast.ImportFrom):
            yield node, in_function
        inner = in_function or isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
        for field in ("body", "orelse", "finalbody", "handlers", "cases"):
            children = getattr(node, field, None)
            if isinstance(children, list):
                yield from _walk([c for c in children if isinstance(c, ast.stmt)], inner)
                for child in children:
                    if isinstance(child, ast.ExceptHandler | ast.match_case):
                        yield from _walk(child.body, inner)


def read_imports(path: Path, module: str, known: set[str]) -> tuple[list[Import], list[Import]]:
    """The ``ccm`` imports of one file: (top-level, inside a function)."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    top: list[Import] = []
    local: list[Import] = []
    for node, in_function in _walk(tree.body, in_function=False):
        for target in _targets(node, module, path.name == "__init__.py", known):
            if target == "ccm" or target.startswith("ccm."):
                (local if in_function else top).append(Import(target, node.lineno))
    return top, local


def scan(root: Path) -> tuple[dict[str, dict[str, int]], list[str]]:
    """The import graph of ``root``'s modules (top-level imports only) and every function-local
    ``ccm`` import outside the entry points, as ``file:line imports module``."""
    files = {module_name(path, root): path for path in source_files(root)}
    known = set(files)
    graph: dict[str, dict[str, int]] = {}
    offences: list[str] = []
    for module, path in files.items():
        top, local = read_imports(path, module, known)
        graph[module] = {i.target: i.line for i in reversed(top) if i.target in known and i.target != module}
        relative = path.relative_to(root).as_posix()
        if relative not in ENTRY_POINTS and not relative.startswith("workers/"):
            offences.extend(dict.fromkeys(f"{relative}:{i.line} imports {i.target} inside a function" for i in local))
    return graph, offences


def find_cycles(graph: Graph) -> list[list[str]]:
    """One cycle per strongly connected component of more than one module (or a self-import),
    each as a path that starts and ends on the same module."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []

    def visit(node: str) -> None:  # Tarjan's algorithm
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in sorted(graph.get(node, {})):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = set()
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.add(member)
                if member == node:
                    break
            if len(component) > 1 or node in graph.get(node, {}):
                cycles.append(_cycle_path(graph, node, component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return cycles


def _cycle_path(graph: Graph, start: str, component: set[str]) -> list[str]:
    """The shortest path from ``start`` back to itself inside one component (breadth first)."""
    previous: dict[str, str] = {}
    frontier = [start]
    while frontier:
        following = []
        for node in frontier:
            for target in sorted(graph.get(node, {})):
                if target not in component or target in previous:
                    continue
                previous[target] = node
                if target == start:
                    path = [start]
                    while path[-1] != start or len(path) == 1:
                        path.append(previous[path[-1]])
                    return path[::-1]
                following.append(target)
        frontier = following
    raise AssertionError(f"no cycle through {start}")


def describe(graph: Graph, cycle: list[str]) -> str:
    return " -> ".join(f"{a} (line {graph[a][b]})" for a, b in zip(cycle, cycle[1:], strict=False)) + f" -> {cycle[-1]}"


def test_no_function_local_ccm_imports() -> None:
    _, offences = scan(ROOT)
    assert not offences, "import these at the top of the module (or remove the cycle):\n" + "\n".join(offences)


def test_ccm_modules_import_each_other_in_no_cycle() -> None:
    graph, _ = scan(ROOT)
    cycles = find_cycles(graph)
    assert not cycles, "import cycles:\n" + "\n".join(describe(graph, cycle) for cycle in cycles)


def test_flags_a_function_local_import(tmp_path: Path) -> None:
    (tmp_path / "ccm").mkdir()
    (tmp_path / "workers").mkdir()
    (tmp_path / "ccm" / "__init__.py").write_text("")
    (tmp_path / "ccm" / "base.py").write_text("")
    (tmp_path / "ccm" / "cli.py").write_text("def main():\n    from ccm import base\n")
    (tmp_path / "ccm" / "bad.py").write_text(
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n    from ccm import base\n"
        "def f():\n    if True:\n        from ccm.base import x\n"
    )
    _, offences = scan(tmp_path)
    assert offences == ["ccm/bad.py:6 imports ccm.base inside a function"]


def test_finds_a_cycle_and_its_path(tmp_path: Path) -> None:
    (tmp_path / "ccm" / "pkg").mkdir(parents=True)
    (tmp_path / "workers").mkdir()
    (tmp_path / "ccm" / "__init__.py").write_text("")
    (tmp_path / "ccm" / "pkg" / "__init__.py").write_text("")
    (tmp_path / "ccm" / "a.py").write_text("import os\n\nfrom ccm.pkg import b\n")
    (tmp_path / "ccm" / "pkg" / "b.py").write_text("from . import c\n")
    (tmp_path / "ccm" / "pkg" / "c.py").write_text("from ccm.a import thing\n")
    (tmp_path / "ccm" / "d.py").write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import ccm.a\n")
    graph, _ = scan(tmp_path)
    cycles = find_cycles(graph)
    assert cycles == [["ccm.a", "ccm.pkg.b", "ccm.pkg.c", "ccm.a"]]
    assert describe(graph, cycles[0]) == "ccm.a (line 3) -> ccm.pkg.b (line 1) -> ccm.pkg.c (line 1) -> ccm.a"


def test_an_acyclic_graph_has_no_cycles() -> None:
    assert find_cycles({"a": {"b": 1, "c": 2}, "b": {"c": 1}, "c": {}}) == []
    assert find_cycles({"a": {"a": 1}}) == [["a", "a"]]
