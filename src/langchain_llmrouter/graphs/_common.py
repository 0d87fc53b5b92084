"""What every router graph shares: the call record, cost accounting and the spending bound.

Every LLM call a graph makes (a policy turn, a candidate's answer, a decomposition, a
verification) goes through `call_llm` / `acall_llm`, which returns the reply and one
`LLMCall` record: who was called, in what role, the real token counts from the reply's
``usage_metadata`` and the dollars they cost at the candidate's prices. The records are
appended to the graph state's ``calls`` list and their costs summed into ``cost`` (both
with ``operator.add`` reducers), so a finished or interrupted run always knows what it
spent, and a checkpoint holds every call already paid for.

The spending bound is checked *before* a call: `would_exceed` estimates the call's
worst case (its prompt, plus ``max_tokens`` of output) and a graph that would pass its
``max_cost`` stops instead of calling.
"""

from __future__ import annotations

import operator
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from functools import wraps
from typing import Annotated, Any, Literal, TypedDict

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage
from langchain_core.runnables import RunnableConfig, RunnableLambda

from langchain_llmrouter.candidates import CandidatePool, estimate_input_tokens

StopReason = Literal["answer", "max_turns", "max_cost", "error"]
"""Why a graph finished: it answered, ran out of turns, would have passed ``max_cost``, or
every route failed."""

DEFAULT_MAX_TOKENS = 512
"""Output-token cap for candidate calls (Router-R1's and the multi-round routers' value)."""


class LLMCall(TypedDict):
    """One LLM call made by a router graph (an entry of the state's ``calls``)."""

    role: str
    """What the call was for: ``policy``, ``candidate``, ``decompose``, ``route``,
    ``aggregate``, ``verify`` ..."""
    model: str
    """The candidate name (or, for a model outside the pool, its model id)."""
    prompt: str
    """The text sent (the last user message of the request)."""
    response: str
    """The reply text ("" when the call failed)."""
    input_tokens: int
    """Prompt tokens reported by the provider (estimated when it reports none)."""
    output_tokens: int
    """Completion tokens reported by the provider (estimated when it reports none)."""
    cost: float
    """Dollars, from the token counts and the candidate's prices (0 outside the pool)."""
    latency_s: float
    """Wall-clock seconds of the call."""
    error: str | None
    """``"ErrorType: message"`` when the call failed, else None."""


class RouterGraphState(TypedDict, total=False):
    """Keys every router graph's state has (each graph's state extends this).

    ``calls`` and ``cost`` have ``operator.add`` reducers: nodes return only the calls they
    made and what those cost.
    """

    question: str
    """The user's question (the graph's input)."""
    answer: str
    """The final answer, extracted (not the transcript)."""
    calls: Annotated[list[LLMCall], operator.add]
    """Every LLM call made so far, in order of completion."""
    cost: Annotated[float, operator.add]
    """Dollars spent so far (the sum of ``calls``' costs)."""
    stop_reason: StopReason
    """Why the run ended (set by the graph's last node)."""


@dataclass(frozen=True)
class ModelRef:
    """A chat model a graph calls, with the name and prices its calls are recorded under."""

    model: BaseChatModel
    name: str
    input_price: float = 0.0
    output_price: float = 0.0

    def cost(self, input_tokens: float, output_tokens: float) -> float:
        """Dollars for one call with these token counts."""
        return (input_tokens * self.input_price + output_tokens * self.output_price) / 1e6


def model_ref(model: BaseChatModel | str, pool: CandidatePool, *, role: str = "model") -> ModelRef:
    """Resolve a graph's helper model: a candidate name in ``pool``, or any chat model.

    A candidate is called through the pool and charged at its prices; a chat model given
    directly (a self-hosted policy, say) is recorded under its model id at no cost.

    Raises:
        UnknownCandidateError: ``model`` is a string that names no candidate (lists them).
        TypeError: ``model`` is neither a string nor a chat model.
    """
    if isinstance(model, str):
        candidate = pool[model]
        return ModelRef(
            pool.chat_model(model), model, candidate.input_price, candidate.output_price
        )
    if not isinstance(model, BaseChatModel):
        raise TypeError(
            f"{role} must be a LangChain chat model or a candidate name, not {type(model).__name__}"
        )
    name = getattr(model, "model_name", None) or getattr(model, "model", None)
    return ModelRef(model, str(name or type(model).__name__))


def candidate_ref(pool: CandidatePool, name: str) -> ModelRef:
    """The `ModelRef` of a pool candidate (its chat model is built on first use)."""
    candidate = pool[name]
    return ModelRef(pool.chat_model(name), name, candidate.input_price, candidate.output_price)


def max_cost_of(config: RunnableConfig | None, default: float | None) -> float | None:
    """The run's spending bound: ``configurable.max_cost`` if given, else the builder's."""
    configurable = (config or {}).get("configurable") or {}
    value = configurable.get("max_cost", default)
    return None if value is None else float(value)


def worst_case_cost(ref: ModelRef, prompt: str, max_tokens: int | None) -> float:
    """Upper estimate of one call's cost: the prompt (4 characters a token) plus
    ``max_tokens`` of output (`DEFAULT_MAX_TOKENS` when uncapped)."""
    return ref.cost(estimate_input_tokens(prompt), max_tokens or DEFAULT_MAX_TOKENS)


def would_exceed(
    spent: float, estimate: float, config: RunnableConfig | None, default: float | None
) -> bool:
    """Whether a call estimated at ``estimate`` dollars could take the run past its bound."""
    bound = max_cost_of(config, default)
    return bound is not None and spent + estimate > bound + 1e-12


def _as_messages(prompt: str | Sequence[BaseMessage]) -> list[BaseMessage]:
    return [HumanMessage(prompt)] if isinstance(prompt, str) else list(prompt)


def _record(
    ref: ModelRef,
    role: str,
    messages: list[BaseMessage],
    reply: AIMessage | None,
    seconds: float,
    error: BaseException | None,
) -> LLMCall:
    prompt = next((m.text for m in reversed(messages) if m.type == "human"), messages[-1].text)
    text = reply.text if reply is not None else ""
    usage: dict[str, Any] = dict((reply.usage_metadata if reply is not None else None) or {})
    if reply is not None:
        in_tokens = int(usage.get("input_tokens") or 0) or sum(
            estimate_input_tokens(m.text) for m in messages
        )
        out_tokens = int(usage.get("output_tokens") or 0) or estimate_input_tokens(text)
    else:  # a failed request may still have been billed; we cannot know, so count nothing
        in_tokens = out_tokens = 0
    return LLMCall(
        role=role,
        model=ref.name,
        prompt=prompt,
        response=text,
        input_tokens=in_tokens,
        output_tokens=out_tokens,
        cost=ref.cost(in_tokens, out_tokens),
        latency_s=round(seconds, 4),
        error=None if error is None else f"{type(error).__name__}: {error}",
    )


def call_llm(
    ref: ModelRef,
    prompt: str | Sequence[BaseMessage],
    *,
    role: str,
    config: RunnableConfig | None = None,
    raise_errors: bool = False,
    **kwargs: Any,
) -> tuple[AIMessage | None, LLMCall]:
    """Call a model and record the call.

    Args:
        ref: The model and its prices.
        prompt: A user message text, or the messages to send.
        role: What the call is for (recorded).
        config: The node's config, so callbacks and traces nest under the graph's run.
        raise_errors: Re-raise a failed call's error instead of recording it.
        **kwargs: Passed to the model (``max_tokens``, ``stop``, ``temperature`` ...).

    Returns:
        The reply (None when the call failed) and its `LLMCall` record.
    """
    messages = _as_messages(prompt)
    start = time.perf_counter()
    try:
        reply = ref.model.invoke(messages, config=config, **kwargs)
    except Exception as exc:
        if raise_errors:
            raise
        return None, _record(ref, role, messages, None, time.perf_counter() - start, exc)
    assert isinstance(reply, AIMessage)
    return reply, _record(ref, role, messages, reply, time.perf_counter() - start, None)


async def acall_llm(
    ref: ModelRef,
    prompt: str | Sequence[BaseMessage],
    *,
    role: str,
    config: RunnableConfig | None = None,
    raise_errors: bool = False,
    **kwargs: Any,
) -> tuple[AIMessage | None, LLMCall]:
    """Async twin of `call_llm`."""
    messages = _as_messages(prompt)
    start = time.perf_counter()
    try:
        reply = await ref.model.ainvoke(messages, config=config, **kwargs)
    except Exception as exc:
        if raise_errors:
            raise
        return None, _record(ref, role, messages, None, time.perf_counter() - start, exc)
    assert isinstance(reply, AIMessage)
    return reply, _record(ref, role, messages, reply, time.perf_counter() - start, None)


def async_twin(func: Callable[..., dict[str, Any]]) -> Callable[..., Awaitable[dict[str, Any]]]:
    """The async twin of a node that does no I/O (it runs the sync function as it is)."""

    @wraps(func)
    async def run(*args: Any, **kwargs: Any) -> dict[str, Any]:
        return func(*args, **kwargs)

    return run


def node(name: str, func: Any, afunc: Any) -> RunnableLambda:
    """A graph node from a sync function and its async twin (both already bound to their
    settings with `functools.partial`): ``invoke`` runs one, ``ainvoke`` the other."""
    return RunnableLambda(func, afunc=afunc, name=name)


def usage_totals(calls: Sequence[LLMCall]) -> dict[str, int]:
    """Summed ``input_tokens`` / ``output_tokens`` / ``total_tokens`` of some calls."""
    inputs = sum(c["input_tokens"] for c in calls)
    outputs = sum(c["output_tokens"] for c in calls)
    return {"input_tokens": inputs, "output_tokens": outputs, "total_tokens": inputs + outputs}
