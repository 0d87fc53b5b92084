"""The router registry: built-in names, lookup, and routers registered in code
(plugin discovery from files: tests/unit/test_plugins.py)."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

import numpy as np
import pytest

from langchain_llmrouter import (
    BaseRouter,
    CandidatePool,
    ConfigError,
    LLMCandidate,
    RoutingDataset,
    UnknownRouterError,
    available_routers,
    create_router,
    get_router_class,
    load_router,
    register_router,
)
from langchain_llmrouter.graphs.base import BaseGraphRouter
from langchain_llmrouter.routers import registry
from langchain_llmrouter.testing import check_params_match_init

ALL_BUILTIN = [
    "automix",
    "causallm_router",
    "elorouter",
    "ensemble",
    "gmtrouter",
    "graphrouter",
    "hybrid_llm",
    "knnmultiroundrouter",
    "knnrouter",
    "largest_llm",
    "llmmultiroundrouter",
    "mfrouter",
    "mlprouter",
    "oracle",
    "personalizedrouter",
    "randomrouter",
    "router_r1",
    "routerdc",
    "smallest_llm",
    "svmrouter",
]


def test_builtin_routers_are_available() -> None:
    assert registry.builtin_routers() == ALL_BUILTIN
    assert set(ALL_BUILTIN) <= set(available_routers())
    assert available_routers() == sorted(available_routers())


@pytest.mark.parametrize("name", [*ALL_BUILTIN, "KNNRouter", "Smallest_LLM"])
def test_get_router_class(name: str) -> None:
    cls = get_router_class(name)
    # Graph routers follow their own contract (tests/unit/graphs/test_graph_router_contract.py).
    graph = name.lower() in {"automix", "knnmultiroundrouter", "llmmultiroundrouter", "router_r1"}
    assert issubclass(cls, BaseGraphRouter if graph else BaseRouter)
    assert cls.name == name.lower()


def test_unknown_router_lists_valid_names() -> None:
    with pytest.raises(UnknownRouterError) as info:
        create_router("svm_router")
    message = str(info.value)
    assert "'svm_router'" in message
    assert all(name in message for name in ALL_BUILTIN)
    assert info.value.valid == available_routers()
    assert isinstance(info.value, KeyError)


@pytest.fixture
def _isolated_plugins(monkeypatch: pytest.MonkeyPatch) -> None:
    """Let a test register routers without leaking them into other tests."""
    monkeypatch.setattr(registry, "_PLUGINS", dict(registry._PLUGINS))


class _LastRouter(BaseRouter):
    """Always predicts the last candidate best (a minimal plugin)."""

    name: ClassVar[str] = "last_test"
    trainable: ClassVar[bool] = False

    def __init__(self, *, cost_weight: float = 0.0, budget: float | None = None) -> None:
        super().__init__(cost_weight=cost_weight, budget=budget)

    def _fit(self, dataset: RoutingDataset | None, query_embeddings: np.ndarray | None) -> None:
        pass

    def _predict_quality(
        self, queries: list[str], query_embeddings: np.ndarray | None
    ) -> np.ndarray:
        scores = np.zeros((len(queries), len(self.candidates_)))
        scores[:, -1] = 1.0
        return scores


@pytest.mark.usefixtures("_isolated_plugins")
def test_register_router_adds_a_custom_router(tmp_path: Path) -> None:
    assert "last_test" not in available_routers()
    assert register_router()(_LastRouter) is _LastRouter
    register_router("Last_Alias")(_LastRouter)
    assert {"last_test", "last_alias"} <= set(available_routers())
    assert {"last_alias", "last_test"} <= set(registry.plugin_routers())
    assert get_router_class("LAST_ALIAS") is _LastRouter

    pool = CandidatePool([LLMCandidate(name="x", model="x"), LLMCandidate(name="y", model="y")])
    router = create_router("last_test", cost_weight=0.0).fit_candidates(pool)
    assert isinstance(router, _LastRouter)
    assert router.route("hi").model == "y"
    with pytest.raises(ConfigError, match=r"hparam\.k"):
        create_router("last_test", k=3)
    loaded = load_router(router.save(tmp_path / "last"))
    assert isinstance(loaded, _LastRouter)
    assert loaded.route("hi").model == "y"


@pytest.mark.usefixtures("_isolated_plugins")
def test_plugin_may_override_a_builtin() -> None:
    register_router("oracle")(_LastRouter)
    assert get_router_class("oracle") is _LastRouter
    assert available_routers().count("oracle") == 1


# --- every registered single-round router: Params and __init__ agree -----------------------

SINGLE_ROUND = {
    "causallm_router",
    "elorouter",
    "ensemble",
    "gmtrouter",
    "graphrouter",
    "hybrid_llm",
    "knnrouter",
    "largest_llm",
    "mfrouter",
    "mlprouter",
    "oracle",
    "personalizedrouter",
    "randomrouter",
    "routerdc",
    "smallest_llm",
    "svmrouter",
}
"""The built-in single-round routers (the graph routers have a contract of their own)."""


@pytest.mark.parametrize("name", available_routers())
def test_params_defaults_match_init_defaults(name: str) -> None:
    # Every registered router, plugins found at collection included (custom_routers/).
    cls = get_router_class(name)
    if not (isinstance(cls, type) and issubclass(cls, BaseRouter)) or cls.graph_router:
        assert name not in SINGLE_ROUND
        pytest.skip(f"{name} is a graph router, not held to the single-round contract")
    check_params_match_init(cls)


def test_params_defaults_check_runs_on_every_single_round_builtin() -> None:
    checked = {
        name
        for name in registry.builtin_routers()
        if issubclass(cls := get_router_class(name), BaseRouter) and not cls.graph_router
    }
    assert checked == SINGLE_ROUND
