"""A router graph as a node of your own LangGraph agent.

A small assistant graph: ``triage`` answers greetings itself and sends real questions to
``research``, which runs the LLM multi-round router (decompose the question, pick a candidate
LLM for each sub-question, answer them in parallel, aggregate) as a subgraph, then writes the
answer into the conversation with the models it used and what they cost. The agent's graph
has a checkpointer, so the router's steps are checkpointed with it, and streaming with
``subgraphs=True`` shows each of the router's steps as it happens.

Offline (the default), the candidates are served by the package's local OpenAI-compatible
test server, and the planner's replies (decomposition and aggregation) are scripted::

    python examples/router_graph_agent.py

Against real endpoints (the planner is then a real candidate, ``qwen2.5-7b-instruct``)::

    LLMROUTER_API_BASE=https://integrate.api.nvidia.com/v1 API_KEYS=nvapi-... \\
        python examples/router_graph_agent.py
"""

from __future__ import annotations

import operator
import os
import re
from pathlib import Path
from typing import Annotated, Any, Literal

from langchain_core.messages import AIMessage
from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.graph import END, START, MessagesState, StateGraph

from langchain_llmrouter import CandidatePool, build_llm_multiround_graph
from langchain_llmrouter.testing import FakeOpenAIServer, ModelBehavior

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data" / "llmrouter_example"
PLANNER = "qwen2.5-7b-instruct"
"""The candidate that decomposes, routes and aggregates."""
QUESTION = "Which spacecraft first landed people on the Moon, and in which year did it land?"


class AgentState(MessagesState):
    """The user's agent: a conversation plus what the router has spent on it."""

    spent: Annotated[float, operator.add]


def triage(state: AgentState) -> dict[str, Any]:
    """Nothing to do here: the condition below decides."""
    return {}


def needs_research(state: AgentState) -> Literal["greet", "research"]:
    """Greetings are answered for free; everything else goes to the router graph."""
    text = state["messages"][-1].text.strip().lower()
    return "greet" if re.fullmatch(r"(hi|hello|hey)\b.*", text) else "research"


def greet(state: AgentState) -> dict[str, Any]:
    return {"messages": [AIMessage("Hello! Ask me anything.")], "spent": 0.0}


def make_research(router_graph: Any) -> Any:
    """The node that runs the router graph (a subgraph: it shares the agent's checkpointer)."""

    def research(state: AgentState, config: RunnableConfig) -> dict[str, Any]:
        result = router_graph.invoke({"question": state["messages"][-1].text}, config)
        models = sorted({c["model"] for c in result["calls"] if c["role"] == "candidate"})
        message = AIMessage(
            result["answer"],
            response_metadata={"models": models, "cost": result["cost"], "calls": result["calls"]},
        )
        return {"messages": [message], "spent": result["cost"]}

    return research


def build_agent(pool: CandidatePool) -> Any:
    router_graph = build_llm_multiround_graph(candidates=pool, llm=PLANNER, max_cost=0.05)
    agent = StateGraph(AgentState)
    agent.add_node("triage", triage)
    agent.add_node("greet", greet)
    agent.add_node("research", make_research(router_graph))
    agent.add_edge(START, "triage")
    agent.add_conditional_edges(
        "triage", needs_research, {"greet": "greet", "research": "research"}
    )
    agent.add_edge("greet", END)
    agent.add_edge("research", END)
    return agent.compile(checkpointer=InMemorySaver(), name="assistant")


def scripted_planner(model_id: str) -> ModelBehavior:
    """Offline stand-in for the planner: fixed sub-questions and routes, and an aggregation
    that quotes the sub-answers. Other requests get the server's default echo."""

    def reply(messages: list[dict]) -> str:
        prompt = str(messages[-1].get("content") or "")
        if "=> <model name>" in prompt:
            return (
                "Which spacecraft first landed people on the Moon? => mistral-7b-instruct-v0.3\n"
                "In which year did the first crewed Moon landing happen? => llama3-chatqa-1.5-70b"
            )
        if "Sub-questions and their answers" in prompt:
            return (
                "Both sub-answers agree. <answer>Apollo 11's lunar module Eagle, in 1969</answer>"
            )
        return f"[{model_id}] You said: {prompt}"

    return ModelBehavior(reply=reply)


def run(endpoint: str, api_keys: Any = None) -> None:
    pool = CandidatePool.from_json(
        Path(os.environ.get("LLMROUTER_CANDIDATES", SHARED / "default_llm.json")),
        api_endpoint=endpoint,
        **({"api_keys": api_keys} if api_keys is not None else {}),
    )
    agent = build_agent(pool)
    config: RunnableConfig = {"configurable": {"thread_id": "demo"}}
    print(agent.get_graph().draw_mermaid())
    for text in ("hello there", QUESTION):
        print(f"\nuser: {text}")
        for namespace, update in agent.stream(
            {"messages": [("user", text)]}, config, stream_mode="updates", subgraphs=True
        ):
            where = "router" if namespace else "agent"
            for node_name, values in update.items():
                print(f"  [{where}] {node_name}: {summary(values)}")
        final = agent.get_state(config).values
        answer = final["messages"][-1]
        print(f"assistant: {answer.text}")
        if answer.response_metadata.get("models"):
            meta = answer.response_metadata
            print(f"  answered with {', '.join(meta['models'])} for ${meta['cost']:.6f}")
    print(f"\nspent on this conversation: ${agent.get_state(config).values['spent']:.6f}")


def summary(values: Any) -> str:
    """One line per streamed update: the keys a UI would show."""
    if not isinstance(values, dict):
        return str(values)
    shown = []
    for key in ("sub_questions", "routes", "sub_answers", "answer", "stop_reason", "cost"):
        if key in values:
            value = values[key]
            if key == "routes":
                value = [f"{r['sub_question']} -> {r['model']}" for r in value]
            elif key == "sub_answers":
                value = [f"{a['model']}: {a['answer'][:50]}" for a in value]
            shown.append(f"{key}={value}")
    return "; ".join(shown) or ", ".join(values)


def main() -> None:
    endpoint = os.environ.get("LLMROUTER_API_BASE")
    if endpoint:
        run(endpoint)
        return
    from langchain_llmrouter import APIKeys

    pool = CandidatePool.from_json(SHARED / "default_llm.json")
    with FakeOpenAIServer() as server:
        server.set_behavior(pool[PLANNER].model, scripted_planner(pool[PLANNER].model))
        print(f"local OpenAI-compatible server at {server.base_url} (no API keys needed)")
        run(server.base_url, api_keys=APIKeys())


if __name__ == "__main__":
    main()
