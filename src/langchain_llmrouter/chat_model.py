"""`RouterChatModel`: a drop-in LangChain chat model that routes every request.

It asks its router which candidate to use, calls that candidate's chat model, and
returns the candidate's message with the routing decision in
``response_metadata["routing"]``. Provider failures fall back to the next-best
candidate (`langchain_llmrouter.fallback` says which failures and to whom); caller
errors are raised at once.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from contextlib import contextmanager
from operator import itemgetter
from typing import Any, Literal

from langchain_core.callbacks import (
    AsyncCallbackManagerForLLMRun,
    CallbackManager,
    CallbackManagerForLLMRun,
)
from langchain_core.embeddings import Embeddings
from langchain_core.language_models import BaseChatModel, LanguageModelInput
from langchain_core.language_models.chat_models import LangSmithParams
from langchain_core.language_models.model_profile import ModelProfile
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage
from langchain_core.output_parsers import (
    JsonOutputKeyToolsParser,
    JsonOutputParser,
    PydanticOutputParser,
    PydanticToolsParser,
)
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult
from langchain_core.runnables import (
    Runnable,
    RunnableConfig,
    RunnableMap,
    RunnablePassthrough,
)
from langchain_core.runnables.config import ensure_config
from langchain_core.tools import BaseTool
from langchain_core.utils.function_calling import (
    convert_to_openai_function,
    convert_to_openai_tool,
)
from langchain_core.utils.pydantic import is_basemodel_subclass
from langsmith.run_helpers import tracing_context
from pydantic import ConfigDict, Field, PrivateAttr, model_validator

from langchain_llmrouter.candidates import CandidatePool, LLMCandidate
from langchain_llmrouter.errors import GraphRouterError, InvalidOptionError, LLMRouterError
from langchain_llmrouter.fallback import (
    Attempt,
    CandidateHealth,
    classify_failure,
    larger_context,
    plan_attempts,
    provider_did_work,
)
from langchain_llmrouter.options import CHAT_OPTIONS, check_option, check_options, misspelt_option
from langchain_llmrouter.personal.interactions import Interaction
from langchain_llmrouter.personal.online import FeedbackLoop
from langchain_llmrouter.routers.base import BaseRouter, RoutingDecision

logger = logging.getLogger(__name__)

RoutingMode = Literal["current_only", "full_context", "retrieval"]
StructuredMethod = Literal["function_calling", "json_mode", "json_schema"]
_TOOL_ARGS = ("tools", "tool_choice", "parallel_tool_calls", "strict")
# The tracer promotes this generation_info entry to the run's metadata (ls_model_name,
# ls_provider): the run then names the candidate that answered, as a gateway's run does.
_GATEWAY_KEY = "lc_gateway_metadata"
# The candidate's own run is not reported: the RouterChatModel run carries its messages
# and usage, so usage callbacks count each call once.
_SILENT: RunnableConfig = {"callbacks": []}
_PARENT_KEY = "_llmrouter_parent_run"


class AllCandidatesFailedError(LLMRouterError, RuntimeError):
    """The chosen candidate and every fallback failed.

    Attributes:
        failures: ``(candidate, error)`` for each failed attempt, in order.
        attempts: Every attempt (`Attempt`), with its latency and error kind.
        decision: The routing decision, when it was made.
    """

    def __init__(
        self,
        failures: list[tuple[str, BaseException]],
        *,
        attempts: list[Attempt] | None = None,
        decision: RoutingDecision | None = None,
    ) -> None:
        self.failures = failures
        self.attempts = list(attempts or [])
        self.decision = decision
        detail = "; ".join(f"{m}: {type(e).__name__}: {e}" for m, e in failures)
        super().__init__(f"every candidate tried failed ({detail})")


class PartialStreamError(LLMRouterError, RuntimeError):
    """A stream failed after the candidate had sent text, so it could not fall back.

    Switching candidate then would splice two answers; the caller decides what to do with
    the part received.

    Attributes:
        partial: The chunks received before the failure, merged (None if none).
        model: The candidate that was answering.
        decision: The routing decision.
        attempts: Every attempt made, the failed one last.
    """

    def __init__(
        self,
        model: str,
        error: BaseException,
        *,
        partial: AIMessageChunk | None,
        decision: RoutingDecision,
        attempts: list[Attempt],
    ) -> None:
        self.model = model
        self.partial = partial
        self.decision = decision
        self.attempts = attempts
        received = len(partial.text) if partial is not None else 0
        super().__init__(
            f"candidate {model} failed after sending {received} characters "
            f"({type(error).__name__}: {error}); the partial answer is on .partial"
        )

    @property
    def partial_text(self) -> str:
        """The text received before the failure."""
        return self.partial.text if self.partial is not None else ""


def routing_text(
    messages: Sequence[BaseMessage],
    mode: RoutingMode,
    *,
    top_k: int = 3,
    embeddings: Embeddings | None = None,
) -> str:
    """The text a router sees.

    Args:
        messages: The conversation.
        mode: ``current_only``: the last user message; ``full_context``: the whole
            conversation; ``retrieval``: the last user message after the ``top_k`` earlier
            user messages most similar to it (cosine of their embeddings), in conversation
            order, so a short follow-up ("and in Python?") is routed with what it refers to.
        top_k: Earlier messages added in ``retrieval`` mode.
        embeddings: Embedder for ``retrieval`` (default: the bundled MiniLM, cached).
    """
    if mode == "full_context":
        return "\n".join(f"{m.type}: {m.text}" for m in messages if m.text)
    asked = [m.text for m in messages if m.type == "human"]
    if not asked:
        return messages[-1].text if messages else ""
    current, earlier = asked[-1], asked[:-1]
    if mode != "retrieval" or not earlier or top_k <= 0:
        return current
    from langchain_llmrouter.embeddings import embed_texts
    from langchain_llmrouter.routers.vector_index import VectorIndex

    vectors = embed_texts([current, *earlier], embeddings)
    # A conversation's store is tiny: exact search, through the routers' index contract.
    _, ids = VectorIndex("exact", "cosine").build(vectors[1:]).search(vectors[:1], top_k)
    nearest = sorted(int(i) for i in ids[0])
    return "\n".join([*(earlier[i] for i in nearest), current])


class RouterChatModel(BaseChatModel):
    """A chat model that sends each request to the candidate its router picks.

    Example:
        .. code-block:: python

            pool = CandidatePool.from_json("default_llm.json", api_endpoint="http://localhost:8000/v1")
            llm = RouterChatModel(router=load_router("models/knnrouter"), candidates=pool)
            msg = llm.invoke("Prove that sqrt(2) is irrational.")
            msg.response_metadata["routing"]["model"]

    Per call, ``cost_weight``, ``budget``, ``user_id``, ``routing_mode`` and
    ``retrieval_top_k`` may be passed as keyword arguments or through
    ``config={"configurable": {...}}``; other keyword arguments (``temperature``,
    ``max_tokens``, ``response_format``, ...) go to the chosen candidate. `feedback` rates an
    answer; a personalised router routes that user's next call with it.

    Traces show one chat-model run per request, this model's, with the router as a child
    run whose output is the `RoutingDecision`. The candidate's own call is not a run of
    its own (so usage is counted once); when the run ends, its ``ls_model_name`` and
    ``ls_provider`` become the answering candidate's, and its output carries the decision.
    """

    model_config = ConfigDict(arbitrary_types_allowed=True, extra="forbid")

    router: BaseRouter
    """A fitted router (baselines that need no training are set up from the candidates)."""
    candidates: CandidatePool | None = None
    """The candidates and how to call them."""
    models: dict[str, BaseChatModel] | None = None
    """Alternatively, ready chat models by candidate name."""
    routing_mode: RoutingMode = "current_only"
    """Route on the last user message (``current_only``), the whole conversation
    (``full_context``), or the last message with the most similar earlier ones
    (``retrieval``); see `routing_text`."""
    retrieval_top_k: int = Field(default=3, ge=1)
    """Earlier user messages added to the routing text in ``retrieval`` mode."""
    cost_weight: float | None = Field(default=None, ge=0, allow_inf_nan=False)
    """Overrides the router's cost weight (quality per dollar per 1,000 queries)."""
    budget: float | None = Field(default=None, gt=0, allow_inf_nan=False)
    """Overrides the router's per-call budget in dollars."""
    max_fallbacks: int = Field(default=2, ge=0)
    """How many next-best candidates to try when the chosen one fails (0: its error is raised)."""
    fallback_on: tuple[type[BaseException], ...] = (Exception,)
    """Exception types that may fall back. Only provider failures among them do (timeouts,
    transport errors, 408/409/425/429, 5xx, an overloaded or unavailable model, a context
    overflow); caller errors (bad arguments, 400/401/403/404/422) are raised at once."""
    health: CandidateHealth | None = None
    """Failure counts and cooldowns (default: the pool's, shared by every model using it)."""
    temperature: float | None = None
    """Sampling temperature sent to the chosen candidate (None: the candidate's own)."""
    max_tokens: int | None = Field(default=None, gt=0)
    """Maximum tokens to generate, sent to the chosen candidate (None: the candidate's own)."""
    stop: list[str] | None = None
    """Default stop sequences, sent to the chosen candidate unless a call gives its own."""
    streaming: bool = False
    """Whether ``invoke`` streams from the candidate under the hood (as in ``ChatOpenAI``)."""
    target_share: float | None = Field(default=None, ge=0, le=1)
    """Route at the cost weight calibrated to send this share of calls to the calibrated
    candidate (the router's saved calibration, see ``llmrouter calibrate``); not with
    ``cost_weight``."""
    calibration_queries: list[str] | None = None
    """Queries to calibrate ``target_share`` on now, instead of a saved calibration."""
    user_id: str | None = None
    """Who asks, unless a call says (``user_id=`` or ``configurable``): a personalised router
    routes for this user; `feedback` rates answers as theirs."""
    feedback_store: Any = None
    """Where decisions and ratings are kept: a `FeedbackStore`, a SQLAlchemy URL or a SQLite
    path (shared by several processes), or None to keep the last 10,000 decisions in memory
    and fold ratings into the router without storing them."""

    _feedback_loop: FeedbackLoop | None = PrivateAttr(default=None)

    @model_validator(mode="before")
    @classmethod
    def _refuse_graph_routers(cls, data: Any) -> Any:
        router = data.get("router") if isinstance(data, dict) else None
        # A graph router (no need to import graphs/ to tell): raised as is, not wrapped.
        if not isinstance(router, BaseRouter) and callable(getattr(router, "as_graph", None)):
            raise GraphRouterError(
                f"{getattr(router, 'name', router)} decides while it calls LLMs, so it runs as a "
                "LangGraph graph: "
                "use RouterGraphChatModel(router=...) or router.as_graph(candidates), not "
                "RouterChatModel"
            )
        return data

    @model_validator(mode="after")
    def _check_pool(self) -> RouterChatModel:
        if self.candidates is None and self.models is None:
            raise ValueError(
                "give candidates= (a CandidatePool) or models= (a dict of chat models)"
            )
        if self.candidates is None:
            assert self.models is not None
            self.candidates = CandidatePool.from_models(
                self.models, candidates=self._specs_for(self.models)
            )
        if not self.router.is_fitted:
            if self.router.trainable:
                raise ValueError(
                    f"router {self.router.name} is not fitted: fit it or load a saved one"
                )
            self.router.fit_candidates(self.candidates)
        if not self._usable_names():
            raise ValueError(
                f"none of the router's candidates ({', '.join(self.router.candidates_)}) "
                f"is in the pool ({', '.join(self.candidates.names)})"
            )
        if self.profile is None:
            self.profile = self._derive_profile()
        return self

    @model_validator(mode="after")
    def _open_feedback(self) -> RouterChatModel:
        check_option("user_id", self.user_id)
        store = self.feedback_store
        if store is not None and not hasattr(store, "add_feedback"):
            from langchain_llmrouter.personal.feedback import FeedbackStore

            store = self.feedback_store = FeedbackStore(store)
        self._feedback_loop = FeedbackLoop(self.router, store)
        return self

    @model_validator(mode="after")
    def _apply_target_share(self) -> RouterChatModel:
        if self.target_share is None:
            if self.calibration_queries is not None:
                raise ValueError("calibration_queries is only used with target_share")
            return self
        if self.cost_weight is not None:
            raise ValueError("give cost_weight or target_share, not both")
        from langchain_llmrouter.calibration import calibrated_cost_weight

        self.cost_weight = calibrated_cost_weight(
            self.router, self.target_share, queries=self.calibration_queries
        )
        return self

    def _specs_for(self, models: dict[str, BaseChatModel]) -> list[LLMCandidate]:
        known = dict(zip(getattr(self.router, "candidates_", []), range(10**6), strict=False))
        specs = []
        for name, m in models.items():
            model_id = str(getattr(m, "model_name", None) or getattr(m, "model", None) or name)
            if name in known and self.router.is_fitted:
                j = known[name]
                specs.append(
                    LLMCandidate(
                        name=name,
                        model=model_id,
                        input_price=float(self.router.input_price_[j]),
                        output_price=float(self.router.output_price_[j]),
                    )
                )
            else:
                specs.append(LLMCandidate(name=name, model=model_id))
        return specs

    def _usable_names(self) -> list[str]:
        return [n for n in self.router.candidates_ if n in self.pool]

    @property
    def pool(self) -> CandidatePool:
        """The candidate pool in use."""
        assert self.candidates is not None
        return self.candidates

    @property
    def model_name(self) -> str:
        """What this model is: ``llmrouter/<router>`` (the candidate is chosen per call)."""
        return f"llmrouter/{self.router.name}"

    @property
    def _health(self) -> CandidateHealth:
        return self.health if self.health is not None else self.pool.health

    @property
    def feedback_loop(self) -> FeedbackLoop:
        """The answered decisions this model remembers and how ratings reach the router."""
        assert self._feedback_loop is not None
        return self._feedback_loop

    # --- feedback ---------------------------------------------------------------------------

    def feedback(
        self, message_or_run_id: Any, score: float, *, user_id: str | None = None
    ) -> Interaction:
        """Rate an answer this model gave; a personalised router routes the user's next
        call with it (no retraining), and the feedback store keeps it for ``llmrouter train``.

        Args:
            message_or_run_id: The answer: its `AIMessage`, its run id, or the server's
                ``chatcmpl-...`` response id.
            score: In [0, 1] (thumbs up 1, down 0; a 0..5 rating is 5 × score).
            user_id: Who rates (default: who asked, if the call said; else ``self.user_id``).

        Returns:
            The rated interaction as stored.

        Raises:
            UnknownAnswerError: not an answer of this model (or forgotten).
            InvalidOptionError: a score outside [0, 1], or no user.
        """
        user = check_option("user_id", user_id)
        return self.feedback_loop.feedback(
            message_or_run_id, score, user_id=user, default_user=self.user_id
        )

    async def afeedback(
        self, message_or_run_id: Any, score: float, *, user_id: str | None = None
    ) -> Interaction:
        """Async `feedback` (the store's write runs in a worker thread)."""
        return await asyncio.to_thread(self.feedback, message_or_run_id, score, user_id=user_id)

    # --- LangChain metadata ----------------------------------------------------------------

    @property
    def _llm_type(self) -> str:
        return "router-chat-model"

    @property
    def _identifying_params(self) -> dict[str, Any]:
        return {
            "router": self.router.name,
            "candidates": self.pool.names,
            "routing_mode": self.routing_mode,
            "retrieval_top_k": self.retrieval_top_k,
            "cost_weight": self.cost_weight,
            "budget": self.budget,
            "temperature": self.temperature,
            "max_tokens": self.max_tokens,
        }

    def _get_ls_params(self, stop: list[str] | None = None, **kwargs: Any) -> LangSmithParams:
        # The candidate is not known until the router has run; the tracer replaces these two
        # with the answering candidate's when the run ends (see _GATEWAY_KEY).
        # A per-call `model` is refused when the call runs; the trace still names what was
        # asked for, as langchain-core's convention says.
        model = kwargs.get("model")
        params = LangSmithParams(
            ls_provider="llmrouter",
            ls_model_name=model if isinstance(model, str) else self.model_name,
            ls_model_type="chat",
        )
        params["llmrouter_router"] = self.router.name  # type: ignore[typeddict-unknown-key]
        temperature = kwargs.get("temperature", self.temperature)
        if isinstance(temperature, int | float):
            params["ls_temperature"] = temperature
        max_tokens = kwargs.get("max_tokens", self.max_tokens)
        if isinstance(max_tokens, int):
            params["ls_max_tokens"] = max_tokens
        if stop or self.stop:
            params["ls_stop"] = stop or self.stop
        return params

    def _resolve_model_profile(self) -> ModelProfile | None:
        return self._derive_profile() if self.candidates is not None else None

    def _derive_profile(self) -> ModelProfile | None:
        """The limits and features every candidate has (so any of them can take the call)."""
        per_candidate: list[dict[str, Any]] = []
        for name in self._usable_names():
            known: dict[str, Any] = {}
            if self.pool.has_chat_model(name):
                known.update(getattr(self.pool.chat_model(name), "profile", None) or {})
            window = self.pool[name].context_window
            if window is not None:
                known["max_input_tokens"] = window
            per_candidate.append(known)
        if not per_candidate:
            return None
        profile: dict[str, Any] = {}
        for key in ("max_input_tokens", "max_output_tokens"):
            limits = [p.get(key) for p in per_candidate]
            ints = [v for v in limits if isinstance(v, int)]
            if len(ints) == len(limits):
                profile[key] = min(ints)
        flags = {k for p in per_candidate for k, v in p.items() if isinstance(v, bool)}
        for key in sorted(flags):
            values = [p.get(key) for p in per_candidate]
            if all(v is True for v in values):
                profile[key] = True
            elif any(v is False for v in values):
                profile[key] = False
        return ModelProfile(**profile) if profile else None  # type: ignore[typeddict-item]

    # --- token counting -------------------------------------------------------------------

    def _token_counters(self) -> list[Callable[[Sequence[BaseMessage], Any], int]]:
        """One counter per distinct tokenizer among the candidates (OpenAI-style ones offline)."""
        from langchain_llmrouter.tokens import encoding_name_for

        counters: dict[Any, Callable[[Sequence[BaseMessage], Any], int]] = {}
        for name in self._usable_names():
            model = self.pool.chat_model(name) if self.pool.has_chat_model(name) else None
            if model is not None and not _is_openai_chat_model(model):
                counters[id(model)] = model.get_num_tokens_from_messages  # type: ignore[assignment]
                continue
            model_id = self.pool[name].model
            encoding = encoding_name_for(model_id)
            if encoding not in counters:
                counters[encoding] = functools.partial(_count_openai, model_id=model_id)
        return list(counters.values())

    def get_num_tokens_from_messages(
        self, messages: list[BaseMessage], tools: Sequence[Any] | None = None
    ) -> int:
        """Tokens of ``messages`` for the candidate that counts the most of them.

        The router may send the call to any candidate, so the largest count is the one a
        trimmer must respect. OpenAI-compatible candidates are counted offline with the
        OpenAI BPE vocabularies; other chat models count their own.
        """
        return max(counter(messages, tools) for counter in self._token_counters())

    def get_num_tokens(self, text: str) -> int:
        """Tokens of ``text`` (the largest count among the candidates' tokenizers)."""
        from langchain_llmrouter.tokens import count_text_tokens, encoding_name_for

        # One model id per vocabulary: candidates sharing one count the same.
        models = {
            encoding_name_for(self.pool[n].model): self.pool[n].model for n in self._usable_names()
        }
        return max(count_text_tokens(text, model) for model in models.values())

    def get_token_ids(self, text: str) -> list[int]:
        """Token ids of ``text`` in OpenAI's ``cl100k_base`` vocabulary (offline)."""
        from langchain_llmrouter.tokens import _encoding

        return list(_encoding("cl100k_base").encode(text))

    # --- per-call options through `configurable` -----------------------------------------

    @staticmethod
    def _configured(config: RunnableConfig, kwargs: dict[str, Any]) -> dict[str, Any]:
        configurable = config.get("configurable", {})
        extra = {
            k: configurable[k]
            for k in CHAT_OPTIONS
            if configurable.get(k) is not None and k not in kwargs
        }
        return {**extra, **kwargs}

    def _call_kwargs(self, config: RunnableConfig, kwargs: dict[str, Any]) -> dict[str, Any]:
        """The call's keywords, with routing options from ``configurable`` and the run's id.

        langchain-core hands ``_stream`` no run manager, so the router's run could not
        become a child of this one; the id (fixed here, before the run starts) and the
        caller's callbacks ride along under a private key that no hook passes on.
        """
        if config.get("run_id") is None:
            config["run_id"] = uuid.uuid4()
        return {**self._configured(config, kwargs), _PARENT_KEY: (config["run_id"], config)}

    def _get_invocation_params(
        self, stop: list[str] | None = None, **kwargs: Any
    ) -> dict[str, Any]:
        kwargs.pop(_PARENT_KEY, None)
        return super()._get_invocation_params(stop=stop, **kwargs)

    def _get_llm_string(self, stop: list[str] | None = None, **kwargs: Any) -> str:
        kwargs.pop(_PARENT_KEY, None)  # a cache key must not hold the run's id
        return super()._get_llm_string(stop=stop, **kwargs)

    # LangChain passes `configurable` to no chat-model hook, so the four entry points move
    # the routing options into the call's keywords; everything else is langchain-core's.

    def invoke(
        self,
        input: LanguageModelInput,
        config: RunnableConfig | None = None,
        *,
        stop: list[str] | None = None,
        **kwargs: Any,
    ) -> AIMessage:
        """Route ``input`` and return the chosen candidate's answer, routing in its metadata."""
        config = ensure_config(config)
        return super().invoke(input, config, stop=stop, **self._call_kwargs(config, kwargs))

    async def ainvoke(
        self,
        input: LanguageModelInput,
        config: RunnableConfig | None = None,
        *,
        stop: list[str] | None = None,
        **kwargs: Any,
    ) -> AIMessage:
        """Async :meth:`invoke`."""
        config = ensure_config(config)
        return await super().ainvoke(input, config, stop=stop, **self._call_kwargs(config, kwargs))

    def stream(
        self,
        input: LanguageModelInput,
        config: RunnableConfig | None = None,
        *,
        stop: list[str] | None = None,
        **kwargs: Any,
    ) -> Iterator[AIMessageChunk]:
        """Stream the chosen candidate's answer; the decision rides on the first chunk."""
        config = ensure_config(config)
        yield from super().stream(input, config, stop=stop, **self._call_kwargs(config, kwargs))

    async def astream(
        self,
        input: LanguageModelInput,
        config: RunnableConfig | None = None,
        *,
        stop: list[str] | None = None,
        **kwargs: Any,
    ) -> AsyncIterator[AIMessageChunk]:
        """Async :meth:`stream`."""
        config = ensure_config(config)
        async for chunk in super().astream(
            input, config, stop=stop, **self._call_kwargs(config, kwargs)
        ):
            yield chunk

    # --- tools and structured output -----------------------------------------------------

    def bind_tools(
        self,
        tools: Sequence[dict[str, Any] | type | Callable[..., Any] | BaseTool],
        *,
        tool_choice: str | dict[str, Any] | bool | None = None,
        strict: bool | None = None,
        parallel_tool_calls: bool | None = None,
        response_format: Any = None,
        **kwargs: Any,
    ) -> Runnable[LanguageModelInput, AIMessage]:
        """Bind tools; the chosen candidate's ``bind_tools`` receives them on each call.

        ``tool_choice``, ``strict``, ``parallel_tool_calls`` and ``response_format`` mean
        what they mean on ``ChatOpenAI``, and are passed on as given.
        """
        formatted = [convert_to_openai_tool(t, strict=strict) for t in tools]
        extra = {
            "tool_choice": tool_choice,
            "strict": strict,
            "parallel_tool_calls": parallel_tool_calls,
            "response_format": response_format,
        }
        return self.bind(
            tools=formatted, **{k: v for k, v in extra.items() if v is not None}, **kwargs
        )

    def with_structured_output(
        self,
        schema: dict[str, Any] | type,
        *,
        method: StructuredMethod = "function_calling",
        strict: bool | None = None,
        include_raw: bool = False,
        **kwargs: Any,
    ) -> Runnable[LanguageModelInput, dict[str, Any] | Any]:
        """Answers shaped as ``schema``, from whichever candidate the router picks.

        Args:
            schema: A pydantic class, a JSON schema, a TypedDict or an OpenAI tool schema.
            method: ``function_calling`` (a forced tool call, the default: the feature
                OpenAI-compatible servers support most widely), ``json_schema`` (the
                provider's structured outputs) or ``json_mode`` (any JSON object; say in
                the prompt what to put in it).
            strict: Ask the provider to enforce the schema exactly (as on ``ChatOpenAI``).
            include_raw: Return ``{"raw", "parsed", "parsing_error"}`` instead of the
                parsed value; ``raw`` carries the routing metadata.
        """
        if kwargs:
            raise InvalidOptionError(f"unsupported arguments: {', '.join(sorted(kwargs))}")
        is_model = isinstance(schema, type) and is_basemodel_subclass(schema)
        tool = convert_to_openai_tool(schema, strict=strict)
        trace_format = {"kwargs": {"method": method, "strict": strict}, "schema": tool}
        parser: Runnable[Any, Any]
        if method == "function_calling":
            name = tool["function"]["name"]
            llm = self.bind_tools(
                [schema],
                tool_choice=name,
                strict=strict,
                parallel_tool_calls=False,
                ls_structured_output_format=trace_format,
            )
            parser = (
                PydanticToolsParser(tools=[schema], first_tool_only=True)  # type: ignore[list-item]
                if is_model
                else JsonOutputKeyToolsParser(key_name=name, first_tool_only=True)
            )
        elif method in ("json_schema", "json_mode"):
            if method == "json_schema":
                function = convert_to_openai_function(schema, strict=strict)
                json_schema = {
                    "name": function["name"],
                    "description": function.get("description", ""),
                    "schema": function["parameters"],
                }
                if strict is not None:
                    json_schema["strict"] = strict
                response_format: dict[str, Any] = {
                    "type": "json_schema",
                    "json_schema": json_schema,
                }
            else:
                response_format = {"type": "json_object"}
            llm = self.bind(
                response_format=response_format, ls_structured_output_format=trace_format
            )
            parser = (
                PydanticOutputParser(pydantic_object=schema)  # type: ignore[arg-type]
                if is_model
                else JsonOutputParser()
            )
        else:
            raise InvalidOptionError(
                f"unknown structured-output method {method!r}; valid: "
                "function_calling, json_schema, json_mode"
            )
        if not include_raw:
            return llm | parser
        parsed = RunnablePassthrough.assign(
            parsed=itemgetter("raw") | parser, parsing_error=lambda _: None
        )
        no_parse = RunnablePassthrough.assign(parsed=lambda _: None)
        return RunnableMap(raw=llm) | parsed.with_fallbacks(
            [no_parse], exception_key="parsing_error"
        )

    # --- routing --------------------------------------------------------------------------

    def decide(self, messages: Sequence[BaseMessage], **options: Any) -> RoutingDecision:
        """The routing decision for a conversation, restricted to candidates in the pool."""
        return self._decide(messages, options)[1]

    def _decide(
        self, messages: Sequence[BaseMessage], options: dict[str, Any]
    ) -> tuple[str, RoutingDecision]:
        """The text routed on, and `decide`'s decision."""
        options = check_options({k: v for k, v in options.items() if k in CHAT_OPTIONS})
        text, _, route_options = self._router_call(messages, options, None, None)
        return text, self._in_pool(self.router.route(text, **route_options))

    def _option(self, options: dict[str, Any], name: str) -> Any:
        value = options.get(name)
        return getattr(self, name) if value is None else value

    def _routing_text(self, messages: Sequence[BaseMessage], options: dict[str, Any]) -> str:
        return routing_text(
            messages,
            self._option(options, "routing_mode"),
            top_k=self._option(options, "retrieval_top_k"),
            embeddings=self.router.embeddings,
        )

    def _in_pool(self, decision: RoutingDecision) -> RoutingDecision:
        ranking = [n for n in decision.ranking if n in self.pool]
        if ranking[0] != decision.model:
            return decision.model_copy(
                update={
                    "model": ranking[0],
                    "est_cost": decision.costs.get(ranking[0], 0.0),
                    "ranking": ranking,
                }
            )
        if len(ranking) != len(decision.ranking):
            return decision.model_copy(update={"ranking": ranking})
        return decision

    def _router_call(
        self,
        messages: Sequence[BaseMessage],
        options: dict[str, Any],
        run_manager: CallbackManagerForLLMRun | AsyncCallbackManagerForLLMRun | None,
        parent_run: tuple[Any, RunnableConfig] | None,
    ) -> tuple[str, RunnableConfig | None, dict[str, Any]]:
        """The router's input, config (a child run of this one; None when no handler would
        see the run, so routing skips the run's bookkeeping) and options."""
        callbacks: CallbackManager | None = None
        parent: Any = run_manager
        if parent is None and parent_run is not None:
            run_id, caller = parent_run
            parent = CallbackManager.configure(
                caller.get("callbacks"),
                self.callbacks,
                self.verbose,
                caller.get("tags"),
                self.tags,
                caller.get("metadata"),
                self.metadata,
            )
            parent.run_id = run_id
        if parent is not None:
            # An LLM run has no get_child(); build the child manager a chain run would.
            callbacks = CallbackManager(handlers=[], parent_run_id=parent.run_id)
            callbacks.set_handlers(parent.inheritable_handlers)
            callbacks.add_tags(parent.inheritable_tags)
            callbacks.add_metadata(parent.inheritable_metadata)
        config: RunnableConfig | None = None
        if callbacks is not None and callbacks.handlers:
            config = {"callbacks": callbacks, "run_name": self.router.name}
        route_options = {
            "cost_weight": self._option(options, "cost_weight"),
            "budget": self._option(options, "budget"),
            "user_id": self._option(options, "user_id"),
        }
        # Another process may have stored this user's ratings since we last routed for them.
        self.feedback_loop.sync(route_options["user_id"])
        return self._routing_text(messages, options), config, route_options

    def _route(
        self,
        messages: Sequence[BaseMessage],
        request: _Request,
        run_manager: CallbackManagerForLLMRun | None,
    ) -> RoutingDecision:
        text, config, route_options = self._router_call(
            messages, request.options, run_manager, request.parent_run
        )
        request.query = text
        if config is None:
            return self._in_pool(self.router.route(text, **route_options))
        return self._in_pool(self.router.invoke(text, config, **route_options))

    async def _aroute(
        self,
        messages: Sequence[BaseMessage],
        request: _Request,
        run_manager: AsyncCallbackManagerForLLMRun | None,
    ) -> RoutingDecision:
        text, config, route_options = self._router_call(
            messages, request.options, run_manager, request.parent_run
        )
        request.query = text
        if config is None:
            decision = await asyncio.to_thread(self.router.route, text, **route_options)
            return self._in_pool(decision)
        return self._in_pool(await self.router.ainvoke(text, config, **route_options))

    # --- one request ----------------------------------------------------------------------

    def _prepare(self, stop: list[str] | None, kwargs: dict[str, Any]) -> _Request:
        """Split and check a call's keywords: routing options, tools, the candidate's own."""
        kwargs = dict(kwargs)
        parent_run = kwargs.pop(_PARENT_KEY, None)
        kwargs.pop("stream", None)  # langchain-core's streaming switch, already applied
        if "model" in kwargs:
            raise InvalidOptionError(
                f"RouterChatModel chooses the model per call, so model={kwargs['model']!r} "
                "cannot be honoured; pass cost_weight/budget to steer the choice, or call "
                "one candidate directly with llm.pool.chat_model(name)"
            )
        options = check_options({k: kwargs.pop(k) for k in CHAT_OPTIONS if k in kwargs})
        misspelt_option(kwargs)
        tool_args = {k: kwargs.pop(k) for k in _TOOL_ARGS if k in kwargs}
        if tool_args.get("tools") and "response_format" in kwargs:
            tool_args["response_format"] = kwargs.pop("response_format")
        for key in ("temperature", "max_tokens"):
            if getattr(self, key) is not None:
                kwargs.setdefault(key, getattr(self, key))
        return _Request(options, tool_args, kwargs, stop or self.stop, parent_run)

    def _candidate(self, name: str, request: _Request) -> Runnable[LanguageModelInput, Any]:
        model = self.pool.chat_model(name)
        tools = request.tool_args.get("tools")
        if not tools:
            return model
        extra = {k: v for k, v in request.tool_args.items() if k != "tools" and v is not None}
        return model.bind_tools(tools, **extra)

    def _plan(
        self, decision: RoutingDecision, messages: list[BaseMessage], request: _Request
    ) -> _AttemptPlan:
        run_id = request.parent_run[0] if request.parent_run else None
        return _AttemptPlan(
            self,
            decision,
            messages,
            decision_id=self.feedback_loop.new_decision_id(run_id),
            query=request.query,
        )

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        request = self._prepare(stop, kwargs)
        plan = self._plan(self._route(messages, request, run_manager), messages, request)
        for name in plan:
            try:
                with _unreported():
                    message = self._candidate(name, request).invoke(
                        messages, _SILENT, stop=request.stop, **request.call_kwargs
                    )
            except Exception as exc:
                if not plan.failed(name, exc):
                    raise
                continue
            return plan.result(name, message)
        raise plan.exhausted()

    async def _agenerate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        request = self._prepare(stop, kwargs)
        plan = self._plan(await self._aroute(messages, request, run_manager), messages, request)
        for name in plan:
            try:
                with _unreported():
                    message = await self._candidate(name, request).ainvoke(
                        messages, _SILENT, stop=request.stop, **request.call_kwargs
                    )
            except Exception as exc:
                if not plan.failed(name, exc):
                    raise
                continue
            return plan.result(name, message)
        raise plan.exhausted()

    def _stream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> Iterator[ChatGenerationChunk]:
        request = self._prepare(stop, kwargs)
        plan = self._plan(self._route(messages, request, run_manager), messages, request)
        for name in plan:
            tally = _StreamTally(plan, name)
            try:
                with _unreported():  # the candidate's run starts on next()
                    chunks = iter(
                        self._candidate(name, request).stream(
                            messages, _SILENT, stop=request.stop, **request.call_kwargs
                        )
                    )
                    chunk = next(chunks, None)
                while chunk is not None:
                    yield from tally.feed(chunk)
                    chunk = next(chunks, None)
            except Exception as exc:
                if tally.started:
                    raise plan.interrupted(name, exc, tally) from exc
                if not plan.failed(name, exc, tally.usage(), streamed=tally.total, stream=True):
                    raise
                continue
            yield from tally.finish()
            return
        raise plan.exhausted()

    async def _astream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> AsyncIterator[ChatGenerationChunk]:
        request = self._prepare(stop, kwargs)
        plan = self._plan(await self._aroute(messages, request, run_manager), messages, request)
        for name in plan:
            tally = _StreamTally(plan, name)
            try:
                with _unreported():
                    chunks = aiter(
                        self._candidate(name, request).astream(
                            messages, _SILENT, stop=request.stop, **request.call_kwargs
                        )
                    )
                    chunk = await anext(chunks, None)
                while chunk is not None:
                    for out in tally.feed(chunk):
                        yield out
                    chunk = await anext(chunks, None)
            except Exception as exc:
                if tally.started:
                    raise plan.interrupted(name, exc, tally) from exc
                if not plan.failed(name, exc, tally.usage(), streamed=tally.total, stream=True):
                    raise
                continue
            for out in tally.finish():
                yield out
            return
        raise plan.exhausted()


@contextmanager
def _unreported() -> Iterator[None]:
    """Keep the candidate's own run out of every callback and trace.

    An explicit empty callback list is not enough: the enclosing runnable's config and the
    handlers registered through context variables (``get_usage_metadata_callback``,
    ``tracing_v2_enabled``, ``collect_runs``) and LangSmith's environment switch attach to
    every run configured in this context.
    The candidate's run is configured on its first call or chunk, inside this block.
    """
    from langchain_core.runnables.config import var_child_runnable_config

    try:  # private to langchain-core: without it, only the registered handlers stay on
        from langchain_core.tracers.context import _configure_hooks
    except ImportError:  # pragma: no cover - depends on the langchain-core version
        _configure_hooks = []

    # The enclosing runnable's config (a chain's or a graph's callbacks) also rides in a
    # context variable that every runnable merges into its own.
    hooks: list[Any] = [var_child_runnable_config, *(hook[0] for hook in _configure_hooks)]
    tokens = [(var, var.set(None)) for var in hooks]
    try:
        with tracing_context(enabled=False):
            yield
    finally:
        for var, token in reversed(tokens):
            var.reset(token)


def _count_openai(messages: Sequence[BaseMessage], tools: Any, *, model_id: str) -> int:
    from langchain_llmrouter.tokens import count_message_tokens

    return count_message_tokens(messages, model_id, tools=tools)


def _is_openai_chat_model(model: BaseChatModel) -> bool:
    from langchain_openai.chat_models.base import BaseChatOpenAI

    return isinstance(model, BaseChatOpenAI)


def _has_output(chunk: AIMessageChunk) -> bool:
    """Whether a chunk carries answer content: text, a tool-call delta or a content block.

    Role-only and metadata-only chunks do not: a stream may still fall back after them.
    """
    if chunk.tool_call_chunks or chunk.text:
        return True
    return isinstance(chunk.content, list) and any(
        block
        for block in chunk.content
        if not (isinstance(block, dict) and block.get("text") == "")
    )


class _Request:
    """One call's keywords, split: routing options, tool arguments, the candidate's own."""

    def __init__(
        self,
        options: dict[str, Any],
        tool_args: dict[str, Any],
        call_kwargs: dict[str, Any],
        stop: list[str] | None,
        parent_run: tuple[Any, RunnableConfig] | None = None,
    ) -> None:
        self.parent_run = parent_run
        self.query: str | None = None  # the text routed on, once routed
        self.options = options
        self.tool_args = tool_args
        self.call_kwargs = call_kwargs
        self.stop = stop


class _AttemptPlan:
    """The candidates one request tries, and what each attempt did.

    Every generation path iterates it, reports each failure to `failed` (which decides
    whether to go on), and builds its answer's routing metadata from it.
    """

    def __init__(
        self,
        owner: RouterChatModel,
        decision: RoutingDecision,
        messages: list[BaseMessage],
        *,
        decision_id: str | None = None,
        query: str | None = None,
    ) -> None:
        self.owner = owner
        self.decision = decision
        self.messages = messages
        self.decision_id = decision_id or owner.feedback_loop.new_decision_id()
        self.query = query
        self.order, self.skipped = plan_attempts(
            decision.ranking, max_attempts=1 + owner.max_fallbacks, health=owner._health
        )
        self.attempts: list[Attempt] = []
        self.failures: list[tuple[str, BaseException]] = []
        self._position = 0
        self._started = 0.0

    def __iter__(self) -> Iterator[str]:
        while self._position < len(self.order):
            name = self.order[self._position]
            self._position += 1
            self._started = time.perf_counter()
            yield name

    def _elapsed(self) -> float:
        return time.perf_counter() - self._started

    def _cost(self, name: str, usage: dict[str, Any] | None) -> float | None:
        if not usage:
            return None
        return self.owner.pool[name].estimate_cost(
            usage.get("input_tokens", 0), usage.get("output_tokens", 0)
        )

    def failed(
        self,
        name: str,
        exc: BaseException,
        usage: dict[str, Any] | None = None,
        *,
        streamed: AIMessageChunk | None = None,
        stream: bool = False,
    ) -> bool:
        """Record a failed attempt; return whether to try the next candidate.

        ``stream`` says the attempt was streamed, ``streamed`` is what arrived of it.
        """
        kind = classify_failure(exc)
        cost = self._cost(name, usage)
        estimated = False
        if cost is None and provider_did_work(exc):
            # The provider may bill a call it ran even though the answer never arrived: a
            # cut stream, the prompt and the tokens seen; otherwise the router's estimate.
            estimated = True
            if stream:
                from langchain_llmrouter.tokens import count_message_tokens, count_text_tokens

                model_id = self.owner.pool[name].model
                seen = count_text_tokens(streamed.text, model_id) if streamed is not None else 0
                prompt = count_message_tokens(self.messages, model_id)
                cost = self.owner.pool[name].estimate_cost(prompt, seen)
            else:
                cost = self.decision.costs.get(name, 0.0)
        elif cost is None:
            cost = 0.0
        self.attempts.append(
            Attempt(
                model=name,
                latency_s=self._elapsed(),
                error=kind,
                message=f"{type(exc).__name__}: {exc}",
                usage=dict(usage) if usage else None,
                cost=cost,
                cost_estimated=estimated,
            )
        )
        self.failures.append((name, exc))
        owner = self.owner
        if kind == "caller":
            return False
        owner._health.record_failure(name)
        if owner.max_fallbacks == 0 or not isinstance(exc, owner.fallback_on):
            return False
        if kind == "context_length":
            windows = {n: owner.pool[n].context_window for n in self.order}
            rest = larger_context(self.order[self._position :], name, windows)
            self.order = self.order[: self._position] + rest
        logger.warning("candidate %s failed (%s: %s); trying the next one", name, kind, exc)
        return True

    def interrupted(self, name: str, exc: BaseException, tally: _StreamTally) -> PartialStreamError:
        """Record a stream that failed after sending text; the error to raise."""
        self.failed(name, exc, tally.usage(), streamed=tally.total, stream=True)
        return PartialStreamError(
            name, exc, partial=tally.total, decision=self.decision, attempts=self.attempts
        )

    def exhausted(self) -> AllCandidatesFailedError:
        """The error when every planned attempt failed."""
        error = AllCandidatesFailedError(
            self.failures, attempts=self.attempts, decision=self.decision
        )
        error.__cause__ = self.failures[-1][1] if self.failures else None
        return error

    def succeeded(self, name: str, message: BaseMessage | None) -> None:
        """Record the attempt that answered."""
        usage = getattr(message, "usage_metadata", None) if message is not None else None
        self.attempts.append(
            Attempt(
                model=name,
                latency_s=self._elapsed(),
                usage=dict(usage) if usage else None,
                cost=self._cost(name, usage),
            )
        )
        self.owner._health.record_success(name)
        query = (
            self.query if self.query is not None else self.owner._routing_text(self.messages, {})
        )
        self.owner.feedback_loop.answered(
            self.decision_id, query=query, model=name, user_id=self.decision.user_id
        )

    def routing(self, answered_by: str) -> dict[str, Any]:
        """The decision and what happened before the answer (the first chunk's metadata)."""
        meta = self.decision.to_metadata()
        meta.update(
            decision_id=self.decision_id,
            chosen=self.decision.model,
            model=answered_by,
            fallback=bool(self.failures),
            failed=[
                {"model": a.model, "error": a.message, "kind": a.error}
                for a in self.attempts
                if a.error is not None
            ],
            skipped=list(self.skipped),
        )
        return meta

    def final(self) -> dict[str, Any]:
        """Every attempt and the dollars they cost (known once the answer is complete).

        ``actual_cost`` adds the failed attempts' cost (reported, or the router's estimate
        where the provider ran the call but no usage came back) to the answer's, and is
        None when the answering candidate reported no usage.
        """
        answer = self.attempts[-1]
        total = None
        if answer.cost is not None:
            total = answer.cost + sum(a.cost or 0.0 for a in self.attempts[:-1])
        return {"attempts": [a.to_metadata() for a in self.attempts], "actual_cost": total}

    def gateway(self, name: str) -> dict[str, Any]:
        """Who answered, for the tracer (it renames the run after this candidate)."""
        model = self.owner.pool.chat_model(name)
        try:
            provider = model._get_ls_params().get("ls_provider") or "llmrouter"
        except Exception:  # a third-party model's tracing hook must not break an answer
            provider = "llmrouter"
        return {
            "model": self.owner.pool[name].model,
            "provider": provider,
            "router": self.decision.router,
            "candidate": name,
            "chosen": self.decision.model,
        }

    def result(self, name: str, message: BaseMessage) -> ChatResult:
        """The `ChatResult` of an answered (non-streamed) request."""
        self.succeeded(name, message)
        if not isinstance(message, AIMessage):
            message = AIMessage(content=message.content)
        routing = {**self.routing(name), **self.final()}
        message = message.model_copy(
            update={"response_metadata": {**message.response_metadata, "routing": routing}}
        )
        return ChatResult(
            generations=[
                ChatGeneration(message=message, generation_info={_GATEWAY_KEY: self.gateway(name)})
            ],
            llm_output={"routing": routing},
        )


class _StreamTally:
    """One streamed attempt: holds chunks until the first content, then passes them on."""

    def __init__(self, plan: _AttemptPlan, name: str) -> None:
        self.plan = plan
        self.name = name
        self.started = False
        self.held: list[AIMessageChunk] = []
        self.total: AIMessageChunk | None = None

    def usage(self) -> dict[str, Any] | None:
        usage = self.total.usage_metadata if self.total is not None else None
        return dict(usage) if usage else None

    def feed(self, chunk: BaseMessage) -> list[ChatGenerationChunk]:
        """Take one chunk of the candidate's; return those to pass on now."""
        if not isinstance(chunk, AIMessageChunk):
            chunk = AIMessageChunk(content=chunk.content)
        if chunk.chunk_position == "last":  # this model's own last chunk ends the stream
            chunk = chunk.model_copy(update={"chunk_position": None})
        self.total = chunk if self.total is None else self.total + chunk
        if self.started:
            return [ChatGenerationChunk(message=chunk)]
        self.held.append(chunk)
        if not _has_output(chunk):
            return []
        self.started = True
        return self._release()

    def _release(self) -> list[ChatGenerationChunk]:
        held, self.held = self.held or [AIMessageChunk(content="")], []
        first = held[0]
        routing = self.plan.routing(self.name)
        held[0] = first.model_copy(
            update={"response_metadata": {**first.response_metadata, "routing": routing}}
        )
        return [ChatGenerationChunk(message=c) for c in held]

    def finish(self) -> list[ChatGenerationChunk]:
        """The stream ended well: release what is held, then the last chunk with the cost."""
        out = [] if self.started else self._release()
        self.plan.succeeded(self.name, self.total)
        last = AIMessageChunk(
            content="", chunk_position="last", response_metadata={"routing": self.plan.final()}
        )
        out.append(
            ChatGenerationChunk(
                message=last, generation_info={_GATEWAY_KEY: self.plan.gateway(self.name)}
            )
        )
        return out
