"""What the kNN and the LLM multi-round graphs share: their state, their settings, the
dispatch plan under ``max_cost``, and the ``answer_subquestion``, ``aggregate`` and
``finish`` nodes (`langchain_llmrouter.graphs.multiround_knn` and
`langchain_llmrouter.graphs.multiround_llm` add the nodes that decompose and route).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from typing import Annotated, Any, Literal, TypedDict

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage
from langchain_core.runnables import RunnableConfig
from langgraph.graph import END, StateGraph
from langgraph.types import Send

from langchain_llmrouter.candidates import CandidatePool
from langchain_llmrouter.graphs import _multiround_prompts as prompts
from langchain_llmrouter.graphs._common import (
    DEFAULT_MAX_TOKENS,
    LLMCall,
    ModelRef,
    RouterGraphState,
    acall_llm,
    async_twin,
    call_llm,
    candidate_ref,
    model_ref,
    node,
    with_reply,
    worst_case_cost,
    would_exceed,
)
from langchain_llmrouter.routers.base import BaseRouter

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


def fresh_run() -> dict[str, Any]:
    """Keys the first node resets, so a second question on a thread starts clean."""
    return {"sub_answers": [], "routes": [], "dispatched": [], "skipped": []}


def stop_max_cost() -> dict[str, Any]:
    return {**fresh_run(), "sub_questions": [], "answer": "", "stop_reason": "max_cost"}


def paid(record: LLMCall) -> dict[str, Any]:
    return {"calls": [record], "cost": record["cost"]}


def plan_dispatch(
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


def helper_prompt(
    prompt: str, role: str, state: MultiRoundState, config: RunnableConfig, s: MultiRoundSettings
) -> str | None:
    """``prompt``, or None when the helper call could take the run past ``max_cost``."""
    estimate = worst_case_cost(s.llm, prompt, _CAPS[role])
    return None if would_exceed(state.get("cost", 0.0), estimate, config, s.max_cost) else prompt


def ask(
    s: MultiRoundSettings, prompt: str, role: str, config: RunnableConfig
) -> tuple[AIMessage | None, LLMCall]:
    return call_llm(s.llm, prompt, role=role, config=config, max_tokens=_CAPS[role])


async def aask(
    s: MultiRoundSettings, prompt: str, role: str, config: RunnableConfig
) -> tuple[AIMessage | None, LLMCall]:
    return await acall_llm(s.llm, prompt, role=role, config=config, max_tokens=_CAPS[role])


# --- conditions ------------------------------------------------------------------------------


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


# --- answer_subquestion ----------------------------------------------------------------------


def _answered(task: SubQuestionTask, record: LLMCall) -> dict[str, Any]:
    answer = SubAnswer(
        index=task["index"],
        sub_question=task["sub_question"],
        model=task["model"],
        answer="" if record["error"] else record["response"].strip(),
        error=record["error"],
    )
    return {"sub_answers": [answer], **paid(record)}


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
    if helper_prompt(prompt, "aggregate", state, config, settings) is None:
        return None, {"answer": _best_sub_answer(answers), "stop_reason": "max_cost"}
    return prompt, {}


def _aggregated(state: MultiRoundState, reply: AIMessage | None, record: LLMCall) -> dict[str, Any]:
    if reply is None:
        answer, reason = _best_sub_answer(_current_answers(state)), "error"
    else:
        mc = prompts.is_multiple_choice(state["question"])
        answer = prompts.extract_answer(reply.text, multiple_choice=mc)
        reason = "max_cost" if state.get("skipped") else "answer"
    return {"answer": answer, "stop_reason": reason, **paid(record)}


def aggregate(
    state: MultiRoundState, config: RunnableConfig, *, settings: MultiRoundSettings
) -> dict[str, Any]:
    """Combine the sub-answers into the final answer with the helper LLM."""
    prompt, update = _aggregate_prompt(state, config, settings)
    if prompt is None:
        return update
    reply, record = ask(settings, prompt, "aggregate", config)
    return _aggregated(state, reply, record)


async def aaggregate(
    state: MultiRoundState, config: RunnableConfig, *, settings: MultiRoundSettings
) -> dict[str, Any]:
    """Async twin of `aggregate`."""
    prompt, update = _aggregate_prompt(state, config, settings)
    if prompt is None:
        return update
    reply, record = await aask(settings, prompt, "aggregate", config)
    return _aggregated(state, reply, record)


# --- finish --------------------------------------------------------------------------------


def finish(
    state: MultiRoundState, config: RunnableConfig, *, settings: MultiRoundSettings
) -> dict[str, Any]:
    """End every run here: reply to ``messages`` when the question came from them (the answer
    and stop reason are already set by the node before)."""
    return with_reply(state, {}, router=settings.name)


afinish = async_twin(finish)


# --- building -------------------------------------------------------------------------------


def make_settings(
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


def add_node(graph: StateGraph, name: str, func: Any, afunc: Any, s: MultiRoundSettings) -> None:
    graph.add_node(name, node(name, partial(func, settings=s), partial(afunc, settings=s)))


def add_answer_nodes(graph: StateGraph, settings: MultiRoundSettings) -> None:
    """Add ``answer_subquestion``, ``aggregate`` and ``finish`` and their edges (shared by
    both graphs)."""
    add_node(graph, "answer_subquestion", answer_subquestion, aanswer_subquestion, settings)
    add_node(graph, "aggregate", aggregate, aaggregate, settings)
    add_node(graph, "finish", finish, afinish, settings)
    graph.add_edge("answer_subquestion", "aggregate")
    graph.add_edge("aggregate", "finish")
    graph.add_edge("finish", END)
