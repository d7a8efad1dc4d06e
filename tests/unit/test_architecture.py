"""The layers hold: no import cycle, and each boundary of STYLE.md, checked on the source itself.

ruff's banned-import rules (pyproject.toml, transforms/ruff.toml) fail `make test` on the same
boundaries; this test adds what a linter cannot see (cycles) and names the one module each
special import is allowed in, exactly.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("jobs", "transforms", "expectations", "mappings")


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> dict[str, Path]:
    return {module_name(p): p for package in PACKAGES for p in sorted((ROOT / package).rglob("*.py"))}


MODULES = modules()


def imported(path: Path) -> Iterator[str]:
    """Every module name an import in the file names, at module level or inside a function."""
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            yield node.module
            yield from (f"{node.module}.{alias.name}" for alias in node.names)


def resolve(name: str) -> str | None:
    """The carve module an imported name refers to (`from jobs.sinks import pacing` is jobs.sinks.pacing)."""
    while name:
        if name in MODULES:
            return name
        name = name.rpartition(".")[0]
    return None


def graph() -> dict[str, set[str]]:
    edges: dict[str, set[str]] = {}
    for name, path in MODULES.items():
        targets = {resolve(n) for n in imported(path)}
        edges[name] = {t for t in targets if t and t != name}
    return edges


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in sorted(edges.get(node, ())):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(edges):
        if node not in index:
            visit(node)
    return found


def test_the_module_graph_is_found():
    edges = graph()
    assert {"jobs.cli", "jobs.pipeline", "jobs.sinks.writer", "transforms.items", "expectations.validate"} <= set(edges)
    assert "jobs.sinks.writer" in edges["jobs.sinks.carve"]  # the walk sees real imports


def test_no_module_imports_itself_back_through_others():
    assert cycles(graph()) == []


def test_the_cycle_finder_finds_a_cycle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def importers_of(prefix: str) -> set[str]:
    return {name for name, path in MODULES.items()
            if any(n == prefix or n.startswith(prefix + ".") for n in imported(path))}


def test_transforms_is_pure():
    for name, path in MODULES.items():
        if name.startswith("transforms"):
            banned = [n for n in imported(path) if n.split(".")[0] in ("jobs", "boto3", "botocore", "awsglue",
                                                                        "great_expectations", "expectations")]
            assert banned == [], f"{name} imports {banned}"


@pytest.mark.parametrize("library, allowed", [
    ("awsglue", {"jobs.runtimes.glue"}),
    ("great_expectations", {"expectations.validate"}),
])
def test_one_module_imports_each_boundary_library(library, allowed):
    assert importers_of(library) == allowed


def test_production_modules_never_import_the_development_tooling():
    production = {n for n in importers_of("jobs.devtools") if not n.startswith("jobs.devtools")}
    assert production == set()
