"""What the chat demo knows, without Streamlit: its settings, the routers it can offer, the
candidates it can call, the cost of each turn against always using the largest candidate, who
asks, and how a thumbs rating of an answer reaches the router.

The Streamlit page (`langchain_llmrouter.demo.app`) only draws what this module computes, so
the logic is testable without a browser.
"""

from __future__ import annotations

import argparse
import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from langchain_llmrouter.candidates import CandidatePool
from langchain_llmrouter.config import RouterConfig, load_config
from langchain_llmrouter.errors import (
    ConfigError,
    GraphRouterError,
    LLMRouterError,
    RouterLoadError,
)
from langchain_llmrouter.routers.base import BaseRouter, RoutingDecision

if TYPE_CHECKING:
    from langchain_llmrouter.chat_model import RouterChatModel

Mode = Literal["current_only", "full_context", "retrieval"]
MODES: tuple[Mode, ...] = ("current_only", "full_context", "retrieval")
BASELINES = ("smallest_llm", "largest_llm")
"""Routers offered without training."""
DEFAULT_CONFIG = "configs/infer/knnrouter.yaml"
DEFAULT_USER = "demo-user"
KNOWN_USERS_OFFERED = 50
ENV_PREFIX = "LLMROUTER_CHAT_"
"""Settings may also come from ``LLMROUTER_CHAT_ROUTER``, ``_CONFIG``, ``_MODE``, ``_TOP_K``,
``_MODEL_DIR``, ``_COST_WEIGHT`` and ``_FEEDBACK_STORE`` (the command line wins)."""
NO_KEYS_HELP = (
    "No candidate can be called: the candidates' endpoints need an API key and `API_KEYS` is "
    "not set. Set `API_KEYS` (a key, a comma list, a JSON list, or a JSON object keyed by "
    "service), or point `api_endpoint` in the config at a local OpenAI-compatible server "
    "(vLLM, Ollama, or `python -m langchain_llmrouter.testing.openai_server --port 8000` with "
    "`api_endpoint: http://127.0.0.1:8000/v1`). Until then each message shows the routing "
    "decision and the predicted quality only."
)


@dataclass(frozen=True)
class ChatSettings:
    """How the demo was started (``llmrouter chat`` flags)."""

    router: str
    config: Path
    mode: Mode = "current_only"
    top_k: int = 3
    model_dir: Path | None = None
    cost_weight: float = 0.0
    """The sidebar slider's starting value."""
    feedback_store: str | None = None
    """Where ratings are kept (a SQLAlchemy URL or SQLite path; None: not kept)."""


def parse_settings(argv: Sequence[str], environ: Mapping[str, str] | None = None) -> ChatSettings:
    """Settings from the script's arguments (after ``--`` in ``streamlit run``), with
    ``LLMROUTER_CHAT_*`` environment variables as defaults.

    Raises:
        ConfigError: for a mode or top-k that is not valid.
    """
    env = os.environ if environ is None else environ
    # allow_abbrev=False: under `AppTest` the script sees the test runner's own flags
    # (`pytest --co` must not read as `--config`).
    parser = argparse.ArgumentParser(add_help=False, allow_abbrev=False)
    parser.add_argument("--router", default=env.get(f"{ENV_PREFIX}ROUTER"))
    parser.add_argument("--config", default=env.get(f"{ENV_PREFIX}CONFIG"))
    parser.add_argument("--mode", default=env.get(f"{ENV_PREFIX}MODE", "current_only"))
    parser.add_argument("--top-k", default=env.get(f"{ENV_PREFIX}TOP_K", "3"))
    parser.add_argument("--model-dir", default=env.get(f"{ENV_PREFIX}MODEL_DIR"))
    parser.add_argument("--cost-weight", default=env.get(f"{ENV_PREFIX}COST_WEIGHT", "0"))
    parser.add_argument("--feedback-store", default=env.get(f"{ENV_PREFIX}FEEDBACK_STORE"))
    args, _ = parser.parse_known_args(list(argv))
    if args.mode not in MODES:
        raise ConfigError(f"unknown query mode {args.mode!r}; valid modes: {', '.join(MODES)}")
    try:
        top_k = int(args.top_k)
    except ValueError:
        top_k = 0
    if top_k < 1:
        raise ConfigError(f"--top-k must be a whole number >= 1, got {args.top_k!r}")
    try:
        cost_weight = float(args.cost_weight)
    except ValueError:
        cost_weight = -1.0
    if not 0.0 <= cost_weight <= 10.0:
        raise ConfigError(f"--cost-weight must be a number from 0 to 10, got {args.cost_weight!r}")
    config = Path(args.config or DEFAULT_CONFIG)
    router = args.router
    if not router:
        router = _router_named_in(config) or "knnrouter"
    return ChatSettings(
        router=router.lower(),
        config=config,
        mode=args.mode,
        top_k=top_k,
        model_dir=Path(args.model_dir) if args.model_dir else None,
        cost_weight=cost_weight,
        feedback_store=args.feedback_store or None,
    )


def _router_named_in(config: Path) -> str | None:
    try:
        return load_config(config).router
    except LLMRouterError:
        return None  # the page reports the config's problem itself


@dataclass
class DemoSetup:
    """The loaded config, its candidates and the routers on offer."""

    config: RouterConfig
    pool: CandidatePool
    routers: dict[str, Path | None]
    """Label -> saved router directory (None: a baseline set up from the candidates)."""
    default_router: str
    callable: dict[str, bool]
    """Whether each candidate has an endpoint and a key."""
    largest: str
    """The candidate with the most parameters (ties: the dearer), the cost reference."""

    @property
    def any_callable(self) -> bool:
        """Whether at least one candidate can be called."""
        return any(self.callable.values())


def load_setup(settings: ChatSettings) -> DemoSetup:
    """Load the config and candidates, and find the routers on offer.

    Raises:
        LLMRouterError: a readable error for a bad config, an unknown router, or a router
            that is neither trained nor a baseline.
    """
    from langchain_llmrouter.routers.registry import get_router_class

    config = load_config(settings.config)
    get_router_class(settings.router)  # unknown names list the valid ones
    if not config.data_path.llm_data:
        raise ConfigError(
            "the demo needs the candidates", path=config.source, field="data_path.llm_data"
        )
    llm_path = config.resolve(config.data_path.llm_data, what="data_path.llm_data")
    pool = CandidatePool.from_json(llm_path, api_endpoint=config.api_endpoint)  # type: ignore[arg-type]
    routers = discover_routers(_model_dir(config, settings))
    own = _own_router_dir(config)
    if own is not None and (own / "router.json").is_file():
        routers.setdefault(settings.router, own)
    if settings.router not in routers:
        if get_router_class(settings.router).trainable:
            where = own or "model_path.load_model_path (not set)"
            raise ConfigError(
                f"no trained {settings.router} at {where}; run `llmrouter train --router "
                f"{settings.router} --config {settings.config}` first",
                path=config.source,
                field="model_path.load_model_path",
            )
        routers[settings.router] = None
    return DemoSetup(
        config=config,
        pool=pool,
        routers=routers,
        default_router=settings.router,
        callable={c.name: pool.has_chat_model(c.name) for c in pool},
        largest=largest_candidate(pool),
    )


def _own_router_dir(config: RouterConfig) -> Path | None:
    value = config.model_path.load_model_path or config.model_path.save_model_path
    return config.resolve(value, what="model_path", must_exist=False) if value else None


def _model_dir(config: RouterConfig, settings: ChatSettings) -> Path | None:
    if settings.model_dir is not None:
        return settings.model_dir
    own = _own_router_dir(config)
    return own.parent if own is not None else None


def discover_routers(model_dir: Path | None) -> dict[str, Path | None]:
    """Trained routers in ``model_dir`` (each sub-folder with a ``router.json``), labelled by
    folder name, then the baselines."""
    found: dict[str, Path | None] = {}
    if model_dir is not None and model_dir.is_dir():
        for folder in sorted(p for p in model_dir.iterdir() if (p / "router.json").is_file()):
            found[folder.name] = folder
    for name in BASELINES:
        found.setdefault(name, None)
    return found


def build_router(label: str, directory: Path | None, setup: DemoSetup) -> BaseRouter:
    """Load a saved router, or set up a baseline from the candidates.

    Raises:
        RouterLoadError: naming the directory and what is wrong with it.
        GraphRouterError: the router runs as a LangGraph graph (the demo routes one query
            at a time).
    """
    from langchain_llmrouter.routers.registry import get_router_class, load_router

    embeddings = setup.config.build_embeddings()
    if directory is None:
        cls = get_router_class(label)
        if not issubclass(cls, BaseRouter):
            raise GraphRouterError(label)
        return cls.from_params({}, embeddings=embeddings).fit_candidates(setup.pool)
    try:
        router = load_router(directory, embeddings=embeddings)
    except LLMRouterError:
        raise
    except (OSError, ValueError, KeyError, json.JSONDecodeError) as exc:
        raise RouterLoadError(
            f"{directory}: cannot load the router: {type(exc).__name__}: {exc}"
        ) from exc
    if not isinstance(router, BaseRouter):
        raise GraphRouterError(router.name)
    return router


def largest_candidate(pool: CandidatePool) -> str:
    """The candidate with the most parameters (ties and unknown sizes: the dearer)."""
    return max(
        pool,
        key=lambda c: (c.size_billions or 0.0, c.input_price + c.output_price, c.name),
    ).name


@dataclass
class Turn:
    """One question and what happened to it."""

    question: str
    routing_text: str
    decision: RoutingDecision
    answer: str | None = None
    answered_by: str | None = None
    actual_cost: float | None = None
    largest_cost: float = 0.0
    """What the largest candidate would have cost for the same tokens."""
    latency_s: float | None = None
    input_tokens: int | None = None
    output_tokens: int | None = None
    error: str | None = None
    router: str = ""
    cost_weight: float = 0.0
    user_id: str | None = None
    """Who asked (and so who rates the answer)."""
    routing: dict[str, Any] = field(default_factory=dict)
    """The answer's routing metadata (``decision_id``, ``user_id``, ``personalised``, ...)."""
    rating: float | None = None
    """The score sent for the answer (1.0 thumbs up, 0.0 down); set once, when rated."""
    rating_note: str | None = None
    """What the rating did, or (``rating_error``) why it failed."""
    rating_error: str | None = None

    @property
    def spent(self) -> float:
        """Actual dollars if the turn was answered, else the router's estimate."""
        return self.actual_cost if self.actual_cost is not None else self.decision.est_cost

    @property
    def decision_id(self) -> str | None:
        """The answer's id for feedback (None while nothing was answered)."""
        return self.routing.get("decision_id") if self.answer is not None else None


def readable(exc: BaseException) -> str:
    """One line for a person: our errors say what and where; others get their type."""
    return str(exc) if isinstance(exc, LLMRouterError) else f"{type(exc).__name__}: {exc}"


def user_choices(router: Any, current: str | None = None) -> list[str]:
    """The users the sidebar offers: the default, the current one and, for a personalised
    router, the first `KNOWN_USERS_OFFERED` users it knows."""
    personal = getattr(router, "personal", False)
    known = list(router.known_users[:KNOWN_USERS_OFFERED]) if personal else []
    return list(dict.fromkeys([DEFAULT_USER, *([current] if current else []), *known]))


def rate(llm: RouterChatModel, turn: Turn, score: float) -> None:
    """Send the first rating of the turn's answer to ``llm`` (later calls do nothing) and note
    on the turn what it did, or why it failed."""
    if turn.rating is not None or turn.decision_id is None:
        return
    turn.rating = score
    try:
        llm.feedback(turn.decision_id, score, user_id=turn.user_id)
    except Exception as exc:  # a bad store or a forgotten answer: say so, keep the page
        turn.rating_error = f"The rating was not recorded: {readable(exc)}"
        return
    thumb = "👍" if score >= 0.5 else "👎"
    if getattr(llm.router, "personal", False):
        turn.rating_note = f"rated {thumb} — {turn.router} will route {turn.user_id} with it"
    else:
        kept = "stored" if llm.feedback_store is not None else "noted"
        turn.rating_note = (
            f"rated {thumb} — {kept}, but {turn.router} routes everyone alike, "
            "so it does not change the next choice"
        )


def largest_cost_of(turn: Turn, pool: CandidatePool, largest: str) -> float:
    """The largest candidate's price for this turn: the answer's real tokens at its prices,
    or, when nothing was called, the router's estimate for it."""
    if turn.input_tokens is not None and turn.output_tokens is not None:
        return pool[largest].estimate_cost(turn.input_tokens, turn.output_tokens)
    return float(turn.decision.costs.get(largest, 0.0))


def totals(turns: Sequence[Turn]) -> tuple[float, float]:
    """(dollars spent, dollars always-largest would have cost) over the turns."""
    return sum(t.spent for t in turns), sum(t.largest_cost for t in turns)
