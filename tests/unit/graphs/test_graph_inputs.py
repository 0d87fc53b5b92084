"""What every router graph takes and gives back: ``{"question": ...}`` or ``{"messages": [...]}``
(a LangGraph ``MessagesState``'s shape, so a graph can be a node of a chat graph), a typed
error for anything else, and `RouterGraphChatModel`'s refusal to call tools.

All four graphs run against the local server with scripted models whose replies repeat the
question they were asked, so a test can tell which message was routed.
"""

from __future__ import annotations

import re
from typing import Any

import pytest
from graph_helpers import last_user_text
from langchain_core.messages import AIMessage, HumanMessage
from langchain_core.tools import tool
from langchain_openai import ChatOpenAI
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.graph import END, START, MessagesState, StateGraph
from pydantic import BaseModel, SecretStr

from langchain_llmrouter.candidates import CandidatePool
from langchain_llmrouter.errors import LLMRouterError
from langchain_llmrouter.graphs import (
    GraphInputError,
    GraphToolCallingError,
    RouterGraphChatModel,
    build_automix_graph,
    build_knn_multiround_graph,
    build_llm_multiround_graph,
    build_router_r1_graph,
)
from langchain_llmrouter.testing import FakeOpenAIServer, ModelBehavior

KINDS = ["router_r1", "knn_multiround", "llm_multiround", "automix"]
QUESTION = "What is the capital of France?"
FOLLOW_UP = "And the capital of Spain?"
EARLIER = "Tell me about Lyon and its silk weavers."
"""An earlier turn: routed on the last human message, no model may see it."""

POLICY = "inputs-policy"
QWEN = "qwen2.5-7b-instruct"
HELPER = "mixtral-8x7b-instruct-v0.1"
HELPER_ID = "mistralai/mixtral-8x7b-instruct-v0.1"
SMALL, LARGE = "gemma-2-9b-it", "llama3-70b-instruct"


def asked(text: str) -> str:
    """The question inside a graph's prompt (every prompt ends with ``Question: ...``)."""
    found = re.findall(r"^Question: (.*)$", text, re.MULTILINE)
    return found[-1].strip() if found else text


def r1_policy(messages: list[dict]) -> str:
    """Ask Qwen the question, then answer with what it asked."""
    question = asked(str(messages[0]["content"]))
    if any("<information>" in str(m.get("content")) for m in messages[1:]):
        return f"<think>Qwen replied.</think>\n<answer> R1 on {question} </answer>"
    return f"<think>Ask Qwen.</think>\n<search> {QWEN}: {question} </search>"


def helper(messages: list[dict]) -> str:
    """No decomposition: the one sub-question is the question, so its candidate's answer is
    the final answer (and the LLM router picks Gemma for it)."""
    question = asked(last_user_text(messages))
    return f"1. {question} => {SMALL}" if "=>" in last_user_text(messages) else f"1) {question}"


def automix_model(name: str) -> Any:
    def reply(messages: list[dict]) -> str:
        text = last_user_text(messages)
        if "Verification Decision" in text:
            return "It is right.\n\nVerification Decision: The AI generated answer is Correct"
        return f"{name} on {asked(text)}"

    return reply


@pytest.fixture
def pool(candidate_pool: Any) -> CandidatePool:
    return candidate_pool()


def make_graph(
    kind: str, served: FakeOpenAIServer, pool: CandidatePool, knn_router: Any, **kwargs: Any
) -> Any:
    """One of the four graphs, its models scripted at the server."""
    if kind == "router_r1":
        served.set_behavior(POLICY, ModelBehavior(reply=r1_policy))
        policy = ChatOpenAI(
            model=POLICY, base_url=served.base_url, api_key=SecretStr("test"), max_retries=0
        )
        return build_router_r1_graph(policy=policy, candidates=pool, **kwargs)
    if kind == "automix":
        for name in (SMALL, LARGE):
            served.set_behavior(pool[name].model, ModelBehavior(reply=automix_model(name)))
        return build_automix_graph(candidates=pool, cascade=[SMALL, LARGE], **kwargs)
    served.set_behavior(HELPER_ID, ModelBehavior(reply=helper))
    if kind == "knn_multiround":
        return build_knn_multiround_graph(router=knn_router, candidates=pool, llm=HELPER, **kwargs)
    return build_llm_multiround_graph(candidates=pool, llm=HELPER, **kwargs)


def sent_texts(served: FakeOpenAIServer) -> str:
    return "\n".join(str(m.get("content")) for c in served.calls for m in c.messages)


def check_reply(reply: Any, out: dict[str, Any], router: str) -> None:
    """The appended reply is the answer, with this run's trace, cost and usage."""
    assert isinstance(reply, AIMessage) and reply.content == out["answer"] != ""
    routing = reply.response_metadata["routing"]
    assert routing["router"] == router and routing["stop_reason"] == out["stop_reason"]
    assert routing["cost"] == pytest.approx(sum(c["cost"] for c in routing["calls"]))
    assert reply.usage_metadata is not None
    assert reply.usage_metadata["input_tokens"] == sum(c["input_tokens"] for c in routing["calls"])


# --- messages in, an AIMessage out ----------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
def test_messages_input_routes_the_last_human_message(
    kind: str, served: FakeOpenAIServer, pool: CandidatePool, knn_router: Any
) -> None:
    graph = make_graph(kind, served, pool, knn_router)
    by_question = graph.invoke({"question": QUESTION})
    assert by_question["messages"] == []  # a question input gets no reply message
    served.reset()

    conversation = [("human", EARLIER), ("ai", "Lyon is known for silk."), ("human", QUESTION)]
    out = graph.invoke({"messages": conversation})

    assert out["question"] == QUESTION and out["answer"] == by_question["answer"]
    assert QUESTION in out["answer"]  # the scripted models repeat what they were asked
    assert EARLIER not in sent_texts(served) and "silk" not in sent_texts(served)
    *kept, reply = out["messages"]
    assert [(m.type, m.text) for m in kept] == [
        ("human", EARLIER), ("ai", "Lyon is known for silk."), ("human", QUESTION)
    ]  # fmt: skip
    check_reply(reply, out, kind)
    assert len(reply.response_metadata["routing"]["calls"]) == len(out["calls"])


@pytest.mark.parametrize(
    "messages",
    [
        [HumanMessage(EARLIER), AIMessage("Silk."), HumanMessage(QUESTION)],
        [{"role": "user", "content": EARLIER}, {"role": "user", "content": QUESTION}],
        [{"role": "user", "content": [{"type": "text", "text": QUESTION}]}],
        [("human", QUESTION), ("ai", "Let me think.")],  # the last *human* message
    ],
    ids=["messages", "dicts", "content-blocks", "ai-last"],
)
async def test_every_message_shape_async(
    messages: list[Any], served: FakeOpenAIServer, pool: CandidatePool, knn_router: Any
) -> None:
    graph = make_graph("llm_multiround", served, pool, knn_router)
    out = await graph.ainvoke({"messages": messages})
    assert out["question"] == QUESTION and out["stop_reason"] == "answer"
    assert EARLIER not in sent_texts(served)
    assert len(out["messages"]) == len(messages) + 1
    check_reply(out["messages"][-1], out, "llm_multiround")


@pytest.mark.parametrize("kind", KINDS)
def test_graph_is_a_node_of_a_messages_state_parent(
    kind: str, served: FakeOpenAIServer, pool: CandidatePool, knn_router: Any
) -> None:
    graph = make_graph(kind, served, pool, knn_router)
    parent = StateGraph(MessagesState)
    parent.add_node("router", graph)
    parent.add_edge(START, "router")
    parent.add_edge("router", END)
    chat = parent.compile(checkpointer=InMemorySaver())
    thread = {"configurable": {"thread_id": f"parent-{kind}"}}

    first = chat.invoke({"messages": [("human", QUESTION)]}, thread)
    second = chat.invoke({"messages": [("human", FOLLOW_UP)]}, thread)

    assert list(first) == ["messages"]
    turns = [(m.type, m.text) for m in second["messages"]]
    assert [t for t, _ in turns] == ["human", "ai", "human", "ai"]
    assert turns[0][1] == QUESTION and QUESTION in turns[1][1]
    assert turns[2][1] == FOLLOW_UP and FOLLOW_UP in turns[3][1] and QUESTION not in turns[3][1]
    # Each reply carries its own run's trace, not the thread's.
    for reply, question in zip(second["messages"][1::2], (QUESTION, FOLLOW_UP), strict=True):
        calls = reply.response_metadata["routing"]["calls"]
        assert calls and all(question in c["prompt"] for c in calls if c["role"] == "candidate")
        assert reply.response_metadata["routing"]["router"] == kind


async def test_graph_node_async_in_a_parent(
    served: FakeOpenAIServer, pool: CandidatePool, knn_router: Any
) -> None:
    parent = StateGraph(MessagesState)
    parent.add_node("router", make_graph("router_r1", served, pool, knn_router))
    parent.add_edge(START, "router")
    out = await parent.compile().ainvoke({"messages": [("human", QUESTION)]})
    assert [m.type for m in out["messages"]] == ["human", "ai"]
    assert out["messages"][1].text == f"R1 on {QUESTION}"


def test_question_and_messages_on_one_checkpointed_thread(
    served: FakeOpenAIServer, pool: CandidatePool, knn_router: Any
) -> None:
    """A ``question`` after a ``messages`` run answers the question (not the old message
    again) and appends nothing; a new human message is routed again."""
    graph = make_graph("automix", served, pool, knn_router, checkpointer=InMemorySaver())
    thread = {"configurable": {"thread_id": "mixed"}}
    graph.invoke({"messages": [("human", QUESTION)]}, thread)
    asked_directly = graph.invoke({"question": "What is 2 + 2?"}, thread)
    assert asked_directly["answer"] == f"{SMALL} on What is 2 + 2?"
    assert len(asked_directly["messages"]) == 2
    last = graph.invoke({"messages": [("human", FOLLOW_UP)]}, thread)
    assert [m.text for m in last["messages"]] == [
        QUESTION, f"{SMALL} on {QUESTION}", FOLLOW_UP, f"{SMALL} on {FOLLOW_UP}"
    ]  # fmt: skip
    assert last["messages"][-1].response_metadata["routing"]["calls"] == last["calls"][-5:]
    assert len(last["calls"]) == 15  # three runs of an answer and four verifications


# --- anything else: a typed error -----------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
def test_no_question_is_a_typed_error_for_every_graph(
    kind: str, served: FakeOpenAIServer, pool: CandidatePool, knn_router: Any
) -> None:
    graph = make_graph(kind, served, pool, knn_router)
    with pytest.raises(GraphInputError, match=r"takes \{'question'.*\{'messages'.*got neither"):
        graph.invoke({"query": QUESTION})  # a misnamed key: ignored, so there is no question
    assert served.calls == []


@pytest.mark.parametrize(
    ("value", "match"),
    [
        ({}, "got neither"),
        ({"messages": []}, "got neither"),
        ({"messages": [("ai", "Hello!"), ("system", "Be brief.")]}, "without a human message"),
        ({"messages": [("human", "   ")]}, "last human message with no text"),
        ({"question": ""}, "'question' = '', not a non-empty string"),
        ({"question": 42}, "'question' = 42, not a non-empty string"),
        ({"messages": [42]}, "'messages' must be a list of messages.*Unsupported"),
        ({"messages": [{"text": QUESTION}]}, "'messages' must be a list of messages.*role"),
    ],
    ids=[
        "empty",
        "empty-messages",
        "no-human",
        "blank",
        "blank-question",
        "int",
        "not-a-message",
        "bad-dict",
    ],
)
async def test_bad_inputs_say_what_is_accepted_and_what_came(
    value: dict[str, Any], match: str, served: FakeOpenAIServer, pool: CandidatePool
) -> None:
    graph = make_graph("llm_multiround", served, pool, None)
    with pytest.raises(GraphInputError, match=match) as caught:
        graph.invoke(value)
    assert isinstance(caught.value, ValueError) and isinstance(caught.value, LLMRouterError)
    with pytest.raises(GraphInputError, match=match):
        await graph.ainvoke(value)
    assert served.calls == []


def test_input_schema_names_both_keys(pool: CandidatePool) -> None:
    graph = build_llm_multiround_graph(candidates=pool, llm=HELPER)
    assert set(graph.get_input_jsonschema()["properties"]) == {"question", "messages"}


# --- RouterGraphChatModel: no tools, no structured output ------------------------------------


class Capital(BaseModel):
    """A country's capital."""

    city: str


@tool
def lookup(country: str) -> str:
    """Look up a country's capital."""
    return "Paris"


def test_bind_tools_and_structured_output_say_why_and_what_instead(
    served: FakeOpenAIServer, pool: CandidatePool, knn_router: Any
) -> None:
    llm = RouterGraphChatModel(graph=make_graph("router_r1", served, pool, knn_router))
    with pytest.raises(GraphToolCallingError, match="cannot call tools") as caught:
        llm.bind_tools([lookup])
    message = str(caught.value)
    assert "router_r1" in message and "decides while it calls LLMs" in message
    assert "RouterChatModel with a single-round router" in message
    assert "graph.invoke({'question': ...})['answer']" in message
    assert isinstance(caught.value, NotImplementedError)  # as LangChain says "no tools"
    with pytest.raises(GraphToolCallingError, match="cannot return structured output") as caught:
        llm.with_structured_output(Capital, method="json_schema")
    assert "RouterChatModel(...).with_structured_output(schema)" in str(caught.value)
    assert served.calls == []


# `langchain` (with `langchain.agents.create_agent`) is not a dependency here; LangGraph's
# `create_react_agent` builds the same agent loop and binds the tools the same way.
AGENT_DEPRECATION = "ignore:create_react_agent has been moved"


@pytest.mark.filterwarnings(AGENT_DEPRECATION)
def test_an_agent_on_the_graph_model_fails_with_the_reason(
    served: FakeOpenAIServer, pool: CandidatePool, knn_router: Any
) -> None:
    from langgraph.prebuilt import create_react_agent

    llm = RouterGraphChatModel(graph=make_graph("automix", served, pool, knn_router))
    with pytest.raises(GraphToolCallingError, match="RouterChatModel with a single-round router"):
        create_react_agent(llm, tools=[lookup])


@pytest.mark.filterwarnings(AGENT_DEPRECATION)
def test_the_graph_as_an_agents_tool(
    served: FakeOpenAIServer, pool: CandidatePool, knn_router: Any
) -> None:
    """What the error suggests: an agent whose tool runs the graph."""
    from langgraph.prebuilt import create_react_agent

    graph = make_graph("router_r1", served, pool, knn_router)

    @tool
    def ask_router(question: str) -> str:
        """Answer a hard question with the router graph."""
        return graph.invoke({"question": question})["answer"]

    model = ChatOpenAI(
        model="agent-model", base_url=served.base_url, api_key=SecretStr("test"), max_retries=0
    )
    out = create_react_agent(model, tools=[ask_router]).invoke({"messages": [("human", QUESTION)]})
    kinds = [m.type for m in out["messages"]]
    assert kinds == ["human", "ai", "tool", "ai"]
    call = out["messages"][1].tool_calls[0]
    assert call["name"] == "ask_router"
    assert out["messages"][2].text == f"R1 on {call['args']['question'].rstrip('?')}?"
    assert out["messages"][2].text in out["messages"][3].text  # the agent read the answer
