"""The import graph (every import statement, function-local ones included) has no circle and never imports from a
lower layer to a higher one, as docs/architecture.md orders the layers; a page imports only base and dashboard."""

from __future__ import annotations

import ast
import fnmatch
import functools
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SOURCES = ("synthvu_core", "dashboard", "app_pages")


def layers() -> list[tuple[str, list[str]]]:
    """``(layer, module patterns)`` from the ```layers block of docs/architecture.md, lowest first."""
    text = (ROOT / "docs" / "architecture.md").read_text()
    block = re.search(r"```layers\n(.*?)```", text, re.S).group(1)
    return [(name.strip(), patterns.split()) for name, patterns in (line.split(":", 1) for line in block.splitlines())]


def module_files() -> dict[str, Path]:
    files = [p for d in SOURCES for p in (ROOT / d).rglob("*.py") if "vendor" not in p.parts] + [ROOT / "app.py"]
    out = {}
    for p in files:
        parts = list(p.relative_to(ROOT).with_suffix("").parts)
        out[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = p
    return out


def imports_of(name: str, path: Path, modules: set[str]) -> set[str]:
    """Modules of ours that ``name`` imports anywhere in its file."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                up = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*up, *([node.module] if node.module else [])])
            for a in node.names:
                if f"{base}.{a.name}" in modules:
                    out.add(f"{base}.{a.name}")
                elif a.name != "__version__":  # the root's version constant: no import of the front door
                    out.add(base)
    return {m for m in out if m in modules and m != name}


@functools.cache
def graph() -> dict[str, set[str]]:
    files = module_files()
    return {name: imports_of(name, path, set(files)) for name, path in files.items()}


def layer_of(module: str, table: list[tuple[str, list[str]]]) -> int:
    """The highest layer with a pattern that matches ``module`` (``synthvu_core.*.commands`` is the CLI's)."""
    best = max((i for i, (_, patterns) in enumerate(table) for p in patterns if fnmatch.fnmatchcase(module, p)),
               default=None)
    assert best is not None, f"{module}: in no layer of docs/architecture.md"
    return best


def circles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index, low, stack, on, out = {}, {}, [], set(), []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in edges[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while not comp or comp[-1] != v:
                comp.append(stack.pop())
                on.discard(comp[-1])
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in edges:
        if v not in index:
            visit(v)
    return out


def test_the_graph_sees_function_local_imports():
    edges = graph()
    assert "synthvu_core.data.build" in edges["synthvu_core.models.commands"]  # imported inside _train_locked
    assert len(edges) > 70


def test_no_import_circle():
    assert circles(graph()) == []


def test_no_import_from_a_lower_layer_to_a_higher_one():
    table = layers()
    bad = [
        f"{m} ({table[layer_of(m, table)][0]}) imports {t} ({table[layer_of(t, table)][0]})"
        for m, targets in graph().items() for t in sorted(targets)
        if layer_of(t, table) > layer_of(m, table)
    ]
    assert bad == []


def test_pages_read_only_the_dashboard_layer():
    table = layers()
    allowed = {name for name, _ in table if name in ("base", "dashboard", "pages")}
    bad = [
        f"{m} imports {t}" for m, targets in graph().items() if table[layer_of(m, table)][0] == "pages"
        for t in sorted(targets) if table[layer_of(t, table)][0] not in allowed
    ]
    assert bad == []
