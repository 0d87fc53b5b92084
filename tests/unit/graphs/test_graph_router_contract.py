"""The graph routers' contract (`BaseGraphRouter`): what they have and lack, how the registry
tells them apart, their save/load round trip, the moved import paths, and the layers."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from langchain_llmrouter import (
    BaseRouter,
    CandidatePool,
    GraphRouterError,
    LLMCandidate,
    RouterLoadError,
    RoutingDataset,
    UnknownRouterError,
    create_router,
    get_router_class,
    load_router,
)
from langchain_llmrouter.graphs.base import SINGLE_ROUND_API, BaseGraphRouter
from langchain_llmrouter.routers.estimator import RouterEstimator
from langchain_llmrouter.routers.registry import builtin_routers, router_kind

SRC = Path(__file__).resolve().parents[3] / "src" / "langchain_llmrouter"
GRAPH_ONLY = ["automix", "llmmultiroundrouter", "router_r1"]
"""Registry names of the routers that only run as graphs."""
GRAPH = {*GRAPH_ONLY, "knnmultiroundrouter"}
MULTIROUND_NAMES = sorted(
    [
        "MultiRoundSettings",
        "MultiRoundState",
        "RouteChoice",
        "SubAnswer",
        "SubQuestionTask",
        "aaggregate",
        "aanswer_subquestion",
        "adecompose",
        "adecompose_and_route",
        "afinish",
        "after_decompose",
        "aggregate",
        "answer_subquestion",
        "aroute",
        "build_knn_multiround_graph",
        "build_llm_multiround_graph",
        "decompose",
        "decompose_and_route",
        "fan_out",
        "finish",
        "merge_sub_answers",
        "route",
    ]
)
"""The public names of `langchain_llmrouter.graphs.multiround` before it was split."""


def test_the_registry_reports_each_builtin_routers_kind() -> None:
    kinds = {name: router_kind(name) for name in builtin_routers()}
    assert {name for name, kind in kinds.items() if kind == "graph"} == GRAPH
    assert {name for name, kind in kinds.items() if kind == "single"} == set(kinds) - GRAPH
    for name, kind in kinds.items():
        cls = get_router_class(name)
        assert issubclass(cls, BaseGraphRouter if kind == "graph" else BaseRouter)
        assert cls.graph_router is (kind == "graph")  # the old flag still reads right
    assert router_kind("RouTer_R1") == "graph"
    with pytest.raises(UnknownRouterError, match="nope"):
        router_kind("nope")


@pytest.mark.parametrize("name", GRAPH_ONLY)
def test_graph_routers_have_no_single_round_api(name: str) -> None:
    router = create_router(name)
    assert isinstance(router, BaseGraphRouter) and isinstance(router, RouterEstimator)
    assert not isinstance(router, BaseRouter)
    for method in ("route_batch", "_predict_quality", "predict_quality", "invoke", "batch"):
        assert method in SINGLE_ROUND_API
        assert not hasattr(router, method), method
        assert not hasattr(type(router), method), method
    # Reaching for one says what to do instead.
    for call in (lambda: router.invoke("Q?"), lambda: router.route_batch(["Q?"])):  # type: ignore[attr-defined]
        with pytest.raises(GraphRouterError, match=f"{name} is a multi-round router.*as_graph"):
            call()
    with pytest.raises(AttributeError, match="no attribute 'nonsense'"):
        router.nonsense  # type: ignore[attr-defined]  # noqa: B018
    assert callable(router.as_graph)


def test_knn_multiround_router_follows_both_contracts() -> None:
    cls = get_router_class("knnmultiroundrouter")
    assert issubclass(cls, BaseRouter) and issubclass(cls, BaseGraphRouter)
    assert router_kind("knnmultiroundrouter") == "graph"  # the CLI runs its graph
    assert hasattr(cls, "route_batch") and hasattr(cls, "as_graph")


def test_a_contract_without_as_graph_cannot_be_built() -> None:
    class Incomplete(BaseGraphRouter):
        name = "incomplete"

        def __init__(self) -> None:
            super().__init__()

        def _fit(self, dataset: Any, query_embeddings: Any) -> None:
            pass

    with pytest.raises(TypeError, match="as_graph"):
        Incomplete()  # type: ignore[abstract]


# --- saving and loading -------------------------------------------------------------------


def _pool() -> CandidatePool:
    return CandidatePool(
        [
            LLMCandidate(name="small", model="small", input_price=0.1, output_price=0.1),
            LLMCandidate(name="large", model="large", input_price=3.0, output_price=3.0),
        ]
    )


def _verified(n: int = 200) -> RoutingDataset:
    """Two candidates; the small one is right on even queries and says so when it is."""
    small = (np.arange(n) % 2 == 0).astype(float)
    perf = np.stack([small, np.ones(n)], axis=1)
    conf = np.stack([np.where(small == 1, 1.0, 0.0), np.full(n, np.nan)], axis=1)
    pool = _pool()
    return RoutingDataset(
        queries=[f"q{i}" for i in range(n)],
        candidates=["small", "large"],
        performance=perf,
        cost=np.tile([1e-5, 3e-4], (n, 1)),
        source="planted.jsonl",
        candidate_specs={c.name: c for c in pool},
        verification=conf,
    )


def _fitted(name: str) -> BaseGraphRouter:
    router = create_router(name)
    assert isinstance(router, BaseGraphRouter)
    if router.trainable:
        return router.fit(_verified())
    return router.fit_candidates(_pool())


@pytest.mark.parametrize("name", GRAPH_ONLY)
def test_graph_router_save_load_round_trip(name: str, tmp_path: Path) -> None:
    router = _fitted(name)
    saved = router.save(tmp_path / name)
    assert sorted(p.name for p in saved.iterdir()) == ["arrays.safetensors", "router.json"]
    document = json.loads((saved / "router.json").read_text(encoding="utf-8"))
    assert document["format"] == "langchain-llmrouter/router" and document["router"] == name
    assert document["candidates"] == ["small", "large"]

    for loaded in (
        load_router(saved),
        load_router(name, saved),
        type(router).load(saved),
        BaseGraphRouter.load(saved),
        BaseRouter.load(saved),  # on the base class: whatever the files hold (compatibility)
    ):
        assert type(loaded) is type(router)
        assert loaded.is_fitted and loaded.candidates_ == router.candidates_
        assert loaded.get_params() == router.get_params()
        np.testing.assert_array_equal(loaded.input_price_, router.input_price_)
    if name == "automix":
        assert load_router(saved).policy_ == router.policy_  # type: ignore[union-attr]


def test_loading_checks_the_kind_and_the_name(tmp_path: Path) -> None:
    graph_dir = _fitted("llmmultiroundrouter").save(tmp_path / "llm")
    single = create_router("smallest_llm").fit_candidates(_pool())
    single_dir = single.save(tmp_path / "smallest")
    with pytest.raises(RouterLoadError, match="holds a smallest_llm router, not a BaseGraphRouter"):
        BaseGraphRouter.load(single_dir)
    with pytest.raises(
        RouterLoadError, match="holds a llmmultiroundrouter router, not smallest_llm"
    ):
        load_router("smallest_llm", graph_dir)
    with pytest.raises(RouterLoadError, match="holds a smallest_llm router, not router_r1"):
        load_router("router_r1", single_dir)
    assert isinstance(BaseRouter.load(single_dir), type(single))


# --- moved import paths ---------------------------------------------------------------------


def test_old_import_paths_still_resolve() -> None:
    from langchain_llmrouter.graphs import (
        automix,
        multiround,
        multiround_knn,
        multiround_llm,
        multiround_router,
        router_r1_router,
    )
    from langchain_llmrouter.pipeline import self_verification
    from langchain_llmrouter.routers import multiround as old_multiround
    from langchain_llmrouter.routers import router_r1 as old_router_r1

    assert old_router_r1.RouterR1Router is router_r1_router.RouterR1Router
    assert old_router_r1.policy_client is router_r1_router.policy_client
    for name in ("KNNMultiRoundRouter", "LLMMultiRoundRouter", "MultiRoundParams"):
        assert getattr(old_multiround, name) is getattr(multiround_router, name)
    with pytest.raises(AttributeError):
        _ = old_router_r1.nope  # type: ignore[attr-defined]
    assert automix.add_self_verification is self_verification.add_self_verification
    assert sorted(multiround.__all__) == MULTIROUND_NAMES
    for name in MULTIROUND_NAMES:
        assert getattr(multiround, name) is not None
    assert multiround.build_knn_multiround_graph is multiround_knn.build_knn_multiround_graph
    assert multiround.build_llm_multiround_graph is multiround_llm.build_llm_multiround_graph


def test_the_shims_do_not_import_the_graphs() -> None:
    code = (
        "import sys\n"
        "import langchain_llmrouter.routers.router_r1, langchain_llmrouter.routers.multiround\n"
        "import langchain_llmrouter.routers.automix, langchain_llmrouter.routers.base\n"
        "from langchain_llmrouter import load_router, available_routers\n"
        "available_routers()\n"
        "print(sorted(m for m in sys.modules if m.startswith('langchain_llmrouter.graphs')))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True
    )
    assert result.stdout.strip().splitlines()[-1] == "[]"


# --- layers ---------------------------------------------------------------------------------

LOWER = ("candidates", "data", "embeddings", "routers", "evaluation")
HIGHER = ("graphs", "chat_model", "cli", "demo")


def _top_level_imports(tree: ast.Module) -> list[str]:
    """Modules imported at module level, outside ``if TYPE_CHECKING:`` blocks."""
    found: list[str] = []

    def visit(body: list[ast.stmt]) -> None:
        for stmt in body:
            if isinstance(stmt, ast.Import):
                found.extend(alias.name for alias in stmt.names)
            elif isinstance(stmt, ast.ImportFrom) and stmt.module:
                found.append(stmt.module)
                found.extend(f"{stmt.module}.{alias.name}" for alias in stmt.names)
            elif isinstance(stmt, ast.If) and "TYPE_CHECKING" not in ast.unparse(stmt.test):
                visit(stmt.body)
                visit(stmt.orelse)
            elif isinstance(stmt, ast.Try):
                visit(stmt.body)

    visit(tree.body)
    return found


def _modules(layer: str) -> list[Path]:
    path = SRC / layer
    return sorted(path.rglob("*.py")) if path.is_dir() else [path.with_suffix(".py")]


@pytest.mark.parametrize("layer", LOWER)
def test_lower_layers_do_not_import_higher_ones_at_module_level(layer: str) -> None:
    higher = [f"langchain_llmrouter.{h}" for h in HIGHER]
    files = [f for f in _modules(layer) if f.is_file()]
    assert files, layer
    for file in files:
        imports = _top_level_imports(ast.parse(file.read_text(encoding="utf-8")))
        upward = [m for m in imports if any(m == h or m.startswith(h + ".") for h in higher)]
        assert not upward, f"{file.relative_to(SRC)} imports {upward}"


def test_routers_automix_never_imports_the_graphs() -> None:
    tree = ast.parse((SRC / "routers" / "automix.py").read_text(encoding="utf-8"))
    modules = [n.module or "" for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)]
    modules += [a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names]
    assert modules and not [m for m in modules if "graphs" in m or m == "importlib"]
