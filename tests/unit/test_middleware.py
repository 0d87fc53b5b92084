"""`RouterMiddleware` inside ``langchain.agents.create_agent``, against the local OpenAI server.

Three candidates on the `FakeOpenAIServer` (whose replies and call log name the model that
answered) and a keyword router: a query that says "hard" goes to ``big``, any other to
``small``; ``mid`` is second either way, so it is the first fallback of ``big``.
"""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass
from typing import Any

import numpy as np
import openai
import pytest
from langchain.agents import create_agent
from langchain.agents.middleware import AgentMiddleware, ModelRequest, ModelResponse
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, ToolMessage
from langchain_core.tools import tool
from langchain_openai import ChatOpenAI
from langgraph.checkpoint.memory import InMemorySaver

from langchain_llmrouter import (
    AllCandidatesFailedError,
    APIKeys,
    BaseRouter,
    CandidateHealth,
    CandidatePool,
    InvalidOptionError,
    LLMCandidate,
    RoutingDataset,
)
from langchain_llmrouter.middleware import STATE_KEY, RouterMiddleware
from langchain_llmrouter.testing import FakeOpenAIServer, ModelBehavior

MODES = ["invoke", "ainvoke"]
HARD = "This is a hard one: what is in the archive?"
EASY = "What is in the archive?"


class Keyword(BaseRouter):
    """An untrained router: "hard" in the text → big > mid > small, else small > mid > big."""

    name = "keyword"
    trainable = False

    def _fit(self, dataset: RoutingDataset | None, query_embeddings: np.ndarray | None) -> None:
        """Nothing to learn."""

    def _predict_quality(
        self, queries: list[str], query_embeddings: np.ndarray | None
    ) -> np.ndarray:
        quality = {"small": (0.1, 0.8), "mid": (0.5, 0.7), "big": (0.9, 0.6)}
        return np.array(
            [[quality[n][0 if "hard" in q else 1] for n in self.candidates_] for q in queries]
        )


@tool
def lookup(topic: str) -> str:
    """Look a topic up in the archive."""
    return f"a hard fact about {topic}"


@tool
def add(a: int, b: int) -> int:
    """Add two integers."""
    return a + b


class SecondTool(AgentMiddleware):
    """After the first tool result of a turn, make the model call ``add`` (a two-tool loop).

    The local server calls the first tool it is offered while the last message is not a tool
    result, and answers in text after one; this forces a second tool call in between.
    """

    def _script(self, request: ModelRequest) -> ModelRequest:
        since_human: list[BaseMessage] = []
        for message in reversed(request.messages):
            if message.type == "human":
                break
            since_human.append(message)
        if sum(isinstance(m, ToolMessage) for m in since_human) == 1:
            return request.override(tool_choice={"type": "function", "function": {"name": "add"}})
        return request

    def wrap_model_call(self, request: ModelRequest, handler: Any) -> ModelResponse:
        return handler(self._script(request))

    async def awrap_model_call(self, request: ModelRequest, handler: Any) -> ModelResponse:
        return await handler(self._script(request))


@pytest.fixture
def pool(openai_server: FakeOpenAIServer) -> CandidatePool:
    """small, mid and big on the local server, dearer in that order (no retries)."""
    prices = {"small": (0.1, 0.2), "mid": (1.0, 2.0), "big": (10.0, 30.0)}
    return CandidatePool(
        [
            LLMCandidate(name=n, model=f"m-{n}", input_price=i, output_price=o)
            for n, (i, o) in prices.items()
        ],
        api_endpoint=openai_server.base_url,
        api_keys=APIKeys.parse(None),
        chat_model_kwargs={"max_retries": 0, "timeout": 5},
    )


def make_agent(
    pool: CandidatePool, *, script: bool = False, tools: list[Any] | None = None, **options: Any
) -> Any:
    """An agent whose own model is ``small``, routed by `RouterMiddleware(**options)`."""
    middleware: list[Any] = [RouterMiddleware(router=Keyword(), candidates=pool, **options)]
    if script:
        middleware.append(SecondTool())
    return create_agent(
        model=pool.chat_model("small"),
        tools=tools if tools is not None else [lookup, add],
        middleware=middleware,
        checkpointer=InMemorySaver(),
    )


async def run(agent: Any, mode: str, text: str, thread: str = "t", **kwargs: Any) -> dict[str, Any]:
    """One turn of the conversation on ``thread``, sync or async."""
    config = {"configurable": {"thread_id": thread}}
    payload = {"messages": [HumanMessage(text)]}
    if mode == "invoke":
        return agent.invoke(payload, config, **kwargs)
    return await agent.ainvoke(payload, config, **kwargs)


def served_models(server: FakeOpenAIServer) -> list[str]:
    """The candidates the server answered for, in order (``m-big`` → ``big``)."""
    return [c.model.removeprefix("m-") for c in server.calls]


def routed(messages: list[BaseMessage]) -> list[str]:
    """The candidate named in each AI message's routing metadata."""
    return [m.response_metadata["routing"]["model"] for m in messages if isinstance(m, AIMessage)]


# --- a multi-turn, multi-tool conversation -------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
async def test_multi_turn_multi_tool_conversation(
    mode: str, pool: CandidatePool, served: FakeOpenAIServer
) -> None:
    agent = make_agent(pool, script=True)
    first = await run(agent, mode, HARD)
    # lookup, then add, then the answer: three calls, all on the candidate the router chose.
    calls = [c["name"] for m in first["messages"] if isinstance(m, AIMessage) for c in m.tool_calls]
    assert calls == ["lookup", "add"]
    assert served_models(served) == ["big", "big", "big"]
    assert first["messages"][-1].text.startswith("[m-big] Tool result: ")
    assert routed(first["messages"]) == ["big", "big", "big"]
    sources = [
        m.response_metadata["routing"]["source"]
        for m in first["messages"]
        if isinstance(m, AIMessage)
    ]
    assert sources == ["router", "sticky", "sticky"]
    assert first[STATE_KEY]["model"] == "big"

    served.reset()
    second = await run(agent, mode, EASY)  # same thread: the history is kept
    assert served_models(served) == ["small", "small", "small"]
    assert routed(second["messages"]) == ["big"] * 3 + ["small"] * 3
    assert len(served.calls[0].messages) == 6 + 1  # small saw the first turn too

    # The decision is in the checkpointed state, as a plain JSON-able dict.
    saved = agent.get_state({"configurable": {"thread_id": "t"}}).values[STATE_KEY]
    assert json.loads(json.dumps(saved)) == saved
    assert saved["model"] == saved["chosen"] == "small"
    assert saved["router"] == "keyword"
    assert saved["ranking"] == ["small", "mid", "big"]
    assert saved["turn"] == second["messages"][6].id != first["messages"][0].id
    assert [a["model"] for a in saved["attempts"]] == ["small"]
    assert saved["actual_cost"] > 0


# --- per="run" vs per="call", and sticky tool loops ----------------------------------------


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize(
    ("per", "sticky", "expected", "last_source"),
    [
        ("call", False, ["small", "big"], "router"),  # the tool's "hard" result re-routes
        ("run", False, ["small", "small"], "run"),  # decided once for the run
        ("call", True, ["small", "small"], "sticky"),  # the tool loop stays where it started
    ],
)
async def test_per_and_sticky_tools(
    mode: str,
    per: str,
    sticky: bool,
    expected: list[str],
    last_source: str,
    pool: CandidatePool,
    served: FakeOpenAIServer,
) -> None:
    # Routed on the whole conversation, so the tool result ("a hard fact") counts.
    agent = make_agent(pool, tools=[lookup], per=per, sticky_tools=sticky, route_on="conversation")
    state = await run(agent, mode, EASY)
    assert served_models(served) == expected
    assert routed(state["messages"]) == expected
    assert state[STATE_KEY]["source"] == last_source
    assert state[STATE_KEY]["per"] == per


async def test_per_run_routes_again_on_the_next_human_message(
    pool: CandidatePool, served: FakeOpenAIServer
) -> None:
    agent = make_agent(pool, tools=[lookup], per="run", sticky_tools=False)
    await run(agent, "invoke", EASY)
    state = await run(agent, "invoke", HARD)
    assert served_models(served) == ["small", "small", "big", "big"]
    answers = [m for m in state["messages"] if isinstance(m, AIMessage)]
    assert [m.response_metadata["routing"]["source"] for m in answers] == [
        "router",
        "run",
        "router",
        "run",
    ]


# --- fallback and candidate health: RouterChatModel's --------------------------------------


@pytest.mark.parametrize("mode", MODES)
async def test_a_503_falls_back_down_the_ranking_and_is_recorded(
    mode: str, pool: CandidatePool, served: FakeOpenAIServer
) -> None:
    served.set_behavior("m-big", ModelBehavior(fail_status=503))
    health = CandidateHealth(allowed_fails=1, cooldown_s=60)
    agent = make_agent(pool, tools=[lookup], health=health)
    state = await run(agent, mode, HARD)
    # big fails, mid (next in the ranking) answers; the tool loop then stays on mid.
    assert served_models(served) == ["big", "mid", "mid"]
    first = state["messages"][1].response_metadata["routing"]
    assert (first["chosen"], first["model"], first["fallback"]) == ("big", "mid", True)
    assert first["failed"] == [
        {"model": "big", "error": first["failed"][0]["error"], "kind": "unavailable"}
    ]
    assert [a["error"] for a in first["attempts"]] == ["unavailable", None]
    assert health.cooling("big") > 0

    # The next turn skips big while it cools down, and says so.
    served.reset()
    state = await run(agent, mode, HARD)
    assert served_models(served) == ["mid", "mid"]
    assert state["messages"][-3].response_metadata["routing"]["skipped"] == [
        {"model": "big", "reason": "cooldown", "remaining_s": pytest.approx(60, abs=5)}
    ]


def test_health_is_the_pools_by_default(pool: CandidatePool) -> None:
    assert RouterMiddleware(router=Keyword(), candidates=pool).health is pool.health


@pytest.mark.parametrize("mode", MODES)
async def test_a_caller_error_is_raised_without_fallback(
    mode: str, pool: CandidatePool, served: FakeOpenAIServer
) -> None:
    served.set_behavior("m-big", ModelBehavior(fail_status=400))
    agent = make_agent(pool, tools=[lookup])
    with pytest.raises(openai.BadRequestError):
        await run(agent, mode, HARD)
    assert served_models(served) == ["big"]
    assert pool.health.cooling("big") == 0


@pytest.mark.parametrize("mode", MODES)
async def test_every_candidate_failing_raises_all_candidates_failed(
    mode: str, pool: CandidatePool, served: FakeOpenAIServer
) -> None:
    for name in pool.names:
        served.set_behavior(f"m-{name}", ModelBehavior(fail_status=500))
    agent = make_agent(pool, tools=[lookup], max_fallbacks=1)
    with pytest.raises(AllCandidatesFailedError) as caught:
        await run(agent, mode, HARD)
    assert [m for m, _ in caught.value.failures] == ["big", "mid"]
    assert served_models(served) == ["big", "mid"]


# --- the run's context: cost_weight, budget, user_id ---------------------------------------


@dataclass
class Context:
    cost_weight: float | None = None
    budget: float | None = None
    user_id: str | None = None


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("as_object", [False, True])
async def test_context_cost_weight_changes_the_choice(
    mode: str, as_object: bool, pool: CandidatePool, served: FakeOpenAIServer
) -> None:
    agent = make_agent(pool, tools=[])
    state = await run(agent, mode, HARD, thread="plain")
    assert state[STATE_KEY]["model"] == "big"
    assert state[STATE_KEY]["user_id"] is None

    values = {"cost_weight": 5.0, "user_id": "u-42"}
    context = Context(**values) if as_object else values
    state = await run(agent, mode, HARD, thread="thrifty", context=context)
    assert served_models(served) == ["big", "small"]
    saved = state[STATE_KEY]
    assert (saved["model"], saved["cost_weight"], saved["user_id"]) == ("small", 5.0, "u-42")


async def test_context_budget_and_the_middlewares_own_cost_weight(
    pool: CandidatePool, served: FakeOpenAIServer
) -> None:
    thrifty = make_agent(pool, tools=[], cost_weight=5.0)
    assert (await run(thrifty, "invoke", HARD))[STATE_KEY]["model"] == "small"
    # The context wins over the middleware's own value.
    spender = await run(thrifty, "invoke", HARD, thread="t2", context={"cost_weight": 0.0})
    assert spender[STATE_KEY]["model"] == "big"
    # A budget that only mid and small fit.
    capped = await run(make_agent(pool, tools=[]), "invoke", HARD, context={"budget": 1e-3})
    assert capped[STATE_KEY]["model"] == "mid"
    assert capped[STATE_KEY]["budget"] == 1e-3


async def test_a_bad_context_value_is_refused_before_any_call(
    pool: CandidatePool, served: FakeOpenAIServer
) -> None:
    with pytest.raises(InvalidOptionError, match="cost_weight"):
        await run(make_agent(pool, tools=[]), "invoke", HARD, context={"cost_weight": -1})
    assert served.calls == []


# --- construction ---------------------------------------------------------------------------


def test_models_may_be_chat_models_or_provider_strings(
    monkeypatch: pytest.MonkeyPatch, openai_server: FakeOpenAIServer, served: FakeOpenAIServer
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "test")
    monkeypatch.setenv("OPENAI_BASE_URL", openai_server.base_url)
    monkeypatch.delenv("OPENAI_API_BASE", raising=False)
    big = ChatOpenAI(model="m-big", base_url=openai_server.base_url, api_key="test")
    routing = RouterMiddleware(router=Keyword(), models={"small": "openai:m-small", "big": big})
    assert routing.pool.names == ["small", "big"]
    agent = create_agent(model=big, tools=[], middleware=[routing])
    assert agent.invoke({"messages": [HumanMessage(EASY)]})[STATE_KEY]["model"] == "small"
    assert agent.invoke({"messages": [HumanMessage(HARD)]})[STATE_KEY]["model"] == "big"
    assert served_models(served) == ["small", "big"]


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"per": "turn"}, InvalidOptionError),
        ({"route_on": "everything"}, InvalidOptionError),
        ({"models": {}}, ValueError),  # both models and candidates
    ],
)
def test_bad_arguments_are_refused(
    kwargs: dict[str, Any], error: type[Exception], pool: CandidatePool
) -> None:
    with pytest.raises(error):
        RouterMiddleware(router=Keyword(), candidates=pool, **kwargs)


def test_neither_models_nor_candidates_is_refused() -> None:
    with pytest.raises(ValueError, match="models="):
        RouterMiddleware(router=Keyword())


def test_without_langchain_the_import_names_the_extra() -> None:
    code = (
        "import sys\n"
        "sys.modules['langchain'] = None\n"
        "try:\n"
        "    from langchain_llmrouter.middleware import RouterMiddleware\n"
        "except ImportError as exc:\n"
        "    print(type(exc).__name__, exc)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True
    )
    assert result.stdout.startswith("MissingDependencyError RouterMiddleware needs langchain")
    assert "pip install 'langchain-llmrouter[agents]'" in result.stdout
