"""The router base class: a LangChain `Runnable` from a query to a `RoutingDecision`.

A router family implements one small scorer contract, `_predict_quality`, which
returns an expected quality per candidate for a batch of queries. Everything
else (the cost policy, batching, callbacks, async, saving without pickle) lives
here once. Trainable routers follow scikit-learn habits: ``__init__`` stores
arguments, ``fit`` learns, learned state ends in ``_``.
"""

from __future__ import annotations

import inspect
import json
import math
from abc import ABC, abstractmethod
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Self

import numpy as np
from langchain_core.messages import BaseMessage
from langchain_core.prompt_values import PromptValue
from langchain_core.runnables import Runnable, RunnableConfig
from langchain_core.runnables.config import ensure_config
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from langchain_llmrouter.candidates import DEFAULT_OUTPUT_TOKENS, CandidatePool, LLMCandidate
from langchain_llmrouter.errors import ConfigError, NotFittedError, RouterLoadError
from langchain_llmrouter.options import ROUTER_OPTIONS, check_option, check_options, misspelt_option
from langchain_llmrouter.routers.policy import rank_candidates

if TYPE_CHECKING:
    from langchain_core.embeddings import Embeddings

    from langchain_llmrouter.data import RoutingDataset

RouterInput = str | Sequence[BaseMessage] | PromptValue | dict[str, Any]
"""A query text, a list of messages (routed on the last user message), a prompt
value, or a dict with a ``"query"`` key."""

SAVE_FORMAT = "langchain-llmrouter/router"
SAVE_VERSION = 1


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

    def to_metadata(self) -> dict[str, Any]:
        """The decision as a plain dict for ``response_metadata["routing"]``."""
        return self.model_dump()


class RouterParams(BaseModel):
    """Base of each router's hyperparameter schema (validated in `fit` and configs)."""

    model_config = ConfigDict(extra="forbid")

    cost_weight: float = Field(default=0.0, ge=0)
    """Quality given up per dollar per 1,000 queries (0: best quality regardless of cost)."""
    budget: float | None = Field(default=None, gt=0)
    """Max estimated dollars per call; None for no limit."""


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


class BaseRouter(Runnable[RouterInput, RoutingDecision], ABC):
    """A single-round router: predicts each candidate's quality, then applies the cost policy.

    Subclasses set `name`, define `Params` and an explicit keyword-only
    ``__init__`` that stores the same arguments, and implement `_fit` and
    `_predict_quality` (plus `_get_state` / `_set_state` if they learn anything).
    """

    name: str = "base"
    """Registry name (a class attribute; also the run name in traces)."""
    Params: ClassVar[type[RouterParams]] = RouterParams
    """The hyperparameter schema."""
    trainable: ClassVar[bool] = True
    """Whether `fit` learns from routing data (False: it only records the candidates)."""
    uses_embeddings: ClassVar[bool] = False
    """Whether `_predict_quality` needs query embeddings."""
    cost_aware: ClassVar[bool] = True
    """Whether the shared cost policy applies (fixed baselines ignore it)."""
    graph_router: ClassVar[bool] = False
    """Whether the router answers by running a LangGraph graph (`as_graph`) instead of
    returning one routing decision (multi-round routers: Router-R1, AutoMix, ...)."""

    def __init__(
        self,
        *,
        cost_weight: float = 0.0,
        budget: float | None = None,
        embeddings: Embeddings | None = None,
    ) -> None:
        self.cost_weight = cost_weight
        self.budget = budget
        self.embeddings = embeddings

    # --- parameters -----------------------------------------------------------------------

    @classmethod
    def _param_names(cls) -> list[str]:
        sig = inspect.signature(cls.__init__)
        return [p for p in sig.parameters if p not in ("self", "embeddings")]

    def get_params(self) -> dict[str, Any]:
        """The constructor arguments (JSON-friendly), as in scikit-learn."""
        return {p: getattr(self, p) for p in self._param_names()}

    def set_params(self, **params: Any) -> Self:
        """Change constructor arguments; unknown names raise a clear error."""
        valid = self._param_names()
        for key, value in params.items():
            if key not in valid:
                raise ConfigError(
                    f"unknown parameter for {self.name}; valid: {', '.join(valid)}", field=key
                )
            setattr(self, key, value)
        return self

    @classmethod
    def from_params(
        cls,
        params: dict[str, Any],
        *,
        embeddings: Embeddings | None = None,
        source: str | None = None,
    ) -> Self:
        """Build from a config's ``hparam`` mapping, validating names and values."""
        cls.validate_params(params, source=source)
        kwargs = dict(params)
        if "embeddings" in inspect.signature(cls.__init__).parameters:
            kwargs["embeddings"] = embeddings
        return cls(**kwargs)

    @classmethod
    def validate_params(cls, params: dict[str, Any], *, source: str | None = None) -> RouterParams:
        """Validate hyperparameters against `Params`; errors name the field."""
        allowed = set(cls._param_names())
        for key in params:
            if key not in allowed:
                raise ConfigError(
                    f"unknown hyperparameter for {cls.name}; valid: {', '.join(sorted(allowed))}",
                    path=source,
                    field=f"hparam.{key}",
                )
        try:
            return cls.Params.model_validate(
                {k: v for k, v in params.items() if k in cls.Params.model_fields}
            )
        except ValidationError as exc:
            err = exc.errors()[0]
            loc = ".".join(str(p) for p in err["loc"])
            raise ConfigError(
                f"{err['msg']} (got {err.get('input')!r})", path=source, field=f"hparam.{loc}"
            ) from None

    # --- fitting --------------------------------------------------------------------------

    def fit(self, dataset: RoutingDataset, *, query_embeddings: np.ndarray | None = None) -> Self:
        """Learn from routing data.

        Args:
            dataset: Queries × candidates quality and cost.
            query_embeddings: Precomputed embeddings of ``dataset.queries`` (computed,
                with the disk cache, when needed and not given).
        """
        self.validate_params(self.get_params())
        if len(dataset) == 0:
            raise ValueError("cannot fit a router on an empty dataset")
        self._set_candidates(dataset.candidate_info(), dataset)
        if self.uses_embeddings and query_embeddings is None:
            from langchain_llmrouter.embeddings import embed_texts

            query_embeddings = embed_texts(dataset.queries, self.embeddings)
        if query_embeddings is not None and len(query_embeddings) != len(dataset):
            raise ValueError(
                f"query_embeddings has {len(query_embeddings)} rows for {len(dataset)} queries"
            )
        self._fit(dataset, query_embeddings)
        self.fitted_ = True
        return self

    def fit_candidates(self, candidates: CandidatePool | Sequence[LLMCandidate]) -> Self:
        """Set up an untrained router (baselines) from candidates alone."""
        if self.trainable:
            raise TypeError(f"{self.name} learns from routing data: call fit(dataset)")
        self.validate_params(self.get_params())
        self._set_candidates(list(candidates), None)
        self._fit(None, None)
        self.fitted_ = True
        return self

    def _set_candidates(
        self, candidates: Sequence[LLMCandidate], dataset: RoutingDataset | None
    ) -> None:
        self.candidates_ = [c.name for c in candidates]
        self.input_price_ = np.array([c.input_price for c in candidates], dtype=np.float64)
        self.output_price_ = np.array([c.output_price for c in candidates], dtype=np.float64)
        sizes = [c.size_billions for c in candidates]
        self.sizes_ = np.array([np.nan if s is None else s for s in sizes], dtype=np.float64)
        self.output_tokens_ = np.full(len(candidates), float(DEFAULT_OUTPUT_TOKENS))

    @abstractmethod
    def _fit(self, dataset: RoutingDataset | None, query_embeddings: np.ndarray | None) -> None:
        """Learn the scorer (``dataset`` is None for `fit_candidates`)."""

    @property
    def is_fitted(self) -> bool:
        """Whether `fit`, `fit_candidates` or `load` has run."""
        return getattr(self, "fitted_", False)

    def _check_fitted(self) -> None:
        if not self.is_fitted:
            hint = "fit(dataset)" if self.trainable else "fit(dataset) or fit_candidates(pool)"
            raise NotFittedError(
                f"{self.name} is not fitted yet: call {hint} or load a saved router"
            )

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
        """Predicted quality of every candidate for each query, shape (n, n_candidates)."""
        self._check_fitted()
        queries = list(queries)
        if self.uses_embeddings and query_embeddings is None:
            query_embeddings = self.embed_queries(queries)
        return np.asarray(self._predict_quality(queries, query_embeddings), dtype=np.float64)

    def estimate_costs(self, queries: Sequence[str]) -> np.ndarray:
        """Estimated dollars per call, shape (n, n_candidates), from prompt length and prices."""
        self._check_fitted()
        return self._estimate_costs(queries)

    def _estimate_costs(self, queries: Sequence[str]) -> np.ndarray:
        """`estimate_costs` without the fitted check (for use inside `_fit`)."""
        tokens_in = np.array([max(1, math.ceil(len(q) / 4)) for q in queries], dtype=np.float64)
        return (
            np.outer(tokens_in, self.input_price_) + self.output_tokens_ * self.output_price_
        ) / 1e6

    def route_batch(
        self,
        queries: Sequence[RouterInput],
        *,
        cost_weight: float | None = None,
        budget: float | None = None,
        query_embeddings: np.ndarray | None = None,
    ) -> list[RoutingDecision]:
        """Route many queries at once (one vectorised scoring pass).

        Args:
            queries: Query texts (or any `RouterInput`).
            cost_weight: Overrides the router's ``cost_weight``.
            budget: Overrides the router's ``budget`` (dollars per call).
            query_embeddings: Precomputed embeddings for embedding-based routers.
        """
        texts = [query_text(q) for q in queries]
        if not texts:
            return []
        cost_weight, budget = (
            check_option("cost_weight", cost_weight),
            check_option("budget", budget),
        )
        weight = self.cost_weight if cost_weight is None else cost_weight
        limit = self.budget if budget is None else budget
        predicted = self.predict_quality(texts, query_embeddings=query_embeddings)
        costs = self.estimate_costs(texts)
        if self.cost_aware:
            order = rank_candidates(predicted, costs, weight, budget=limit)
        else:
            order = rank_candidates(predicted, np.zeros_like(costs), 0.0)
        return [
            self._decision(predicted[i], costs[i], order[i], weight, limit)
            for i in range(len(texts))
        ]

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
            reason=self._reason(names[best], scores, weight, budget),
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
        """Route one query with ``cost_weight``/``budget`` from keywords or ``configurable``."""
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

    def _get_state(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        """Learned state beyond the candidates: (JSON-able dict, named arrays)."""
        return {}, {}

    def _set_state(self, meta: dict[str, Any], arrays: dict[str, np.ndarray]) -> None:
        """Restore what `_get_state` returned."""

    def save(self, directory: str | Path) -> Path:
        """Save to ``directory`` as ``router.json`` + ``arrays.safetensors`` (no pickle).

        Returns:
            The directory.
        """
        from safetensors.numpy import save_file

        from langchain_llmrouter import __version__
        from langchain_llmrouter.embeddings import embedding_name

        self._check_fitted()
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        meta, arrays = self._get_state()
        embedder = None
        if self.uses_embeddings:
            from langchain_llmrouter.embeddings import default_embeddings

            embedder = embedding_name(self.embeddings or default_embeddings())
        document = {
            "format": SAVE_FORMAT,
            "version": SAVE_VERSION,
            "package_version": __version__,
            "router": self.name,
            "params": self.get_params(),
            "candidates": self.candidates_,
            "embeddings": embedder,
            "state": meta,
        }
        base_arrays = {
            "_input_price": self.input_price_,
            "_output_price": self.output_price_,
            "_sizes": self.sizes_,
            "_output_tokens": self.output_tokens_,
        }
        save_file(
            {k: np.ascontiguousarray(v) for k, v in {**base_arrays, **arrays}.items()},
            directory / "arrays.safetensors",
        )
        (directory / "router.json").write_text(
            json.dumps(document, indent=2, sort_keys=True), encoding="utf-8"
        )
        return directory

    @classmethod
    def load(cls, directory: str | Path, *, embeddings: Embeddings | None = None) -> BaseRouter:
        """Load a router saved with `save`; never unpickles or runs code from the files.

        Called on `BaseRouter`, it builds whichever registered router the files name.

        Args:
            directory: The directory `save` wrote.
            embeddings: The embedder, required if the router was trained with a custom one.
        """
        from safetensors import SafetensorError
        from safetensors.numpy import load_file

        from langchain_llmrouter.embeddings import DEFAULT_EMBEDDING_MODEL
        from langchain_llmrouter.embeddings import STATIC_EMBEDDING_MODEL as STATIC_NAME
        from langchain_llmrouter.routers.registry import get_router_class

        directory = Path(directory)
        meta_path = directory / "router.json"
        if not meta_path.is_file():
            raise RouterLoadError(
                f"{directory}: no router.json here; is this a saved router directory?"
            )
        try:
            document = json.loads(meta_path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            raise RouterLoadError(
                f"{meta_path}, line {exc.lineno}: invalid JSON: {exc.msg}"
            ) from None
        if not isinstance(document, dict) or document.get("format") != SAVE_FORMAT:
            raise RouterLoadError(f"{meta_path}: not a langchain-llmrouter router file")
        if document.get("version", 0) > SAVE_VERSION:
            raise RouterLoadError(
                f"{meta_path}: saved by a newer version (format {document['version']})"
            )
        for key, kind in (("router", str), ("candidates", list)):
            if not isinstance(document.get(key), kind):
                raise RouterLoadError(
                    f"{meta_path}: field {key!r} is missing or not a {kind.__name__}"
                )
        router_cls = get_router_class(document["router"])
        if cls is not BaseRouter and not issubclass(router_cls, cls):
            raise RouterLoadError(
                f"{meta_path}: holds a {document['router']} router, not {cls.name}"
            )
        saved_embedder = document.get("embeddings")
        if saved_embedder == STATIC_NAME and embeddings is None:
            # The package makes this featuriser itself (from the bundled MiniLM, cached).
            from langchain_llmrouter.static_embeddings import StaticEmbeddings

            embeddings = StaticEmbeddings()
        if saved_embedder and embeddings is not None:
            from langchain_llmrouter.embeddings import embedding_name

            given = embedding_name(embeddings)
            if given != saved_embedder and STATIC_NAME in (given, saved_embedder):
                raise RouterLoadError(
                    f"{directory}: this router was trained with embeddings {saved_embedder!r}, "
                    f"not {given!r}; a router routes only with the featuriser it learnt on"
                )
        if saved_embedder and saved_embedder != DEFAULT_EMBEDDING_MODEL and embeddings is None:
            raise RouterLoadError(
                f"{directory}: this router was trained with embeddings {saved_embedder!r}; "
                "pass the same embedder as embeddings=..."
            )
        router = router_cls.from_params(
            document.get("params", {}), embeddings=embeddings, source=str(meta_path)
        )
        try:
            arrays = load_file(str(directory / "arrays.safetensors"))
        except (FileNotFoundError, SafetensorError) as exc:
            raise RouterLoadError(f"{directory}/arrays.safetensors: {exc}") from None
        candidates = [str(c) for c in document["candidates"]]
        router.candidates_ = candidates
        try:
            router.input_price_ = arrays.pop("_input_price")
            router.output_price_ = arrays.pop("_output_price")
            router.sizes_ = arrays.pop("_sizes")
            router.output_tokens_ = arrays.pop("_output_tokens")
            if len(router.input_price_) != len(candidates):
                raise RouterLoadError(
                    f"{directory}: arrays do not match the {len(candidates)} candidates"
                )
            router._set_state(document.get("state", {}), arrays)
        except KeyError as exc:
            raise RouterLoadError(
                f"{directory}: saved state is incomplete (no {exc.args[0]!r})"
            ) from None
        router.fitted_ = True
        return router

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_params().items())
        return f"{type(self).__name__}({args})"
