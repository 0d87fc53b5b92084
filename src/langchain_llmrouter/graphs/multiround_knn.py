"""The kNN multi-round router as a LangGraph graph (PEERS.md §1.13)::

    read_input -> decompose -> route -> answer_subquestion (xN) -> aggregate -> finish

The helper LLM splits the question into at most N sub-questions, a trained single-round
router (normally ``knnrouter``) routes them all in one vectorised pass, the chosen
candidates answer in parallel (one `Send` each), and the helper LLM aggregates the answers.
``docs/routers/multiround.md`` describes the fallbacks and the ``max_cost`` reservation.
"""

from __future__ import annotations

import asyncio
from typing import Any, Literal

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage
from langchain_core.runnables import RunnableConfig
from langgraph.graph import StateGraph
from langgraph.graph.state import CompiledStateGraph

from langchain_llmrouter.candidates import CandidatePool
from langchain_llmrouter.errors import GraphRouterError, NotFittedError, UnknownCandidateError
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
from langchain_llmrouter.graphs.base import BaseGraphRouter
from langchain_llmrouter.routers.base import BaseRouter, RoutingDecision

# --- conditions ------------------------------------------------------------------------------


def after_decompose(state: MultiRoundState) -> Literal["route", "finish"]:
    """Route the sub-questions, or finish when the decomposition was skipped (``max_cost``)."""
    return "route" if state.get("sub_questions") else "finish"


# --- decompose (kNN graph) -------------------------------------------------------------------


def _decompose_prompt(
    state: MultiRoundState, config: RunnableConfig, settings: MultiRoundSettings
) -> str | None:
    prompt = prompts.decompose_prompt(state["question"], settings.max_subquestions)
    return helper_prompt(prompt, "decompose", state, config, settings)


def _decomposed(
    state: MultiRoundState, reply: AIMessage | None, record: LLMCall, settings: MultiRoundSettings
) -> dict[str, Any]:
    subs = prompts.parse_subquestions(reply.text, settings.max_subquestions) if reply else []
    return {
        **fresh_run(),
        "sub_questions": subs or [state["question"]],
        "decompose_fallback": not subs,
        **paid(record),
    }


def decompose(
    state: MultiRoundState, config: RunnableConfig, *, settings: MultiRoundSettings
) -> dict[str, Any]:
    """Split the question into sub-questions with the helper LLM (kNN graph)."""
    prompt = _decompose_prompt(state, config, settings)
    if prompt is None:
        return stop_max_cost()
    reply, record = ask(settings, prompt, "decompose", config)
    return _decomposed(state, reply, record, settings)


async def adecompose(
    state: MultiRoundState, config: RunnableConfig, *, settings: MultiRoundSettings
) -> dict[str, Any]:
    """Async twin of `decompose`."""
    prompt = _decompose_prompt(state, config, settings)
    if prompt is None:
        return stop_max_cost()
    reply, record = await aask(settings, prompt, "decompose", config)
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
    return plan_dispatch(question, routes, state.get("cost", 0.0), config, settings)


async def aroute(
    state: MultiRoundState, config: RunnableConfig, *, settings: MultiRoundSettings
) -> dict[str, Any]:
    """Async twin of `route` (the embedding and scoring run in a worker thread)."""
    return await asyncio.to_thread(route, state, config, settings=settings)


# --- builder ---------------------------------------------------------------------------------


def _check_router(router: object, candidates: CandidatePool) -> None:
    if not isinstance(router, BaseRouter):
        if isinstance(router, BaseGraphRouter):
            raise GraphRouterError(router.name)  # it cannot route a single query
        raise TypeError(f"router must be a fitted BaseRouter, not {type(router).__name__}")
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
    settings = make_settings(
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
    add_node(graph, "decompose", decompose, adecompose, settings)
    add_node(graph, "route", route, aroute, settings)
    add_answer_nodes(graph, settings)
    graph.add_conditional_edges("decompose", after_decompose, ["route", "finish"])
    graph.add_conditional_edges("route", fan_out, ["answer_subquestion", "finish"])
    return graph.compile(checkpointer=checkpointer, store=store, name=name)
