"""The kNN and LLM multi-round routers as LangGraph graphs (PEERS.md §1.13 and §1.14).

Both split a question into at most N sub-questions, answer each one with a chosen
candidate, in parallel (one `Send` per sub-question), and aggregate the answers into the
final one with an LLM::

    knn_multiround:  read_input -> decompose -> route -> answer_subquestion (xN)
                     -> aggregate -> finish
    llm_multiround:  read_input -> decompose_and_route -> answer_subquestion (xN)
                     -> aggregate -> finish

``read_input`` takes the question from ``{"question": ...}`` or the last human message of
``{"messages": [...]}`` (see `read_input`); every run ends at ``finish``, which appends the
answer to ``messages`` as an `AIMessage` when the question came from them.

The kNN router (`build_knn_multiround_graph`) decomposes with the helper LLM, then routes
every sub-question in one vectorised pass of a trained single-round router (normally
``knnrouter``). The LLM router (`build_llm_multiround_graph`) asks the helper LLM to
decompose and to name a candidate per sub-question in one call, from the candidates' names,
sizes, prices and descriptions.

Fallbacks (never a crash):

- a decomposition that fails or yields nothing usable becomes ``[question]`` (unlike the
  peer, which only ever decomposes with a local vLLM: here it always goes through the given
  chat model), and ``decompose_fallback`` is True;
- a candidate name the LLM router's reply does not resolve (by name or API model id,
  case-insensitively) becomes `strongest_candidate` (the most expensive candidate, as the
  best guess at the strongest), and the route is marked ``fallback`` with the name as written;
- a failed candidate call is recorded with its error, and the aggregator is told that
  sub-question has no answer;
- a failed aggregation returns the last sub-answer with ``stop_reason`` ``"error"``.

A decomposition into exactly one sub-question identical to the question skips aggregation:
the routed candidate's answer is the final answer.

Spending (``max_cost``, from the builder or ``configurable.max_cost``) is checked before the
decomposition, before dispatching the sub-questions and before the aggregation. The
dispatch *reserves*: walking the sub-questions in order, it dispatches each whose worst-case
cost (its prompt plus ``candidate_max_tokens`` of output), together with those already
chosen and the worst-case aggregation over them (each answer counted as
``candidate_max_tokens`` prompt tokens), still fits; the others are skipped (``skipped``),
so parallel calls cannot together pass the bound. A run that skips anything ends with
``stop_reason`` ``"max_cost"``, with the best answer available ("" if none).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from functools import partial
from typing import Annotated, Any, Literal, TypedDict

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage
from langchain_core.runnables import RunnableConfig
from langgraph.graph import END, StateGraph
from langgraph.graph.state import CompiledStateGraph
from langgraph.types import Send

from langchain_llmrouter.candidates import CandidatePool
from langchain_llmrouter.errors import GraphRouterError, NotFittedError, UnknownCandidateError
from langchain_llmrouter.graphs import _multiround_prompts as prompts
from langchain_llmrouter.graphs._common import (
    DEFAULT_MAX_TOKENS,
    LLMCall,
    ModelRef,
    RouterGraphInput,
    RouterGraphState,
    acall_llm,
    add_read_input,
    async_twin,
    call_llm,
    candidate_ref,
    model_ref,
    node,
    with_reply,
    worst_case_cost,
    would_exceed,
)
from langchain_llmrouter.routers.base import BaseRouter, RoutingDecision
from langchain_llmrouter.routers.knn import KNNRouter

# --- state -----------------------------------------------------------------------------------


class RouteChoice(TypedDict):
    """The candidate chosen for one sub-question."""

    index: int
    """Position of the sub-question in the decomposition (0-based)."""
    sub_question: str
    """The sub-question."""
    model: str
    """The candidate that answers it."""
    router: str
    """Who chose: the single-round router's name, or the helper LLM's name."""
    scores: dict[str, float]
    """The router's predicted quality per candidate ({} for the LLM router)."""
    reason: str
    """A one-line explanation."""
    fallback: bool
    """Whether the choice is the documented fallback (the LLM named no known candidate)."""
    requested: str | None
    """The candidate name as the LLM wrote it (LLM router only)."""


class SubAnswer(TypedDict):
    """A candidate's answer to one sub-question."""

    index: int
    """Position of the sub-question in the decomposition."""
    sub_question: str
    """The sub-question."""
    model: str
    """The candidate that answered."""
    answer: str
    """Its reply ("" when the call failed)."""
    error: str | None
    """The call's error, if it failed."""


class SubQuestionTask(TypedDict):
    """What `fan_out` sends to one ``answer_subquestion`` task."""

    index: int
    sub_question: str
    model: str


def merge_sub_answers(
    left: list[SubAnswer] | None, right: list[SubAnswer] | None
) -> list[SubAnswer]:
    """Reducer of ``sub_answers``: keyed by sub-question index, sorted by it.

    Parallel answers arrive in any order; the aggregation reads them in decomposition order.
    An empty list clears the answers (the first node of every run writes one, so a second
    question on the same thread starts afresh).
    """
    if right is not None and not right:
        return []
    merged = {a["index"]: a for a in left or []}
    merged.update({a["index"]: a for a in right or []})
    return [merged[i] for i in sorted(merged)]


class MultiRoundState(RouterGraphState, total=False):
    """State of both multi-round graphs (input: ``{"question": ...}`` or
    ``{"messages": [...]}``)."""

    sub_questions: list[str]
    """The decomposition ([] when the run stopped before it)."""
    decompose_fallback: bool
    """Whether the decomposition failed and the whole question is the only sub-question."""
    routes: list[RouteChoice]
    """The candidate chosen for each sub-question, in decomposition order."""
    dispatched: list[int]
    """Indexes of the sub-questions sent to their candidates."""
    skipped: list[int]
    """Indexes not sent because they would not fit within ``max_cost``."""
    sub_answers: Annotated[list[SubAnswer], merge_sub_answers]
    """The candidates' answers, in decomposition order."""


@dataclass(frozen=True)
class MultiRoundSettings:
    """What the builders bind to the node functions."""

    candidates: CandidatePool
    """The candidates that answer sub-questions."""
    llm: ModelRef
    """The helper LLM that decomposes (and, for the LLM router, routes) and aggregates."""
    max_subquestions: int = 4
    """Most sub-questions per question."""
    max_cost: float | None = None
    """Default spending bound per run in dollars."""
    candidate_max_tokens: int = DEFAULT_MAX_TOKENS
    """Output-token cap of each sub-question call."""
    router: BaseRouter | None = None
    """The fitted single-round router (kNN graph only)."""
    cost_weight: float | None = None
    """Cost weight for the router (None: the router's own)."""
    fallback_candidate: str = ""
    """The LLM router's choice when the LLM names no known candidate."""
    name: str = ""
    """The graph's name (the router named in the reply's metadata)."""


# --- shared helpers --------------------------------------------------------------------------


def _fresh_run() -> dict[str, Any]:
    """Keys the first node resets, so a second question on a thread starts clean."""
    return {"sub_answers": [], "routes": [], "dispatched": [], "skipped": []}


def _stop_max_cost() -> dict[str, Any]:
    return {**_fresh_run(), "sub_questions": [], "answer": "", "stop_reason": "max_cost"}


def _paid(record: LLMCall) -> dict[str, Any]:
    return {"calls": [record], "cost": record["cost"]}


def _plan(
    question: str,
    routes: list[RouteChoice],
    spent: float,
    config: RunnableConfig,
    settings: MultiRoundSettings,
) -> dict[str, Any]:
    """Choose the sub-questions to dispatch, reserving their worst case and the aggregation's."""
    passthrough = len(routes) == 1 and prompts.same_question(routes[0]["sub_question"], question)
    chosen: list[RouteChoice] = []
    reserved, cap = 0.0, settings.candidate_max_tokens
    for route in routes:
        tokens = prompts.candidate_prompt_tokens(route["sub_question"])
        own = settings.candidates[route["model"]].estimate_cost(tokens, cap)
        trial = [r["sub_question"] for r in [*chosen, route]]
        aggregation = 0.0
        if not passthrough:
            tokens = prompts.aggregate_prompt_tokens(question, trial, cap)
            aggregation = settings.llm.cost(tokens, prompts.AGGREGATE_MAX_TOKENS)
        if not would_exceed(spent, reserved + own + aggregation, config, settings.max_cost):
            chosen.append(route)
            reserved += own
    dispatched = [r["index"] for r in chosen]
    update: dict[str, Any] = {
        "routes": routes,
        "dispatched": dispatched,
        "skipped": [r["index"] for r in routes if r["index"] not in dispatched],
    }
    if not chosen:
        update.update(answer="", stop_reason="max_cost")
    return update


def _is_passthrough(state: MultiRoundState) -> bool:
    routes = state.get("routes") or []
    return len(routes) == 1 and prompts.same_question(routes[0]["sub_question"], state["question"])


def _current_answers(state: MultiRoundState) -> list[SubAnswer]:
    """This run's sub-answers (the dispatched ones), in decomposition order."""
    dispatched = set(state.get("dispatched") or [])
    return [a for a in state.get("sub_answers") or [] if a["index"] in dispatched]


def _best_sub_answer(answers: list[SubAnswer]) -> str:
    """The answer to return without aggregation: the last successful sub-answer (the last
    sub-question of a decomposition is usually the one closest to the question)."""
    return next((a["answer"] for a in reversed(answers) if not a["error"]), "")


_CAPS = {
    "decompose": prompts.DECOMPOSE_MAX_TOKENS,
    "route": prompts.ROUTE_MAX_TOKENS,
    "aggregate": prompts.AGGREGATE_MAX_TOKENS,
}
"""Output-token cap of each helper-LLM call, by role."""


def _helper_prompt(
    prompt: str, role: str, state: MultiRoundState, config: RunnableConfig, s: MultiRoundSettings
) -> str | None:
    """``prompt``, or None when the helper call could take the run past ``max_cost``."""
    estimate = worst_case_cost(s.llm, prompt, _CAPS[role])
    return None if would_exceed(state.get("cost", 0.0), estimate, config, s.max_cost) else prompt


def _ask(
    s: MultiRoundSettings, prompt: str, role: str, config: RunnableConfig
) -> tuple[AIMessage | None, LLMCall]:
    return call_llm(s.llm, prompt, role=role, config=config, max_tokens=_CAPS[role])


async def _aask(
    s: MultiRoundSettings, prompt: str, role: str, config: RunnableConfig
) -> tuple[AIMessage | None, LLMCall]:
    return await acall_llm(s.llm, prompt, role=role, config=config, max_tokens=_CAPS[role])


# --- conditions ------------------------------------------------------------------------------


def after_decompose(state: MultiRoundState) -> Literal["route", "finish"]:
    """Route the sub-questions, or finish when the decomposition was skipped (``max_cost``)."""
    return "route" if state.get("sub_questions") else "finish"


def fan_out(state: MultiRoundState) -> list[Send] | Literal["finish"]:
    """One ``answer_subquestion`` task per dispatched sub-question, or finish if none is."""
    dispatched = state.get("dispatched") or []
    if not dispatched:
        return "finish"
    routes = {r["index"]: r for r in state.get("routes") or []}
    return [
        Send(
            "answer_subquestion",
            SubQuestionTask(
                index=i, sub_question=routes[i]["sub_question"], model=routes[i]["model"]
            ),
        )
        for i in dispatched
    ]


# --- decompose (kNN graph) -------------------------------------------------------------------


def _decompose_prompt(
    state: MultiRoundState, config: RunnableConfig, settings: MultiRoundSettings
) -> str | None:
    prompt = prompts.decompose_prompt(state["question"], settings.max_subquestions)
    return _helper_prompt(prompt, "decompose", state, config, settings)


def _decomposed(
    state: MultiRoundState, reply: AIMessage | None, record: LLMCall, settings: MultiRoundSettings
) -> dict[str, Any]:
    subs = prompts.parse_subquestions(reply.text, settings.max_subquestions) if reply else []
    return {
        **_fresh_run(),
        "sub_questions": subs or [state["question"]],
        "decompose_fallback": not subs,
        **_paid(record),
    }


def decompose(
    state: MultiRoundState, config: RunnableConfig, *, settings: MultiRoundSettings
) -> dict[str, Any]:
    """Split the question into sub-questions with the helper LLM (kNN graph)."""
    prompt = _decompose_prompt(state, config, settings)
    if prompt is None:
        return _stop_max_cost()
    reply, record = _ask(settings, prompt, "decompose", config)
    return _decomposed(state, reply, record, settings)


async def adecompose(
    state: MultiRoundState, config: RunnableConfig, *, settings: MultiRoundSettings
) -> dict[str, Any]:
    """Async twin of `decompose`."""
    prompt = _decompose_prompt(state, config, settings)
    if prompt is None:
        return _stop_max_cost()
    reply, record = await _aask(settings, prompt, "decompose", config)
    return _decomposed(state, reply, record, settings)


# --- route (kNN graph) -----------------------------------------------------------------------


def _knn_choice(index: int, sub_question: str, decision: RoutingDecision) -> RouteChoice:
    return RouteChoice(
        index=index,
        sub_question=sub_question,
        model=decision.model,
        router=decision.router,
        scores=dict(decision.scores),
        reason=decision.reason,
        fallback=False,
        requested=None,
    )


def route(
    state: MultiRoundState, config: RunnableConfig, *, settings: MultiRoundSettings
) -> dict[str, Any]:
    """Route every sub-question in one vectorised pass of the router, then plan the dispatch."""
    assert settings.router is not None, "the kNN graph is built with a router"
    question = state["question"]
    subs = state.get("sub_questions") or [question]
    configurable = config.get("configurable") or {}
    weight = configurable.get("cost_weight", settings.cost_weight)
    decisions = settings.router.route_batch(subs, cost_weight=weight)
    routes = [_knn_choice(i, q, d) for i, (q, d) in enumerate(zip(subs, decisions, strict=True))]
    return _plan(question, routes, state.get("cost", 0.0), config, settings)


async def aroute(
    state: MultiRoundState, config: RunnableConfig, *, settings: MultiRoundSettings
) -> dict[str, Any]:
    """Async twin of `route` (the embedding and scoring run in a worker thread)."""
    return await asyncio.to_thread(route, state, config, settings=settings)


# --- decompose_and_route (LLM graph) ---------------------------------------------------------


def _route_prompt(
    state: MultiRoundState, config: RunnableConfig, settings: MultiRoundSettings
) -> str | None:
    question, n = state["question"], settings.max_subquestions
    prompt = prompts.decompose_route_prompt(question, n, settings.candidates)
    return _helper_prompt(prompt, "route", state, config, settings)


def _llm_choice(
    index: int, sub_question: str, name: str | None, written: str, settings: MultiRoundSettings
) -> RouteChoice:
    fallback = settings.fallback_candidate
    if name is not None:
        reason = f"{settings.llm.name} chose {name}"
    elif written:
        reason = f"{written!r} names no candidate: fell back to {fallback} (the most expensive)"
    else:
        reason = f"no candidate named: fell back to {fallback} (the most expensive)"
    return RouteChoice(
        index=index,
        sub_question=sub_question,
        model=name or fallback,
        router=settings.llm.name,
        scores={},
        reason=reason,
        fallback=name is None,
        requested=written or None,
    )


def _routed(
    state: MultiRoundState,
    reply: AIMessage | None,
    record: LLMCall,
    config: RunnableConfig,
    settings: MultiRoundSettings,
) -> dict[str, Any]:
    question = state["question"]
    parsed = (
        prompts.parse_routes(reply.text, settings.candidates, settings.max_subquestions)
        if reply
        else []
    )
    routes = [
        _llm_choice(i, q, name, written, settings)
        for i, (q, name, written) in enumerate(parsed or [(question, None, "")])
    ]
    return {
        **_fresh_run(),
        "sub_questions": [r["sub_question"] for r in routes],
        "decompose_fallback": not parsed,
        **_paid(record),
        **_plan(question, routes, state.get("cost", 0.0) + record["cost"], config, settings),
    }


def decompose_and_route(
    state: MultiRoundState, config: RunnableConfig, *, settings: MultiRoundSettings
) -> dict[str, Any]:
    """Split the question and choose a candidate per sub-question in one LLM call (LLM graph),
    then plan the dispatch."""
    prompt = _route_prompt(state, config, settings)
    if prompt is None:
        return _stop_max_cost()
    reply, record = _ask(settings, prompt, "route", config)
    return _routed(state, reply, record, config, settings)


async def adecompose_and_route(
    state: MultiRoundState, config: RunnableConfig, *, settings: MultiRoundSettings
) -> dict[str, Any]:
    """Async twin of `decompose_and_route`."""
    prompt = _route_prompt(state, config, settings)
    if prompt is None:
        return _stop_max_cost()
    reply, record = await _aask(settings, prompt, "route", config)
    return _routed(state, reply, record, config, settings)


# --- answer_subquestion ----------------------------------------------------------------------


def _answered(task: SubQuestionTask, record: LLMCall) -> dict[str, Any]:
    answer = SubAnswer(
        index=task["index"],
        sub_question=task["sub_question"],
        model=task["model"],
        answer="" if record["error"] else record["response"].strip(),
        error=record["error"],
    )
    return {"sub_answers": [answer], **_paid(record)}


def answer_subquestion(
    task: SubQuestionTask, config: RunnableConfig, *, settings: MultiRoundSettings
) -> dict[str, Any]:
    """Ask the routed candidate one sub-question (a failed call is recorded, not raised)."""
    ref = candidate_ref(settings.candidates, task["model"])
    messages = prompts.candidate_messages(task["sub_question"])
    cap = settings.candidate_max_tokens
    _, record = call_llm(ref, messages, role="candidate", config=config, max_tokens=cap)
    return _answered(task, record)


async def aanswer_subquestion(
    task: SubQuestionTask, config: RunnableConfig, *, settings: MultiRoundSettings
) -> dict[str, Any]:
    """Async twin of `answer_subquestion`."""
    ref = candidate_ref(settings.candidates, task["model"])
    messages = prompts.candidate_messages(task["sub_question"])
    cap = settings.candidate_max_tokens
    _, record = await acall_llm(ref, messages, role="candidate", config=config, max_tokens=cap)
    return _answered(task, record)


# --- aggregate -------------------------------------------------------------------------------


def _aggregate_prompt(
    state: MultiRoundState, config: RunnableConfig, settings: MultiRoundSettings
) -> tuple[str | None, dict[str, Any]]:
    """``(prompt, {})`` to call the aggregator, or ``(None, final update)`` to finish without."""
    answers = _current_answers(state)
    if _is_passthrough(state):
        # One sub-question identical to the question: the routed candidate answered the
        # question itself, and an aggregation call would only restate it, so its answer is
        # the final answer.
        ok = bool(answers) and not answers[0]["error"]
        return None, {
            "answer": answers[0]["answer"] if ok else "",
            "stop_reason": "answer" if ok else "error",
        }
    question = state["question"]
    pairs = [(a["sub_question"], None if a["error"] else a["answer"]) for a in answers]
    mc = prompts.is_multiple_choice(question)
    prompt = prompts.aggregate_prompt(question, pairs, multiple_choice=mc)
    if _helper_prompt(prompt, "aggregate", state, config, settings) is None:
        return None, {"answer": _best_sub_answer(answers), "stop_reason": "max_cost"}
    return prompt, {}


def _aggregated(state: MultiRoundState, reply: AIMessage | None, record: LLMCall) -> dict[str, Any]:
    if reply is None:
        answer, reason = _best_sub_answer(_current_answers(state)), "error"
    else:
        mc = prompts.is_multiple_choice(state["question"])
        answer = prompts.extract_answer(reply.text, multiple_choice=mc)
        reason = "max_cost" if state.get("skipped") else "answer"
    return {"answer": answer, "stop_reason": reason, **_paid(record)}


def aggregate(
    state: MultiRoundState, config: RunnableConfig, *, settings: MultiRoundSettings
) -> dict[str, Any]:
    """Combine the sub-answers into the final answer with the helper LLM."""
    prompt, update = _aggregate_prompt(state, config, settings)
    if prompt is None:
        return update
    reply, record = _ask(settings, prompt, "aggregate", config)
    return _aggregated(state, reply, record)


async def aaggregate(
    state: MultiRoundState, config: RunnableConfig, *, settings: MultiRoundSettings
) -> dict[str, Any]:
    """Async twin of `aggregate`."""
    prompt, update = _aggregate_prompt(state, config, settings)
    if prompt is None:
        return update
    reply, record = await _aask(settings, prompt, "aggregate", config)
    return _aggregated(state, reply, record)


# --- finish --------------------------------------------------------------------------------


def finish(
    state: MultiRoundState, config: RunnableConfig, *, settings: MultiRoundSettings
) -> dict[str, Any]:
    """End every run here: reply to ``messages`` when the question came from them (the answer
    and stop reason are already set by the node before)."""
    return with_reply(state, {}, router=settings.name)


afinish = async_twin(finish)


# --- builders --------------------------------------------------------------------------------


def _settings(
    candidates: CandidatePool,
    llm: BaseChatModel | str,
    max_subquestions: int,
    max_cost: float | None,
    candidate_max_tokens: int,
    **extra: Any,
) -> MultiRoundSettings:
    if not isinstance(candidates, CandidatePool) or len(candidates) == 0:
        raise ValueError("candidates must be a non-empty CandidatePool")
    if isinstance(max_subquestions, bool) or not isinstance(max_subquestions, int):
        raise TypeError(f"max_subquestions must be an int, got {max_subquestions!r}")
    if max_subquestions < 1:
        raise ValueError(f"max_subquestions must be at least 1, got {max_subquestions}")
    if max_cost is not None and not max_cost > 0:
        raise ValueError(f"max_cost must be positive (dollars) or None, got {max_cost!r}")
    if candidate_max_tokens < 1:
        raise ValueError(f"candidate_max_tokens must be at least 1, got {candidate_max_tokens}")
    return MultiRoundSettings(
        candidates=candidates,
        llm=model_ref(llm, candidates, role="llm"),
        max_subquestions=max_subquestions,
        max_cost=max_cost,
        candidate_max_tokens=candidate_max_tokens,
        **extra,
    )


def _check_router(router: BaseRouter, candidates: CandidatePool) -> None:
    if not isinstance(router, BaseRouter):
        raise TypeError(f"router must be a fitted BaseRouter, not {type(router).__name__}")
    if router.graph_router and not isinstance(router, KNNRouter):
        raise GraphRouterError(router.name)  # it cannot route a single query
    if not router.is_fitted:
        raise NotFittedError(
            f"{router.name} is not fitted: fit or load it before building the graph"
        )
    for name in router.candidates_:
        if name not in candidates:
            raise UnknownCandidateError(
                name,
                candidates.names,
                context=f"{router.name} routes to a candidate the pool lacks",
            )


def _add_node(graph: StateGraph, name: str, func: Any, afunc: Any, s: MultiRoundSettings) -> None:
    graph.add_node(name, node(name, partial(func, settings=s), partial(afunc, settings=s)))


def _answer_nodes(graph: StateGraph, settings: MultiRoundSettings) -> None:
    """Add ``answer_subquestion``, ``aggregate`` and ``finish`` and their edges (shared by
    both graphs)."""
    _add_node(graph, "answer_subquestion", answer_subquestion, aanswer_subquestion, settings)
    _add_node(graph, "aggregate", aggregate, aaggregate, settings)
    _add_node(graph, "finish", finish, afinish, settings)
    graph.add_edge("answer_subquestion", "aggregate")
    graph.add_edge("aggregate", "finish")
    graph.add_edge("finish", END)


def build_knn_multiround_graph(
    *,
    router: BaseRouter,
    candidates: CandidatePool,
    llm: BaseChatModel | str,
    max_subquestions: int = 4,
    max_cost: float | None = None,
    cost_weight: float | None = None,
    candidate_max_tokens: int = DEFAULT_MAX_TOKENS,
    checkpointer: Any = None,
    store: Any = None,
    name: str = "knn_multiround",
) -> CompiledStateGraph:
    """The kNN multi-round router: decompose, route each sub-question with ``router``,
    answer them in parallel, aggregate.

    Args:
        router: A fitted single-round router (normally ``knnrouter``) whose candidates are
            all in ``candidates``.
        candidates: The pool that answers the sub-questions.
        llm: The helper that decomposes and aggregates: a candidate name (charged at its
            prices) or any chat model (recorded at no cost).
        max_subquestions: Most sub-questions per question.
        max_cost: Spending bound per run in dollars (``configurable.max_cost`` overrides it).
        cost_weight: The router's cost weight (None: its own; ``configurable.cost_weight``
            overrides it).
        candidate_max_tokens: Output-token cap of each sub-question call.
        checkpointer: A LangGraph checkpointer (needed to resume an interrupted run).
        store: A LangGraph store.
        name: The compiled graph's name.

    Raises:
        UnknownCandidateError: ``llm`` or a candidate of ``router`` is not in the pool.
        NotFittedError: ``router`` is not fitted.
        ValueError: an argument is out of range.
    """
    _check_router(router, candidates)
    if cost_weight is not None and cost_weight < 0:
        raise ValueError(f"cost_weight must be at least 0, got {cost_weight}")
    settings = _settings(
        candidates,
        llm,
        max_subquestions,
        max_cost,
        candidate_max_tokens,
        router=router,
        cost_weight=cost_weight,
        name=name,
    )
    graph = StateGraph(MultiRoundState, input_schema=RouterGraphInput)
    add_read_input(graph, "decompose")
    _add_node(graph, "decompose", decompose, adecompose, settings)
    _add_node(graph, "route", route, aroute, settings)
    _answer_nodes(graph, settings)
    graph.add_conditional_edges("decompose", after_decompose, ["route", "finish"])
    graph.add_conditional_edges("route", fan_out, ["answer_subquestion", "finish"])
    return graph.compile(checkpointer=checkpointer, store=store, name=name)


def build_llm_multiround_graph(
    *,
    candidates: CandidatePool,
    llm: BaseChatModel | str,
    max_subquestions: int = 4,
    max_cost: float | None = None,
    candidate_max_tokens: int = DEFAULT_MAX_TOKENS,
    checkpointer: Any = None,
    store: Any = None,
    name: str = "llm_multiround",
) -> CompiledStateGraph:
    """The LLM multi-round router: one LLM call decomposes and picks a candidate per
    sub-question; the sub-questions are answered in parallel and aggregated.

    Args:
        candidates: The pool the LLM chooses from (names, sizes, prices, descriptions).
        llm: The helper that decomposes, routes and aggregates: a candidate name (charged at
            its prices) or any chat model (recorded at no cost).
        max_subquestions: Most sub-questions per question.
        max_cost: Spending bound per run in dollars (``configurable.max_cost`` overrides it).
        candidate_max_tokens: Output-token cap of each sub-question call.
        checkpointer: A LangGraph checkpointer (needed to resume an interrupted run).
        store: A LangGraph store.
        name: The compiled graph's name.

    Raises:
        UnknownCandidateError: ``llm`` is a name that is not in the pool.
        ValueError: an argument is out of range.
    """
    settings = _settings(
        candidates,
        llm,
        max_subquestions,
        max_cost,
        candidate_max_tokens,
        fallback_candidate=prompts.strongest_candidate(candidates),
        name=name,
    )
    graph = StateGraph(MultiRoundState, input_schema=RouterGraphInput)
    add_read_input(graph, "decompose_and_route")
    _add_node(graph, "decompose_and_route", decompose_and_route, adecompose_and_route, settings)
    _answer_nodes(graph, settings)
    graph.add_conditional_edges("decompose_and_route", fan_out, ["answer_subquestion", "finish"])
    return graph.compile(checkpointer=checkpointer, store=store, name=name)
