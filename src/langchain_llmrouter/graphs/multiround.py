"""The kNN and LLM multi-round routers as LangGraph graphs (PEERS.md §1.13 and §1.14).

Both split a question into at most N sub-questions, answer each one with a chosen
candidate, in parallel, and aggregate the answers into the final one with an LLM. The kNN
graph (`build_knn_multiround_graph`, in `langchain_llmrouter.graphs.multiround_knn`) routes
the sub-questions with a trained single-round router; the LLM graph
(`build_llm_multiround_graph`, in `langchain_llmrouter.graphs.multiround_llm`) lets the
helper LLM name a candidate per sub-question. This module gathers both, with the state and
nodes they share; ``docs/routers/multiround.md`` describes the graphs in full.
"""

from __future__ import annotations

from langchain_llmrouter.graphs._multiround_common import (
    MultiRoundSettings,
    MultiRoundState,
    RouteChoice,
    SubAnswer,
    SubQuestionTask,
    aaggregate,
    aanswer_subquestion,
    afinish,
    aggregate,
    answer_subquestion,
    fan_out,
    finish,
    merge_sub_answers,
)
from langchain_llmrouter.graphs.multiround_knn import (
    adecompose,
    after_decompose,
    aroute,
    build_knn_multiround_graph,
    decompose,
    route,
)
from langchain_llmrouter.graphs.multiround_llm import (
    adecompose_and_route,
    build_llm_multiround_graph,
    decompose_and_route,
)

__all__ = [
    "MultiRoundSettings",
    "MultiRoundState",
    "RouteChoice",
    "SubAnswer",
    "SubQuestionTask",
    "aaggregate",
    "aanswer_subquestion",
    "adecompose",
    "adecompose_and_route",
    "afinish",
    "after_decompose",
    "aggregate",
    "answer_subquestion",
    "aroute",
    "build_knn_multiround_graph",
    "build_llm_multiround_graph",
    "decompose",
    "decompose_and_route",
    "fan_out",
    "finish",
    "merge_sub_answers",
    "route",
]
