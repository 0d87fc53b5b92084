"""The LLM multi-round router as a LangGraph graph (PEERS.md §1.14)::

    read_input -> decompose_and_route -> answer_subquestion (xN) -> aggregate -> finish

One call of the helper LLM splits the question into at most N sub-questions and names a
candidate for each, from the candidates' names, sizes, prices and descriptions; the chosen
candidates answer in parallel (one `Send` each) and the helper LLM aggregates the answers.
``docs/routers/multiround.md`` describes the fallbacks and the ``max_cost`` reservation.
"""

from __future__ import annotations

from typing import Any

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage
from langchain_core.runnables import RunnableConfig
from langgraph.graph import StateGraph
from langgraph.graph.state import CompiledStateGraph

from langchain_llmrouter.candidates import CandidatePool
from langchain_llmrouter.graphs import _multiround_prompts as prompts
from langchain_llmrouter.graphs._common import (
    DEFAULT_MAX_TOKENS,
    LLMCall,
    RouterGraphInput,
    add_read_input,
)
from langchain_llmrouter.graphs._multiround_common import (
    MultiRoundSettings,
    MultiRoundState,
    RouteChoice,
    aask,
    add_answer_nodes,
    add_node,
    ask,
    fan_out,
    fresh_run,
    helper_prompt,
    make_settings,
    paid,
    plan_dispatch,
    stop_max_cost,
)

# --- decompose_and_route (LLM graph) ---------------------------------------------------------


def _route_prompt(
    state: MultiRoundState, config: RunnableConfig, settings: MultiRoundSettings
) -> str | None:
    question, n = state["question"], settings.max_subquestions
    prompt = prompts.decompose_route_prompt(question, n, settings.candidates)
    return helper_prompt(prompt, "route", state, config, settings)


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
        **fresh_run(),
        "sub_questions": [r["sub_question"] for r in routes],
        "decompose_fallback": not parsed,
        **paid(record),
        **plan_dispatch(
            question, routes, state.get("cost", 0.0) + record["cost"], config, settings
        ),
    }


def decompose_and_route(
    state: MultiRoundState, config: RunnableConfig, *, settings: MultiRoundSettings
) -> dict[str, Any]:
    """Split the question and choose a candidate per sub-question in one LLM call (LLM graph),
    then plan the dispatch."""
    prompt = _route_prompt(state, config, settings)
    if prompt is None:
        return stop_max_cost()
    reply, record = ask(settings, prompt, "route", config)
    return _routed(state, reply, record, config, settings)


async def adecompose_and_route(
    state: MultiRoundState, config: RunnableConfig, *, settings: MultiRoundSettings
) -> dict[str, Any]:
    """Async twin of `decompose_and_route`."""
    prompt = _route_prompt(state, config, settings)
    if prompt is None:
        return stop_max_cost()
    reply, record = await aask(settings, prompt, "route", config)
    return _routed(state, reply, record, config, settings)


# --- builder ---------------------------------------------------------------------------------


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
    settings = make_settings(
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
    add_node(graph, "decompose_and_route", decompose_and_route, adecompose_and_route, settings)
    add_answer_nodes(graph, settings)
    graph.add_conditional_edges("decompose_and_route", fan_out, ["answer_subquestion", "finish"])
    return graph.compile(checkpointer=checkpointer, store=store, name=name)
