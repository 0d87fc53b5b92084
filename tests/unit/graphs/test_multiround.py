"""The kNN and LLM multi-round graphs end to end against the local server.

The helper LLM (decomposer, router, aggregator) is a pool candidate that the kNN router
never routes to, scripted at the server: its reply depends on which request it gets (a
decomposition, a decompose-and-route, or an aggregation). The candidates answer with the
server's recognisable default, ``[<model id>] You said: <sub-question>``.
"""

from __future__ import annotations

import asyncio
import math
import sqlite3
import threading
import time
from collections.abc import Callable
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest
from graph_helpers import (
    REPO,
    Gate,
    assert_mermaid_snapshot,
    last_user_text,
    run_until_gate_then_kill,
)
from langchain_core.runnables import RunnableConfig
from langchain_openai import ChatOpenAI
from langgraph.checkpoint.sqlite import SqliteSaver
from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver

from langchain_llmrouter import RouterChatModel
from langchain_llmrouter.candidates import CandidatePool
from langchain_llmrouter.config import load_config
from langchain_llmrouter.errors import GraphRouterError, NotFittedError, UnknownCandidateError
from langchain_llmrouter.graphs import _multiround_prompts as prompts
from langchain_llmrouter.graphs._common import model_ref
from langchain_llmrouter.graphs.chat_model import RouterGraphChatModel
from langchain_llmrouter.graphs.multiround import (
    MultiRoundSettings,
    aggregate,
    build_knn_multiround_graph,
    build_llm_multiround_graph,
    merge_sub_answers,
)
from langchain_llmrouter.graphs.multiround_router import KNNMultiRoundRouter, LLMMultiRoundRouter
from langchain_llmrouter.testing import FakeOpenAIServer, ModelBehavior, ServedCall

HELPER = "mixtral-8x7b-instruct-v0.1"
"""The helper LLM: a candidate outside the kNN router's nine (RouterDC's), priced 0.6/M."""
HELPER_ID = "mistralai/mixtral-8x7b-instruct-v0.1"
QUESTION = "Which is older, the Eiffel Tower or the Statue of Liberty, and by how many years?"
SUBS = [
    "When was the Eiffel Tower completed?",
    "When was the Statue of Liberty dedicated?",
    "How many years are there between 1886 and 1889?",
]
LLM_CHOICES = ["gemma-2-9b-it", "llama3-70b-instruct", "qwen2.5-7b-instruct"]
"""What the scripted LLM router picks for SUBS (written below as a name, an upper-case API
model id, and a back-quoted mixed-case name)."""
WRITTEN = ["gemma-2-9b-it", "META/LLAMA3-70B-INSTRUCT", "`Qwen2.5-7B-Instruct`"]
FINAL = "The Statue of Liberty, by 3 years"
THREAD: RunnableConfig = {"configurable": {"thread_id": "mr"}}
KINDS = ["knn", "llm"]


# --- scripting -------------------------------------------------------------------------------


def is_aggregation(text: str) -> bool:
    return "Sub-questions and their answers:" in text


def is_route_request(text: str) -> bool:
    return "<sub-question> => <model name>" in text


def helper(
    subs: list[str] = SUBS,
    *,
    written: list[str] = WRITTEN,
    decomposition: str | None = None,
    aggregation: str = f"Both dates are known. <answer>{FINAL}</answer>",
) -> Callable[[list[dict]], str]:
    """The scripted helper LLM: numbered sub-questions (``=> name`` for the LLM router),
    then an aggregation with the answer in tags."""

    def reply(messages: list[dict]) -> str:
        text = last_user_text(messages)
        if is_aggregation(text):
            return aggregation
        if decomposition is not None:
            return decomposition
        if is_route_request(text):
            return "\n".join(
                f"{i}. {q} => {n}" for i, (q, n) in enumerate(zip(subs, written, strict=False), 1)
            )
        return "Sub-questions:\n" + "\n".join(f"{i}) {q}" for i, q in enumerate(subs, 1))

    return reply


def echo(model_id: str, *, delay: dict[str, float] | None = None, fail: tuple[str, ...] = ()):
    """The server's default candidate answer, with per-sub-question delays and failures."""

    def reply(messages: list[dict]) -> str:
        text = last_user_text(messages)
        time.sleep((delay or {}).get(text, 0.0))
        if text in fail:
            raise RuntimeError("candidate down")
        return f"[{model_id}] You said: {text}"

    return reply


def serve_candidates(served: FakeOpenAIServer, pool: CandidatePool, **kwargs: Any) -> None:
    for candidate in pool:
        if candidate.name != HELPER:
            served.set_behavior(
                candidate.model, ModelBehavior(reply=echo(candidate.model, **kwargs))
            )


def make_graph(kind: str, pool: CandidatePool, knn_router: Any, **kwargs: Any) -> Any:
    if kind == "knn":
        return build_knn_multiround_graph(router=knn_router, candidates=pool, llm=HELPER, **kwargs)
    return build_llm_multiround_graph(candidates=pool, llm=HELPER, **kwargs)


def expected_models(kind: str, knn_router: Any, subs: list[str]) -> list[str]:
    if kind == "knn":
        return [d.model for d in knn_router.route_batch(subs)]
    return LLM_CHOICES[: len(subs)]


def run(graph: Any, value: Any, config: dict | None = None, *, mode: str = "sync") -> dict:
    if mode == "async":
        return asyncio.run(graph.ainvoke(value, config))
    return graph.invoke(value, config)


def candidate_calls(served: FakeOpenAIServer) -> list[ServedCall]:
    return [c for c in served.calls if c.model != HELPER_ID]


def sent_max_tokens(call: ServedCall) -> Any:
    return call.body.get("max_completion_tokens", call.body.get("max_tokens"))


def text_of(message: dict) -> str:
    content = message.get("content")
    if isinstance(content, list):
        return "".join(p.get("text", "") for p in content if isinstance(p, dict))
    return str(content or "")


def assert_cost(out: dict, served: FakeOpenAIServer, pool: CandidatePool) -> None:
    """Each recorded call's tokens are the server's usage rule (prompt: characters / 4 per
    message; completion: words) and the run's cost is their sum at the pool's prices."""
    total = 0.0
    for call in out["calls"]:
        candidate = pool[call["model"]]
        if call["error"]:
            assert (call["input_tokens"], call["output_tokens"], call["cost"]) == (0, 0, 0.0)
            continue
        sent = [
            s
            for s in served.calls_for(candidate.model)
            if last_user_text(s.messages) == call["prompt"] and s.status == 200
        ]
        assert sent, f"no server call for {call['model']}: {call['prompt'][:60]}"
        prompt_tokens = max(1, sum(math.ceil(len(text_of(m)) / 4) for m in sent[-1].messages))
        completion = max(1, len(call["response"].split()))
        assert (call["input_tokens"], call["output_tokens"]) == (prompt_tokens, completion)
        cost = (prompt_tokens * candidate.input_price + completion * candidate.output_price) / 1e6
        assert call["cost"] == pytest.approx(cost)
        total += cost
    assert out["cost"] == pytest.approx(total)


@pytest.fixture
def pool(candidate_pool: Callable[..., CandidatePool]) -> CandidatePool:
    return candidate_pool()


# --- end to end ------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["sync", "async"])
@pytest.mark.parametrize("kind", KINDS)
def test_end_to_end(kind: str, mode: str, served, pool, knn_router) -> None:
    served.set_behavior(HELPER_ID, ModelBehavior(reply=helper()))
    out = run(make_graph(kind, pool, knn_router), {"question": QUESTION}, mode=mode)

    assert out["answer"] == FINAL and out["stop_reason"] == "answer"
    assert out["sub_questions"] == SUBS and not out["decompose_fallback"]
    models = expected_models(kind, knn_router, SUBS)
    assert [r["model"] for r in out["routes"]] == models
    if kind == "knn":  # the same decisions as the router's own batch routing
        assert [r["scores"] for r in out["routes"]] == [
            d.scores for d in knn_router.route_batch(SUBS)
        ]
    # Each sub-question went to its routed candidate, once, with the output cap.
    for sub, model in zip(SUBS, models, strict=True):
        sent = [c for c in candidate_calls(served) if last_user_text(c.messages) == sub]
        assert [c.model for c in sent] == [pool[model].model]
        assert sent_max_tokens(sent[0]) == 512
        assert sent[0].messages[0]["role"] == "system"
    assert [(a["sub_question"], a["model"], a["answer"]) for a in out["sub_answers"]] == [
        (sub, model, f"[{pool[model].model}] You said: {sub}")
        for sub, model in zip(SUBS, models, strict=True)
    ]
    aggregation = last_user_text(served.calls_for(HELPER_ID)[-1].messages)
    positions = [aggregation.index(f"You said: {sub}") for sub in SUBS]
    assert positions == sorted(positions) and QUESTION in aggregation
    first_role = "decompose" if kind == "knn" else "route"
    assert sorted(c["role"] for c in out["calls"]) == sorted(
        [first_role, "candidate", "candidate", "candidate", "aggregate"]
    )
    assert len(served.calls) == 5
    assert_cost(out, served, pool)


@pytest.mark.parametrize("kind", KINDS)
def test_more_sub_questions_than_the_cap_are_dropped(kind: str, served, pool, knn_router) -> None:
    many = [*SUBS, "Who designed the Eiffel Tower?", "Who designed the Statue of Liberty?"]
    written = [*WRITTEN, "gemma-2-9b-it", "gemma-2-9b-it"]
    served.set_behavior(HELPER_ID, ModelBehavior(reply=helper(many, written=written)))
    out = run(make_graph(kind, pool, knn_router, max_subquestions=2), {"question": QUESTION})
    assert out["sub_questions"] == SUBS[:2]
    assert sorted(last_user_text(c.messages) for c in candidate_calls(served)) == sorted(SUBS[:2])
    assert out["answer"] == FINAL


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("failure", ["http_error", "nothing_usable", "same_question"])
def test_no_decomposition_answers_the_whole_question(
    kind: str, failure: str, served, pool, knn_router
) -> None:
    """A failed or useless decomposition falls back to [question]; one sub-question equal to
    the question is answered by its candidate directly, without an aggregation call."""
    reply: Callable[[list[dict]], str]
    if failure == "http_error":
        script = helper(decomposition="")

        def reply(messages: list[dict]) -> str:
            if not is_aggregation(last_user_text(messages)):
                raise RuntimeError("decomposer down")
            return script(messages)

    else:
        same = "  " + QUESTION.upper() + "  => gpt-9" if kind == "llm" else QUESTION.lower()
        reply = helper(decomposition="1.\n - \n" if failure == "nothing_usable" else same)
    served.set_behavior(HELPER_ID, ModelBehavior(reply=reply))
    out = run(make_graph(kind, pool, knn_router), {"question": QUESTION})

    first = out["calls"][0]
    assert (first["error"] is not None) == (failure == "http_error")
    assert out["decompose_fallback"] == (failure != "same_question")
    assert len(out["sub_questions"]) == 1
    assert prompts.same_question(out["sub_questions"][0], QUESTION)
    if kind == "knn":
        model = knn_router.route(out["sub_questions"][0]).model
    else:
        model = "palmyra-creative-122b"  # the documented fallback: the most expensive
        assert out["routes"][0]["fallback"]
    [call] = candidate_calls(served)
    assert call.model == pool[model].model
    # No aggregation: the candidate's answer is the final one.
    assert len(served.calls_for(HELPER_ID)) == 1
    assert out["answer"] == f"[{pool[model].model}] You said: {out['sub_questions'][0]}"
    assert out["stop_reason"] == "answer"
    assert_cost(out, served, pool)


@pytest.mark.parametrize("kind", KINDS)
def test_a_failing_candidate_is_reported_to_the_aggregator(
    kind: str, served, pool, knn_router
) -> None:
    served.set_behavior(HELPER_ID, ModelBehavior(reply=helper()))
    serve_candidates(served, pool, fail=(SUBS[1],))
    out = run(make_graph(kind, pool, knn_router), {"question": QUESTION})

    failed = out["sub_answers"][1]
    assert failed["answer"] == "" and "500" in (failed["error"] or "")
    [record] = [c for c in out["calls"] if c["prompt"] == SUBS[1]]
    assert record["error"] and record["cost"] == 0.0
    aggregation = last_user_text(served.calls_for(HELPER_ID)[-1].messages)
    assert f"Sub-question 2: {SUBS[1]}\nAnswer 2: {prompts.NO_ANSWER}" in aggregation
    assert f"You said: {SUBS[0]}" in aggregation and f"You said: {SUBS[2]}" in aggregation
    assert out["answer"] == FINAL and out["stop_reason"] == "answer"
    assert_cost(out, served, pool)


def test_unknown_candidate_names_fall_back_to_the_most_expensive(served, pool) -> None:
    reply = "\n".join(
        [
            f"{SUBS[0]} => gpt-9-ultra",
            f"**{SUBS[1]}** => nvidia/LLAMA3-chatqa-1.5-70b.",
            SUBS[2],
        ]
    )
    served.set_behavior(HELPER_ID, ModelBehavior(reply=helper(decomposition=reply)))
    out = run(build_llm_multiround_graph(candidates=pool, llm=HELPER), {"question": QUESTION})
    assert prompts.strongest_candidate(pool) == "palmyra-creative-122b"
    assert [(r["model"], r["fallback"], r["requested"]) for r in out["routes"]] == [
        ("palmyra-creative-122b", True, "gpt-9-ultra"),
        ("llama3-chatqa-1.5-70b", False, "nvidia/LLAMA3-chatqa-1.5-70b."),
        ("palmyra-creative-122b", True, None),
    ]
    assert "gpt-9-ultra" in out["routes"][0]["reason"]
    sent = {last_user_text(c.messages): c.model for c in candidate_calls(served)}
    assert sent == {
        SUBS[0]: "writer/palmyra-creative-122b",
        SUBS[1]: "nvidia/llama3-chatqa-1.5-70b",
        SUBS[2]: "writer/palmyra-creative-122b",
    }


def test_multiple_choice_asks_for_a_letter(served, pool) -> None:
    question = "Which is older?\nA. The Eiffel Tower\nB. The Statue of Liberty"
    served.set_behavior(
        HELPER_ID,
        ModelBehavior(reply=helper(aggregation="1886 < 1889. <answer>(B) Statue</answer>")),
    )
    out = run(build_llm_multiround_graph(candidates=pool, llm=HELPER), {"question": question})
    assert out["answer"] == "B"
    aggregation = last_user_text(served.calls_for(HELPER_ID)[-1].messages)
    assert prompts.AGGREGATE_MC_INSTRUCTION in aggregation


# --- streaming, parallelism, checkpoints -----------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
def test_stream_updates_show_each_step(kind: str, served, pool, knn_router) -> None:
    served.set_behavior(HELPER_ID, ModelBehavior(reply=helper()))
    # The first sub-question's answer comes last: completion order != decomposition order.
    serve_candidates(served, pool, delay={SUBS[0]: 0.5})
    graph = make_graph(kind, pool, knn_router)
    updates = [
        (name, update)
        for chunk in graph.stream({"question": QUESTION}, stream_mode="updates")
        for name, update in chunk.items()
    ]
    names = [name for name, _ in updates]
    models = expected_models(kind, knn_router, SUBS)
    assert names[0] == "read_input" and names[-1] == "finish"
    names, updates = names[1:-1], updates[1:-1]
    if kind == "knn":
        assert names == ["decompose", "route", *["answer_subquestion"] * 3, "aggregate"]
        assert updates[0][1]["sub_questions"] == SUBS
        routes = updates[1][1]["routes"]
    else:
        assert names == ["decompose_and_route", *["answer_subquestion"] * 3, "aggregate"]
        assert updates[0][1]["sub_questions"] == SUBS
        routes = updates[0][1]["routes"]
    assert [(r["sub_question"], r["model"]) for r in routes] == list(zip(SUBS, models, strict=True))
    arrived = [u["sub_answers"] for n, u in updates if n == "answer_subquestion"]
    assert all(len(a) == 1 for a in arrived) and arrived[-1][0]["index"] == 0
    assert sorted((a["index"], a["model"], a["answer"]) for [a] in arrived) == [
        (i, m, f"[{pool[m].model}] You said: {s}")
        for i, (s, m) in enumerate(zip(SUBS, models, strict=True))
    ]
    assert updates[-1][1]["answer"] == FINAL
    # ... and are aggregated in decomposition order.
    aggregation = last_user_text(served.calls_for(HELPER_ID)[-1].messages)
    positions = [aggregation.index(f"You said: {sub}") for sub in SUBS]
    assert positions == sorted(positions)


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_sub_questions_are_answered_in_parallel(mode: str, served, pool) -> None:
    """Three candidates that each take 0.5 s: from the first sub-question request to the
    aggregation request takes about 0.5 s, not the 1.5 s of answering them one by one."""
    served.set_behavior(HELPER_ID, ModelBehavior(reply=helper()))
    for name in LLM_CHOICES:
        served.set_behavior(pool[name].model, ModelBehavior(delay_s=0.5))
    out = run(
        build_llm_multiround_graph(candidates=pool, llm=HELPER), {"question": QUESTION}, mode=mode
    )
    assert out["answer"] == FINAL
    arrivals = sorted(c.time for c in candidate_calls(served))
    aggregation = served.calls_for(HELPER_ID)[-1].time
    assert len(arrivals) == 3 and arrivals[-1] - arrivals[0] < 0.4
    assert 0.5 <= aggregation - arrivals[0] < 1.0, f"{aggregation - arrivals[0]:.2f} s"


@pytest.mark.parametrize("mode", ["sync", "async"])
@pytest.mark.parametrize("kind", KINDS)
def test_sqlite_checkpointer(kind: str, mode: str, served, pool, knn_router, tmp_path) -> None:
    served.set_behavior(HELPER_ID, ModelBehavior(reply=helper()))
    path = str(tmp_path / "checkpoints.sqlite")
    second = [SUBS[2]]

    async def run_async() -> tuple[dict, dict, Any]:
        async with AsyncSqliteSaver.from_conn_string(path) as saver:
            graph = make_graph(kind, pool, knn_router, checkpointer=saver)
            first = await graph.ainvoke({"question": QUESTION}, THREAD)
            served.set_behavior(HELPER_ID, ModelBehavior(reply=helper(second)))
            again = await graph.ainvoke({"question": "How long ago?"}, THREAD)
            return first, again, (await graph.aget_state(THREAD)).values

    if mode == "async":
        first, again, stored = asyncio.run(run_async())
    else:
        saver = SqliteSaver(sqlite3.connect(path, check_same_thread=False))
        graph = make_graph(kind, pool, knn_router, checkpointer=saver)
        first = graph.invoke({"question": QUESTION}, THREAD)
        served.set_behavior(HELPER_ID, ModelBehavior(reply=helper(second)))
        again = graph.invoke({"question": "How long ago?"}, THREAD)
        stored = graph.get_state(THREAD).values
    assert first["answer"] == FINAL and len(first["sub_answers"]) == 3
    # A second question on the same thread starts afresh (its one sub-question only).
    assert [a["sub_question"] for a in again["sub_answers"]] == second
    assert stored["answer"] == FINAL and stored["sub_questions"] == second


def _resume_script(kind: str, db: Path, base_url: str, llm_json: Path, router_dir: Path) -> str:
    build = (
        f"build_knn_multiround_graph(router=BaseRouter.load({str(router_dir)!r}), "
        if kind == "knn"
        else "build_llm_multiround_graph("
    )
    return f"""
import sqlite3
from langchain_llmrouter import APIKeys, BaseRouter, CandidatePool
from langchain_llmrouter.graphs.multiround import (
    build_knn_multiround_graph, build_llm_multiround_graph
)
from langgraph.checkpoint.sqlite import SqliteSaver
pool = CandidatePool.from_json({str(llm_json)!r}, api_endpoint={base_url!r},
    api_keys=APIKeys(), chat_model_kwargs={{"max_retries": 0}})
saver = SqliteSaver(sqlite3.connect({str(db)!r}, check_same_thread=False))
graph = {build}candidates=pool, llm={HELPER!r}, checkpointer=saver)
graph.invoke({{"question": {QUESTION!r}}}, {{"configurable": {{"thread_id": "mr"}}}})
"""


class AfterCheckpointedAnswers:
    """Reached once ``gate`` holds the third sub-question and the other two answers are in the
    checkpoint (so the kill lands between finished and unfinished work)."""

    def __init__(self, gate: Gate, db: Path, count: int) -> None:
        self.release = gate.release
        self.reached = threading.Event()
        threading.Thread(target=self._watch, args=(gate, db, count), daemon=True).start()

    def _watch(self, gate: Gate, db: Path, count: int) -> None:
        gate.reached.wait(60)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                with closing(sqlite3.connect(str(db), check_same_thread=False)) as connection:
                    saved = SqliteSaver(connection).get_tuple(THREAD)
            except sqlite3.OperationalError:  # the child is writing
                saved = None
            pending = (saved.pending_writes if saved else None) or []
            writes = [w for w in pending if w[1] == "sub_answers"]
            if len(writes) >= count:
                self.reached.set()
                return
            time.sleep(0.05)


@pytest.mark.parametrize("kind", KINDS)
def test_kill_and_resume_repeats_no_finished_call(
    kind: str, served, pool, knn_router, shared_data, tmp_path
) -> None:
    router_dir = knn_router.save(tmp_path / "router") if kind == "knn" else tmp_path
    models = expected_models(kind, knn_router, SUBS)
    served.set_behavior(HELPER_ID, ModelBehavior(reply=helper()))
    serve_candidates(served, pool)
    gated = pool[models[2]].model
    gate = Gate(echo(gated), lambda messages: last_user_text(messages) == SUBS[2])
    served.set_behavior(gated, ModelBehavior(reply=gate))
    db = tmp_path / "resume.sqlite"
    script = _resume_script(kind, db, served.base_url, shared_data / "default_llm.json", router_dir)
    run_until_gate_then_kill(script, AfterCheckpointedAnswers(gate, db, 2))  # type: ignore[arg-type]
    helper_texts = [last_user_text(c.messages) for c in served.calls_for(HELPER_ID)]
    assert [is_aggregation(t) for t in helper_texts] == [False]  # killed before aggregating

    saver = SqliteSaver(sqlite3.connect(str(db), check_same_thread=False))
    out = make_graph(kind, pool, knn_router, checkpointer=saver).invoke(None, THREAD)
    assert out["answer"] == FINAL
    per_sub = {sub: 0 for sub in SUBS}
    for call in candidate_calls(served):
        per_sub[last_user_text(call.messages)] += 1
    # The two finished sub-questions were not asked again; the killed one was.
    assert per_sub == {SUBS[0]: 1, SUBS[1]: 1, SUBS[2]: 2}
    helper_texts = [last_user_text(c.messages) for c in served.calls_for(HELPER_ID)]
    assert [is_aggregation(t) for t in helper_texts] == [False, True]  # no second decomposition
    assert len(out["calls"]) == 5  # the killed request is not recorded (nor paid)
    assert [a["sub_question"] for a in out["sub_answers"]] == SUBS


# --- max_cost --------------------------------------------------------------------------------


def candidate_worst(pool: CandidatePool, name: str, sub: str) -> float:
    """A sub-question call's worst case: system + user prompt (4 characters a token) and
    512 output tokens."""
    tokens = math.ceil(len(prompts.CANDIDATE_SYSTEM_PROMPT) / 4) + math.ceil(len(sub) / 4)
    return pool[name].estimate_cost(tokens, 512)


@pytest.mark.parametrize("where", ["builder", "config"])
def test_max_cost_dispatches_only_what_fits(where: str, served, pool) -> None:
    """With a free helper (a chat model outside the pool), the bound leaves room for two of
    the three sub-questions' worst cases: the third is never sent."""
    served.set_behavior(HELPER_ID, ModelBehavior(reply=helper()))
    free = ChatOpenAI(model=HELPER_ID, base_url=served.base_url, api_key=lambda: "x", max_retries=0)
    worst = [candidate_worst(pool, n, s) for n, s in zip(LLM_CHOICES, SUBS, strict=True)]
    bound = worst[0] + worst[1] + worst[2] / 2
    kwargs: dict[str, Any] = {"max_cost": bound} if where == "builder" else {}
    config = {"configurable": {"max_cost": bound}} if where == "config" else None
    graph = build_llm_multiround_graph(candidates=pool, llm=free, **kwargs)
    out = run(graph, {"question": QUESTION}, config)
    assert (out["dispatched"], out["skipped"]) == ([0, 1], [2])
    assert sorted(last_user_text(c.messages) for c in candidate_calls(served)) == sorted(SUBS[:2])
    assert out["stop_reason"] == "max_cost" and out["answer"] == FINAL
    assert 0 < out["cost"] <= bound


@pytest.mark.parametrize("kind", KINDS)
def test_max_cost_with_a_paid_helper_is_never_passed(kind: str, served, pool, knn_router) -> None:
    """The helper's calls count too. The bound fits the first call as made, then the worst
    cases of two sub-questions and of aggregating their answers (each answer counted at the
    output cap), but not the third: it is never sent, and no call passes the bound."""
    served.set_behavior(HELPER_ID, ModelBehavior(reply=helper()))
    unbounded = run(make_graph(kind, pool, knn_router), {"question": QUESTION})
    served.reset()
    models = expected_models(kind, knn_router, SUBS)
    aggregation = pool[HELPER].estimate_cost(
        prompts.aggregate_prompt_tokens(QUESTION, SUBS[:2], 512), 1024
    )
    bound = unbounded["calls"][0]["cost"] + aggregation + 1e-5
    bound += sum(candidate_worst(pool, m, s) for m, s in zip(models[:2], SUBS[:2], strict=True))
    out = run(make_graph(kind, pool, knn_router, max_cost=bound), {"question": QUESTION})
    assert (out["dispatched"], out["skipped"]) == ([0, 1], [2])
    assert out["stop_reason"] == "max_cost" and out["answer"] == FINAL
    spent = 0.0
    for call in out["calls"]:  # in completion order; the server saw no other calls
        spent += call["cost"]
        assert spent <= bound
    assert len(served.calls) == len(out["calls"])
    assert_cost(out, served, pool)


@pytest.mark.parametrize("kind", KINDS)
def test_max_cost_below_the_first_call_makes_no_call(kind: str, served, pool, knn_router) -> None:
    out = run(make_graph(kind, pool, knn_router, max_cost=1e-6), {"question": QUESTION})
    assert (out["answer"], out["stop_reason"], out["cost"], out["calls"]) == ("", "max_cost", 0, [])
    assert served.calls == []


def test_aggregation_that_would_pass_max_cost_returns_the_last_sub_answer(served, pool) -> None:
    settings = MultiRoundSettings(candidates=pool, llm=model_ref(HELPER, pool), max_cost=1e-4)
    answers = [
        {"index": 0, "sub_question": SUBS[0], "model": "m", "answer": "1889", "error": None},
        {"index": 1, "sub_question": SUBS[1], "model": "m", "answer": "", "error": "down"},
    ]
    state = {
        "question": QUESTION,
        "cost": 9e-5,
        "routes": [{"sub_question": s} for s in SUBS[:2]],
        "dispatched": [0, 1],
        "sub_answers": answers,
    }
    update = aggregate(state, {}, settings=settings)  # type: ignore[arg-type]
    assert update == {"answer": "1889", "stop_reason": "max_cost"}
    assert served.calls == []


# --- wrappers, drawings, registry ------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
def test_mermaid_snapshot(kind: str, pool, knn_router) -> None:
    assert_mermaid_snapshot(make_graph(kind, pool, knn_router), f"{kind}_multiround")


@pytest.mark.parametrize("kind", KINDS)
def test_chat_model_wrapper_reports_calls_and_cost(kind: str, served, pool, knn_router) -> None:
    served.set_behavior(HELPER_ID, ModelBehavior(reply=helper()))
    message = RouterGraphChatModel(graph=make_graph(kind, pool, knn_router)).invoke(QUESTION)
    routing = message.response_metadata["routing"]
    assert message.content == FINAL
    assert len(routing["calls"]) == len(served.calls) == 5
    assert routing["cost"] > 0
    assert routing["cost"] == pytest.approx(sum(c["cost"] for c in routing["calls"]))
    assert routing["models"] == sorted(set(expected_models(kind, knn_router, SUBS)))
    assert routing["stop_reason"] == "answer"


def test_knn_multiround_router_trains_saves_and_builds_its_graph(
    served, pool, small_train, knn_router, tmp_path, monkeypatch
) -> None:
    router = KNNMultiRoundRouter(k=10, llm=HELPER, max_subquestions=2, max_cost=0.5)
    router.fit(small_train)
    # Still a kNN router for single queries.
    assert router.invoke(SUBS[0]).model == knn_router.invoke(SUBS[0]).model
    loaded = KNNMultiRoundRouter.load(router.save(tmp_path / "saved"))
    assert isinstance(loaded, KNNMultiRoundRouter)
    assert loaded.get_params() == router.get_params()
    assert (loaded.llm, loaded.max_subquestions, loaded.max_cost) == (HELPER, 2, 0.5)

    served.set_behavior(HELPER_ID, ModelBehavior(reply=helper()))
    out = loaded.as_graph(pool).invoke({"question": QUESTION})
    assert out["sub_questions"] == SUBS[:2]  # max_subquestions from the hparams
    assert [r["model"] for r in out["routes"]] == expected_models("knn", knn_router, SUBS[:2])
    assert out["answer"] == FINAL


@pytest.mark.parametrize(
    "path", ["configs/train/knnmultiroundrouter.yaml", "configs/infer/knnmultiroundrouter.yaml"]
)
def test_knn_configs_validate(path: str) -> None:
    config = load_config(REPO / path)
    assert config.router == "knnmultiroundrouter"
    KNNMultiRoundRouter.validate_params(config.hparam, source=path)
    assert KNNMultiRoundRouter.from_params(config.hparam).max_subquestions == 4


def test_llm_multiround_router(served, pool, tmp_path, monkeypatch) -> None:
    config = load_config(REPO / "configs/infer/llmmultiroundrouter.yaml")
    router = LLMMultiRoundRouter.from_params(config.hparam)
    assert not router.trainable and router.graph_router
    with pytest.raises(GraphRouterError, match="llmmultiroundrouter"):
        router.invoke(QUESTION)
    router.fit_candidates(pool)
    with pytest.raises(GraphRouterError):
        router.invoke(QUESTION)
    # RouterChatModel takes single-round routers only, and says what to use instead.
    with pytest.raises(GraphRouterError, match=r"llmmultiroundrouter.*RouterGraphChatModel"):
        RouterChatModel(router=router, candidates=pool)
    loaded = LLMMultiRoundRouter.load(router.save(tmp_path / "saved"))
    assert loaded.get_params() == router.get_params() == config.hparam

    served.set_behavior(HELPER_ID, ModelBehavior(reply=helper()))
    out = loaded.as_graph(pool, llm=HELPER, max_subquestions=1).invoke({"question": QUESTION})
    assert out["sub_questions"] == SUBS[:1] and out["answer"] == FINAL


@pytest.mark.parametrize(
    ("change", "error", "match"),
    [
        ({"llm": "gpt-9"}, UnknownCandidateError, "valid candidates: codegemma-7b"),
        ({"max_subquestions": 0}, ValueError, "max_subquestions"),
        ({"max_cost": -1.0}, ValueError, "max_cost"),
        ({"candidates": "subset"}, UnknownCandidateError, "routes to a candidate the pool lacks"),
        ({"router": "unfitted"}, NotFittedError, "not fitted"),
        ({"router": "llm"}, GraphRouterError, "multi-round"),
    ],
)
def test_knn_builder_validates_its_arguments(change, error, match, pool, knn_router) -> None:
    kwargs: dict[str, Any] = {"router": knn_router, "candidates": pool, "llm": HELPER, **change}
    if change.get("candidates") == "subset":
        kwargs["candidates"] = pool.subset([HELPER, "gemma-2-9b-it"])
    if change.get("router") == "unfitted":
        kwargs["router"] = KNNMultiRoundRouter()
    elif change.get("router") == "llm":
        kwargs["router"] = LLMMultiRoundRouter()
    with pytest.raises(error, match=match):
        build_knn_multiround_graph(**kwargs)


# --- parsing ---------------------------------------------------------------------------------


def test_parse_subquestions_strips_markers_and_drops_noise() -> None:
    reply = (
        "<think>Let me split it.</think>Here are the sub-questions:\n\n"
        "1. What is A?\n2) What is B?\n- **What is C?**\n* what is a?\n"
        "Sub-question 5: What is D?\nOK\n(6) What is E?"
    )
    assert prompts.parse_subquestions(reply, 10) == [
        "What is A?",
        "What is B?",
        "What is C?",
        "What is D?",
        "What is E?",
    ]
    assert prompts.parse_subquestions(reply, 2) == ["What is A?", "What is B?"]
    assert prompts.parse_subquestions("3.5 times 2 is what?", 4) == ["3.5 times 2 is what?"]


@pytest.mark.parametrize(
    ("reply", "mc", "expected"),
    [
        ("so <answer> 42 </answer>", False, "42"),
        ("<answer>1</answer> then <answer>2</answer>", False, "2"),
        ("<think>maybe <answer>x</answer></think>the answer is 7", False, "the answer is 7"),
        ("no tags here", False, "no tags here"),
        ("unclosed <answer> 9", False, "9"),
        ("<answer>(C) Paris</answer>", True, "C"),
        ("<answer>b. paris</answer>", True, "b. paris"),
    ],
)
def test_extract_answer(reply: str, mc: bool, expected: str) -> None:
    assert prompts.extract_answer(reply, multiple_choice=mc) == expected


@pytest.mark.parametrize(
    ("question", "expected"),
    [
        ("Pick one:\nA. red\nB. blue", True),
        ("Pick one:\n(A) red\n(B) blue\n(C) green", True),
        ("Pick one:\nA) red\nB) blue", True),
        ("Options: (A) red (B) blue", False),  # inline options are not detected
        ("A. Smith wrote it.\nWho is A. Smith?", False),
        ("What is 2 + 2?", False),
    ],
)
def test_is_multiple_choice(question: str, expected: bool) -> None:
    assert prompts.is_multiple_choice(question) is expected


def test_merge_sub_answers_orders_by_index_and_clears() -> None:
    def answer(i: int) -> Any:
        return {"index": i, "sub_question": f"q{i}", "model": "m", "answer": "a", "error": None}

    merged = merge_sub_answers(merge_sub_answers([], [answer(2)]), [answer(0)])
    merged = merge_sub_answers(merged, [answer(1)])
    assert [a["index"] for a in merged] == [0, 1, 2]
    assert merge_sub_answers(merged, []) == []
