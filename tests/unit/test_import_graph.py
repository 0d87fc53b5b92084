"""The package's import graph: no cycles, and no lower layer importing a higher one.

Built from the source with `ast` (no imports run): one edge per module-level import between
modules of `langchain_llmrouter` and the repository's `data_pipeline` entry points. Imports
inside functions and under ``if TYPE_CHECKING:`` are the way to reach upward lazily, so they
are not edges.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
ROOTS = {
    "langchain_llmrouter": REPO / "src" / "langchain_llmrouter",
    "data_pipeline": REPO / "data_pipeline",
}
# Lowest first: a module may import its own layer and the layers before it, never a later one.
LAYERS = [
    ("errors", "jsonl", "options", "_optional", "tokens"),
    ("candidates", "config", "embeddings", "static_embeddings", "fallback"),
    ("data",),
    ("routers", "evaluation", "testing", "calibration", "personal"),
    ("graphs", "chat_model", "middleware"),
    ("pipeline",),  # it asks candidates to check their own answers with AutoMix's verifier
    (
        "cli",
        "demo",
        "serve",
        "bench",
        "chat",
        "eval",
        "infer",
        "list_routers",
        "train",
        "calibrate",
        "simulate_users",
    ),
]


def _module_name(path: Path) -> str:
    for root, directory in ROOTS.items():
        if path.is_relative_to(directory):
            parts = [root, *path.relative_to(directory).with_suffix("").parts]
            return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
    raise AssertionError(path)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for d in ROOTS.values() for p in sorted(d.rglob("*.py"))}


def _imports(tree: ast.Module, package: str) -> list[str]:
    """Names imported at module level (``from a import b`` gives both ``a`` and ``a.b``)."""
    found: list[str] = []

    def visit(body: list[ast.stmt]) -> None:
        for stmt in body:
            if isinstance(stmt, ast.Import):
                found.extend(alias.name for alias in stmt.names)
            elif isinstance(stmt, ast.ImportFrom):
                base = stmt.module or ""
                if stmt.level:
                    anchor = package.rsplit(".", stmt.level - 1)[0] if stmt.level > 1 else package
                    base = f"{anchor}.{base}" if base else anchor
                found.append(base)
                found.extend(f"{base}.{alias.name}" for alias in stmt.names)
            elif isinstance(stmt, ast.If) and "TYPE_CHECKING" not in ast.unparse(stmt.test):
                visit(stmt.body)
                visit(stmt.orelse)
            elif isinstance(stmt, ast.Try):
                visit(stmt.body)
                for handler in stmt.handlers:
                    visit(handler.body)

    visit(tree.body)
    return found


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        targets = _imports(ast.parse(path.read_text(encoding="utf-8")), package)
        graph[name] = {t for t in targets if t in modules and t != name}
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def connect(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph[node]):
            if nxt not in index:
                connect(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
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

    for node in sorted(graph):
        if node not in index:
            connect(node)
    return found


def _layer(module: str) -> int | None:
    parts = module.split(".")
    if parts[0] != "langchain_llmrouter" or len(parts) < 2 or parts[-1] == "__main__":
        return None  # `python -m` entry points sit on top of everything
    for level, names in enumerate(LAYERS):
        if parts[1] in names:
            return level
    return None


def test_the_graph_covers_the_package() -> None:
    graph = _graph()
    assert len(graph) > 100
    assert "langchain_llmrouter.routers.knn" in graph
    assert "langchain_llmrouter.routers.base" in graph["langchain_llmrouter.routers.knn"]


def test_there_are_no_import_cycles() -> None:
    assert _cycles(_graph()) == []


def test_the_cycle_finder_finds_a_cycle() -> None:
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_every_subpackage_and_module_has_a_layer() -> None:
    unplaced = sorted(
        {
            m.split(".")[1]
            for m in _graph()
            if m.startswith("langchain_llmrouter.")
            and not m.endswith("__main__")
            and _layer(m) is None
        }
    )
    assert unplaced == []


@pytest.mark.parametrize("level", range(len(LAYERS)))
def test_no_layer_imports_a_higher_one(level: int) -> None:
    upward = [
        f"{module} -> {target}"
        for module, targets in _graph().items()
        if _layer(module) == level
        for target in sorted(targets)
        if (_layer(target) or 0) > level
    ]
    assert upward == []
