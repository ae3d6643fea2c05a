"""The import graph of src/branchenv: no cycle, and the layering DESIGN.md states.

Every import counts: at module level, inside functions (lazy) and under ``TYPE_CHECKING``; a
lazy import only hides a cycle from the interpreter, not from a reader (issue 11 named two such
cycles: provision -> reaper/run -> cost/estimate -> provision, and engines/base <-> both
engines through the factory). ``from package import name`` is an edge to ``package.name`` when
that is a module, else to ``package``. The implicit import of a parent package's
``__init__`` is not an edge (every submodule import would otherwise loop through it).
"""

from __future__ import annotations

import ast
import functools
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[2] / "src"


@functools.cache
def modules() -> dict[str, tuple[Path, bool]]:
    """Module name -> (file, is a package ``__init__``)."""
    found = {}
    for path in sorted((SRC / "branchenv").rglob("*.py")):
        parts = list(path.relative_to(SRC).with_suffix("").parts)
        is_package = parts[-1] == "__init__"
        if is_package:
            parts = parts[:-1]
        found[".".join(parts)] = (path, is_package)
    return found


@functools.cache
def import_graph() -> dict[str, set[str]]:
    """Module -> the branchenv modules it imports (anywhere in its file)."""
    mods = modules()

    def known(name: str) -> str | None:
        while name:
            if name in mods:
                return name
            name = name.rpartition(".")[0]
        return None

    graph: dict[str, set[str]] = {name: set() for name in mods}
    for name, (path, is_package) in mods.items():
        package = name if is_package else name.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    parts = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                    base = ".".join([*parts, *([base] if base else [])])
                for alias in node.names:
                    candidate = f"{base}.{alias.name}"
                    targets.append(candidate if candidate in mods else base)
            for target in targets:
                resolved = known(target)
                if resolved is not None and resolved != name:
                    graph[name].add(resolved)
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = [0]

    def visit(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_the_graph_sees_lazy_and_type_checking_imports() -> None:
    graph = import_graph()
    # Lazy (inside a function) and TYPE_CHECKING-only edges both count.
    assert "branchenv.harness.teardown" in graph["branchenv.provision"]
    assert "branchenv.config" in graph["branchenv.provision"]
    assert len(graph) > 60


def test_there_is_no_import_cycle_among_branchenv_modules() -> None:
    found = cycles(import_graph())
    assert found == [], "import cycles: " + "; ".join(" <-> ".join(c) for c in found)


def test_cycle_finder_finds_a_cycle() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert cycles(graph) == [["a", "b", "c"]]


def test_nothing_below_the_cli_imports_the_cli() -> None:
    offenders = {
        module: sorted(t for t in targets if t.startswith("branchenv.cli"))
        for module, targets in import_graph().items()
        if not module.startswith("branchenv.cli") and module != "branchenv.__main__"
    }
    assert {m: t for m, t in offenders.items() if t} == {}


ENGINE_SEAM = {"branchenv.engines", "branchenv.engines.base"}
KNOWN_EXCEPTIONS: set[tuple[str, str]] = set()


@pytest.mark.parametrize(
    "module", sorted(m for m in modules() if not m.startswith("branchenv.engines"))
)
def test_nothing_outside_engines_imports_a_particular_engine(module: str) -> None:
    reaching = {
        t
        for t in import_graph()[module]
        if t.startswith("branchenv.engines") and t not in ENGINE_SEAM
    }
    assert {(module, t) for t in reaching} <= KNOWN_EXCEPTIONS, reaching
