"""The layout's promises, checked on the source with ``ast`` (nothing is imported).

- No import cycle among the modules of ``hub/``, ``connectors/`` and ``workers/``: every import
  counts, also one inside a function or under ``if TYPE_CHECKING:``; ``from pkg import mod`` is an
  edge to ``pkg.mod`` when ``mod`` is a module.
- No module over 400 lines, no folder with more than 15 modules (``__init__.py`` not counted).
- No use of arq's private names; one ``retry_delivery``; domain packages never import ``aiohttp.web``.
"""

from __future__ import annotations

import ast
import importlib.util
from collections.abc import Iterator
from functools import cache
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("hub", "connectors", "workers")
SIZED = (*PACKAGES, "tests", "deploy")
MAX_LINES = 400
MAX_MODULES = 15
DOMAINS = ("orders", "catalog", "tenancy", "ingest", "delivery", "ops", "platforms")
#: arq internals that an override of ``Worker.main`` needs: named even where arq's source changes.
ARQ_PRIVATE_ALWAYS = frozenset({"_poll_iteration", "_jobs_started", "_pool"})


def python_files(*tops: str) -> Iterator[Path]:
    for top in tops:
        for path in sorted((ROOT / top).rglob("*.py")):
            if "__pycache__" not in path.parts:
                yield path


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


@cache
def parsed(path: Path) -> ast.Module:
    return ast.parse(path.read_text(), filename=str(path))


def relative(path: Path) -> str:
    return path.relative_to(ROOT).as_posix()


def imported_modules(tree: ast.Module, name: str, package: str, known: set[str]) -> set[str]:
    """The modules of ``known`` that module ``name`` (in ``package``) imports anywhere in ``tree``."""
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            for alias in node.names:
                candidate = f"{base}.{alias.name}"
                found.add(candidate if candidate in known else base)
    # ``import a.b.c`` names a module that exists; anything else (third parties) is not an edge.
    return {target for target in found if target in known and target != name}


def import_graph() -> dict[str, set[str]]:
    paths = {module_name(path): path for path in python_files(*PACKAGES)}
    known = set(paths)
    return {
        name: imported_modules(
            parsed(path), name, name if path.name == "__init__.py" else name.rpartition(".")[0], known
        )
        for name, path in paths.items()
    }


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """One concrete cycle per strongly connected component of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[set[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in sorted(graph[node]):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component: set[str] = set()
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.add(member)
                if member == node:
                    break
            if len(component) > 1:
                components.append(component)

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return [shortest_cycle(graph, component) for component in components]


def shortest_cycle(graph: dict[str, set[str]], component: set[str]) -> list[str]:
    """The shortest path from the component's first module back to itself (breadth first)."""
    start = min(component)
    paths = {start: [start]}
    queue = [start]
    while queue:
        node = queue.pop(0)
        for target in sorted(graph[node] & component):
            if target == start:
                return [*paths[node], start]
            if target not in paths:
                paths[target] = [*paths[node], target]
                queue.append(target)
    raise AssertionError(f"no cycle through {start}")  # pragma: no cover - a component always has one


def test_cycle_finder_reports_the_cycle() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a", "d"}, "d": set()}
    assert cycles(graph) == [["a", "b", "c", "a"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_cycles() -> None:
    found = cycles(import_graph())
    assert not found, "import cycles:\n" + "\n".join(" -> ".join(cycle) for cycle in found)


def test_lazy_and_type_checking_imports_are_edges() -> None:
    source = (
        "from typing import TYPE_CHECKING\n"
        "from . import sibling, CONSTANT\n"
        "if TYPE_CHECKING:\n"
        "    from pkg.other import Thing\n"
        "def f():\n"
        "    import pkg.lazy\n"
    )
    known = {"pkg", "pkg.mod", "pkg.sibling", "pkg.other", "pkg.lazy"}
    edges = imported_modules(ast.parse(source), "pkg.mod", "pkg", known)
    assert edges == {"pkg", "pkg.sibling", "pkg.other", "pkg.lazy"}


@pytest.mark.parametrize("path", [relative(p) for p in python_files(*SIZED)])
def test_module_size(path: str) -> None:
    lines = len((ROOT / path).read_text().splitlines())
    assert lines <= MAX_LINES, f"{path} has {lines} lines (at most {MAX_LINES})"


def test_folder_size() -> None:
    folders = {path.parent for path in python_files(*SIZED)}
    crowded = {
        relative(folder): count
        for folder in sorted(folders)
        if (count := sum(1 for p in folder.glob("*.py") if p.name != "__init__.py")) > MAX_MODULES
    }
    assert not crowded, f"folders with more than {MAX_MODULES} modules: {crowded}"


@cache
def arq_private_names() -> frozenset[str]:
    """Every ``_name`` arq defines: functions, attributes set on ``self``, module globals."""
    spec = importlib.util.find_spec("arq")
    assert spec is not None
    assert spec.submodule_search_locations
    names = set(ARQ_PRIVATE_ALWAYS)
    for folder in spec.submodule_search_locations:
        for path in Path(folder).glob("*.py"):
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                    names.add(node.name)
                elif isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store):
                    names.add(node.attr)
                elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
                    names.add(node.id)
    return frozenset(n for n in names if n.startswith("_") and not n.startswith("__"))


def arq_imports(tree: ast.Module) -> tuple[set[str], list[str]]:
    """The local names bound to arq objects, and the imports of arq's private names."""
    from_arq: set[str] = set()
    uses: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "arq":
            from_arq.update(alias.asname or alias.name for alias in node.names)
            uses += [f"line {node.lineno}: from {node.module} import {a.name}" for a in node.names if a.name[0] == "_"]
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] == "arq":
                    from_arq.add((alias.asname or alias.name).split(".")[0])
                    if any(part.startswith("_") for part in alias.name.split(".")):
                        uses.append(f"line {node.lineno}: import {alias.name}")
    return from_arq, uses


def arq_private_uses(tree: ast.Module) -> list[str]:
    """``_names`` imported from arq, read off arq names, or off ``self`` in a subclass of an arq class."""
    private = arq_private_names()
    from_arq, uses = arq_imports(tree)
    subclasses = [
        node
        for node in ast.walk(tree)
        if isinstance(node, ast.ClassDef)
        and any(
            isinstance(base, ast.Name | ast.Attribute) and ast.unparse(base).split(".")[0] in from_arq
            for base in node.bases
        )
    ]
    receivers_in_subclass = {"self", "super()"}
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and node.attr.startswith("_") and not node.attr.startswith("__"):
            receiver = ast.unparse(node.value)
            if receiver.split(".")[0] in from_arq or node.attr in {"_poll_iteration", "_jobs_started"}:
                uses.append(f"line {node.lineno}: {receiver}.{node.attr}")
    for cls in subclasses:
        for node in ast.walk(cls):
            if (
                isinstance(node, ast.Attribute)
                and node.attr in private
                and ast.unparse(node.value) in receivers_in_subclass
            ):
                uses.append(f"line {node.lineno}: {cls.name}: {ast.unparse(node.value)}.{node.attr}")
    return sorted(set(uses))


def test_arq_private_finder() -> None:
    source = (
        "from arq.worker import Worker, _private\n"
        "class W(Worker):\n"
        "    def main(self):\n"
        "        self._pool = None\n"
        "        self._own_helper()\n"
        "        return self._poll_iteration()\n"
    )
    assert "_pool" in arq_private_names()
    uses = arq_private_uses(ast.parse(source))
    assert any("_private" in use for use in uses)
    assert any("self._pool" in use for use in uses)
    assert any("self._poll_iteration" in use for use in uses)
    assert not any("_own_helper" in use for use in uses)


def test_no_arq_private_names() -> None:
    found = {
        relative(path): uses for path in python_files(*PACKAGES, "tests") if (uses := arq_private_uses(parsed(path)))
    }
    assert not found, f"arq private names used: {found}"


def test_one_retry_delivery() -> None:
    # The REST handler of that name (hub/api) is the route's thin adapter, not a second implementation.
    definitions = [
        f"{relative(path)}:{node.lineno}"
        for path in python_files(*PACKAGES)
        if not relative(path).startswith("hub/api/")
        for node in ast.walk(parsed(path))
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.name == "retry_delivery"
    ]
    assert len(definitions) == 1, f"retry_delivery defined at {definitions}"


def test_domain_packages_never_import_aiohttp_web() -> None:
    offenders = []
    for path in python_files(*(f"hub/{domain}" for domain in DOMAINS)):
        for node in ast.walk(parsed(path)):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [f"{node.module}.{alias.name}" for alias in node.names]
            else:
                continue
            if any(name == "aiohttp.web" or name.startswith("aiohttp.web") for name in names):
                offenders.append(f"{relative(path)}:{node.lineno}")
    assert not offenders, f"domain packages importing aiohttp.web: {offenders}"
