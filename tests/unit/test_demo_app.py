"""The Streamlit chat demo, driven with Streamlit's `AppTest` against the local OpenAI-compatible
server: a three-message conversation in each query mode (switching router and cost_weight
between messages), the no-keys mode, readable errors on the page, and thumbs ratings for the
user picked in the sidebar (a tiny personalised router defined here learns from them).

The assertions are on what the page shows (the chosen candidate, the cost figures), checked
against the router's own decision on the same routing text and the usage the server reported.
"""

from __future__ import annotations

import math
import re
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

pytest.importorskip("streamlit")
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage
from streamlit.testing.v1 import AppTest

from langchain_llmrouter import BaseRouter, CandidatePool
from langchain_llmrouter.chat_model import RouterChatModel, routing_text
from langchain_llmrouter.demo.session import (
    DEFAULT_USER,
    NO_KEYS_HELP,
    Turn,
    largest_candidate,
    parse_settings,
    rate,
)
from langchain_llmrouter.errors import ConfigError
from langchain_llmrouter.personal import Interaction
from langchain_llmrouter.personal.feedback import FeedbackStore
from langchain_llmrouter.personal.router import PersonalRouter, UserHistory
from langchain_llmrouter.routers import registry
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
    assert parse_settings(["--config", "x.yaml"], {}).feedback_store is None
    stored = {"LLMROUTER_CHAT_FEEDBACK_STORE": "a.db"}
    assert parse_settings(["--config", "x.yaml"], stored).feedback_store == "a.db"
    assert parse_settings(["--feedback-store", "b.db"], stored).feedback_store == "b.db"


class MeanRatingRouter(PersonalRouter):
    """A tiny personalised router: a user's state is their mean rating of each candidate,
    shrunk towards the population's by one pseudo-rating; the query does not matter."""

    name = "meanrating"

    def _fit_interactions(
        self, interactions: list[Interaction], histories: dict[str, UserHistory]
    ) -> None:
        everyone = list(histories.values())
        models = np.concatenate([h.models for h in everyone])
        ratings = np.concatenate([h.ratings for h in everyone])
        n = len(self.candidates_)
        counts = np.bincount(models, minlength=n)
        self.population_ = np.bincount(models, ratings, minlength=n) / np.maximum(counts, 1)

    def _user_states(self, histories: Mapping[str, UserHistory]) -> dict[str, np.ndarray]:
        n = len(self.candidates_)
        return {
            user: (np.bincount(h.models, h.ratings, minlength=n) + self.population_)
            / (np.bincount(h.models, minlength=n) + 1.0)
            for user, h in histories.items()
        }

    def _score(self, x: np.ndarray, states: np.ndarray | None) -> np.ndarray:
        rows = np.tile(self.population_, (len(x), 1)) if states is None else states
        return np.clip(rows, 0.0, 1.0)

    def _get_model_state(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        return {}, {"population": self.population_}

    def _set_model_state(self, meta: dict[str, Any], arrays: dict[str, np.ndarray]) -> None:
        self.population_ = arrays["population"]


@pytest.fixture
def personal_demo(
    demo_config: Path, tmp_path: Path, shared_data: Path, monkeypatch: pytest.MonkeyPatch
) -> tuple[str, str]:
    """A saved `MeanRatingRouter` next to the kNN router: alice likes the first candidate,
    bob the second one slightly more than the first. Returns (first, second)."""
    monkeypatch.setitem(registry._PLUGINS, MeanRatingRouter.name, MeanRatingRouter)
    pool = CandidatePool.from_json(shared_data / "default_llm.json")
    first, second = pool.names[:2]
    ratings = [("alice", first, 5.0), ("alice", second, 0.0), ("bob", first, 3.0)]
    ratings.append(("bob", second, 5.0))
    interactions = [
        Interaction(user_id=u, model=m, question_id=f"q{k}", query=f"question {k}", rating=r)
        for k, (u, m, r) in enumerate(ratings)
    ]
    router = MeanRatingRouter().fit(interactions, candidates=pool)
    router.save(tmp_path / "models" / MeanRatingRouter.name)
    return first, second


def _spy_on_feedback(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, float, str | None]]:
    calls: list[tuple[str, float, str | None]] = []
    original = RouterChatModel.feedback

    def feedback(self: RouterChatModel, ref: Any, score: float, *, user_id: Any = None) -> Any:
        calls.append((ref, score, user_id))
        return original(self, ref, score, user_id=user_id)

    monkeypatch.setattr(RouterChatModel, "feedback", feedback)
    return calls


def test_thumbs_rate_for_the_picked_user_and_change_their_next_choice(
    personal_demo: tuple[str, str], served: FakeOpenAIServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    first, second = personal_demo
    calls = _spy_on_feedback(monkeypatch)
    at = _app()
    at.selectbox(key="router").set_value(MeanRatingRouter.name).run()
    users = at.selectbox(key="user")
    assert users.value == DEFAULT_USER and {"alice", "bob"} <= set(users.options)
    users.set_value("bob")
    _say(at, QUESTIONS[1])

    # The picked user reaches the call: bob's own state chose his favourite.
    turn = at.session_state["turns"][-1]
    assert turn.routing["user_id"] == "bob" and turn.routing["personalised"] is True
    assert _routed(at)[-1]["model"] == second == turn.answered_by
    assert any("for **bob** (personalised: their ratings" in c.value for c in at.caption)
    router = at.session_state["llms"][MeanRatingRouter.name].router
    assert len(router.history("bob")) == 2

    # Thumbs down: rated once, for bob, with score 0; reruns do not rate again.
    at.feedback[0].set_value(0).run()
    assert not at.exception, at.exception
    at.run()
    assert calls == [(turn.decision_id, 0.0, "bob")]
    assert len(router.history("bob")) == 3 and float(router.history("bob").ratings[-1]) == 0.0
    assert f"rated 👎 — {MeanRatingRouter.name} will route bob with it" in [
        c.value for c in at.caption
    ]
    assert at.feedback[0].disabled and at.feedback[0].value == 0

    # ...and bob's next question goes to the first candidate now.
    _say(at, QUESTIONS[1])
    assert _routed(at)[-1]["model"] == first
    assert at.session_state["turns"][-1].routing["personalised"] is True


def test_a_rating_on_a_router_for_everyone_is_stored_not_applied(
    demo_config: Path, served: FakeOpenAIServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    calls = _spy_on_feedback(monkeypatch)
    monkeypatch.setenv("LLMROUTER_CHAT_FEEDBACK_STORE", str(tmp_path / "feedback.db"))
    at = _app()
    _say(at, QUESTIONS[0])
    turn = at.session_state["turns"][-1]
    assert turn.routing["user_id"] == DEFAULT_USER and turn.routing["personalised"] is False
    assert any(f"for **{DEFAULT_USER}** (not personalised)" in c.value for c in at.caption)
    at.feedback[0].set_value(1).run()
    assert not at.exception and not at.error
    assert calls == [(turn.decision_id, 1.0, DEFAULT_USER)]
    assert any(
        "rated 👍 — stored, but knnrouter routes everyone alike" in c.value for c in at.caption
    )
    with FeedbackStore(tmp_path / "feedback.db") as store:
        (stored,) = store.feedback_since(DEFAULT_USER, 0)
    assert (stored.decision_id, stored.score, stored.model) == (
        turn.decision_id,
        1.0,
        turn.answered_by,
    )


def test_a_rating_that_fails_is_noted_once(knn_router: BaseRouter, shared_data: Path) -> None:
    pool = CandidatePool.from_json(shared_data / "default_llm.json")
    llm = RouterChatModel(router=knn_router, candidates=pool)
    decision = knn_router.route(QUESTIONS[0])
    unknown = str(uuid.uuid4())  # an answer this chat model never gave
    turn = Turn(QUESTIONS[0], "", decision, answer="hi", routing={"decision_id": unknown})
    rate(llm, turn, 1.0)
    assert turn.rating == 1.0 and turn.rating_note is None
    assert turn.rating_error is not None
    assert turn.rating_error.startswith(f"The rating was not recorded: no answer with id {unknown}")
    rate(llm, turn, 0.0)  # rated once: a second click changes nothing
    assert turn.rating == 1.0
