"""`VLLMChatModel` against a fake ``vllm`` module (the real one needs a GPU), and the Router-R1
graph with it as the policy, its candidates served by the local server.

The fake tokenizer renders a tiny chat template and encodes one token id per character, so
the engine can decode exactly the prompt it was given; the fake engine replies from a script,
applying ``stop`` and ``max_tokens`` (one token per word) as vLLM does.
"""

from __future__ import annotations

import sys
import types
from types import SimpleNamespace
from typing import Any

import pytest
from langchain_core.messages import AIMessage, HumanMessage, SystemMessage

from langchain_llmrouter._optional import MissingDependencyError
from langchain_llmrouter.graphs.router_r1 import build_router_r1_graph
from langchain_llmrouter.graphs.vllm_policy import VLLMChatModel
from langchain_llmrouter.testing import FakeOpenAIServer

QUESTION = "What is the capital of France"
SCRIPT = (
    "<think>Ask.</think>\n<search> qwen2.5-7b-instruct: What is the capital of France? </search>",
    "<think>Done.</think>\n<answer> Paris </answer> and more",
)


class FakeTokenizer:
    """Renders ``<|role|>content<|end|>`` and encodes one id per character."""

    def __init__(self, chat_template: str | None = "fake") -> None:
        self.chat_template = chat_template
        self.template_calls: list[dict[str, Any]] = []

    def apply_chat_template(self, chat: list[dict], **kwargs: Any) -> str:
        self.template_calls.append({"chat": chat, **kwargs})
        assert kwargs["tokenize"] is False
        last = len(chat) - 1
        text = "".join(
            f"<|{m['role']}|>{m['content']}"
            + ("" if kwargs["continue_final_message"] and i == last else "<|end|>")
            for i, m in enumerate(chat)
        )
        return text + ("<|assistant|>" if kwargs["add_generation_prompt"] else "")

    def encode(self, text: str, add_special_tokens: bool = True) -> list[int]:
        assert add_special_tokens is False  # the template holds any special tokens
        return [ord(c) for c in text]


class FakeSamplingParams:
    def __init__(self, **kwargs: Any) -> None:
        self.kwargs = kwargs


class FakeLLM:
    """Records its construction, prompts and sampling parameters; replies from a script."""

    instances: list[FakeLLM] = []
    script: tuple[str, ...] = SCRIPT
    chat_template: str | None = "fake"

    def __init__(self, model: str, **kwargs: Any) -> None:
        self.model, self.kwargs = model, kwargs
        self.tokenizer = FakeTokenizer(self.chat_template)
        self.prompts: list[str] = []
        self.params: list[dict[str, Any]] = []
        FakeLLM.instances.append(self)

    def get_tokenizer(self) -> FakeTokenizer:
        return self.tokenizer

    def generate(self, prompts: list[dict], params: FakeSamplingParams, use_tqdm: bool) -> list:
        ((prompt,),) = [prompts]
        text = "".join(chr(i) for i in prompt["prompt_token_ids"])
        self.prompts.append(text)
        self.params.append(params.kwargs)
        seen = text.split(f"Question: {QUESTION}")[-1].count("<information>")
        reply, reason, matched = self.script[min(seen, len(self.script) - 1)], "stop", None
        for stop in params.kwargs["stop"]:
            if stop in reply:
                reply, matched = reply[: reply.index(stop)], stop
        words = reply.split()
        if len(words) > params.kwargs["max_tokens"]:
            reply, reason = " ".join(words[: params.kwargs["max_tokens"]]), "length"
        output = SimpleNamespace(
            text=reply,
            token_ids=list(range(len(reply.split()))),
            finish_reason=reason,
            stop_reason=matched,
        )
        return [SimpleNamespace(prompt_token_ids=prompt["prompt_token_ids"], outputs=[output])]


@pytest.fixture
def fake_vllm(monkeypatch: pytest.MonkeyPatch) -> type[FakeLLM]:
    module = types.ModuleType("vllm")
    module.LLM = FakeLLM  # type: ignore[attr-defined]
    module.SamplingParams = FakeSamplingParams  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "vllm", module)
    monkeypatch.setattr(FakeLLM, "instances", [])
    return FakeLLM


def test_missing_extra_names_the_pip_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "vllm", None)  # makes `import vllm` fail
    model = VLLMChatModel(model="some/model")  # constructing needs no vllm
    with pytest.raises(MissingDependencyError, match=r"pip install 'langchain-llmrouter\[vllm\]'"):
        model.invoke("hi")


def test_engine_is_created_lazily_and_once(fake_vllm: type[FakeLLM]) -> None:
    model = VLLMChatModel(model="/models/tiny", llm_kwargs={"dtype": "float16", "seed": 0})
    assert fake_vllm.instances == []
    model.invoke("one")
    model.invoke("two")
    (engine,) = fake_vllm.instances
    assert engine.model == "/models/tiny" and engine.kwargs == {"dtype": "float16", "seed": 0}
    assert len(engine.prompts) == 2


@pytest.mark.parametrize(
    ("messages", "add_generation_prompt", "prompt"),
    [
        (
            [SystemMessage("Be brief."), HumanMessage("Hi")],
            True,
            "<|system|>Be brief.<|end|><|user|>Hi<|end|><|assistant|>",
        ),
        (
            [HumanMessage("Hi"), AIMessage("\n<think>so far")],
            False,
            "<|user|>Hi<|end|><|assistant|>\n<think>so far",
        ),
    ],
)
def test_chat_template_generates_or_continues(
    fake_vllm: type[FakeLLM], messages: list, add_generation_prompt: bool, prompt: str
) -> None:
    VLLMChatModel(model="m").invoke(messages)
    (engine,) = fake_vllm.instances
    (call,) = engine.tokenizer.template_calls
    assert call["add_generation_prompt"] is add_generation_prompt
    assert call["continue_final_message"] is not add_generation_prompt
    assert [m["role"] for m in call["chat"]] == [
        {"system": "system", "human": "user", "ai": "assistant"}[m.type] for m in messages
    ]
    assert engine.prompts == [prompt]


def test_tokenizer_without_chat_template_joins_texts(
    fake_vllm: type[FakeLLM], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(FakeLLM, "chat_template", None)
    VLLMChatModel(model="m").invoke([HumanMessage("prompt"), AIMessage("partial")])
    assert fake_vllm.instances[0].prompts == ["prompt\npartial"]


async def test_sampling_params_usage_and_metadata(fake_vllm: type[FakeLLM]) -> None:
    model = VLLMChatModel(model="m", temperature=0.5, top_p=0.9, max_tokens=64, seed=42)
    message = await model.ainvoke("Go", stop=["</search>"], max_tokens=3)
    (engine,) = fake_vllm.instances
    assert engine.params == [
        {
            "n": 1,
            "temperature": 0.5,
            "top_p": 0.9,
            "max_tokens": 3,
            "stop": ["</search>"],
            "seed": 42,
        }
    ]
    assert message.content == "<think>Ask.</think> <search> qwen2.5-7b-instruct:"
    assert message.usage_metadata == {
        "input_tokens": len(engine.prompts[0]),
        "output_tokens": 3,
        "total_tokens": len(engine.prompts[0]) + 3,
    }
    assert message.response_metadata["finish_reason"] == "length"
    assert message.response_metadata["model_name"] == "m"
    message = model.invoke("Go", stop=["</search>"])
    assert message.response_metadata["stop_reason"] == "</search>"
    assert message.response_metadata["finish_reason"] == "stop"


@pytest.mark.parametrize("continue_final_message", [False, True])
def test_router_r1_graph_runs_with_vllm_policy(
    fake_vllm: type[FakeLLM],
    served: FakeOpenAIServer,
    candidate_pool: Any,
    continue_final_message: bool,
) -> None:
    pool = candidate_pool()
    policy = VLLMChatModel(model="/models/router-r1", temperature=1.0)
    graph = build_router_r1_graph(
        policy=policy, candidates=pool, continue_final_message=continue_final_message
    )
    out = graph.invoke({"question": QUESTION})

    assert out["answer"] == "Paris" and out["stop_reason"] == "answer" and out["turns"] == 2
    (candidate_call,) = served.calls
    assert candidate_call.model == pool["qwen2.5-7b-instruct"].model
    (engine,) = fake_vllm.instances
    assert [p["stop"] for p in engine.params] == [["</search>", "</answer>"]] * 2
    assert [p["max_tokens"] for p in engine.params] == [1024, 1024]
    second = engine.tokenizer.template_calls[1]
    assert second["continue_final_message"] is continue_final_message
    if continue_final_message:
        assert [m["role"] for m in second["chat"]] == ["user", "assistant"]
        assert engine.prompts[1].endswith("</information>\n")  # continued: no new turn opened
    else:
        assert [m["role"] for m in second["chat"]] == ["user", "assistant", "user"]
        assert engine.prompts[1].endswith("<|assistant|>")
    policy_calls = [c for c in out["calls"] if c["role"] == "policy"]
    assert [c["model"] for c in policy_calls] == ["/models/router-r1"] * 2
    assert [c["input_tokens"] for c in policy_calls] == [len(p) for p in engine.prompts]
    assert all(c["cost"] == 0 for c in policy_calls)
    assert out["transcript"][-1]["text"] == "<think>Done.</think>\n<answer> Paris </answer>"
