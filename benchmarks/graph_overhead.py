"""Router-graph overhead benchmark: what running a router as a LangGraph graph costs in time.

For each graph (Router-R1 with a scripted three-turn policy, the LLM multi-round router with
a scripted two-sub-question plan, AutoMix with a two-model cascade that escalates), against
the local OpenAI-compatible test server, interleaved question by question, it times:

  * ``direct``: the same LLM requests the graph made (model and prompt of every recorded
    call), sent one after another with the candidates' ``ChatOpenAI`` (the baseline);
  * ``graph``: the graph with no checkpointer;
  * ``memory``: with LangGraph's ``InMemorySaver``;
  * ``sqlite``: with ``SqliteSaver`` on a file and ``durability="sync"`` (every step written
    before the next starts: what a kill-and-resume guarantee costs).

It prints the median milliseconds per question of each arm and its ratio to ``direct``. The
graphs run independent calls in parallel (sub-questions, verifications), so a ratio below 1
is possible; above 1 it is the orchestration's price.

Usage: python benchmarks/graph_overhead.py [--questions 40]
"""

from __future__ import annotations

import argparse
import os
import sqlite3
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from langchain_core.messages import HumanMessage
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.checkpoint.sqlite import SqliteSaver

from langchain_llmrouter import APIKeys, CandidatePool
from langchain_llmrouter.graphs.automix import build_automix_graph
from langchain_llmrouter.graphs.multiround import build_llm_multiround_graph
from langchain_llmrouter.graphs.router_r1 import build_router_r1_graph
from langchain_llmrouter.testing import FakeOpenAIServer, ModelBehavior

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "llmrouter_example"
POLICY, PLANNER = "r1-policy", "qwen2.5-7b-instruct"
SMALL, LARGE, HELPER = "gemma-2-9b-it", "llama3-chatqa-1.5-70b", "mistral-7b-instruct-v0.3"


def _text(messages: list[dict]) -> str:
    content = messages[-1].get("content")
    if isinstance(content, list):
        return "".join(p.get("text", "") for p in content if isinstance(p, dict))
    return str(content or "")


def r1_policy(messages: list[dict]) -> str:
    """Search twice, then answer (the turn is the number of assistant messages so far)."""
    turn = sum(1 for m in messages if m.get("role") == "assistant")
    if turn == 0:
        return f"<think>Ask.</think>\n<search> {SMALL}: What is the capital of France? </search>"
    if turn == 1:
        return f"<think>Check.</think>\n<search> {HELPER}: Where is the Louvre? </search>"
    return "<think>Done.</think>\n<answer> Paris </answer>"


def planner(model_id: str) -> Callable[[list[dict]], str]:
    def reply(messages: list[dict]) -> str:
        prompt = _text(messages)
        if "=> <model name>" in prompt:
            return f"What is the capital of France? => {SMALL}\nWhere is the Louvre? => {HELPER}"
        if "Sub-questions and their answers" in prompt:
            return "<answer>Paris</answer>"
        return f"[{model_id}] You said: {prompt}"

    return reply


def doubtful(model_id: str) -> Callable[[list[dict]], str]:
    """Answers, and judges its own answers incorrect (so AutoMix escalates)."""

    def reply(messages: list[dict]) -> str:
        if "Verification Decision" in _text(messages):
            return "Verification Decision: The AI generated answer is Incorrect"
        return f"[{model_id}] Paris"

    return reply


def direct(pool: CandidatePool, policy: Any, calls: list[dict]) -> None:
    """Send the recorded requests one after another, without a graph."""
    for call in calls:
        model = policy if call["model"] == POLICY else pool.chat_model(call["model"])
        model.invoke([HumanMessage(call["prompt"])])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--questions", type=int, default=40, help="questions per graph and arm")
    args = parser.parse_args()

    from langchain_openai import ChatOpenAI

    with FakeOpenAIServer() as server, tempfile.TemporaryDirectory() as tmp:
        pool = CandidatePool.from_json(
            args.data / "default_llm.json", api_endpoint=server.base_url, api_keys=APIKeys()
        )
        server.set_behavior(POLICY, ModelBehavior(reply=r1_policy))
        server.set_behavior(pool[PLANNER].model, ModelBehavior(reply=planner(pool[PLANNER].model)))
        server.set_behavior(pool[SMALL].model, ModelBehavior(reply=doubtful(pool[SMALL].model)))
        policy = ChatOpenAI(model=POLICY, base_url=server.base_url, api_key="local")
        builders: dict[str, Callable[[Any], Any]] = {
            "router_r1": lambda cp: build_router_r1_graph(
                policy=policy, candidates=pool, checkpointer=cp
            ),
            "llm_multiround": lambda cp: build_llm_multiround_graph(
                candidates=pool, llm=PLANNER, checkpointer=cp
            ),
            "automix": lambda cp: build_automix_graph(
                candidates=pool, cascade=[SMALL, LARGE], verify_samples=4, checkpointer=cp
            ),
        }
        print(
            f"machine: {os.cpu_count()} cores; {args.questions} questions per graph and arm, "
            "interleaved; local OpenAI-compatible server"
        )
        print(
            f"{'graph':<16}{'calls':>6}{'direct ms':>11}{'graph':>16}{'memory':>16}{'sqlite':>16}"
        )
        for name, build in builders.items():
            sqlite = SqliteSaver(
                sqlite3.connect(str(Path(tmp) / f"{name}.db"), check_same_thread=False)
            )
            arms = {
                "graph": (build(None), {}),
                "memory": (build(InMemorySaver()), {}),
                "sqlite": (build(sqlite), {"durability": "sync"}),
            }
            times: dict[str, list[float]] = {arm: [] for arm in ("direct", *arms)}
            n_calls = 0
            for i in range(args.questions + 2):  # the first two warm up
                question = f"Question {i}: what is the capital of France"
                config = {"configurable": {"thread_id": f"{name}-{i}"}}
                for arm, (graph, kwargs) in arms.items():
                    start = time.perf_counter()
                    state = graph.invoke({"question": question}, config, **kwargs)
                    if i >= 2:
                        times[arm].append(time.perf_counter() - start)
                assert state["answer"], (name, state.get("stop_reason"))
                n_calls = len(state["calls"])
                start = time.perf_counter()
                direct(pool, policy, state["calls"])
                if i >= 2:
                    times["direct"].append(time.perf_counter() - start)
            base = statistics.median(times["direct"]) * 1000
            cells = []
            for arm in arms:
                ms = statistics.median(times[arm]) * 1000
                cells.append(f"{ms:8.1f} ({ms / base:4.2f}x)")
            print(f"{name:<16}{n_calls:>6}{base:>11.1f}" + "".join(f"{c:>16}" for c in cells))


if __name__ == "__main__":
    main()
