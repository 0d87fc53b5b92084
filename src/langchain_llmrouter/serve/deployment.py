"""What a server serves: its config file, and the routers and candidates built from it.

A `Deployment` holds one `CandidatePool` and one `RouterChatModel` per named router, built
once per worker process. Requests only read it (per-call options such as the cost weight
travel as call arguments), so concurrent requests and several workers give the same answers.

Model names a client may ask for:

* ``auto``: the default router;
* ``router-<name>``: a named router at its configured cost weight;
* ``router-<name>-<number>``: that router with ``cost_weight=<number>`` (RouteLLM's naming);
* a candidate's name: that candidate, called directly (no routing, no fallback).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field, model_validator

from langchain_llmrouter.config import FileConfig, load_yaml_config
from langchain_llmrouter.errors import ConfigError, UnknownNameError

if TYPE_CHECKING:
    from langchain_llmrouter.candidates import CandidatePool
    from langchain_llmrouter.chat_model import RouterChatModel
    from langchain_llmrouter.routers.base import BaseRouter

AUTO = "auto"
"""The model name of the default router."""
ROUTER_PREFIX = "router-"
"""Model names ``router-<name>`` and ``router-<name>-<cost_weight>`` pick a named router."""
DIRECT = "direct"
"""The router label of a request that named a candidate."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class CandidatesConfig(_Strict):
    """Where the candidates are and how to call them."""

    llm_data: str
    """Candidates JSON (LLMRouter's ``default_llm.json`` format)."""
    api_endpoint: str | None = None
    """OpenAI-compatible endpoint for candidates without their own (keys: ``API_KEYS``)."""
    timeout_s: float | None = Field(default=60.0, gt=0)
    """Seconds before a candidate call times out (and falls back)."""
    max_retries: int = Field(default=1, ge=0)
    """Retries each candidate's own client makes before the router falls back."""


class RouterEntry(_Strict):
    """One router the server offers as ``router-<name>``."""

    router: str | None = None
    """Registry name (``knnrouter``); optional with ``config``, which names it."""
    config: str | None = None
    """An inference config (``configs/infer/knnrouter.yaml``): router, saved model, featuriser."""
    path: str | None = None
    """A saved router directory (featuriser: this file's ``embedding``)."""
    hparam: dict[str, Any] = Field(default_factory=dict)
    """Hyperparameters of a router that needs no training (``router`` alone)."""
    cost_weight: float | None = Field(default=None, ge=0, allow_inf_nan=False)
    """This router's cost weight for ``router-<name>`` (None: the router's own)."""
    routing_mode: str = "current_only"
    """What requests are routed on: ``current_only``, ``full_context`` or ``retrieval``."""

    @model_validator(mode="after")
    def _named(self) -> RouterEntry:
        if self.router is None and self.config is None and self.path is None:
            raise ValueError("give router, config or path")
        return self


class AuthConfig(_Strict):
    """Inbound keys: who may call the server, and how many dollars each may spend."""

    keys_env: str = "LLMROUTER_SERVER_KEYS"
    """Environment variable holding comma-separated keys (``KEY`` or ``KEY:DOLLARS``)."""
    keys_file: str | None = None
    """A file of keys, one a line (``KEY`` or ``KEY:DOLLARS``; ``#`` starts a comment)."""
    spend_limit: float | None = Field(default=None, gt=0, allow_inf_nan=False)
    """Dollars each key may spend (per worker process) unless its line gives its own."""


class ServeConfig(FileConfig):
    """A ``llmrouter serve`` config file (relative paths: from the file's folder)."""

    paths_relative_to_config: ClassVar[bool] = True

    candidates: CandidatesConfig
    """The candidates every router routes between."""
    routers: dict[str, RouterEntry]
    """Routers by the name clients use in ``router-<name>``."""
    default_router: str | None = None
    """The router behind ``auto`` (default: the first one)."""
    max_fallbacks: int = Field(default=2, ge=0)
    """Next-best candidates tried when the chosen one fails."""
    auth: AuthConfig = Field(default_factory=AuthConfig)
    """Inbound authentication."""
    feedback_store: str | None = None
    """Where answered decisions and users' ratings are kept (``POST /v1/feedback``): a
    SQLAlchemy URL or a SQLite path, shared by every worker. None: each worker remembers its
    own last 10,000 answers in memory, so with several workers give one."""

    @model_validator(mode="after")
    def _check_routers(self) -> ServeConfig:
        if not self.routers:
            raise ValueError("routers: name at least one router")
        if self.default_router is not None and self.default_router not in self.routers:
            raise ValueError(
                f"default_router {self.default_router!r} is not one of the routers "
                f"({', '.join(self.routers)})"
            )
        return self


def load_serve_config(path: str | Path) -> ServeConfig:
    """Load and validate a serve config.

    Raises:
        ConfigError: naming the file, line and key of the problem.
    """
    return load_yaml_config(ServeConfig, path)


@dataclass(frozen=True)
class Target:
    """What one model name resolves to.

    Attributes:
        model: The chat model to call (a `RouterChatModel`).
        label: The router's name, or ``"direct"`` for a candidate named by the client.
        options: Per-call routing options (``cost_weight``).
    """

    model: RouterChatModel
    label: str
    options: dict[str, Any] = field(default_factory=dict)


class Deployment:
    """The routers and candidates of one server process (read-only once built)."""

    def __init__(
        self,
        *,
        pool: CandidatePool,
        routers: dict[str, BaseRouter],
        default: str | None = None,
        max_fallbacks: int = 2,
        cost_weights: dict[str, float | None] | None = None,
        routing_modes: dict[str, str] | None = None,
        feedback_store: Any = None,
    ) -> None:
        """Build one `RouterChatModel` per router, and one per callable candidate.

        Args:
            pool: The candidates (their health is shared by every router).
            routers: Fitted routers by the name clients use.
            default: The router behind ``auto`` (default: the first).
            max_fallbacks: Next-best candidates tried when the chosen one fails.
            cost_weights: A router's cost weight for ``router-<name>`` (None: its own).
            routing_modes: A router's routing mode (default ``current_only``).
            feedback_store: A `FeedbackStore` (or its URL) every router shares, for
                ``POST /v1/feedback`` across workers; None keeps answers in memory.
        """
        from langchain_llmrouter.chat_model import RouterChatModel

        if not routers:
            raise ValueError("a deployment needs at least one router")
        self.pool = pool
        self.default = default or next(iter(routers))
        if self.default not in routers:
            raise UnknownNameError("router", self.default, routers)
        self.cost_weights = dict(cost_weights or {})
        modes = routing_modes or {}
        if feedback_store is not None and not hasattr(feedback_store, "add_feedback"):
            from langchain_llmrouter.personal.feedback import FeedbackStore

            feedback_store = FeedbackStore(feedback_store)
        self.feedback_store = feedback_store
        self.routers: dict[str, RouterChatModel] = {
            name: RouterChatModel(
                router=router,
                candidates=pool,
                max_fallbacks=max_fallbacks,
                routing_mode=modes.get(name, "current_only"),  # type: ignore[arg-type]
                feedback_store=feedback_store,
            )
            for name, router in routers.items()
        }
        self.direct: dict[str, RouterChatModel] = {
            name: self._direct_model(name) for name in pool.names if pool.has_chat_model(name)
        }

    def _direct_model(self, name: str) -> RouterChatModel:
        """A candidate called as itself: a one-candidate pool, a router that picks it."""
        from langchain_llmrouter.chat_model import RouterChatModel
        from langchain_llmrouter.routers.registry import create_router

        one = self.pool.subset([name])
        router = create_router("smallest_llm").fit_candidates(one)
        return RouterChatModel(router=router, candidates=one, max_fallbacks=0)  # type: ignore[arg-type]

    @classmethod
    def from_config(cls, config: ServeConfig) -> Deployment:
        """Load the candidates and every router a serve config names."""
        from langchain_llmrouter.candidates import CandidatePool

        llm_data = config.resolve(config.candidates.llm_data, what="candidates.llm_data")
        assert llm_data is not None
        kwargs: dict[str, Any] = {"max_retries": config.candidates.max_retries}
        if config.candidates.timeout_s is not None:
            kwargs["timeout"] = config.candidates.timeout_s
        pool = CandidatePool.from_json(
            llm_data, api_endpoint=config.candidates.api_endpoint, chat_model_kwargs=kwargs
        )
        routers = {
            name: _load_router(config, name, entry, pool) for name, entry in config.routers.items()
        }
        return cls(
            pool=pool,
            routers=routers,
            default=config.default_router,
            max_fallbacks=config.max_fallbacks,
            cost_weights={n: e.cost_weight for n, e in config.routers.items()},
            routing_modes={n: e.routing_mode for n, e in config.routers.items()},
            feedback_store=config.resolve(
                config.feedback_store, what="feedback_store", must_exist=False
            )
            if config.feedback_store and "://" not in config.feedback_store
            else config.feedback_store,
        )

    # --- model names ------------------------------------------------------------------------

    def model_names(self) -> list[str]:
        """Every name a client may ask for (``router-<name>-<number>`` aside)."""
        return [AUTO, *(ROUTER_PREFIX + n for n in self.routers), *self.direct]

    def resolve(self, name: str) -> Target:
        """The model and options behind a requested model name.

        Raises:
            UnknownNameError: listing the valid names.
        """
        if name == AUTO:
            return self._routed(self.default, None)
        if name.startswith(ROUTER_PREFIX):
            rest = name[len(ROUTER_PREFIX) :]
            if rest in self.routers:
                return self._routed(rest, None)
            base, _, number = rest.rpartition("-")
            weight = _cost_weight(number)
            if base in self.routers and weight is not None:
                return self._routed(base, weight)
        if name in self.direct:
            return Target(model=self.direct[name], label=DIRECT)
        raise UnknownNameError("model", name, [*self.model_names(), "router-<name>-<cost_weight>"])

    def _routed(self, router: str, cost_weight: float | None) -> Target:
        weight = cost_weight if cost_weight is not None else self.cost_weights.get(router)
        options = {} if weight is None else {"cost_weight": weight}
        return Target(model=self.routers[router], label=router, options=options)

    def feedback(self, answer_id: str, score: float, *, user_id: str | None = None) -> Any:
        """Rate an answer of any router of this deployment (see `RouterChatModel.feedback`).

        Raises:
            UnknownAnswerError: no router here gave that answer (or it was forgotten).
        """
        from langchain_llmrouter.personal.online import UnknownAnswerError

        for model in self.routers.values():
            try:  # the answer is looked up before anything is written
                return model.feedback(answer_id, score, user_id=user_id)
            except UnknownAnswerError:
                continue
        raise UnknownAnswerError(f"no answer with id {answer_id!r} on this server")

    def ready(self) -> dict[str, Any]:
        """Readiness without calling an LLM: every router fitted, some candidate callable."""
        routers = {name: model.router.is_fitted for name, model in self.routers.items()}
        return {
            "ready": all(routers.values()) and bool(self.direct),
            "routers": routers,
            "candidates": sorted(self.direct),
            "cooling": self.pool.health.snapshot(),
        }


def _cost_weight(text: str) -> float | None:
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) and value >= 0 else None


def _load_router(
    config: ServeConfig, name: str, entry: RouterEntry, pool: CandidatePool
) -> BaseRouter:
    """One router of the config: from an inference config, a saved directory or a name."""
    from langchain_llmrouter.config import load_config
    from langchain_llmrouter.routers.base import BaseRouter
    from langchain_llmrouter.routers.registry import get_router_class, load_router

    where = f"routers.{name}"
    if entry.config is not None:
        from langchain_llmrouter.cli.common import trained_router

        path = config.resolve(entry.config, what=f"{where}.config")
        assert path is not None
        infer = load_config(path)
        router_name = (entry.router or infer.router or "").lower()
        if not router_name:
            raise ConfigError("say which router (router:)", path=config.source, field=where)
        loaded: Any = trained_router(router_name, infer, pool)
    elif entry.path is not None:
        directory = config.resolve(entry.path, what=f"{where}.path")
        assert directory is not None
        loaded = load_router(directory, embeddings=config.build_embeddings())
    else:
        assert entry.router is not None
        cls = get_router_class(entry.router.lower())
        if cls.trainable:
            raise ConfigError(
                f"{entry.router} must be trained: give config (an inference config) or path "
                "(a saved router)",
                path=config.source,
                field=where,
            )
        loaded = cls.from_params(
            entry.hparam, embeddings=config.build_embeddings(), source=str(config.source)
        ).fit_candidates(pool)
    if not isinstance(loaded, BaseRouter):
        raise ConfigError(
            f"{loaded.name} is a multi-round router (a LangGraph graph); the server serves "
            "single-round routers",
            path=config.source,
            field=where,
        )
    return loaded
