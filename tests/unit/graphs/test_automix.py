"""The AutoMix graph end to end against the local server, with scripted candidates.

Each candidate's reply function answers an answer prompt with ``<name> says: <question>``
and a verification prompt with a scripted "Correct"/"Incorrect" decision, so a test
chooses the small model's confidence and so whether the cascade escalates.
"""

from __future__ import annotations

import itertools
import json
import math
import re
import sqlite3
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest
from graph_helpers import Gate, assert_mermaid_snapshot, last_user_text, run_until_gate_then_kill
from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.checkpoint.sqlite import SqliteSaver
from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver

from langchain_llmrouter.candidates import CandidatePool
from langchain_llmrouter.cli.main import main as cli_main
from langchain_llmrouter.errors import NotFittedError, UnknownCandidateError
from langchain_llmrouter.graphs._common import candidate_ref, worst_case_cost
from langchain_llmrouter.graphs.automix import (
    ANSWER_MAX_TOKENS,
    ANSWER_PROMPT,
    VERIFY_MAX_TOKENS,
    build_automix_graph,
    default_cascade,
    parse_verification,
    verification_prompt,
)
from langchain_llmrouter.graphs.automix_router import AutoMixRouter
from langchain_llmrouter.graphs.chat_model import RouterGraphChatModel
from langchain_llmrouter.pipeline.self_verification import add_self_verification
from langchain_llmrouter.routers.automix import ThresholdPolicy
from langchain_llmrouter.testing import FakeOpenAIServer, ModelBehavior, ServedCall

SMALL, MID, LARGE = "gemma-2-9b-it", "mistral-nemo-12b-instruct", "llama3-70b-instruct"
QUESTION = "What is the capital of France?"
K = 4
THREAD: RunnableConfig = {"configurable": {"thread_id": "automix"}}
WRONG = "No decision here, sorry."


def decision(word: str) -> str:
    """A verification reply (WRONG, which names no decision, stays as it is)."""
    if word == WRONG:
        return word
    return f"It checks out or not.\n\nVerification Decision: The AI generated answer is {word}"


def is_verification(messages: list[dict]) -> bool:
    return "Verification Decision" in last_user_text(messages)


def scripted(name: str, decisions: Sequence[str] = ("Correct",)) -> Callable[[list[dict]], str]:
    """Answers with ``<name> says: <question>``; verifies with ``decisions`` in turn."""
    counter, lock = itertools.count(), threading.Lock()

    def reply(messages: list[dict]) -> str:
        text = last_user_text(messages)
        if is_verification(messages):
            with lock:
                index = next(counter)
            return decision(decisions[index % len(decisions)])
        question = re.search(r"Question: (.*)", text)
        return f"{name} says: {question.group(1) if question else text}"

    return reply


@pytest.fixture
def pool(candidate_pool: Any) -> CandidatePool:
    return candidate_pool()


def script(served: FakeOpenAIServer, pool: CandidatePool, **decisions: Sequence[str]) -> None:
    """Every cascade model answers recognisably; ``decisions`` by candidate name."""
    for name in (SMALL, MID, LARGE):
        behavior = ModelBehavior(reply=scripted(name, decisions.get(name, ("Correct",))))
        served.set_behavior(pool[name].model, behavior)


async def run(graph: Any, mode: str, config: RunnableConfig | None = None) -> dict[str, Any]:
    if mode == "async":
        return await graph.ainvoke({"question": QUESTION}, config)
    return graph.invoke({"question": QUESTION}, config)


def sent_max_tokens(call: ServedCall) -> Any:
    return call.body.get("max_completion_tokens", call.body.get("max_tokens"))


def served_models(pool: CandidatePool, served: FakeOpenAIServer) -> list[str]:
    by_id = {c.model: c.name for c in pool}
    return [by_id[c.model] for c in served.calls]


def check_cost(pool: CandidatePool, served: list[ServedCall], out: dict[str, Any]) -> None:
    """Tokens as the server reports them (prompt chars / 4, reply words) × the prices;
    failed requests are not charged."""
    by_id = {c.model: c for c in pool}
    assert len(served) == len(out["calls"])
    expected = 0.0
    for call in (c for c in served if c.status == 200):
        tokens = sum(math.ceil(len(m["content"]) / 4) for m in call.messages)
        expected += tokens * by_id[call.model].input_price / 1e6
    for rec in out["calls"]:
        if rec["error"] is None:
            assert rec["input_tokens"] == math.ceil(len(rec["prompt"]) / 4)
            assert rec["output_tokens"] == len(rec["response"].split())
            expected += rec["output_tokens"] * pool[rec["model"]].output_price / 1e6
    assert out["cost"] == pytest.approx(expected, rel=1e-12)
    assert out["cost"] == pytest.approx(sum(c["cost"] for c in out["calls"]), rel=1e-12)


@pytest.mark.parametrize("mode", ["sync", "async"])
@pytest.mark.parametrize(
    ("decisions", "confidence", "escalated"),
    [
        (["Correct"], 1.0, False),
        (["Correct", "Correct", "Incorrect", WRONG], 2 / 3, False),
        (["Incorrect", "Correct", "Incorrect", "Incorrect"], 0.25, True),
        ([WRONG], 0.5, True),  # nothing parses: 0.5, and escalate iff 0.5 <= threshold
    ],
)
async def test_answer_verify_and_decide(
    served: FakeOpenAIServer,
    pool: CandidatePool,
    mode: str,
    decisions: list[str],
    confidence: float,
    escalated: bool,
) -> None:
    script(served, pool, **{SMALL: decisions})
    graph = build_automix_graph(candidates=pool, cascade=[SMALL, LARGE], verify_samples=K)
    out = await run(graph, mode)

    final = LARGE if escalated else SMALL
    assert out["answer"] == f"{final} says: {QUESTION}"
    assert out["model"] == final and out["stop_reason"] == "answer"
    assert served_models(pool, served) == [SMALL] * (1 + K) + [LARGE] * escalated
    assert [c["role"] for c in out["calls"]] == ["candidate"] + ["verify"] * K + [
        "candidate"
    ] * escalated
    small = out["stages"][0]
    assert small["model"] == SMALL and small["answer"] == f"{SMALL} says: {QUESTION}"
    assert small["confidence"] == pytest.approx(confidence)
    assert sorted(small["votes"], key=str) == sorted(
        [{"Correct": True, "Incorrect": False}.get(d) for d in (decisions * K)[:K]], key=str
    )
    assert small["escalated"] is escalated
    if escalated:
        assert out["stages"][1] == {
            "stage": 1,
            "model": LARGE,
            "last": True,
            "answer": f"{LARGE} says: {QUESTION}",
            "error": None,
        }  # the last model is accepted unverified
    assert len(out["stages"]) == 1 + escalated
    verifies = served.calls[1 : 1 + K]
    assert all(c.body["temperature"] == 1.0 for c in verifies)
    assert all(sent_max_tokens(c) == VERIFY_MAX_TOKENS for c in verifies)
    assert all(c.body.get("n", 1) == 1 for c in verifies)  # k requests, not one with n=k
    assert last_user_text(verifies[0].messages) == verification_prompt(
        QUESTION, f"{SMALL} says: {QUESTION}"
    )
    assert sent_max_tokens(served.calls[0]) == ANSWER_MAX_TOKENS
    assert last_user_text(served.calls[0].messages) == ANSWER_PROMPT.format(question=QUESTION)
    check_cost(pool, served.calls, out)


@pytest.mark.parametrize("mode", ["sync", "async"])
async def test_verifications_run_in_parallel(
    served: FakeOpenAIServer, pool: CandidatePool, mode: str
) -> None:
    barrier = threading.Barrier(K, timeout=10)
    answer = scripted(SMALL)

    def reply(messages: list[dict]) -> str:
        if is_verification(messages):
            barrier.wait()  # only passes when all k requests are in flight together
        return answer(messages)

    served.set_behavior(pool[SMALL].model, ModelBehavior(reply=reply))
    graph = build_automix_graph(candidates=pool, cascade=[SMALL, LARGE], verify_samples=K)
    out = await run(graph, mode)
    assert out["stages"][0]["votes"] == [True] * K and out["model"] == SMALL


def test_failed_answer_escalates_without_verification(
    served: FakeOpenAIServer, pool: CandidatePool
) -> None:
    script(served, pool)
    served.set_behavior(pool[SMALL].model, ModelBehavior(fail_status=500))
    out = build_automix_graph(candidates=pool, cascade=[SMALL, LARGE]).invoke(
        {"question": QUESTION}
    )
    assert out["answer"] == f"{LARGE} says: {QUESTION}" and out["stop_reason"] == "answer"
    assert served_models(pool, served) == [SMALL, LARGE]
    assert out["stages"][0]["error"] and out["stages"][0]["escalated"] is True
    assert "confidence" not in out["stages"][0]
    check_cost(pool, served.calls, out)


@pytest.mark.parametrize(("threshold", "escalated"), [(0.4, False), (0.5, True)])
def test_failed_verifications_count_as_unparseable(
    served: FakeOpenAIServer, pool: CandidatePool, threshold: float, escalated: bool
) -> None:
    script(served, pool)
    answer = scripted(SMALL)

    def reply(messages: list[dict]) -> str:
        if is_verification(messages):
            raise RuntimeError("verifier down")  # the server answers 500
        return answer(messages)

    served.set_behavior(pool[SMALL].model, ModelBehavior(reply=reply))
    graph = build_automix_graph(candidates=pool, cascade=[SMALL, LARGE], thresholds=[threshold])
    out = graph.invoke({"question": QUESTION})
    small = out["stages"][0]
    assert small["votes"] == [None] * K and small["confidence"] == 0.5
    assert all(c["error"] for c in out["calls"] if c["role"] == "verify")
    assert out["model"] == (LARGE if escalated else SMALL)


def small_costs(pool: CandidatePool) -> tuple[float, float, float]:
    """Worst-case estimates: the small answer, its k verifications, the large answer."""
    small, large = candidate_ref(pool, SMALL), candidate_ref(pool, LARGE)
    prompt = ANSWER_PROMPT.format(question=QUESTION)
    verify = verification_prompt(QUESTION, f"{SMALL} says: {QUESTION}")
    return (
        worst_case_cost(small, prompt, ANSWER_MAX_TOKENS),
        K * worst_case_cost(small, verify, VERIFY_MAX_TOKENS),
        worst_case_cost(large, prompt, ANSWER_MAX_TOKENS),
    )


@pytest.mark.parametrize("where", ["builder", "config"])
@pytest.mark.parametrize(
    ("budget", "models", "answer"),
    [
        ("nothing", [], ""),
        ("answer", [SMALL], f"{SMALL} says: {QUESTION}"),  # accepted unverified
        ("verify", [SMALL] * (1 + K), f"{SMALL} says: {QUESTION}"),  # no escalation
    ],
)
def test_max_cost_stops_before_a_paid_call(
    served: FakeOpenAIServer,
    pool: CandidatePool,
    where: str,
    budget: str,
    models: list[str],
    answer: str,
) -> None:
    script(served, pool, **{SMALL: ["Incorrect"]})  # the policy wants to escalate
    first, verify, large = small_costs(pool)
    assert large > first
    bound = {"nothing": first / 2, "answer": first * 1.01, "verify": first + verify}[budget]
    kwargs: dict[str, Any] = {"max_cost": bound} if where == "builder" else {}
    config: RunnableConfig = {"configurable": {"max_cost": bound}} if where == "config" else {}
    graph = build_automix_graph(candidates=pool, cascade=[SMALL, LARGE], **kwargs)
    out = graph.invoke({"question": QUESTION}, config)
    assert out["stop_reason"] == "max_cost" and out["answer"] == answer
    assert served_models(pool, served) == models
    assert out["cost"] <= bound
    if budget == "verify":
        assert out["stages"][0]["escalated"] is False and out["stages"][0]["confidence"] == 0


# 3 models take 9 steps (read_input, 2 x answer-verify-decide, answer, finish): the limit must
# be at least 10; at 9 the guard accepts the middle answer instead of escalating.
@pytest.mark.parametrize(
    ("limit", "stop_reason", "final"), [(9, "max_turns", MID), (10, "answer", LARGE)]
)
def test_three_model_cascade_and_the_step_guard(
    served: FakeOpenAIServer, pool: CandidatePool, limit: int, stop_reason: str, final: str
) -> None:
    script(served, pool, **{SMALL: ["Incorrect"], MID: ["Incorrect"]})
    graph = build_automix_graph(candidates=pool, cascade=[SMALL, MID, LARGE])
    out = graph.invoke({"question": QUESTION}, {"recursion_limit": limit})
    assert out["stop_reason"] == stop_reason and out["model"] == final
    assert [s["model"] for s in out["stages"]] == [SMALL, MID, LARGE][: 2 + (final == LARGE)]
    assert served_models(pool, served).count(LARGE) == (final == LARGE)


def test_stream_updates_show_each_step(served: FakeOpenAIServer, pool: CandidatePool) -> None:
    script(served, pool, **{SMALL: ["Incorrect"]})
    graph = build_automix_graph(candidates=pool, cascade=[SMALL, LARGE], verify_samples=2)
    updates = list(graph.stream({"question": QUESTION}, stream_mode="updates"))
    assert [next(iter(u)) for u in updates] == [
        "read_input", "answer", "verify", "decide", "answer", "finish"
    ]  # fmt: skip
    updates = updates[1:]
    assert updates[0]["answer"]["stages"][0]["model"] == SMALL
    assert updates[1]["verify"]["stages"] == [
        {"stage": 0, "votes": [False, False], "confidence": 0.0}
    ]
    assert updates[2]["decide"] == {"stages": [{"stage": 0, "escalated": True}], "stage": 1}
    assert updates[3]["answer"]["calls"][0]["model"] == LARGE
    assert updates[4]["finish"] == {
        "answer": f"{LARGE} says: {QUESTION}",
        "model": LARGE,
        "stop_reason": "answer",
    }


def test_sqlite_checkpointer_run(
    served: FakeOpenAIServer, pool: CandidatePool, tmp_path: Path
) -> None:
    script(served, pool, **{SMALL: ["Incorrect"]})
    saver = SqliteSaver(sqlite3.connect(tmp_path / "automix.sqlite", check_same_thread=False))
    graph = build_automix_graph(candidates=pool, cascade=[SMALL, LARGE], checkpointer=saver)
    out = graph.invoke({"question": QUESTION}, THREAD)
    saved = graph.get_state(THREAD)
    assert (
        saved.next == () and saved.values["answer"] == out["answer"] == f"{LARGE} says: {QUESTION}"
    )
    assert [s["escalated"] for s in saved.values["stages"][:1]] == [True]
    assert len(list(graph.get_state_history(THREAD))) >= 6


async def test_ainvoke_with_async_sqlite_checkpointer(
    served: FakeOpenAIServer, pool: CandidatePool, tmp_path: Path
) -> None:
    script(served, pool)
    async with AsyncSqliteSaver.from_conn_string(str(tmp_path / "automix.sqlite")) as saver:
        graph = build_automix_graph(candidates=pool, cascade=[SMALL, LARGE], checkpointer=saver)
        out = await graph.ainvoke({"question": QUESTION}, THREAD)
        saved = await graph.aget_state(THREAD)
    assert out["model"] == SMALL and saved.values["answer"] == f"{SMALL} says: {QUESTION}"
    assert served_models(pool, served) == [SMALL] * (1 + K)


def test_killed_run_resumes_without_repeating_finished_calls(
    served: FakeOpenAIServer, pool: CandidatePool, shared_data: Path, tmp_path: Path
) -> None:
    script(served, pool, **{SMALL: ["Incorrect"]})
    gate = Gate(scripted(LARGE), when=lambda messages: True)  # hold the large model's answer
    served.set_behavior(pool[LARGE].model, ModelBehavior(reply=gate))
    db = str(tmp_path / "automix.sqlite")
    code = f"""
import sqlite3
from langgraph.checkpoint.sqlite import SqliteSaver
from langchain_llmrouter.candidates import APIKeys, CandidatePool
from langchain_llmrouter.graphs.automix import build_automix_graph
pool = CandidatePool.from_json({str(shared_data / "default_llm.json")!r},
    api_endpoint={served.base_url!r}, api_keys=APIKeys(), chat_model_kwargs={{"max_retries": 0}})
saver = SqliteSaver(sqlite3.connect({db!r}, check_same_thread=False))
graph = build_automix_graph(candidates=pool, cascade={[SMALL, LARGE]!r}, checkpointer=saver)
graph.invoke({{"question": {QUESTION!r}}}, {THREAD!r}, durability="sync")
"""
    run_until_gate_then_kill(code, gate)
    assert served_models(pool, served) == [SMALL] * (1 + K) + [LARGE]

    saver = SqliteSaver(sqlite3.connect(db, check_same_thread=False))
    graph = build_automix_graph(candidates=pool, cascade=[SMALL, LARGE], checkpointer=saver)
    out = graph.invoke(None, THREAD)
    assert out["answer"] == f"{LARGE} says: {QUESTION}" and out["stop_reason"] == "answer"
    # The small model's answer and verifications were not asked again; only the held call.
    assert served_models(pool, served) == [SMALL] * (1 + K) + [LARGE] * 2
    assert [c["role"] for c in out["calls"]] == ["candidate"] + ["verify"] * K + ["candidate"]


def test_mermaid_snapshot(pool: CandidatePool) -> None:
    assert_mermaid_snapshot(build_automix_graph(candidates=pool, cascade=[SMALL, LARGE]), "automix")


def test_router_graph_chat_model(served: FakeOpenAIServer, pool: CandidatePool) -> None:
    script(served, pool, **{SMALL: ["Incorrect"]})
    graph = build_automix_graph(candidates=pool, cascade=[SMALL, LARGE])
    message = RouterGraphChatModel(graph=graph).invoke(QUESTION)
    routing = message.response_metadata["routing"]
    assert message.content == f"{LARGE} says: {QUESTION}"
    assert routing["router"] == "automix" and routing["stop_reason"] == "answer"
    assert routing["models"] == sorted([SMALL, LARGE])
    assert len(routing["calls"]) == 2 + K
    check_cost(pool, served.calls, {"calls": routing["calls"], "cost": routing["cost"]})
    assert message.usage_metadata is not None
    assert message.usage_metadata["input_tokens"] == sum(
        c["input_tokens"] for c in routing["calls"]
    )


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"cascade": [SMALL, "gpt-9"]}, UnknownCandidateError, "valid candidates: codegemma"),
        ({"cascade": [SMALL, SMALL]}, ValueError, "distinct candidates"),
        ({"cascade": []}, ValueError, "distinct candidates"),
        ({"thresholds": [0.5, 0.5]}, ValueError, "needs 1 .one per stage"),
        ({"thresholds": [1.5]}, ValueError, r"in \[0, 1\]"),
        (
            {"thresholds": [0.5], "policy": ThresholdPolicy((0.5,))},
            ValueError,
            "either policy or thresholds",
        ),
        ({"verify_samples": 0}, ValueError, "must be >= 1"),
        ({"verify_temperature": -1.0}, ValueError, "verify_temperature must be >= 0"),
        ({"max_cost": 0.0}, ValueError, "max_cost must be > 0"),
        ({"policy": AutoMixRouter()}, NotFittedError, "not fitted"),
    ],
)
def test_builder_validates_arguments(
    pool: CandidatePool, kwargs: dict[str, Any], error: type[Exception], match: str
) -> None:
    args: dict[str, Any] = {"cascade": [SMALL, LARGE], **kwargs}
    with pytest.raises(error, match=match):
        build_automix_graph(candidates=pool, **args)


def test_default_cascade_is_the_cheapest_then_the_dearest(pool: CandidatePool) -> None:
    prices = {n: pool[n].input_price + pool[n].output_price for n in pool.names}
    assert default_cascade(pool) == [SMALL, "palmyra-creative-122b"]
    assert prices[SMALL] == min(prices.values())
    assert prices["palmyra-creative-122b"] == max(prices.values())


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Fine.\nVerification Decision: The AI generated answer is Correct", True),
        ("Verification Decision: The AI generated answer is Incorrect.", False),
        ("verification decision: the ai generated answer is **correct**", True),
        (
            "The AI generated answer is Incorrect at first sight... The AI generated answer is correct",
            True,
        ),
        (
            "Verification Decision: The AI generated answer is Correct\n"
            "(the AI generated answer is incorrect only if ...)",
            True,
        ),
        ("The answer is correct.", None),
        ("Verification Decision: The AI generated answer is unclear", None),
        ("", None),
    ],
)
def test_parse_verification(text: str, expected: bool | None) -> None:
    assert parse_verification(text) is expected


def routing_rows(n: int) -> list[dict[str, Any]]:
    """LLMRouter-style routing rows: the small model is right on even queries only."""
    rows = []
    for i in range(n):
        for name, perf in ((SMALL, float(i % 2 == 0)), (LARGE, 1.0)):
            answer = f"{name} says: query {i}"
            rows.append(
                {"query": f"query {i}", "model_name": name, "performance": perf, "response": answer}
            )
    return rows


def even_is_correct(messages: list[dict]) -> str:
    """A small verifier that knows which of its answers are right."""
    if is_verification(messages):
        target = last_user_text(messages).rsplit("---", 1)[-1]
        number = int(re.search(r"AI Generated Answer: .* query (\d+)", target).group(1))  # type: ignore[union-attr]
        return decision("Correct" if number % 2 == 0 else "Incorrect")
    return scripted(SMALL)(messages)


def test_self_verification_data_trains_through_the_cli(
    served: FakeOpenAIServer, pool: CandidatePool, shared_data: Path, tmp_path: Path
) -> None:
    script(served, pool)
    served.set_behavior(pool[SMALL].model, ModelBehavior(reply=even_is_correct))
    train = tmp_path / "train.jsonl"
    rows = add_self_verification(routing_rows(6), pool, samples=2, models=[SMALL], output=train)
    assert [r.get("verification_score") for r in rows] == [1.0, None, 0.0, None] * 3
    assert served_models(pool, served) == [SMALL] * 12  # 6 answers x 2 samples, no large
    assert [json.loads(line) for line in train.read_text().splitlines()] == rows

    config = tmp_path / "automix.yaml"
    config.write_text(
        "router: automix\n"
        "data_path:\n"
        f"  routing_data_train: {train}\n"
        f"  llm_data: {shared_data / 'default_llm.json'}\n"
        f"hparam:\n  cascade: [{SMALL}, {LARGE}]\n  method: threshold\n  verify_samples: 2\n"
        f"model_path:\n  save_model_path: {tmp_path / 'model'}\n",
        encoding="utf-8",
    )
    assert cli_main(["train", "--router", "automix", "--config", str(config), "--quiet"]) == 0
    router = AutoMixRouter.load(tmp_path / "model")
    assert isinstance(router, AutoMixRouter) and isinstance(router.policy_, ThresholdPolicy)
    assert router.cascade_ == [SMALL, LARGE] and router.verify_samples == 2
    assert router.policy_.escalate(0, 0.0) and not router.policy_.escalate(0, 1.0)
    saved = json.loads((tmp_path / "model" / "router.json").read_text())
    assert saved["state"]["policy"]["thresholds"] == list(router.policy_.thresholds)

    served.reset()
    graph = router.as_graph(pool)
    for i, final in ((2, SMALL), (3, LARGE)):
        out = graph.invoke({"question": f"query {i}"})
        assert out["model"] == final and out["answer"] == f"{final} says: query {i}"
        assert len([c for c in out["calls"] if c["role"] == "verify"]) == 2  # the fitted k
    # Overrides go to the builder: threshold 1 escalates even a confident answer.
    assert router.as_graph(pool, thresholds=[1.0]).invoke({"question": "query 2"})["model"] == LARGE


def test_a_second_question_on_a_thread_starts_at_the_first_stage(
    served: FakeOpenAIServer, pool: CandidatePool
) -> None:
    """``read_input`` resets the cascade: before it, the first run's stop reason and stage made
    the second question get only an unverified answer (or the last stage's model)."""
    script(served, pool, **{SMALL: ["Incorrect"] * K + ["Correct"] * K})
    graph = build_automix_graph(
        candidates=pool, cascade=[SMALL, LARGE], checkpointer=InMemorySaver()
    )
    first = graph.invoke({"question": QUESTION}, THREAD)
    assert first["model"] == LARGE  # four "Incorrect": escalated
    served.reset()
    second = graph.invoke({"question": "What is 2 + 2?"}, THREAD)
    assert second["model"] == SMALL and second["stop_reason"] == "answer"
    assert served_models(pool, served) == [SMALL] * (1 + K)  # answered and verified again
    assert [s["stage"] for s in second["stages"]] == [0]
