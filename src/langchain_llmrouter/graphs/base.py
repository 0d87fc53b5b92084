"""The graph routers' contract: `BaseGraphRouter`, beside the single-round `BaseRouter`.

A graph router decides while it calls LLMs, so it never returns one routing decision: it
builds a compiled LangGraph graph for a candidate pool (`BaseGraphRouter.as_graph`). It
shares hyperparameters, fitting and saving with `BaseRouter` (`RouterEstimator`): same
registry, same ``router.json`` + ``arrays.safetensors`` files, same `load_router`.
"""

from __future__ import annotations

from abc import abstractmethod
from typing import TYPE_CHECKING, Any, ClassVar

from langchain_llmrouter.errors import GraphRouterError
from langchain_llmrouter.routers.estimator import RouterEstimator

if TYPE_CHECKING:
    from langgraph.graph.state import CompiledStateGraph

    from langchain_llmrouter.candidates import CandidatePool

SINGLE_ROUND_API = frozenset(
    {
        "invoke",
        "ainvoke",
        "batch",
        "abatch",
        "stream",
        "astream",
        "route",
        "route_batch",
        "predict_quality",
        "_predict_quality",
    }
)
"""`BaseRouter` methods a graph router does not have; asking for one raises
`GraphRouterError`, which says to use `as_graph` instead."""


class _SingleRoundAttributeError(GraphRouterError, AttributeError):
    """`GraphRouterError` for a missing single-round method (an `AttributeError` too, so
    ``hasattr(graph_router, "route_batch")`` is False)."""


class BaseGraphRouter(RouterEstimator):
    """A router that runs as a LangGraph graph (multi-round routers: Router-R1, AutoMix, ...).

    Subclasses set `name`, define `Params` and an explicit keyword-only ``__init__`` that
    stores the same arguments, and implement `as_graph` and `_fit` (which may learn nothing:
    set ``trainable = False`` and `fit_candidates` only records the candidates). A
    graph router has no ``invoke``, ``route_batch`` or ``_predict_quality``: reaching for
    one raises `GraphRouterError`.
    """

    name = "graph"
    graph_router: ClassVar[bool] = True
    """Always True here; kept for code that read it (ask
    `langchain_llmrouter.routers.registry.router_kind`, or check the class)."""

    @abstractmethod
    def as_graph(
        self,
        candidates: CandidatePool,
        *,
        checkpointer: Any = None,
        store: Any = None,
        name: str | None = None,
        **overrides: Any,
    ) -> CompiledStateGraph:
        """The compiled LangGraph graph that runs this router over ``candidates``.

        Its input is ``{"question": ...}`` or ``{"messages": [...]}``; wrap it in
        `RouterGraphChatModel` to use it as a chat model.

        Args:
            candidates: The candidate pool the graph calls.
            checkpointer: A LangGraph checkpointer (to resume interrupted runs).
            store: A LangGraph store.
            name: The compiled graph's name (default: the router's).
            **overrides: Hyperparameters or other builder arguments for this graph only.
        """

    if not TYPE_CHECKING:  # runtime only: type checkers should see these names as absent

        def __getattr__(self, attribute: str) -> Any:
            if attribute in SINGLE_ROUND_API:
                raise _SingleRoundAttributeError(type(self).name)
            raise AttributeError(f"{type(self).__name__!r} object has no attribute {attribute!r}")
