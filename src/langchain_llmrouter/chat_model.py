"""`RouterChatModel`: a drop-in LangChain chat model that routes every request.

It asks its router which candidate to use, calls that candidate's chat model,
and returns the candidate's message with the routing decision in
``response_metadata["routing"]``. When the chosen provider fails (after its own
retries) the next-best candidate answers, and the metadata says so.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import operator
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from langchain_core.callbacks import (
    AsyncCallbackManagerForLLMRun,
    BaseCallbackManager,
    CallbackManagerForLLMRun,
)
from langchain_core.embeddings import Embeddings
from langchain_core.language_models import BaseChatModel, LanguageModelInput
from langchain_core.language_models.chat_models import LangSmithParams
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage, message_chunk_to_message
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult
from langchain_core.runnables import Runnable, RunnableConfig
from langchain_core.runnables.config import ensure_config
from langchain_core.tools import BaseTool
from langchain_core.utils.function_calling import convert_to_openai_tool
from pydantic import ConfigDict, Field, model_validator

from langchain_llmrouter.candidates import CandidatePool, LLMCandidate
from langchain_llmrouter.errors import LLMRouterError
from langchain_llmrouter.routers.base import BaseRouter, RoutingDecision

logger = logging.getLogger(__name__)

RoutingMode = Literal["current_only", "full_context", "retrieval"]
_PER_CALL_OPTIONS = ("cost_weight", "budget", "routing_mode", "retrieval_top_k")
# Configuration mistakes and bugs are not provider failures: falling back would hide them.
_NEVER_FALL_BACK = (LLMRouterError, AttributeError, NameError, ImportError, AssertionError)
# generate()'s own run already reports the candidate's messages and usage; an explicit empty
# list (not None) also stops callbacks inherited from an enclosing chain.
_CANDIDATE_CONFIG: RunnableConfig = {"callbacks": []}


class AllCandidatesFailedError(LLMRouterError, RuntimeError):
    """The chosen candidate and every fallback failed; ``failures`` lists (model, error)."""

    def __init__(self, failures: list[tuple[str, BaseException]]) -> None:
        self.failures = failures
        detail = "; ".join(f"{m}: {type(e).__name__}: {e}" for m, e in failures)
        super().__init__(f"every candidate tried failed ({detail})")


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

    vectors = embed_texts([current, *earlier], embeddings)
    vectors = vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
    similarity = vectors[1:] @ vectors[0]
    nearest = sorted(np.argsort(-similarity, kind="stable")[:top_k])
    return "\n".join([*(earlier[i] for i in nearest), current])


class RouterChatModel(BaseChatModel):
    """A chat model that sends each request to the candidate its router picks.

    Example:
        .. code-block:: python

            pool = CandidatePool.from_json("default_llm.json", api_endpoint="http://localhost:8000/v1")
            llm = RouterChatModel(router=load_router("models/knnrouter"), candidates=pool)
            msg = llm.invoke("Prove that sqrt(2) is irrational.")
            msg.response_metadata["routing"]["model"]

    Per call, ``cost_weight``, ``budget`` and ``routing_mode`` may be passed as keyword
    arguments or through ``config={"configurable": {...}}``; other keyword arguments
    (``temperature``, ``max_tokens``, ``response_format``, ...) go to the chosen candidate.

    Callbacks and traces see one chat-model run per request: the chosen candidate's, with
    ``llmrouter_router``/``llmrouter_model`` in its metadata (a fallback adds a failed run).
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
    cost_weight: float | None = Field(default=None, ge=0)
    """Overrides the router's cost weight (quality per dollar per 1,000 queries)."""
    budget: float | None = Field(default=None, gt=0)
    """Overrides the router's per-call budget in dollars."""
    max_fallbacks: int = Field(default=2, ge=0)
    """How many next-best candidates to try when the chosen one fails (0: its error is raised)."""
    fallback_on: tuple[type[BaseException], ...] = (Exception,)
    """Exception types that trigger a fallback."""
    temperature: float | None = None
    """Sampling temperature sent to the chosen candidate (None: the candidate's own)."""
    max_tokens: int | None = Field(default=None, gt=0)
    """Maximum tokens to generate, sent to the chosen candidate (None: the candidate's own)."""
    stop: list[str] | None = None
    """Default stop sequences, sent to the chosen candidate unless a call gives its own."""
    streaming: bool = False
    """Whether ``invoke`` streams from the candidate under the hood (as in ``ChatOpenAI``)."""

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
        usable = [n for n in self.router.candidates_ if n in self.candidates]
        if not usable:
            raise ValueError(
                f"none of the router's candidates ({', '.join(self.router.candidates_)}) "
                f"is in the pool ({', '.join(self.candidates.names)})"
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

    @property
    def pool(self) -> CandidatePool:
        """The candidate pool in use."""
        assert self.candidates is not None
        return self.candidates

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
        # A per-call `model` is forwarded to the candidate's API request: trace that model.
        model_name = str(kwargs.get("model") or self.router.name)
        params = LangSmithParams(
            ls_provider="llmrouter", ls_model_name=model_name, ls_model_type="chat"
        )
        if self.temperature is not None:
            params["ls_temperature"] = self.temperature
        if self.max_tokens is not None:
            params["ls_max_tokens"] = self.max_tokens
        if stop or self.stop:
            params["ls_stop"] = stop or self.stop
        return params

    # --- per-call options through `configurable` -----------------------------------------

    @staticmethod
    def _configured(config: RunnableConfig | None, kwargs: dict[str, Any]) -> dict[str, Any]:
        configurable = ensure_config(config).get("configurable", {})
        extra = {
            k: configurable[k]
            for k in _PER_CALL_OPTIONS
            if configurable.get(k) is not None and k not in kwargs
        }
        return {**extra, **kwargs}

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
        kwargs = self._configured(config, kwargs)
        if self.streaming:  # as with ChatOpenAI(streaming=True): invoke streams under the hood
            return _merged(list(self.stream(input, config, stop=stop, **kwargs)))
        messages = self._convert_input(input).to_messages()
        return self._answer(messages, stop, config, kwargs)

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
        kwargs = self._configured(config, kwargs)
        if self.streaming:
            chunks = [c async for c in self.astream(input, config, stop=stop, **kwargs)]
            return _merged(chunks)
        messages = self._convert_input(input).to_messages()
        return await self._aanswer(messages, stop, config, kwargs)

    def stream(
        self,
        input: LanguageModelInput,
        config: RunnableConfig | None = None,
        *,
        stop: list[str] | None = None,
        **kwargs: Any,
    ) -> Iterator[AIMessageChunk]:
        """Stream the chosen candidate's answer; routing rides on the first chunk."""
        config = ensure_config(config)
        kwargs = self._configured(config, kwargs)
        if self.disable_streaming is True:
            yield _as_chunk(self.invoke(input, config, stop=stop, **kwargs))
            return
        messages = self._convert_input(input).to_messages()
        yield from self._answer_stream(messages, stop, config, kwargs)

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
        kwargs = self._configured(config, kwargs)
        if self.disable_streaming is True:
            yield _as_chunk(await self.ainvoke(input, config, stop=stop, **kwargs))
            return
        messages = self._convert_input(input).to_messages()
        async for chunk in self._aanswer_stream(messages, stop, config, kwargs):
            yield chunk

    # --- tools ----------------------------------------------------------------------------

    def bind_tools(
        self,
        tools: Sequence[dict[str, Any] | type | Callable[..., Any] | BaseTool],
        *,
        tool_choice: str | dict[str, Any] | bool | None = None,
        **kwargs: Any,
    ) -> Runnable[LanguageModelInput, AIMessage]:
        """Bind tools; the chosen candidate's chat model receives them on each call."""
        formatted = [convert_to_openai_tool(t) for t in tools]
        return self.bind(tools=formatted, tool_choice=tool_choice, **kwargs)

    # --- routing --------------------------------------------------------------------------

    def decide(self, messages: Sequence[BaseMessage], **options: Any) -> RoutingDecision:
        """The routing decision for a conversation, restricted to candidates in the pool."""
        mode = options.get("routing_mode") or self.routing_mode
        cost_weight = options.get("cost_weight", self.cost_weight)
        budget = options.get("budget", self.budget)
        text = routing_text(
            messages,
            mode,
            top_k=options.get("retrieval_top_k", self.retrieval_top_k),
            embeddings=self.router.embeddings,
        )
        decision = self.router.route(text, cost_weight=cost_weight, budget=budget)
        ranking = [n for n in decision.ranking if n in self.pool]
        if ranking[0] != decision.model:
            decision = decision.model_copy(
                update={
                    "model": ranking[0],
                    "est_cost": decision.costs.get(ranking[0], 0.0),
                    "ranking": ranking,
                }
            )
        elif len(ranking) != len(decision.ranking):
            decision = decision.model_copy(update={"ranking": ranking})
        return decision

    def _split_kwargs(
        self, kwargs: dict[str, Any]
    ) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
        options = {k: kwargs.pop(k) for k in _PER_CALL_OPTIONS if k in kwargs}
        tool_args: dict[str, Any] = {
            k: kwargs.pop(k)
            for k in ("tools", "tool_choice", "parallel_tool_calls", "strict")
            if k in kwargs
        }
        for key in ("temperature", "max_tokens"):
            if getattr(self, key) is not None:
                kwargs.setdefault(key, getattr(self, key))
        return options, tool_args, kwargs

    def _attempts(self, decision: RoutingDecision) -> list[str]:
        return decision.ranking[: 1 + self.max_fallbacks]

    def _candidate_model(
        self, name: str, tool_args: dict[str, Any]
    ) -> Runnable[LanguageModelInput, BaseMessage]:
        model = self.pool.chat_model(name)
        tools = tool_args.get("tools")
        if not tools:
            return model
        extra = {
            k: v
            for k, v in tool_args.items()
            if k not in ("tools", "tool_choice") and v is not None
        }
        return model.bind_tools(tools, tool_choice=tool_args.get("tool_choice"), **extra)

    def _can_fall_back(self, exc: BaseException) -> bool:
        # Without fallbacks the provider's own error goes to the caller unwrapped.
        return (
            self.max_fallbacks > 0
            and isinstance(exc, self.fallback_on)
            and not isinstance(exc, _NEVER_FALL_BACK)
        )

    def _routing_metadata(
        self,
        decision: RoutingDecision,
        answered_by: str,
        failures: list[tuple[str, BaseException]],
        message: BaseMessage | None,
    ) -> dict[str, Any]:
        meta = decision.to_metadata()
        meta.update(
            chosen=decision.model,
            model=answered_by,
            fallback=bool(failures),
            failed=[{"model": m, "error": f"{type(e).__name__}: {e}"} for m, e in failures],
        )
        if message is not None:
            meta["actual_cost"] = self._actual_cost(answered_by, message)
        return meta

    def _actual_cost(self, name: str, message: BaseMessage) -> float | None:
        usage = getattr(message, "usage_metadata", None)
        if not usage:
            return None
        return self.pool[name].estimate_cost(
            usage.get("input_tokens", 0), usage.get("output_tokens", 0)
        )

    # --- generation -----------------------------------------------------------------------
    # The public entry points above hand the caller's config to the candidate, so callbacks
    # and traces see one chat-model run per request: the candidate's, tagged with the routing
    # (a run of the router's own around it would make usage callbacks count every call twice).
    # BaseChatModel's generate()/agenerate() path reaches `_generate`/`_stream`, which call the
    # candidate without callbacks for the same reason.

    def _candidate_config(
        self, config: RunnableConfig, decision: RoutingDecision, name: str, attempt: int
    ) -> RunnableConfig:
        callbacks = config.get("callbacks")
        # The model's own callbacks, as BaseChatModel would honour them; on the generate()
        # path BaseChatModel already has (`_CANDIDATE_CONFIG`: the candidate stays silent).
        if self.callbacks and config is not _CANDIDATE_CONFIG:
            own = (
                self.callbacks.handlers
                if isinstance(self.callbacks, BaseCallbackManager)
                else list(self.callbacks)
            )
            if isinstance(callbacks, BaseCallbackManager):
                callbacks = callbacks.copy()
                for handler in own:
                    callbacks.add_handler(handler, inherit=True)
            else:
                callbacks = [*(callbacks or []), *own]
        metadata = {
            **(self.metadata or {}),
            **(config.get("metadata") or {}),
            "llmrouter_router": self.router.name,
            "llmrouter_model": name,
            "llmrouter_chosen": decision.model,
        }
        tags = [*(config.get("tags") or []), *(self.tags or [])]
        child: RunnableConfig = {
            **config,
            "callbacks": callbacks,
            "metadata": metadata,
            "tags": tags,
        }
        if attempt:  # a caller's run_id names one run: the first attempt's
            child.pop("run_id", None)
        return child

    def _answer(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None,
        config: RunnableConfig,
        kwargs: dict[str, Any],
    ) -> AIMessage:
        options, tool_args, call_kwargs = self._split_kwargs(dict(kwargs))
        decision = self.decide(messages, **options)
        failures: list[tuple[str, BaseException]] = []
        for attempt, name in enumerate(self._attempts(decision)):
            try:
                model = self._candidate_model(name, tool_args)
                message = model.invoke(
                    messages,
                    self._candidate_config(config, decision, name, attempt),
                    stop=stop or self.stop,
                    **call_kwargs,
                )
            except Exception as exc:
                if not self._can_fall_back(exc):
                    raise
                logger.warning("candidate %s failed (%s); trying the next one", name, exc)
                failures.append((name, exc))
                continue
            return self._with_routing(message, decision, name, failures)
        raise AllCandidatesFailedError(failures) from failures[-1][1]

    async def _aanswer(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None,
        config: RunnableConfig,
        kwargs: dict[str, Any],
    ) -> AIMessage:
        options, tool_args, call_kwargs = self._split_kwargs(dict(kwargs))
        decision = await asyncio.to_thread(self.decide, messages, **options)
        failures: list[tuple[str, BaseException]] = []
        for attempt, name in enumerate(self._attempts(decision)):
            try:
                model = self._candidate_model(name, tool_args)
                message = await model.ainvoke(
                    messages,
                    self._candidate_config(config, decision, name, attempt),
                    stop=stop or self.stop,
                    **call_kwargs,
                )
            except Exception as exc:
                if not self._can_fall_back(exc):
                    raise
                logger.warning("candidate %s failed (%s); trying the next one", name, exc)
                failures.append((name, exc))
                continue
            return self._with_routing(message, decision, name, failures)
        raise AllCandidatesFailedError(failures) from failures[-1][1]

    def _answer_stream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None,
        config: RunnableConfig,
        kwargs: dict[str, Any],
    ) -> Iterator[AIMessageChunk]:
        options, tool_args, call_kwargs = self._split_kwargs(dict(kwargs))
        decision = self.decide(messages, **options)
        failures: list[tuple[str, BaseException]] = []
        for attempt, name in enumerate(self._attempts(decision)):
            tally = _StreamTally()
            try:
                model = self._candidate_model(name, tool_args)
                for chunk in model.stream(
                    messages,
                    self._candidate_config(config, decision, name, attempt),
                    stop=stop or self.stop,
                    **call_kwargs,
                ):
                    yield self._stream_chunk(chunk, decision, name, failures, tally)
            except Exception as exc:
                # Once text has gone out, switching model would splice two answers.
                if tally.started or not self._can_fall_back(exc):
                    raise
                logger.warning("candidate %s failed (%s); trying the next one", name, exc)
                failures.append((name, exc))
                continue
            if not tally.finished:
                yield self._last_chunk(name, tally)
            return
        raise AllCandidatesFailedError(failures) from failures[-1][1]

    async def _aanswer_stream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None,
        config: RunnableConfig,
        kwargs: dict[str, Any],
    ) -> AsyncIterator[AIMessageChunk]:
        options, tool_args, call_kwargs = self._split_kwargs(dict(kwargs))
        decision = await asyncio.to_thread(self.decide, messages, **options)
        failures: list[tuple[str, BaseException]] = []
        for attempt, name in enumerate(self._attempts(decision)):
            tally = _StreamTally()
            try:
                model = self._candidate_model(name, tool_args)
                async for chunk in model.astream(
                    messages,
                    self._candidate_config(config, decision, name, attempt),
                    stop=stop or self.stop,
                    **call_kwargs,
                ):
                    yield self._stream_chunk(chunk, decision, name, failures, tally)
            except Exception as exc:
                if tally.started or not self._can_fall_back(exc):
                    raise
                logger.warning("candidate %s failed (%s); trying the next one", name, exc)
                failures.append((name, exc))
                continue
            if not tally.finished:
                yield self._last_chunk(name, tally)
            return
        raise AllCandidatesFailedError(failures) from failures[-1][1]

    def _with_routing(
        self,
        message: BaseMessage,
        decision: RoutingDecision,
        name: str,
        failures: list[tuple[str, BaseException]],
    ) -> AIMessage:
        if not isinstance(message, AIMessage):
            message = AIMessage(content=message.content)
        routing = self._routing_metadata(decision, name, failures, message)
        return message.model_copy(
            update={"response_metadata": {**message.response_metadata, "routing": routing}}
        )

    def _stream_chunk(
        self,
        chunk: BaseMessage,
        decision: RoutingDecision,
        name: str,
        failures: list[tuple[str, BaseException]],
        tally: _StreamTally,
    ) -> AIMessageChunk:
        if not isinstance(chunk, AIMessageChunk):
            chunk = AIMessageChunk(content=chunk.content)
        tally.total = chunk if tally.total is None else tally.total + chunk
        routing: dict[str, Any] = {}
        if not tally.started:
            # The decision rides on the first chunk so a UI can show it at once.
            routing = self._routing_metadata(decision, name, failures, None)
            tally.started = True
        if chunk.chunk_position == "last":
            # Usage has arrived by the last chunk: the actual cost rides on it.
            routing["actual_cost"] = self._actual_cost(name, tally.total)
            tally.finished = True
        if routing:
            chunk = chunk.model_copy(
                update={"response_metadata": {**chunk.response_metadata, "routing": routing}}
            )
        return chunk

    def _last_chunk(self, name: str, tally: _StreamTally) -> AIMessageChunk:
        cost = self._actual_cost(name, tally.total) if tally.total is not None else None
        return AIMessageChunk(
            content="", chunk_position="last", response_metadata={"routing": {"actual_cost": cost}}
        )

    # BaseChatModel's own generation path (generate(), agenerate(), callbacks-managed runs).

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        message = self._answer(messages, stop, _CANDIDATE_CONFIG, kwargs)
        return ChatResult(
            generations=[ChatGeneration(message=message)],
            llm_output={"routing": message.response_metadata["routing"]},
        )

    async def _agenerate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        message = await self._aanswer(messages, stop, _CANDIDATE_CONFIG, kwargs)
        return ChatResult(
            generations=[ChatGeneration(message=message)],
            llm_output={"routing": message.response_metadata["routing"]},
        )

    def _stream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> Iterator[ChatGenerationChunk]:
        for chunk in self._answer_stream(messages, stop, _CANDIDATE_CONFIG, kwargs):
            yield ChatGenerationChunk(message=chunk)

    async def _astream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> AsyncIterator[ChatGenerationChunk]:
        async for chunk in self._aanswer_stream(messages, stop, _CANDIDATE_CONFIG, kwargs):
            yield ChatGenerationChunk(message=chunk)


@dataclass
class _StreamTally:
    """What one streamed attempt has produced so far."""

    started: bool = False
    finished: bool = False
    total: AIMessageChunk | None = None


def _merged(chunks: list[AIMessageChunk]) -> AIMessage:
    if not chunks:
        raise ValueError("the candidate's stream yielded nothing")
    total = functools.reduce(operator.add, chunks)
    return message_chunk_to_message(total)  # type: ignore[return-value]


def _as_chunk(message: AIMessage) -> AIMessageChunk:
    return AIMessageChunk(**message.model_dump(exclude={"type"}), chunk_position="last")
