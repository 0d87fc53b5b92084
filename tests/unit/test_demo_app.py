"""The Streamlit chat demo, driven with Streamlit's `AppTest` against the local OpenAI-compatible
server: a three-message conversation in each query mode (switching router and cost_weight
between messages), the no-keys mode, and readable errors on the page.

The assertions are on what the page shows (the chosen candidate, the cost figures), checked
against the router's own decision on the same routing text and the usage the server reported.
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

pytest.importorskip("streamlit")
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage
from streamlit.testing.v1 import AppTest

from langchain_llmrouter import BaseRouter, CandidatePool
from langchain_llmrouter.chat_model import routing_text
from langchain_llmrouter.demo.session import (
    NO_KEYS_HELP,
    largest_candidate,
    parse_settings,
)
from langchain_llmrouter.errors import ConfigError
from langchain_llmrouter.routers.registry import get_router_class
from langchain_llmrouter.testing import FakeOpenAIServer

APP = Path(__file__).resolve().parents[2] / "src" / "langchain_llmrouter" / "demo" / "app.py"
QUESTIONS = [
    "Write a Python function that checks whether a number is prime.",
    "What is the capital of Australia?",
    "Now make the prime function faster for large numbers.",
]
ROUTED = re.compile(r"Routed to \*\*(?P<model>[^*]+)\*\* by (?P<router>\S+)")


@pytest.fixture
def demo_config(
    tmp_path: Path,
    shared_data: Path,
    knn_router: BaseRouter,
    served: FakeOpenAIServer,
    monkeypatch: pytest.MonkeyPatch,
) -> Path:
    """A saved kNN router, and an inference config whose endpoint is the local server."""
    knn_router.save(tmp_path / "models" / "knnrouter")
    config = {
        "router": "knnrouter",
        "data_path": {"llm_data": str(shared_data / "default_llm.json")},
        "model_path": {"load_model_path": str(tmp_path / "models" / "knnrouter")},
        "api_endpoint": served.base_url,
        "max_tokens": 64,
    }
    path = tmp_path / "infer.yaml"
    path.write_text(yaml.safe_dump(config))
    monkeypatch.delenv("API_KEYS", raising=False)
    monkeypatch.setenv("LLMROUTER_CHAT_CONFIG", str(path))
    monkeypatch.delenv("LLMROUTER_CHAT_ROUTER", raising=False)
    return path


def _app() -> AppTest:
    at = AppTest.from_file(str(APP), default_timeout=120)
    at.run()
    assert not at.exception, at.exception
    return at


def _say(at: AppTest, text: str) -> None:
    at.chat_input[0].set_value(text).run()
    assert not at.exception, at.exception


def _routed(at: AppTest) -> list[dict[str, str]]:
    found = [ROUTED.search(c.value) for c in at.caption]
    return [m.groupdict() for m in found if m]


def _dollars(at: AppTest, label_start: str) -> float:
    metric = next(m for m in at.metric if m.label.startswith(label_start))
    return float(metric.value.lstrip("$"))


def _served_cost(pool: CandidatePool, name: str, call: Any, answer: str) -> tuple[float, int, int]:
    prompt = max(1, sum(math.ceil(len(str(m.get("content") or "")) / 4) for m in call.messages))
    completion = max(1, len(answer.split()))
    return pool[name].estimate_cost(prompt, completion), prompt, completion


@pytest.mark.parametrize("mode", ["current_only", "full_context", "retrieval"])
def test_a_conversation_in_each_mode(
    mode: str,
    demo_config: Path,
    served: FakeOpenAIServer,
    knn_router: BaseRouter,
    shared_data: Path,
) -> None:
    pool = CandidatePool.from_json(shared_data / "default_llm.json")
    largest = largest_candidate(pool)
    at = _app()
    at.radio(key="mode").set_value(mode).run()
    smallest = get_router_class("smallest_llm").from_params({}).fit_candidates(pool)
    plan = [("knnrouter", 0.0), ("smallest_llm", 0.0), ("knnrouter", 6.0)]

    history: list[BaseMessage] = []
    spent = always_largest = 0.0
    for turn, (question, (router_label, cost_weight)) in enumerate(
        zip(QUESTIONS, plan, strict=True)
    ):
        at.selectbox(key="router").set_value(router_label)
        at.slider(key="cost_weight").set_value(cost_weight)
        _say(at, question)
        history.append(HumanMessage(question))

        # The chosen candidate is the router's own choice on this mode's routing text.
        router = knn_router if router_label == "knnrouter" else smallest
        text = routing_text(history, mode, top_k=3)
        expected = router.route(text, cost_weight=cost_weight).model
        shown = _routed(at)
        assert len(shown) == turn + 1
        assert shown[-1] == {"model": expected, "router": router_label}

        # ...and the one the server answered for, with the conversation so far.
        call = served.calls[-1]
        assert len(served.calls) == turn + 1 and call.model == pool[expected].model
        assert [m["content"] for m in call.messages if m["role"] == "user"] == QUESTIONS[: turn + 1]
        answer = at.chat_message[-1].markdown[0].value
        assert answer.startswith(f"[{pool[expected].model}] You said: ")
        history.append(AIMessage(answer))

        # Costs on the page: actual usage x prices, and the same tokens at the largest's prices.
        cost, prompt, completion = _served_cost(pool, expected, call, answer)
        spent += cost
        always_largest += pool[largest].estimate_cost(prompt, completion)
        assert _dollars(at, "Spent") == pytest.approx(spent, abs=1e-6)
        assert _dollars(at, f"Always {largest}") == pytest.approx(always_largest, abs=1e-6)
    if mode == "retrieval":
        # The routing text of the last turn holds the earlier prime question.
        assert QUESTIONS[0] in at.expander[-1].code[0].value
    saved = next(m for m in at.metric if m.label == "Saved")
    assert saved.value == f"{1 - spent / always_largest:.0%}"


def test_without_keys_it_routes_and_says_how_to_call(
    demo_config: Path, served: FakeOpenAIServer, knn_router: BaseRouter, shared_data: Path
) -> None:
    config = yaml.safe_load(demo_config.read_text())
    config["api_endpoint"] = "https://llm.example.com/v1"  # not local: needs a key
    demo_config.write_text(yaml.safe_dump(config))
    at = _app()
    assert any("API_KEYS" in w.value for w in at.warning)
    assert at.warning[0].value == NO_KEYS_HELP
    _say(at, QUESTIONS[0])
    expected = knn_router.route(QUESTIONS[0]).model
    assert _routed(at)[-1]["model"] == expected
    assert f"Would ask **{expected}**" in at.info[0].value
    assert "actual not called" in next(c.value for c in at.caption if "Routed to" in c.value)
    assert served.calls == []
    pool = CandidatePool.from_json(shared_data / "default_llm.json")
    estimate = knn_router.route(QUESTIONS[0]).est_cost
    assert _dollars(at, "Spent") == pytest.approx(estimate, abs=1e-6)
    assert pool  # the candidates table lists them all as not callable
    table = at.dataframe[0].value
    assert set(table["callable"]) == {"no"} and len(table) == len(pool)


def test_a_bad_config_is_shown_on_the_page(demo_config: Path) -> None:
    demo_config.write_text(demo_config.read_text() + "max_tokns: 5\n")
    at = _app()
    assert len(at.error) == 1
    assert (
        "infer.yaml" in at.error[0].value and "field 'max_tokns': unknown key" in at.error[0].value
    )


def test_an_unknown_router_lists_the_valid_ones(
    demo_config: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LLMROUTER_CHAT_ROUTER", "nosuchrouter")
    at = _app()
    assert "unknown router 'nosuchrouter'" in at.error[0].value and "knnrouter" in at.error[0].value


def test_a_router_that_fails_to_load_is_shown_not_raised(demo_config: Path, tmp_path: Path) -> None:
    broken = tmp_path / "models" / "broken"
    broken.mkdir(parents=True)
    (broken / "router.json").write_text("{not json")
    at = _app()
    assert "broken" in at.selectbox(key="router").options
    at.selectbox(key="router").set_value("broken").run()
    assert not at.exception
    assert at.error[0].value.startswith("Cannot load router 'broken'")
    assert "broken" in at.error[0].value


def test_settings_validation() -> None:
    settings = parse_settings(
        ["--router", "KNNRouter", "--config", "x.yaml", "--mode", "retrieval", "--top-k", "2"], {}
    )
    assert (settings.router, settings.mode, settings.top_k) == ("knnrouter", "retrieval", 2)
    with pytest.raises(ConfigError, match="unknown query mode 'everything'"):
        parse_settings(["--mode", "everything"], {})
    with pytest.raises(ConfigError, match="--top-k must be a whole number >= 1"):
        parse_settings(["--top-k", "0"], {})
    assert parse_settings(
        ["--co"], {"LLMROUTER_CHAT_CONFIG": "y.yaml", "LLMROUTER_CHAT_ROUTER": "svmrouter"}
    ).config == Path("y.yaml")
