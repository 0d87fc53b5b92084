"""The registry's ``automix``: AutoMix's policy fitted from routing data, run as a graph.

`AutoMixRouter` is `langchain_llmrouter.routers.automix.AutoMixFitter` (hyperparameters,
fitting, saving; no LangGraph) plus `as_graph`, which builds
`langchain_llmrouter.graphs.automix`'s graph with the fitted cascade and policy.
"""

from __future__ import annotations

from typing import Any

from langgraph.graph.state import CompiledStateGraph

from langchain_llmrouter.candidates import CandidatePool
from langchain_llmrouter.graphs.automix import build_automix_graph
from langchain_llmrouter.graphs.base import BaseGraphRouter
from langchain_llmrouter.routers.automix import AutoMixFitter, AutoMixParams

__all__ = ["AutoMixParams", "AutoMixRouter"]


class AutoMixRouter(AutoMixFitter, BaseGraphRouter):
    """``automix``: fits AutoMix's escalation policy from routing data with self-verification
    results (`AutoMixFitter`), and runs it as the AutoMix graph (`as_graph`).

    Its training data needs a ``verification_score`` per row of every verified stage
    (`langchain_llmrouter.pipeline.self_verification.add_self_verification` adds it).
    """

    def as_graph(
        self,
        candidates: CandidatePool,
        *,
        checkpointer: Any = None,
        store: Any = None,
        name: str | None = None,
        **overrides: Any,
    ) -> CompiledStateGraph:
        """The AutoMix graph with the fitted cascade and policy (see `build_automix_graph`;
        ``overrides`` are its keyword arguments, e.g. ``thresholds=[0.3]`` or
        ``verify_temperature=0.7``)."""
        self._check_fitted()
        params: dict[str, Any] = {
            "cascade": self.cascade_,
            "policy": self.policy_,
            "verify_samples": self.verify_samples,
            "max_cost": self.max_cost,
            **overrides,
        }
        if "thresholds" in overrides and "policy" not in overrides:
            del params["policy"]
        return build_automix_graph(
            candidates=candidates,
            checkpointer=checkpointer,
            store=store,
            name=name or self.name,
            **params,
        )
