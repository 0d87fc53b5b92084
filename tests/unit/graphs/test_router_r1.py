"""The Router-R1 graph end to end against the local server, with a scripted policy.

The policy is a model id at the local server whose reply depends on how many
``<information>`` blocks its request already holds, so one script drives both transcript
modes. Candidates answer with the server's recognisable default (``[<model id>] You said:
<sub-question> ...``).
"""

from __future__ import annotations

import math
import sqlite3
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
from pydantic import SecretStr

from langchain_llmrouter.candidates import CandidatePool
from langchain_llmrouter.config import load_config
from langchain_llmrouter.errors import ConfigError, GraphRouterError, UnknownCandidateError
from langchain_llmrouter.graphs._common import candidate_ref, worst_case_cost
from langchain_llmrouter.graphs._router_r1_text import (
    CANDIDATE_PROMPT,
    close_turn,
    parse_turn,
    transcript_text,
)
from langchain_llmrouter.graphs.chat_model import RouterGraphChatModel
from langchain_llmrouter.graphs.router_r1 import build_router_r1_graph
from langchain_llmrouter.graphs.router_r1_router import RouterR1Router
from langchain_llmrouter.testing import FakeOpenAIServer, ModelBehavior, ServedCall

POLICY = "r1-policy"
QWEN, LLAMA = "qwen2.5-7b-instruct", "llama-3.1-8b-instruct"
QUESTION = "What is the capital of France"
SUB_1, SUB_2 = "What is the capital of France?", "Which city hosts the French government?"
HAPPY = (
    f"<think>I need the capital.</think>\n<search> {QWEN}: {SUB_1} </search> ignored",
    f"<think>Check it.</think>\n<search> LLaMA-3.1-8B-Instruct: {SUB_2} </search>",
    "<think>Both say Paris.</think>\n<answer> Paris </answer>",
)
THREAD: RunnableConfig = {"configurable": {"thread_id": "r1"}}


def text_of(message: dict) -> str:
    content = message.get("content")
    if isinstance(content, list):
        return "".join(p.get("text", "") for p in content if isinstance(p, dict))
    return str(content or "")


def info_count(messages: list[dict]) -> int:
    """Information blocks in a policy request (the prompt itself mentions the tag: skip it)."""
    return sum(text_of(m).count("<information>") for m in messages[1:])


def scripted(*turns: str) -> Any:
    return lambda messages: turns[min(info_count(messages), len(turns) - 1)]


def sent_max_tokens(call: ServedCall) -> Any:
    return call.body.get("max_completion_tokens", call.body.get("max_tokens"))


def expected_cost(pool: CandidatePool, calls: list[ServedCall]) -> float:
    """Cost recomputed from what the server received: its usage rule × the pool's prices."""
    by_model = {c.model: c for c in pool}
    total = 0.0
    for call in calls:
        candidate = by_model[call.model]
        prompt = max(1, sum(math.ceil(len(text_of(m)) / 4) for m in call.messages))
        reply = f"[{call.model}] You said: {last_user_text(call.messages)[:200]}"
        total += (
            prompt * candidate.input_price + len(reply.split()) * candidate.output_price
        ) / 1e6
    return total


@pytest.fixture
def pool(candidate_pool: Any) -> CandidatePool:
    return candidate_pool()


def make_policy(served: FakeOpenAIServer, *turns: str, **kwargs: Any) -> ChatOpenAI:
    served.set_behavior(POLICY, ModelBehavior(reply=scripted(*turns)))
    return ChatOpenAI(
        model=POLICY, base_url=served.base_url, api_key=SecretStr("test"), max_retries=0, **kwargs
    )


def split_calls(served: FakeOpenAIServer) -> tuple[list[ServedCall], list[ServedCall]]:
    calls = served.calls
    return [c for c in calls if c.model == POLICY], [c for c in calls if c.model != POLICY]


@pytest.mark.parametrize("continue_final_message", [False, True])
def test_think_search_answer_over_two_candidates(
    served: FakeOpenAIServer, pool: CandidatePool, continue_final_message: bool
) -> None:
    policy = make_policy(served, *HAPPY, extra_body={"top_k": 20})
    graph = build_router_r1_graph(
        policy=policy, candidates=pool, continue_final_message=continue_final_message
    )
    out = graph.invoke({"question": QUESTION})

    assert out["answer"] == "Paris" and out["stop_reason"] == "answer" and out["turns"] == 3
    policy_calls, candidate_calls = split_calls(served)
    assert [c.model for c in candidate_calls] == [pool[QWEN].model, pool[LLAMA].model]
    assert [last_user_text(c.messages).split("\n")[0] for c in candidate_calls] == [SUB_1, SUB_2]
    assert all(sent_max_tokens(c) == 512 for c in candidate_calls)
    assert all(c.body["stop"] == ["</search>", "</answer>"] for c in policy_calls)
    assert all(sent_max_tokens(c) == 1024 and c.body["top_k"] == 20 for c in policy_calls)

    prompt = text_of(policy_calls[0].messages[0])
    assert prompt.endswith(f"Question: {QUESTION}?") and all(n in prompt for n in pool.names)
    infos = [p["text"] for p in out["transcript"] if p["kind"] == "information"]
    assert [i.split("\n")[0] for i in infos] == [
        f"[{pool[QWEN].model}] You said: {SUB_1}",
        f"[{pool[LLAMA].model}] You said: {SUB_2}",
    ]
    # the cut stop tag is put back, and text after it is dropped
    assert out["transcript"][0]["text"] == HAPPY[0].removesuffix(" ignored")
    last = policy_calls[2]
    if continue_final_message:
        assert [m["role"] for m in last.messages] == ["user", "assistant"]
        assert text_of(last.messages[1]) == transcript_text(out["transcript"][:4])
        assert f"</search>\n<information>{infos[1]}</information>\n" in text_of(last.messages[1])
        assert last.body["continue_final_message"] is True
        assert last.body["add_generation_prompt"] is False
        assert "continue_final_message" not in policy_calls[0].body  # nothing to continue yet
    else:
        assert [m["role"] for m in last.messages] == [
            "user", "assistant", "user", "assistant", "user"
        ]  # fmt: skip
        assert text_of(last.messages[3]) == HAPPY[1]
        assert text_of(last.messages[4]) == f"<information>{infos[1]}</information>"
        assert "continue_final_message" not in last.body
    assert [c["role"] for c in out["calls"]] == ["policy", "candidate"] * 2 + ["policy"]
    assert [c["model"] for c in out["calls"] if c["role"] == "candidate"] == [QWEN, LLAMA]
    assert all(c["cost"] == 0 for c in out["calls"] if c["role"] == "policy")
    assert out["cost"] == pytest.approx(expected_cost(pool, candidate_calls), rel=1e-12)
    assert out["cost"] == pytest.approx(sum(c["cost"] for c in out["calls"]), rel=1e-12)


def test_query_keeps_every_colon_after_the_first(
    served: FakeOpenAIServer, pool: CandidatePool
) -> None:
    query = "Which ratio is larger: 3:4 or 5:6? Answer as a:b"
    policy = make_policy(served, f"<search>{QWEN}:{query}</search>", "<answer>5:6</answer>")
    out = build_router_r1_graph(policy=policy, candidates=pool).invoke({"question": query})
    (call,) = split_calls(served)[1]
    assert last_user_text(call.messages) == CANDIDATE_PROMPT.format(query=query, max_tokens=512)
    assert out["answer"] == "5:6"


@pytest.mark.parametrize(
    ("bad_turn", "complaint"),
    [
        (
            "<think>Easy.</think> The answer is Paris.",
            "had neither a <search> call nor an <answer>",
        ),
        ("<search> just tell me the capital </search>", "not of the form 'LLM-Name: Your-Query'"),
        ("<answer>   </answer>", "gave an empty <answer>"),
        ("<search> GPT-9-Ultra: capital of France? </search>", "no LLM called 'GPT-9-Ultra'"),
    ],
)
def test_unusable_turn_gets_corrective_information_then_recovers(
    served: FakeOpenAIServer, pool: CandidatePool, bad_turn: str, complaint: str
) -> None:
    policy = make_policy(served, bad_turn, HAPPY[0], HAPPY[2])
    graph = build_router_r1_graph(policy=policy, candidates=pool, candidate_names=[QWEN, LLAMA])
    out = graph.invoke({"question": QUESTION})

    assert out["answer"] == "Paris" and out["turns"] == 3  # the bad turn counted
    policy_calls, candidate_calls = split_calls(served)
    assert len(policy_calls) == 3 and [c.model for c in candidate_calls] == [pool[QWEN].model]
    correction = out["transcript"][1]
    assert correction["kind"] == "information" and complaint in correction["text"]
    assert correction["text"].endswith(f"{QWEN}, {LLAMA}.")  # the valid names, nothing else
    assert f"<information>{correction['text']}</information>" in text_of(
        policy_calls[1].messages[-1]
    )
    assert out["pending"]["kind"] == "answer"


def test_never_answering_policy_stops_at_max_turns(
    served: FakeOpenAIServer, pool: CandidatePool
) -> None:
    policy = make_policy(served, f"<search> {QWEN}: {SUB_1} </search>")
    out = build_router_r1_graph(policy=policy, candidates=pool, max_turns=3).invoke(
        {"question": QUESTION}
    )
    policy_calls, candidate_calls = split_calls(served)
    assert out["stop_reason"] == "max_turns" and out["answer"] == "" and out["turns"] == 3
    # no candidate is paid for a reply the policy would never read
    assert len(policy_calls) == 3 and len(candidate_calls) == 2


def test_step_budget_ends_the_run_cleanly(served: FakeOpenAIServer, pool: CandidatePool) -> None:
    policy = make_policy(served, f"<search> {QWEN}: {SUB_1} </search>")
    graph = build_router_r1_graph(policy=policy, candidates=pool, max_turns=50)
    out = graph.invoke({"question": QUESTION}, {"recursion_limit": 10})
    assert out["stop_reason"] == "max_turns" and out["turns"] == 2


@pytest.mark.parametrize("where", ["builder", "configurable"])
def test_max_cost_stops_before_a_paid_call(
    served: FakeOpenAIServer, pool: CandidatePool, where: str
) -> None:
    policy = make_policy(served, *(f"<search> {QWEN}: {SUB_1} </search>",) * 2, HAPPY[2])
    first = CANDIDATE_PROMPT.format(query=SUB_1, max_tokens=512)
    bound = worst_case_cost(candidate_ref(pool, QWEN), first, 512) * 1.01
    if where == "builder":
        graph = build_router_r1_graph(policy=policy, candidates=pool, max_cost=bound)
        out = graph.invoke({"question": QUESTION})
    else:
        graph = build_router_r1_graph(policy=policy, candidates=pool, max_cost=1.0)
        out = graph.invoke({"question": QUESTION}, {"configurable": {"max_cost": bound}})
    assert out["stop_reason"] == "max_cost" and out["answer"] == ""
    assert len(split_calls(served)[1]) == 1  # the second call was never sent
    assert 0 < out["cost"] <= bound


def test_paid_policy_is_charged_and_bounded(served: FakeOpenAIServer, pool: CandidatePool) -> None:
    name = "mistral-7b-instruct-v0.3"
    served.set_behavior(pool[name].model, ModelBehavior(reply=scripted("<answer> Paris </answer>")))
    out = build_router_r1_graph(policy=name, candidates=pool).invoke({"question": QUESTION})
    assert len(served.calls) == 1
    assert out["answer"] == "Paris" and out["calls"][0]["role"] == "policy"
    assert out["cost"] == pytest.approx(
        pool[name].estimate_cost(out["calls"][0]["input_tokens"], 2), rel=1e-12
    )
    served.reset()
    out = build_router_r1_graph(policy=name, candidates=pool, max_cost=1e-6).invoke(
        {"question": QUESTION}
    )
    assert out["stop_reason"] == "max_cost" and served.calls == [] and out["turns"] == 0


def test_failing_candidate_becomes_information(
    served: FakeOpenAIServer, pool: CandidatePool
) -> None:
    served.set_behavior(pool[QWEN].model, ModelBehavior(fail_status=500))
    policy = make_policy(served, HAPPY[0], HAPPY[2])
    out = build_router_r1_graph(policy=policy, candidates=pool).invoke({"question": QUESTION})
    assert out["answer"] == "Paris" and out["stop_reason"] == "answer"
    failed = out["calls"][1]
    assert failed["role"] == "candidate" and failed["error"] and failed["cost"] == 0
    info = out["transcript"][1]["text"]
    assert info.startswith(f"The call to {QWEN} failed (") and failed["error"] in info
    assert f"<information>{info}</information>" in text_of(split_calls(served)[0][1].messages[-1])


async def test_ainvoke_with_async_sqlite_checkpointer(
    served: FakeOpenAIServer, pool: CandidatePool, tmp_path: Path
) -> None:
    policy = make_policy(served, *HAPPY)
    async with AsyncSqliteSaver.from_conn_string(str(tmp_path / "r1.sqlite")) as saver:
        graph = build_router_r1_graph(policy=policy, candidates=pool, checkpointer=saver)
        out = await graph.ainvoke({"question": QUESTION}, THREAD)
        saved = await graph.aget_state(THREAD)
    assert out["answer"] == "Paris" and saved.values["answer"] == "Paris" and saved.next == ()
    assert [c.model for c in split_calls(served)[1]] == [pool[QWEN].model, pool[LLAMA].model]
    assert out["cost"] == pytest.approx(expected_cost(pool, split_calls(served)[1]), rel=1e-12)


def test_stream_updates_show_each_step(served: FakeOpenAIServer, pool: CandidatePool) -> None:
    policy = make_policy(served, *HAPPY)
    graph = build_router_r1_graph(policy=policy, candidates=pool)
    updates = list(graph.stream({"question": QUESTION}, stream_mode="updates"))
    assert [next(iter(u)) for u in updates] == [
        "read_input", *("generate", "parse", "call_candidate") * 2, "generate", "parse", "finish"
    ]  # fmt: skip
    assert updates[0]["read_input"] == {"run_start": 0, "from_messages": False}
    updates = updates[1:]
    first_call = updates[2]["call_candidate"]
    assert first_call["calls"][0]["model"] == QWEN
    assert first_call["calls"][0]["prompt"].startswith(SUB_1)
    assert updates[1]["parse"]["pending"] == {
        "kind": "search", "candidate": QWEN, "query": SUB_1, "text": ""
    }  # fmt: skip
    assert updates[-1]["finish"] == {"answer": "Paris", "stop_reason": "answer"}


def test_sqlite_checkpointer_run_and_a_second_question_on_the_thread(
    served: FakeOpenAIServer, pool: CandidatePool, tmp_path: Path
) -> None:
    policy = make_policy(served, *HAPPY)
    saver = SqliteSaver(sqlite3.connect(tmp_path / "r1.sqlite", check_same_thread=False))
    graph = build_router_r1_graph(policy=policy, candidates=pool, checkpointer=saver)
    first = graph.invoke({"question": QUESTION}, THREAD)
    assert first["answer"] == "Paris" and graph.get_state(THREAD).next == ()
    second = graph.invoke({"question": "And the capital of Spain?"}, THREAD)
    # a finished thread asked again starts a fresh transcript
    assert second["turns"] == 3 and second["stop_reason"] == "answer"
    assert second["prompt"].endswith("Question: And the capital of Spain?")
    assert len(second["transcript"]) == 5 and len(split_calls(served)[1]) == 4


def test_killed_run_resumes_without_repeating_candidate_calls(
    served: FakeOpenAIServer, pool: CandidatePool, shared_data: Path, tmp_path: Path
) -> None:
    gate = Gate(scripted(*HAPPY), when=lambda messages: info_count(messages) == 2)
    served.set_behavior(POLICY, ModelBehavior(reply=gate))
    db = str(tmp_path / "r1.sqlite")
    script = f"""
import sqlite3
from langchain_openai import ChatOpenAI
from langgraph.checkpoint.sqlite import SqliteSaver
from langchain_llmrouter.candidates import APIKeys, CandidatePool
from langchain_llmrouter.graphs.router_r1 import build_router_r1_graph
pool = CandidatePool.from_json({str(shared_data / "default_llm.json")!r},
    api_endpoint={served.base_url!r}, api_keys=APIKeys(), chat_model_kwargs={{"max_retries": 0}})
policy = ChatOpenAI(model={POLICY!r}, base_url={served.base_url!r}, api_key="t", max_retries=0)
saver = SqliteSaver(sqlite3.connect({db!r}, check_same_thread=False))
graph = build_router_r1_graph(policy=policy, candidates=pool, checkpointer=saver)
graph.invoke({{"question": {QUESTION!r}}}, {THREAD!r}, durability="sync")
"""
    run_until_gate_then_kill(script, gate)
    assert len(split_calls(served)[0]) == 3  # killed while the third policy turn was held

    policy = ChatOpenAI(model=POLICY, base_url=served.base_url, api_key=SecretStr("t"))
    saver = SqliteSaver(sqlite3.connect(db, check_same_thread=False))
    graph = build_router_r1_graph(policy=policy, candidates=pool, checkpointer=saver)
    out = graph.invoke(None, THREAD)

    policy_calls, candidate_calls = split_calls(served)
    assert out["answer"] == "Paris" and out["stop_reason"] == "answer"
    assert [c.model for c in candidate_calls] == [pool[QWEN].model, pool[LLAMA].model]
    assert len(policy_calls) == 4  # only the interrupted turn was asked again
    assert [c["role"] for c in out["calls"]] == ["policy", "candidate"] * 2 + ["policy"]


def test_mermaid_snapshot(pool: CandidatePool, served: FakeOpenAIServer) -> None:
    assert_mermaid_snapshot(
        build_router_r1_graph(policy=make_policy(served), candidates=pool), "router_r1"
    )


def test_router_graph_chat_model(served: FakeOpenAIServer, pool: CandidatePool) -> None:
    graph = build_router_r1_graph(policy=make_policy(served, *HAPPY), candidates=pool)
    message = RouterGraphChatModel(graph=graph).invoke(QUESTION)
    routing = message.response_metadata["routing"]
    assert message.content == "Paris" and routing["stop_reason"] == "answer"
    assert [c["role"] for c in routing["calls"]] == ["policy", "candidate"] * 2 + ["policy"]
    assert routing["models"] == sorted([QWEN, LLAMA])
    assert routing["cost"] == pytest.approx(expected_cost(pool, split_calls(served)[1]), rel=1e-12)


@pytest.mark.parametrize("env_key", [None, "secret-key"])
def test_registry_class_builds_a_graph_from_hparams(
    served: FakeOpenAIServer,
    pool: CandidatePool,
    monkeypatch: pytest.MonkeyPatch,
    env_key: str | None,
) -> None:
    if env_key is None:
        monkeypatch.delenv("VLLM_API_KEY", raising=False)
    else:
        monkeypatch.setenv("VLLM_API_KEY", env_key)
    make_policy(served, *HAPPY)
    router = RouterR1Router(policy_model=POLICY, policy_endpoint=served.base_url)
    out = router.as_graph(pool, max_turns=4).invoke({"question": QUESTION})
    policy_calls = split_calls(served)[0]
    assert out["answer"] == "Paris" and len(policy_calls) == 3
    assert {c.api_key for c in policy_calls} == {env_key or "EMPTY"}
    assert policy_calls[1].body["continue_final_message"] is True  # this class's default
    with pytest.raises(ConfigError, match="max_turns"):
        router.as_graph(pool, max_turns=0)


def test_registry_class_is_a_graph_router_only(pool: CandidatePool) -> None:
    router = RouterR1Router()
    assert RouterR1Router.graph_router and not RouterR1Router.trainable
    assert router.name == "router_r1"
    router.fit_candidates(pool)
    with pytest.raises(GraphRouterError, match="router_r1 is a multi-round router"):
        router.invoke("What is the capital of France?")
    with pytest.raises(GraphRouterError):
        router._predict_quality(["q"], None)
    config = load_config(REPO / "configs" / "infer" / "router_r1.yaml")
    assert config.router == "router_r1"
    assert RouterR1Router.from_params(config.hparam).get_params() == router.get_params()


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"prompt_template": "Answer: {question}"}, ValueError, r"no \{candidates\} placeholder"),
        ({"prompt_template": "{candidates} {question} {name}"}, ValueError, r"unknown .*\{name\}"),
        ({"prompt_template": "{candidates} {question"}, ValueError, "not a valid format"),
        (
            {"candidate_names": [QWEN, "gpt-9"]},
            UnknownCandidateError,
            "valid candidates: codegemma",
        ),
        ({"policy": "gpt-9"}, UnknownCandidateError, "unknown candidate 'gpt-9'"),
        ({"max_turns": 0}, ValueError, "max_turns must be >= 1"),
        ({"max_cost": 0.0}, ValueError, "max_cost must be > 0"),
    ],
)
def test_builder_validates_arguments(
    pool: CandidatePool, kwargs: dict[str, Any], error: type[Exception], match: str
) -> None:
    args: dict[str, Any] = {"policy": QWEN, "candidates": pool, **kwargs}
    with pytest.raises(error, match=match):
        build_router_r1_graph(**args)


LOOKUP = {"qwen2.5-7b-instruct": QWEN, "qwen/qwen2.5-7b-instruct": QWEN, "llama": LLAMA}


@pytest.mark.parametrize(
    ("turn", "expected"),
    [
        ("<think>x</think><answer> Paris </answer>", ("answer", None, "", "Paris")),
        ("<search> Qwen/Qwen2.5-7B-Instruct: a: b </search>", ("search", QWEN, "a: b", "")),
        ("<search> old </search><search> llama: new? </search>", ("search", LLAMA, "new?", "")),
        ("<search> [llama]: q </search>", ("search", LLAMA, "q", "")),
        ("<search> mistral: q </search>", ("unknown", "mistral", "q", "")),
    ],
)
def test_parse_turn(turn: str, expected: tuple[Any, ...]) -> None:
    assert tuple(parse_turn(turn, LOOKUP).values()) == expected


@pytest.mark.parametrize(
    ("raw", "closed"),
    [
        ("<search> llama: q ", "<search> llama: q </search>"),
        ("<think>a</think> <answer> Paris", "<think>a</think> <answer> Paris</answer>"),
        ("<answer>x</answer> trailing <search>", "<answer>x</answer>"),
        ("no tags at all", "no tags at all"),
    ],
)
def test_close_turn_puts_back_the_cut_tag(raw: str, closed: str) -> None:
    assert close_turn(raw) == closed
