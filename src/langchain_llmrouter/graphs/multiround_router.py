"""The registry's multi-round routers: ``knnmultiroundrouter`` and ``llmmultiroundrouter``.

They hold the hyperparameters (and, for the kNN one, the fitted kNN part) and build their
graphs from `langchain_llmrouter.graphs.multiround_knn` and
`langchain_llmrouter.graphs.multiround_llm` with ``as_graph``.
"""

from __future__ import annotations

from typing import Any, Literal

from langchain_core.language_models import BaseChatModel
from langgraph.graph.state import CompiledStateGraph
from pydantic import Field

from langchain_llmrouter.candidates import CandidatePool
from langchain_llmrouter.graphs.base import BaseGraphRouter
from langchain_llmrouter.graphs.multiround_knn import build_knn_multiround_graph
from langchain_llmrouter.graphs.multiround_llm import build_llm_multiround_graph
from langchain_llmrouter.routers.estimator import RouterParams
from langchain_llmrouter.routers.knn import KNNParams, KNNRouter


class MultiRoundParams(RouterParams):
    """Hyperparameters both multi-round routers add."""

    llm: str | None = None
    """Candidate that decomposes and aggregates (None: the pool's cheapest)."""
    max_subquestions: int = Field(default=4, ge=1)
    """Most sub-questions a question is split into."""
    max_cost: float | None = Field(default=None, gt=0)
    """Spending bound per question in dollars (None: no bound)."""


class KNNMultiRoundParams(KNNParams, MultiRoundParams):
    """Hyperparameters of `KNNMultiRoundRouter`: the kNN ones plus the multi-round ones."""


class KNNMultiRoundRouter(KNNRouter, BaseGraphRouter):
    """``knnmultiroundrouter``: a kNN router that answers through the kNN multi-round graph.

    Training fits the kNN part (``llmrouter train --router knnmultiroundrouter``); a fitted
    router still routes single queries like ``knnrouter`` (it is a `KNNRouter`), and
    `as_graph` builds the graph that decomposes, routes each sub-question with this router,
    and aggregates. Both contracts apply, and the registry counts it a graph router.
    """

    name = "knnmultiroundrouter"
    Params = KNNMultiRoundParams
    graph_router = True

    def __init__(
        self,
        *,
        k: int = 50,
        weights: Literal["uniform", "distance"] = "distance",
        metric: Literal["cosine", "l2"] = "cosine",
        dims: int | None = None,
        index: Literal["auto", "exact", "flat", "hnsw", "ivf"] = "exact",
        hnsw_m: int = 32,
        hnsw_ef_construction: int = 80,
        hnsw_ef_search: int = 128,
        ivf_nlist: int | None = None,
        ivf_nprobe: int = 32,
        index_code: str | None = None,
        cost_weight: float = 0.0,
        budget: float | None = None,
        llm: str | None = None,
        max_subquestions: int = 4,
        max_cost: float | None = None,
        embeddings: Any = None,
    ) -> None:
        super().__init__(
            k=k,
            weights=weights,
            metric=metric,
            dims=dims,
            index=index,
            hnsw_m=hnsw_m,
            hnsw_ef_construction=hnsw_ef_construction,
            hnsw_ef_search=hnsw_ef_search,
            ivf_nlist=ivf_nlist,
            ivf_nprobe=ivf_nprobe,
            index_code=index_code,
            cost_weight=cost_weight,
            budget=budget,
            embeddings=embeddings,
        )
        self.llm = llm
        self.max_subquestions = max_subquestions
        self.max_cost = max_cost

    def as_graph(
        self,
        candidates: CandidatePool,
        *,
        llm: BaseChatModel | str | None = None,
        checkpointer: Any = None,
        store: Any = None,
        name: str | None = None,
        **overrides: Any,
    ) -> CompiledStateGraph:
        """The kNN multi-round graph, with this router routing the sub-questions.

        Args:
            candidates: The pool that answers (it must hold every candidate of this router).
            llm: The helper LLM (default: the ``llm`` hparam, else the pool's cheapest).
            checkpointer: A LangGraph checkpointer.
            store: A LangGraph store.
            name: The graph's name (default ``knn_multiround``).
            **overrides: Other `build_knn_multiround_graph` arguments (``max_subquestions``,
                ``max_cost``, ``cost_weight``, ``candidate_max_tokens``).
        """
        return build_knn_multiround_graph(
            router=self,
            **_graph_arguments(self, candidates, llm, checkpointer, store, overrides),
            name=name or "knn_multiround",
        )


def _graph_arguments(
    router: KNNMultiRoundRouter | LLMMultiRoundRouter,
    candidates: CandidatePool,
    llm: BaseChatModel | str | None,
    checkpointer: Any,
    store: Any,
    overrides: dict[str, Any],
) -> dict[str, Any]:
    """A registry router's builder arguments: its hparams, then the caller's overrides."""
    return {
        "candidates": candidates,
        "llm": llm or router.llm or candidates.cheapest(),
        "max_subquestions": router.max_subquestions,
        "max_cost": router.max_cost,
        "checkpointer": checkpointer,
        "store": store,
        **overrides,
    }


class LLMMultiRoundRouter(BaseGraphRouter):
    """``llmmultiroundrouter``: an LLM decomposes and routes; runs only as a graph.

    It learns nothing (``llmrouter train`` only records the candidates); `as_graph` builds
    the LLM multi-round graph. Asking it for a single routing decision raises
    `GraphRouterError`.
    """

    name = "llmmultiroundrouter"
    Params = MultiRoundParams
    trainable = False

    def __init__(
        self, *, llm: str | None = None, max_subquestions: int = 4, max_cost: float | None = None
    ) -> None:
        super().__init__()
        self.llm = llm
        self.max_subquestions = max_subquestions
        self.max_cost = max_cost

    def _fit(self, dataset: Any, query_embeddings: Any) -> None:
        """Nothing to learn."""

    def as_graph(
        self,
        candidates: CandidatePool,
        *,
        llm: BaseChatModel | str | None = None,
        checkpointer: Any = None,
        store: Any = None,
        name: str | None = None,
        **overrides: Any,
    ) -> CompiledStateGraph:
        """The LLM multi-round graph.

        Args:
            candidates: The pool the LLM chooses from.
            llm: The helper LLM (default: the ``llm`` hparam, else the pool's cheapest).
            checkpointer: A LangGraph checkpointer.
            store: A LangGraph store.
            name: The graph's name (default ``llm_multiround``).
            **overrides: Other `build_llm_multiround_graph` arguments (``max_subquestions``,
                ``max_cost``, ``candidate_max_tokens``).
        """
        return build_llm_multiround_graph(
            **_graph_arguments(self, candidates, llm, checkpointer, store, overrides),
            name=name or "llm_multiround",
        )
