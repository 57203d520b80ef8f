"""The layering contract of ``runner/`` and an ``ast`` checker for it (no import-linter needed).

Every import counts, the ones inside functions too: a lazy import still ties two modules together, it
only hides the tie from a reader. A module may import its own layer (without a circle) and the layers
below; the feature packages, which share one rank, may not import one another.
"""

from __future__ import annotations

import ast
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

LAYERS: tuple[tuple[str, ...], ...] = (
    ("core",),
    ("spec",),
    ("config",),
    ("compile",),
    ("store",),
    ("execute",),
    ("metrics",),
    ("report",),
    ("pipeline",),
    ("sweep", "dataset", "leaderboard", "validation"),
    ("api",),
    ("cli",),
)
"""Bottom to top. A name is the first part under the root package (``runner.store.shards`` → ``store``)."""


@dataclass(frozen=True)
class Violation:
    """One broken rule: where, and why."""

    module: str
    line: int
    imported: str
    why: str

    def __str__(self) -> str:
        return f"{self.module}:{self.line} imports {self.imported}: {self.why}"


def module_name(root: Path, path: Path, package: str) -> str:
    """``runner/store/shards.py`` → ``runner.store.shards`` (a package's ``__init__`` is the package)."""
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join([package, *parts])


def imports(root: Path, package: str) -> dict[str, list[tuple[int, str]]]:
    """Module → [(line, imported module of ``package``)] for every ``.py`` file under ``root``.

    ``from package.a import b`` counts as importing ``package.a.b`` when that is a module, else ``package.a``.
    """
    files = {module_name(root, p, package): p for p in sorted(root.rglob("*.py"))}
    found: dict[str, list[tuple[int, str]]] = {}
    for mod, path in files.items():
        is_pkg = path.name == "__init__.py"
        edges: list[tuple[int, str]] = []
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
            if isinstance(node, ast.Import):
                edges += [(node.lineno, a.name) for a in node.names if a.name.split(".")[0] == package]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:  # relative: resolve against this module's package
                    here = mod.split(".") if is_pkg else mod.split(".")[:-1]
                    here = here[: len(here) - node.level + 1]
                    base = ".".join([*here, base] if base else here)
                if base.split(".")[0] != package:
                    continue
                for a in node.names:
                    sub = f"{base}.{a.name}"
                    edges.append((node.lineno, sub if sub in files else base))
        found[mod] = [(line, target) for line, target in edges if target != mod]
    return found


def layer_of(module: str, package: str) -> str | None:
    """The layer name of a module (None for the root package itself)."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[0] == package else None


def _rank(layers: Sequence[Sequence[str]]) -> dict[str, int]:
    return {name: i for i, group in enumerate(layers) for name in group}


def layer_violations(
    graph: dict[str, list[tuple[int, str]]], package: str, layers: Sequence[Sequence[str]] = LAYERS
) -> list[Violation]:
    """Imports that go up a layer, across feature packages of one rank, or from an unknown layer."""
    rank = _rank(layers)
    out: list[Violation] = []
    for mod, edges in graph.items():
        src = layer_of(mod, package)
        if src is None:
            continue
        if src not in rank:
            out.append(Violation(mod, 0, "-", f"`{src}` is in no layer: add it to LAYERS"))
            continue
        for line, target in edges:
            dst = layer_of(target, package)
            if dst is None or dst == src:
                continue
            if dst not in rank:
                out.append(Violation(mod, line, target, f"`{dst}` is in no layer"))
            elif rank[dst] > rank[src]:
                out.append(Violation(mod, line, target, f"`{src}` may not import the higher layer `{dst}`"))
            elif rank[dst] == rank[src]:
                out.append(
                    Violation(mod, line, target, f"features `{src}` and `{dst}` may not import each other")
                )
    return out


def circles(graph: dict[str, list[tuple[int, str]]]) -> list[list[str]]:
    """Import circles between modules (strongly connected components of more than one module), sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:  # Tarjan; the graph is a few dozen modules, recursion is fine
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for _, w in graph.get(v, []):
            if w not in graph:
                continue
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
    return sorted(found)


def check(root: Path, package: str, layers: Sequence[Sequence[str]] = LAYERS) -> list[str]:
    """Every violation and circle of the package at ``root``, one line each (empty when the contract holds)."""
    graph = imports(root, package)
    lines = [str(v) for v in layer_violations(graph, package, layers)]
    lines += ["import circle: " + " -> ".join(c) for c in circles(graph)]
    return lines
