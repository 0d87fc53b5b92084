"""The single-round router base class: a LangChain `Runnable` from a query to a `RoutingDecision`.

A router family implements one small scorer contract, `_predict_quality`, which
returns an expected quality per candidate for a batch of queries. Everything
else (the cost policy, batching, callbacks, async) lives here once; hyperparameters,
fitting and saving without pickle come from `RouterEstimator`, which the graph routers'
contract shares.
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Self, cast

import numpy as np
from langchain_core.messages import BaseMessage
from langchain_core.prompt_values import PromptValue
from langchain_core.runnables import Runnable, RunnableConfig
from langchain_core.runnables.config import ensure_config
from pydantic import BaseModel, ConfigDict, Field

from langchain_llmrouter.options import ROUTER_OPTIONS, check_option, check_options, misspelt_option
from langchain_llmrouter.routers.estimator import (
    SAVE_FORMAT,
    SAVE_VERSION,
    RouterEstimator,
    RouterParams,
)
from langchain_llmrouter.routers.policy import rank_candidates

if TYPE_CHECKING:
    from langchain_core.embeddings import Embeddings

    from langchain_llmrouter.candidates import CandidatePool, LLMCandidate

__all__ = [
    "SAVE_FORMAT",
    "SAVE_VERSION",
    "BaseRouter",
    "RouterInput",
    "RouterParams",
    "RoutingDecision",
    "query_text",
]

RouterInput = str | Sequence[BaseMessage] | PromptValue | dict[str, Any]
"""A query text, a list of messages (routed on the last user message), a prompt
value, or a dict with a ``"query"`` key."""


class RoutingDecision(BaseModel):
    """Which candidate a router chose for a query, and why."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    router: str
    """Name of the router that decided."""
    model: str
    """The chosen candidate."""
    scores: dict[str, float]
    """Predicted quality of every candidate."""
    costs: dict[str, float] = Field(default_factory=dict)
    """Estimated dollars per call for every candidate."""
    est_cost: float = 0.0
    """Estimated dollars for the chosen candidate."""
    cost_weight: float = 0.0
    """The cost weight the policy used."""
    budget: float | None = None
    """The per-call budget in dollars the policy used, if any."""
    ranking: list[str] = Field(default_factory=list)
    """All candidates, best first: the fallback order."""
    reason: str = ""
    """A one-line human explanation."""
    user_id: str | None = None
    """The user routed for, where the call named one."""
    personalised: bool = False
    """Whether the user's own state shaped the scores (a personalised router that knows
    the user); False for the population's choice (cold start, or any other router)."""

    def to_metadata(self) -> dict[str, Any]:
        """The decision as a plain dict for ``response_metadata["routing"]``."""
        return self.model_dump()


def query_text(value: RouterInput) -> str:
    """The text to route on for any accepted router input."""
    if isinstance(value, str):
        return value
    if isinstance(value, PromptValue):
        value = value.to_messages()
    if isinstance(value, dict):
        if "query" not in value:
            raise TypeError(f"a dict router input needs a 'query' key, got keys {sorted(value)}")
        return str(value["query"])
    if isinstance(value, Sequence) and all(isinstance(m, BaseMessage) for m in value):
        messages: list[BaseMessage] = list(value)  # type: ignore[arg-type]
        for message in reversed(messages):
            if message.type == "human":
                return message.text
        if messages:
            return messages[-1].text
        raise ValueError("cannot route an empty message list")
    raise TypeError(f"cannot route input of type {type(value).__name__}")


class BaseRouter(RouterEstimator, Runnable[RouterInput, RoutingDecision]):
    """A single-round router: predicts each candidate's quality, then applies the cost policy.

    Subclasses set `name`, define `Params` and an explicit keyword-only
    ``__init__`` that stores the same arguments, and implement `_fit` and
    `_predict_quality` (plus `_get_state` / `_set_state` if they learn anything).
    """

    name: str = "base"
    """Registry name (a class attribute; also the run name in traces)."""
    cost_aware: ClassVar[bool] = True
    """Whether the shared cost policy applies (fixed baselines ignore it)."""
    graph_router: ClassVar[bool] = False
    """Always False here; kept for code that read it. Routers that run as LangGraph graphs
    follow `langchain_llmrouter.graphs.base.BaseGraphRouter` instead (ask
    `langchain_llmrouter.routers.registry.router_kind` which contract a name follows)."""

    def __init__(
        self,
        *,
        cost_weight: float = 0.0,
        budget: float | None = None,
        embeddings: Embeddings | None = None,
    ) -> None:
        super().__init__(embeddings=embeddings)
        self.cost_weight = cost_weight
        self.budget = budget

    # --- scoring and routing --------------------------------------------------------------

    @abstractmethod
    def _predict_quality(
        self, queries: list[str], query_embeddings: np.ndarray | None
    ) -> np.ndarray:
        """Expected quality, shape (len(queries), n_candidates)."""

    def as_graph(
        self,
        candidates: CandidatePool,
        *,
        checkpointer: Any = None,
        store: Any = None,
        name: str | None = None,
        **kwargs: Any,
    ) -> Any:
        """The compiled LangGraph graph that runs this router (multi-round routers only).

        Single-round routers are used through `RouterChatModel` (or as a node via
        ``router.invoke``) instead, so here this raises TypeError.
        """
        raise TypeError(
            f"{self.name} is a single-round router: use it through RouterChatModel, "
            "or call router.invoke(query) inside a graph node"
        )

    def embed_queries(self, queries: Sequence[str]) -> np.ndarray:
        """Embed queries with this router's embedder (no disk cache: queries are live traffic)."""
        from langchain_llmrouter.embeddings import _embed, default_embeddings

        return _embed(self.embeddings or default_embeddings(), list(queries))

    def predict_quality(
        self, queries: Sequence[str], *, query_embeddings: np.ndarray | None = None
    ) -> np.ndarray:
        """Predicted quality of every candidate for each query, shape (n, n_candidates);
        calibrated when a quality calibration is attached
        (`langchain_llmrouter.routers.calibrate_quality`)."""
        self._check_fitted()
        queries = list(queries)
        if self.uses_embeddings and query_embeddings is None:
            query_embeddings = self.embed_queries(queries)
        added = getattr(self, "new_candidates_", None)  # `routers.new_candidates`
        if added is not None:
            predicted = added.predict(self, queries, query_embeddings)
        else:
            predicted = np.asarray(self._predict_quality(queries, query_embeddings), np.float64)
        calibration = getattr(self, "quality_calibration_", None)
        return predicted if calibration is None else calibration.apply(predicted)

    def add_candidate(self, candidate: LLMCandidate, answers: Any, **kwargs: Any) -> Self:
        """Add a candidate from its scores on a few queries, without refitting (see
        `langchain_llmrouter.routers.new_candidates.add_candidate` for the arguments)."""
        from langchain_llmrouter.routers.new_candidates import add_candidate

        return cast(Self, add_candidate(self, candidate, answers, **kwargs))

    def estimate_costs(self, queries: Sequence[str]) -> np.ndarray:
        """Estimated dollars per call, shape (n, n_candidates), from prompt length and prices."""
        self._check_fitted()
        return self._estimate_costs(queries)

    def route_batch(
        self,
        queries: Sequence[RouterInput],
        *,
        cost_weight: float | None = None,
        budget: float | None = None,
        query_embeddings: np.ndarray | None = None,
        user_id: str | None = None,
    ) -> list[RoutingDecision]:
        """Route many queries at once (one vectorised scoring pass).

        Args:
            queries: Query texts (or any `RouterInput`).
            cost_weight: Overrides the router's ``cost_weight``.
            budget: Overrides the router's ``budget`` (dollars per call).
            query_embeddings: Precomputed embeddings for embedding-based routers.
            user_id: Who asks: a personalised router scores for this user where it knows
                them (every other router ignores it, as is).
        """
        texts = [query_text(q) for q in queries]
        if not texts:
            return []
        cost_weight, budget, user_id = (
            check_option("cost_weight", cost_weight),
            check_option("budget", budget),
            check_option("user_id", user_id),
        )
        weight = self.cost_weight if cost_weight is None else cost_weight
        limit = self.budget if budget is None else budget
        predicted = self._quality_for(texts, query_embeddings, user_id)
        costs = self.estimate_costs(texts)
        if self.cost_aware:
            order = rank_candidates(predicted, costs, weight, budget=limit)
        else:
            order = rank_candidates(predicted, np.zeros_like(costs), 0.0)
        personalised = self._is_personalised(user_id)
        return [
            self._decision(
                predicted[i],
                costs[i],
                order[i],
                weight,
                limit,
                user_id=user_id,
                personalised=personalised,
            )
            for i in range(len(texts))
        ]

    def _quality_for(
        self, texts: list[str], query_embeddings: np.ndarray | None, user_id: str | None
    ) -> np.ndarray:
        """Predicted quality for ``user_id`` (personalised routers override this)."""
        return self.predict_quality(texts, query_embeddings=query_embeddings)

    def _is_personalised(self, user_id: str | None) -> bool:
        """Whether scores for ``user_id`` are the user's own (never, here)."""
        return False

    def route(self, query: RouterInput, **kwargs: Any) -> RoutingDecision:
        """Route one query (see `route_batch` for the keyword arguments)."""
        return self.route_batch([query], **kwargs)[0]

    def _decision(
        self,
        predicted: np.ndarray,
        costs: np.ndarray,
        order: np.ndarray,
        weight: float,
        budget: float | None,
        *,
        user_id: str | None = None,
        personalised: bool = False,
    ) -> RoutingDecision:
        names = self.candidates_
        best = int(order[0])
        scores = {n: round(float(v), 6) for n, v in zip(names, predicted, strict=True)}
        return RoutingDecision(
            router=self.name,
            model=names[best],
            scores=scores,
            costs={n: float(c) for n, c in zip(names, costs, strict=True)},
            est_cost=float(costs[best]),
            cost_weight=weight if self.cost_aware else 0.0,
            budget=budget if self.cost_aware else None,
            ranking=[names[int(j)] for j in order],
            reason=self._reason(names[best], scores, weight, budget)
            + (f" for user {user_id}" if personalised else ""),
            user_id=user_id,
            personalised=personalised,
        )

    def _reason(
        self, chosen: str, scores: dict[str, float], weight: float, budget: float | None
    ) -> str:
        text = f"{self.name}: {chosen} has predicted quality {scores[chosen]:.3f}"
        if self.cost_aware and weight:
            text += f" at cost_weight {weight:g}"
        if self.cost_aware and budget is not None:
            text += f" within budget ${budget:g}"
        return text

    # --- Runnable -------------------------------------------------------------------------

    @staticmethod
    def _overrides(
        config: RunnableConfig | None, kwargs: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        """The per-call options: keyword arguments win over ``configurable``."""
        kwargs = {k: v for k, v in (kwargs or {}).items() if v is not None}
        unknown = sorted(set(kwargs) - set(ROUTER_OPTIONS))
        if unknown:
            misspelt_option(unknown, ROUTER_OPTIONS)
            raise TypeError(
                f"{', '.join(unknown)}: not an option of router.invoke; "
                f"valid: {', '.join(ROUTER_OPTIONS)}"
            )
        configurable = ensure_config(config).get("configurable", {})
        options = {k: configurable[k] for k in ROUTER_OPTIONS if configurable.get(k) is not None}
        return check_options({**options, **kwargs})

    def invoke(
        self, input: RouterInput, config: RunnableConfig | None = None, **kwargs: Any
    ) -> RoutingDecision:
        """Route one query with ``cost_weight``/``budget``/``user_id`` from keywords or
        ``configurable``."""
        overrides = self._overrides(config, kwargs)
        return self._call_with_config(
            lambda x: self.route(x, **overrides), input, config, run_type="chain"
        )

    def batch(
        self,
        inputs: list[RouterInput],
        config: RunnableConfig | list[RunnableConfig] | None = None,
        *,
        return_exceptions: bool = False,
        **kwargs: Any,
    ) -> list[RoutingDecision]:
        """Route many queries in one vectorised pass (configs may differ per input)."""
        if not inputs:
            return []
        configs = config if isinstance(config, list) else [ensure_config(config)] * len(inputs)
        groups: dict[tuple[tuple[str, Any], ...], list[int]] = {}
        for i, cfg in enumerate(configs):
            groups.setdefault(tuple(sorted(self._overrides(cfg, kwargs).items())), []).append(i)

        results: list[Any] = [None] * len(inputs)
        for key, idx in groups.items():
            overrides = dict(key)

            def route_group(
                batch_inputs: list[RouterInput], overrides: dict[str, Any] = overrides
            ) -> list[RoutingDecision]:
                return self.route_batch(batch_inputs, **overrides)

            decided = self._batch_with_config(
                route_group,  # type: ignore[arg-type]
                [inputs[i] for i in idx],
                [configs[i] for i in idx],
                return_exceptions=return_exceptions,
                run_type="chain",
            )
            for i, d in zip(idx, decided, strict=True):
                results[i] = d
        return results

    async def abatch(
        self,
        inputs: list[RouterInput],
        config: RunnableConfig | list[RunnableConfig] | None = None,
        *,
        return_exceptions: bool = False,
        **kwargs: Any,
    ) -> list[RoutingDecision]:
        """Async twin of `batch` (runs the vectorised pass in a worker thread)."""
        import asyncio

        return await asyncio.to_thread(
            self.batch, inputs, config, return_exceptions=return_exceptions, **kwargs
        )

    @property
    def InputType(self) -> Any:
        return RouterInput

    @property
    def OutputType(self) -> type[RoutingDecision]:
        return RoutingDecision

    def get_name(self, suffix: str | None = None, *, name: str | None = None) -> str:
        """The run name shown in traces."""
        base = name or self.name
        return f"{base}{suffix}" if suffix else base

    # --- persistence ----------------------------------------------------------------------

    @classmethod
    def load(cls, directory: str | Path, *, embeddings: Embeddings | None = None) -> Self:
        """Load a router saved with `save`; never unpickles or runs code from the files.

        Called on `BaseRouter` itself, it loads whichever router the files hold, as
        `langchain_llmrouter.routers.registry.load_router` does (kept for compatibility;
        that may be a graph router).

        Args:
            directory: The directory `save` wrote.
            embeddings: The embedder, required if the router was trained with a custom one.
        """
        if cls is BaseRouter:
            from langchain_llmrouter.routers.registry import load_router

            return cast(Self, load_router(directory, embeddings=embeddings))
        return super().load(directory, embeddings=embeddings)
