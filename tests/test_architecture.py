"""The package's plan, checked: no import cycles, one stage per package, the shard worker apart from the pipeline.

Imports are read from the source (every ``import`` and ``from ... import``, at module level or inside a
function), so a lazy import that would close a cycle counts as much as an eager one.
"""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

from .conftest import REPO

PACKAGE = REPO / "qa"


def module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> dict[str, Path]:
    return {module_name(p): p for p in PACKAGE.rglob("*.py")}


def imports_of(name: str, path: Path, known: set[str]) -> set[str]:
    """The qa modules ``name`` imports: ``from X import y`` counts as X.y when that is a module, else X."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names if alias.name in known)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join(anchor + ([base] if base else []))
            for alias in node.names:
                target = f"{base}.{alias.name}"
                found.add(target if target in known else base)
    return {m for m in found if m in known and m != name}


def graph() -> dict[str, set[str]]:
    found = modules()
    return {name: imports_of(name, path, set(found)) for name, path in found.items()}


def cycle_in(edges: dict[str, set[str]]) -> list[str] | None:
    """One import cycle, as the list of modules around it, or None."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(edges[node]):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt) :] + [nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(edges):
        if node not in state and (found := visit(node)):
            return found
    return None


def reachable(edges: dict[str, set[str]], start: str) -> set[str]:
    seen, todo = set(), [start]
    while todo:
        node = todo.pop()
        if node not in seen:
            seen.add(node)
            todo += edges[node]
    return seen


def test_the_cycle_finder_finds_a_cycle() -> None:
    assert cycle_in({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert cycle_in({"a": {"b"}, "b": set()}) is None


def test_no_import_cycle_among_qa_modules() -> None:
    edges = graph()
    assert len(edges) > 40 and sum(map(len, edges.values())) > 100  # the walk sees the real package
    assert cycle_in(edges) is None, " -> ".join(cycle_in(edges) or [])


def test_embed_never_imports_the_store_and_the_store_never_the_later_stages() -> None:
    edges = graph()
    for name, targets in edges.items():
        if name.startswith("qa.embed"):
            assert not {t for t in targets if t.startswith("qa.store")}, name
        if name.startswith("qa.store"):
            later = ("qa.build", "qa.ask", "qa.cli", "qa.serve")
            assert not {t for t in targets if t.startswith(later)}, name
    assert "qa.store.directory" not in edges["qa.store.writer"]  # the writer finishes, the store publishes


def test_the_shard_worker_does_not_import_the_local_pipeline() -> None:
    edges = graph()
    assert "qa.build.batches" in edges["qa.build.shards.worker"]  # the shared inner loop
    assert "qa.build.batches" in edges["qa.build.pipeline"]
    assert "qa.build.pipeline" not in reachable(edges, "qa.build.shards.worker")
    code = "import sys, qa.build.shards.worker; print('qa.build.pipeline' in sys.modules)"
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO)
    assert loaded.stdout.strip() == "False", loaded.stderr


def test_one_package_per_stage_and_small_modules() -> None:
    top = sorted(p.name for p in PACKAGE.glob("*.py"))
    assert len(top) <= 8, top
    for stage in ("ingest", "embed", "store", "build", "ask", "cli", "serve"):
        assert (PACKAGE / stage / "__init__.py").is_file(), stage
    assert len((PACKAGE / "cli" / "commands.py").read_text().splitlines()) <= 500
    for path in (PACKAGE / "build").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                length = (node.end_lineno or node.lineno) - node.lineno + 1
                assert length <= 60, f"{path.relative_to(REPO)}:{node.lineno} {node.name} is {length} lines"


def test_backends_are_chosen_by_class_not_by_name() -> None:
    offenders = [
        f"{path.relative_to(REPO)}:{n}"
        for path in PACKAGE.rglob("*.py")
        if path.name != "registry.py"
        for n, line in enumerate(path.read_text().splitlines(), 1)
        if "backend ==" in line or re.search(r"backend\s*!=\s*[\"']", line)
    ]
    assert offenders == []
