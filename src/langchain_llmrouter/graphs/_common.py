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

Input and reply: every graph starts with `read_input`, which takes the run's question from
``{"question": ...}`` or from the last human message of ``{"messages": [...]}`` (the shape of
a LangGraph ``MessagesState``) and raises `GraphInputError` for anything else; when the
question came from ``messages``, the graph's last node appends the answer to them as an
`AIMessage` (`with_reply`), so a graph works as a node of a ``MessagesState`` parent.
"""

from __future__ import annotations

import operator
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import partial, wraps
from typing import Annotated, Any, Literal

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, AnyMessage, BaseMessage, HumanMessage
from langchain_core.runnables import RunnableConfig, RunnableLambda
from langgraph.graph import START, StateGraph
from langgraph.graph.message import Messages, add_messages

# typing_extensions' TypedDict (not typing's) so pydantic can build the graphs' input JSON
# schema on Python 3.11 (`graph.get_input_jsonschema()`, LangGraph Studio, `as_tool`).
from typing_extensions import TypedDict

from langchain_llmrouter.candidates import CandidatePool, estimate_input_tokens
from langchain_llmrouter.errors import GraphInputError

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


def merge_messages(left: Messages | None, right: Messages | None) -> Messages:
    """Reducer of ``messages``: LangGraph's ``add_messages`` (append, or replace by id), with
    an item that is not a message reported as a `GraphInputError`."""
    try:
        return add_messages(left or [], right or [])
    except (ValueError, TypeError, NotImplementedError) as exc:
        raise GraphInputError(
            "'messages' must be a list of messages (BaseMessage objects, dicts with 'role' "
            f"and 'content', or (role, text) tuples): {exc}"
        ) from exc


class RouterGraphInput(TypedDict, total=False):
    """What a router graph takes: a ``question``, or ``messages`` whose last human message is
    the question (a LangGraph ``MessagesState``'s shape). Other keys are ignored."""

    question: str
    """The user's question (or, with ``messages``, their last human message's text)."""
    messages: Annotated[list[AnyMessage], merge_messages]
    """The conversation: its last human message is asked, earlier turns are kept here but
    sent to no model, and the answer is appended as an `AIMessage`. Empty with ``question``."""


class RouterGraphState(RouterGraphInput, total=False):
    """Keys every router graph's state has (each graph's state extends this).

    ``calls`` and ``cost`` have ``operator.add`` reducers: nodes return only the calls they
    made and what those cost.
    """

    from_messages: bool
    """Whether this run's question is the last human message of ``messages``."""
    asked_id: str | None
    """Id of the last human message a run on this thread answered (so that a later
    ``question`` input on the thread is not mistaken for a new message)."""
    run_start: int
    """How many ``calls`` the thread held when this run began (this run's are the rest)."""
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


# --- input and reply -----------------------------------------------------------------------

_ACCEPTED = (
    "a router graph takes {'question': '<text>'} or {'messages': [...]} with a human message "
    "(LangGraph's MessagesState shape)"
)


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _bad_input(question: Any, messages: Sequence[BaseMessage]) -> GraphInputError:
    if messages:
        kinds = ", ".join(m.type for m in messages[-5:])
        got = f"'messages' without a human message (last types: {kinds})"
    elif question is not None:
        got = f"'question' = {_short(question)}, not a non-empty string"
    else:
        got = "neither (an empty 'messages' list counts as none; other keys are ignored)"
    return GraphInputError(f"{_ACCEPTED}; got {got}")


def read_input(
    state: RouterGraphState, *, fresh: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """Take the run's question from the input (every router graph's first node), and reset
    the keys in ``fresh`` so a second question on a checkpointed thread starts clean.

    A human message in ``messages`` that no earlier run on the thread answered is the
    question: the *last* human message; earlier turns stay in ``messages`` but no model sees
    them, because each graph's prompts (Router-R1's policy prompt, the decomposition,
    AutoMix's verification) ask one self-contained question. Otherwise ``question`` is the
    question.

    Raises:
        GraphInputError: neither gives a non-empty question (the message says what came).
    """
    start = {**(fresh or {}), "run_start": len(state.get("calls") or [])}
    messages = list(state.get("messages") or [])
    asked = next((m for m in reversed(messages) if m.type == "human"), None)
    if asked is not None and asked.id != state.get("asked_id"):
        if not asked.text.strip():
            raise GraphInputError(f"{_ACCEPTED}; got a last human message with no text")
        return {**start, "question": asked.text, "from_messages": True, "asked_id": asked.id}
    question = state.get("question")
    if isinstance(question, str) and question.strip():
        return {**start, "from_messages": False}
    raise _bad_input(question, messages)


aread_input = async_twin(read_input)


def add_read_input(
    graph: StateGraph, first: str, *, fresh: Mapping[str, Any] | None = None
) -> None:
    """Start ``graph`` with the `read_input` node (resetting ``fresh`` each run), followed by
    ``first``."""
    graph.add_node(
        "read_input",
        node("read_input", partial(read_input, fresh=fresh), partial(aread_input, fresh=fresh)),
    )
    graph.add_edge(START, "read_input")
    graph.add_edge("read_input", first)


def answer_message(state: Mapping[str, Any], calls_before: int, router: str) -> AIMessage:
    """A finished run as a chat answer: the ``answer``, with ``response_metadata["routing"]``
    (the run's calls, their cost, the stop reason and the candidates that answered) and
    ``usage_metadata`` summing the run's calls (those after the first ``calls_before``)."""
    calls = list(state.get("calls") or [])[calls_before:]
    routing = {
        "router": router,
        "calls": calls,
        "cost": sum(float(c["cost"]) for c in calls),
        "stop_reason": state.get("stop_reason"),
        "models": sorted({c["model"] for c in calls if c["role"] == "candidate"}),
    }
    return AIMessage(
        content=str(state.get("answer") or ""),
        response_metadata={"routing": routing, "model_name": router},
        usage_metadata=usage_totals(calls),
    )


def with_reply(state: RouterGraphState, update: dict[str, Any], *, router: str) -> dict[str, Any]:
    """A finishing node's ``update``, plus the answer appended to ``messages`` as an
    `AIMessage` (`answer_message`) when the question came from ``messages``, so that a
    ``MessagesState`` parent graph gets its reply."""
    if not state.get("from_messages"):
        return update
    calls = [*(state.get("calls") or []), *(update.get("calls") or [])]
    final = {**state, **update, "calls": calls}
    return {**update, "messages": [answer_message(final, state.get("run_start", 0), router)]}
