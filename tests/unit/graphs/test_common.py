"""The pieces every router graph shares: call records and cost, the spending bound, and
`RouterGraphChatModel` (tested on a one-node graph that calls one candidate)."""

from __future__ import annotations

import functools
from typing import Any

import pytest
from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.graph import END, START, StateGraph

from langchain_llmrouter.errors import UnknownCandidateError
from langchain_llmrouter.graphs._common import (
    RouterGraphState,
    acall_llm,
    call_llm,
    candidate_ref,
    max_cost_of,
    model_ref,
    node,
    usage_totals,
    worst_case_cost,
    would_exceed,
)
from langchain_llmrouter.graphs.chat_model import RouterGraphChatModel
from langchain_llmrouter.testing import FakeOpenAIServer, ModelBehavior

CANDIDATE = "llama-3.1-8b-instruct"


def _ask(state: RouterGraphState, config: RunnableConfig, *, pool: Any) -> dict[str, Any]:
    ref = candidate_ref(pool, CANDIDATE)
    if would_exceed(
        state.get("cost", 0.0), worst_case_cost(ref, state["question"], 64), config, None
    ):
        return {"answer": "", "stop_reason": "max_cost"}
    reply, record = call_llm(ref, state["question"], role="candidate", config=config, max_tokens=64)
    return {
        "answer": reply.text if reply else "",
        "calls": [record],
        "cost": record["cost"],
        "stop_reason": "answer" if reply else "error",
    }


async def _aask(state: RouterGraphState, config: RunnableConfig, *, pool: Any) -> dict[str, Any]:
    ref = candidate_ref(pool, CANDIDATE)
    reply, record = await acall_llm(ref, state["question"], role="candidate", config=config)
    return {
        "answer": f"async:{reply.text if reply else ''}",
        "calls": [record],
        "cost": record["cost"],
    }


def _one_node_graph(pool: Any, **compile_kwargs: Any) -> Any:
    graph = StateGraph(RouterGraphState)
    graph.add_node(
        "ask", node("ask", functools.partial(_ask, pool=pool), functools.partial(_aask, pool=pool))
    )
    graph.add_edge(START, "ask")
    graph.add_edge("ask", END)
    return graph.compile(name="one_node", **compile_kwargs)


def test_call_llm_records_real_usage_and_prices(
    served: FakeOpenAIServer, candidate_pool: Any
) -> None:
    pool = candidate_pool()
    ref = candidate_ref(pool, CANDIDATE)
    reply, record = call_llm(ref, "What is two plus two?", role="candidate", max_tokens=20)
    assert (
        reply is not None
        and reply.text == f"[{pool[CANDIDATE].model}] You said: What is two plus two?"
    )
    (served_call,) = served.calls
    assert served_call.body.get("max_completion_tokens", served_call.body.get("max_tokens")) == 20
    usage = reply.usage_metadata
    assert usage and record["input_tokens"] == usage["input_tokens"] > 0
    assert record["output_tokens"] == usage["output_tokens"] > 0
    candidate = pool[CANDIDATE]
    expected = (
        usage["input_tokens"] * candidate.input_price
        + usage["output_tokens"] * candidate.output_price
    ) / 1e6
    assert record["cost"] == pytest.approx(expected) and record["cost"] > 0
    assert (
        record["model"] == CANDIDATE and record["role"] == "candidate" and record["error"] is None
    )


def test_failed_call_is_recorded_not_raised(served: FakeOpenAIServer, candidate_pool: Any) -> None:
    pool = candidate_pool()
    served.set_behavior(pool[CANDIDATE].model, ModelBehavior(fail_status=500))
    reply, record = call_llm(candidate_ref(pool, CANDIDATE), "hi", role="candidate")
    assert reply is None
    assert record["error"] and "500" in record["error"]
    assert record["cost"] == 0 and record["response"] == ""
    with pytest.raises(Exception, match="500"):
        call_llm(candidate_ref(pool, CANDIDATE), "hi", role="candidate", raise_errors=True)


async def test_acall_llm_matches_call_llm(served: FakeOpenAIServer, candidate_pool: Any) -> None:
    pool = candidate_pool()
    ref = candidate_ref(pool, CANDIDATE)
    sync_reply, sync_record = call_llm(ref, "same question", role="x")
    async_reply, async_record = await acall_llm(ref, "same question", role="x")
    assert sync_reply and async_reply and sync_reply.text == async_reply.text
    for key in ("input_tokens", "output_tokens", "cost", "model", "response"):
        assert sync_record[key] == async_record[key]  # type: ignore[literal-required]


def test_model_ref_resolves_candidates_and_chat_models(candidate_pool: Any) -> None:
    pool = candidate_pool()
    ref = model_ref(CANDIDATE, pool)
    assert ref.name == CANDIDATE and ref.output_price == pool[CANDIDATE].output_price
    outside = model_ref(pool.chat_model("qwen2.5-7b-instruct"), pool)
    assert outside.cost(1000, 1000) == 0.0  # a model outside the pool is recorded at no cost
    with pytest.raises(UnknownCandidateError, match=CANDIDATE):
        model_ref("no-such-model", pool)
    with pytest.raises(TypeError, match="chat model or a candidate name"):
        model_ref(42, pool)  # type: ignore[arg-type]


def test_spending_bound() -> None:
    assert max_cost_of(None, 0.5) == 0.5
    assert max_cost_of({"configurable": {"max_cost": 0.1}}, 0.5) == 0.1
    assert max_cost_of({"configurable": {}}, None) is None
    assert not would_exceed(0.4, 0.1, None, 0.5)  # exactly at the bound is allowed
    assert would_exceed(0.4, 0.11, None, 0.5)
    assert not would_exceed(100.0, 100.0, None, None)  # no bound


def test_chat_model_puts_trace_and_cost_in_metadata(
    served: FakeOpenAIServer, candidate_pool: Any
) -> None:
    pool = candidate_pool()
    llm = RouterGraphChatModel(graph=_one_node_graph(pool))
    message = llm.invoke("Name a prime number.")
    assert message.text == f"[{pool[CANDIDATE].model}] You said: Name a prime number."
    routing = message.response_metadata["routing"]
    (call,) = routing["calls"]
    assert routing["cost"] == pytest.approx(call["cost"]) and routing["cost"] > 0
    assert routing["models"] == [CANDIDATE] and routing["router"] == "one_node"
    assert routing["stop_reason"] == "answer"
    assert message.usage_metadata == usage_totals(routing["calls"])
    assert len(served.calls) == 1


def test_chat_model_passes_max_cost_and_thread_id(
    served: FakeOpenAIServer, candidate_pool: Any
) -> None:
    pool = candidate_pool()
    checkpointer = InMemorySaver()
    llm = RouterGraphChatModel(graph=_one_node_graph(pool, checkpointer=checkpointer))
    refused = llm.invoke("hello", config={"configurable": {"max_cost": 1e-12}})
    assert refused.text == "" and refused.response_metadata["routing"]["stop_reason"] == "max_cost"
    assert served.calls == []
    assert RouterGraphChatModel(graph=llm.graph, max_cost=1e-12).invoke("x").text == ""
    llm.invoke("hello", config={"configurable": {"thread_id": "t-1"}})
    assert checkpointer.get({"configurable": {"thread_id": "t-1"}}) is not None
    llm.invoke("hello again")  # a fresh thread id when none is given
    assert len(list(checkpointer.list(None))) > 2


async def test_chat_model_async_runs_the_async_nodes(
    served: FakeOpenAIServer, candidate_pool: Any
) -> None:
    llm = RouterGraphChatModel(graph=_one_node_graph(candidate_pool()))
    message = await llm.ainvoke("async question")
    assert message.text.startswith("async:[")
    assert message.response_metadata["routing"]["calls"][0]["response"] in message.text


def test_chat_model_routes_on_the_conversation(
    served: FakeOpenAIServer, candidate_pool: Any
) -> None:
    graph = _one_node_graph(candidate_pool())
    messages = [("human", "first"), ("ai", "reply"), ("human", "second")]
    assert RouterGraphChatModel(graph=graph).invoke(messages).text.endswith("You said: second")
    full = RouterGraphChatModel(graph=graph, routing_mode="full_context").invoke(messages)
    assert "human: first" in full.text and "ai: reply" in full.text
    with pytest.raises(ValueError, match="no text"):
        RouterGraphChatModel(graph=graph).invoke([("human", "  ")])


def test_usage_callbacks_count_each_token_once(
    served: FakeOpenAIServer, candidate_pool: Any
) -> None:
    from langchain_core.callbacks import UsageMetadataCallbackHandler

    handler = UsageMetadataCallbackHandler()
    llm = RouterGraphChatModel(graph=_one_node_graph(candidate_pool()))
    message = llm.invoke("count me once", config={"callbacks": [handler]})
    assert message.usage_metadata
    (usage,) = handler.usage_metadata.values()
    assert usage["input_tokens"] == message.usage_metadata["input_tokens"]
    assert usage["output_tokens"] == message.usage_metadata["output_tokens"]


def test_reused_thread_reports_only_this_calls_trace(
    served: FakeOpenAIServer, candidate_pool: Any
) -> None:
    llm = RouterGraphChatModel(
        graph=_one_node_graph(candidate_pool(), checkpointer=InMemorySaver())
    )
    config = {"configurable": {"thread_id": "same"}}
    first = llm.invoke("first question", config=config)
    second = llm.invoke("second question", config=config)
    (call,) = second.response_metadata["routing"]["calls"]
    assert call["prompt"] == "second question"
    assert second.response_metadata["routing"]["cost"] == pytest.approx(call["cost"])
    state = llm.graph.get_state(config).values
    assert len(state["calls"]) == 2  # the thread keeps both runs' calls
    assert first.response_metadata["routing"]["calls"][0]["prompt"] == "first question"
