"""The request path of `RouterChatModel` as a LangChain user meets it (issue 12's findings).

Each test drives real ``ChatOpenAI`` candidates over HTTP against the local
`FakeOpenAIServer`, written as a user of LangChain would write the call.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import Any

import numpy as np
import openai
import pytest
from chat_calls import MODES, call, routing  # tests/unit/chat_calls.py
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, SystemMessage
from langchain_core.messages.utils import trim_messages
from langchain_core.tools import tool
from langchain_core.tracers.base import BaseTracer
from langchain_core.tracers.schemas import Run
from pydantic import BaseModel, Field

import langchain_llmrouter
from langchain_llmrouter import (
    AllCandidatesFailedError,
    BaseRouter,
    CandidateHealth,
    CandidatePool,
    InvalidOptionError,
    LLMCandidate,
    PartialStreamError,
    RouterChatModel,
    RoutingDataset,
)
from langchain_llmrouter.fallback import classify_failure, is_provider_failure
from langchain_llmrouter.testing import FakeOpenAIServer, ModelBehavior
from langchain_llmrouter.tokens import count_message_tokens

PoolFactory = Callable[..., CandidatePool]
QUESTION = "Who wrote Hamlet?"
STREAMS = ["stream", "astream"]


class Ranked(BaseRouter):
    """An untrained router that ranks the candidates in pool order (first is best)."""

    name = "ranked"
    trainable = False

    def _fit(self, dataset: RoutingDataset | None, query_embeddings: np.ndarray | None) -> None:
        """Nothing to learn."""

    def _predict_quality(
        self, queries: list[str], query_embeddings: np.ndarray | None
    ) -> np.ndarray:
        return np.tile(np.linspace(1.0, 0.1, len(self.candidates_)), (len(queries), 1))


NAMES = ["alpha", "beta", "gamma", "delta"]


@pytest.fixture
def pool(openai_server: FakeOpenAIServer) -> CandidatePool:
    """Four candidates on the local server, ranked alpha > beta > gamma > delta."""
    candidates = [
        LLMCandidate(name=n, model=f"m-{n}", input_price=1.0 + i, output_price=2.0 + i)
        for i, n in enumerate(NAMES)
    ]
    return CandidatePool(
        candidates,
        api_endpoint=openai_server.base_url,
        api_keys=langchain_llmrouter.APIKeys.parse(None),
        chat_model_kwargs={"max_retries": 0, "timeout": 5},
    )


@pytest.fixture
def llm(pool: CandidatePool) -> RouterChatModel:
    return RouterChatModel(router=Ranked(), candidates=pool)


def answered_by(message: BaseMessage) -> str:
    """The served model id in the server's reply prefix."""
    return message.text.split("]", 1)[0].lstrip("[")


# --- 1. streams are rescued until the first content -----------------------------------------


@pytest.mark.parametrize("mode", STREAMS)
@pytest.mark.parametrize("sent", [0, 1])
async def test_stream_falls_back_when_the_connection_drops_before_text(
    mode: str, sent: int, llm: RouterChatModel, served: FakeOpenAIServer
) -> None:
    # The connection drops right after the empty role chunk, or in a non-streamed body.
    fault = "reset_sse" if sent == 0 else "reset_body"
    served.set_behavior("m-alpha", ModelBehavior(fault=fault))
    message = await call(llm, mode, QUESTION)
    meta = routing(message)
    assert (meta["chosen"], meta["model"], meta["fallback"]) == ("alpha", "beta", True)
    assert answered_by(message) == "m-beta"
    assert message.text.endswith(f"You said: {QUESTION}")
    assert [a["model"] for a in meta["attempts"]] == ["alpha", "beta"]
    assert meta["attempts"][0]["error"] == "transport"
    assert meta["attempts"][1]["error"] is None


@pytest.mark.parametrize("mode", STREAMS)
async def test_stream_failing_after_text_raises_with_the_partial_answer(
    mode: str, llm: RouterChatModel, served: FakeOpenAIServer
) -> None:
    served.set_behavior("m-alpha", ModelBehavior(fault="reset_sse", fault_text_chunks=2))
    received: list[Any] = []
    with pytest.raises(PartialStreamError) as caught:
        if mode == "stream":
            for chunk in llm.stream(QUESTION):
                received.append(chunk)
        else:
            async for chunk in llm.astream(QUESTION):
                received.append(chunk)
    error = caught.value
    assert error.model == "alpha"
    assert error.decision.model == "alpha"
    assert error.partial_text.startswith("[m-alpha] ")
    assert error.partial_text == "".join(c.text for c in received)
    assert isinstance(error.__cause__, Exception)
    assert [c.model for c in served.calls] == ["m-alpha"]  # no second answer spliced in


# --- 2. fallback only on provider failures --------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("status", [400, 401, 403, 404, 422])
async def test_caller_errors_raise_at_once_without_fallback(
    mode: str,
    status: int,
    llm: RouterChatModel,
    served: FakeOpenAIServer,
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.WARNING), pytest.raises(openai.APIStatusError) as caught:
        await call(llm, mode, f"{QUESTION} [[fail:{status}]]")
    assert caught.value.status_code == status
    assert [c.model for c in served.calls] == ["m-alpha"]
    assert not [r for r in caplog.records if "trying the next one" in r.getMessage()]
    assert llm.pool.health.cooling("alpha") == 0


def test_misspelt_option_is_refused_before_any_call(
    llm: RouterChatModel, served: FakeOpenAIServer
) -> None:
    with pytest.raises(InvalidOptionError, match="did you mean 'cost_weight'"):
        llm.invoke(QUESTION, cost_wieght=50)
    assert served.calls == []


def test_unknown_provider_keyword_raises_the_clients_type_error(
    llm: RouterChatModel, served: FakeOpenAIServer
) -> None:
    with pytest.raises(TypeError, match="frobnicate"):
        llm.invoke(QUESTION, frobnicate=1)
    assert served.calls == []


def test_a_candidate_raising_value_error_is_not_retried_elsewhere(
    openai_server: FakeOpenAIServer,
) -> None:
    from langchain_core.language_models.fake_chat_models import FakeListChatModel

    class Broken(FakeListChatModel):
        def _call(self, *args: Any, **kwargs: Any) -> str:
            raise ValueError("bad prompt template")

    models: dict[str, Any] = {"alpha": Broken(responses=["x"]), "beta": Broken(responses=["y"])}
    llm = RouterChatModel(router=Ranked(), models=models)
    with pytest.raises(ValueError, match="bad prompt template"):
        llm.invoke(QUESTION)


@pytest.mark.parametrize("mode", MODES)
async def test_provider_failures_fall_back(
    mode: str, llm: RouterChatModel, served: FakeOpenAIServer
) -> None:
    served.set_behavior("m-alpha", ModelBehavior(fail_status=503))
    served.set_behavior("m-beta", ModelBehavior(fail_status=429))
    message = await call(llm, mode, QUESTION)
    meta = routing(message)
    assert meta["model"] == "gamma"
    assert [f["kind"] for f in meta["failed"]] == ["unavailable", "rate_limit"]
    assert [a["error"] for a in meta["attempts"]] == ["unavailable", "rate_limit", None]
    assert all(a["latency_s"] > 0 for a in meta["attempts"])


@pytest.mark.parametrize("mode", ["invoke", "astream"])
async def test_context_length_falls_back_only_to_larger_windows(
    mode: str, openai_server: FakeOpenAIServer, served: FakeOpenAIServer
) -> None:
    windows = {"alpha": 8000, "beta": 4000, "gamma": 32000, "delta": None}
    candidates = [LLMCandidate(name=n, model=f"m-{n}", context_window=windows[n]) for n in NAMES]
    pool = CandidatePool(
        candidates,
        api_endpoint=openai_server.base_url,
        api_keys=langchain_llmrouter.APIKeys.parse(None),
        chat_model_kwargs={"max_retries": 0},
    )
    llm = RouterChatModel(router=Ranked(), candidates=pool, max_fallbacks=3)
    served.set_behavior("m-alpha", ModelBehavior(context_window=5))
    message = await call(llm, mode, "a long prompt " * 20)
    meta = routing(message)
    # beta (4,000) and delta (unknown) are never tried after alpha's 8,000 overflowed.
    assert [a["model"] for a in meta["attempts"]] == ["alpha", "gamma"]
    assert meta["attempts"][0]["error"] == "context_length"
    assert meta["model"] == "gamma"


def test_fallback_on_narrows_which_provider_failures_fall_back(
    pool: CandidatePool, served: FakeOpenAIServer
) -> None:
    llm = RouterChatModel(router=Ranked(), candidates=pool, fallback_on=(openai.RateLimitError,))
    served.set_behavior("m-alpha", ModelBehavior(fail_status=500))
    with pytest.raises(openai.InternalServerError):
        llm.invoke(QUESTION)
    served.set_behavior("m-alpha", ModelBehavior(fail_status=429))
    assert routing(llm.invoke(QUESTION))["model"] == "beta"


@pytest.mark.parametrize(
    ("status", "message", "kind"),
    [
        (408, "timeout", "rate_limit"),
        (409, "conflict", "rate_limit"),
        (425, "too early", "rate_limit"),
        (500, "oops", "server"),
        (503, "The model is overloaded", "unavailable"),
        (404, "model x is not available right now", "unavailable"),
        (404, "no such model", "caller"),
        (400, "This model's maximum context length is 8192 tokens", "context_length"),
        (422, "bad field", "caller"),
    ],
)
def test_classify_failure_by_status(status: int, message: str, kind: str) -> None:
    import httpx

    request = httpx.Request("POST", "http://127.0.0.1/v1/chat/completions")
    response = httpx.Response(status, request=request)
    error = openai.APIStatusError(message, response=response, body=None)
    assert classify_failure(error) == kind
    assert is_provider_failure(error) is (kind != "caller")


def test_classify_failure_transport_and_python_errors() -> None:
    import httpx

    request = httpx.Request("POST", "http://127.0.0.1/v1/chat/completions")
    assert classify_failure(openai.APITimeoutError(request=request)) == "timeout"
    assert classify_failure(openai.APIConnectionError(request=request)) == "transport"
    assert classify_failure(httpx.RemoteProtocolError("peer closed")) == "transport"
    assert classify_failure(ConnectionResetError()) == "transport"
    for error in (TypeError("x"), ValueError("x"), KeyError("x"), AttributeError("x")):
        assert classify_failure(error) == "caller"
    assert classify_failure(RuntimeError("some SDK failure")) == "provider"


# --- candidate health ------------------------------------------------------------------------


def test_a_failing_candidate_cools_down_and_is_skipped(
    pool: CandidatePool, served: FakeOpenAIServer
) -> None:
    now = [100.0]
    health = CandidateHealth(allowed_fails=3, cooldown_s=5.0, clock=lambda: now[0])
    llm = RouterChatModel(router=Ranked(), candidates=pool, health=health)
    served.set_behavior("m-alpha", ModelBehavior(fail_status=500))
    for _ in range(3):
        assert routing(llm.invoke(QUESTION))["model"] == "beta"
    assert health.cooling("alpha") == pytest.approx(5.0)
    served.reset()
    meta = routing(llm.invoke(QUESTION))
    assert meta["model"] == "beta"
    assert meta["fallback"] is False
    assert meta["skipped"] == [{"model": "alpha", "reason": "cooldown", "remaining_s": 5.0}]
    assert [c.model for c in served.calls] == ["m-beta"]  # the dead provider is not called
    now[0] += 5.1
    served.set_behavior("m-alpha", ModelBehavior())
    assert routing(llm.invoke(QUESTION))["model"] == "alpha"


def test_health_is_shared_by_models_on_one_pool(
    pool: CandidatePool, served: FakeOpenAIServer
) -> None:
    first = RouterChatModel(router=Ranked(), candidates=pool)
    second = RouterChatModel(router=Ranked(), candidates=pool, cost_weight=0.0)
    served.set_behavior("m-alpha", ModelBehavior(fail_status=503))
    for _ in range(3):
        first.invoke(QUESTION)
    served.reset()
    assert routing(second.invoke(QUESTION))["skipped"][0]["model"] == "alpha"
    assert [c.model for c in served.calls] == ["m-beta"]


def test_every_candidate_cooling_still_answers(pool: CandidatePool) -> None:
    health = CandidateHealth(allowed_fails=1, cooldown_s=60)
    for name in NAMES:
        health.record_failure(name)
    llm = RouterChatModel(router=Ranked(), candidates=pool, health=health)
    assert routing(llm.invoke(QUESTION))["model"] == "alpha"


def test_health_is_thread_safe() -> None:
    from concurrent.futures import ThreadPoolExecutor

    health = CandidateHealth(allowed_fails=1000, cooldown_s=1)
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda _: health.record_failure("x"), range(999)))
    assert health.cooling("x") == 0
    assert health.record_failure("x") is True


# --- 9. every attempt accounted for --------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
async def test_failed_attempts_that_ran_are_counted_in_actual_cost(
    mode: str, pool: CandidatePool, served: FakeOpenAIServer
) -> None:
    from langchain_openai import ChatOpenAI

    timed: dict[str, Any] = {
        name: ChatOpenAI(
            model=f"m-{name}",
            base_url=served.base_url,
            api_key="x",
            timeout=0.3,
            max_retries=0,
            stream_usage=True,
        )
        for name in NAMES
    }
    timed_pool = CandidatePool(list(pool), models=timed)  # the same prices, short timeouts
    llm = RouterChatModel(router=Ranked(), candidates=timed_pool)
    served.set_behavior("m-alpha", ModelBehavior(delay_s=1.0))
    message = await call(llm, mode, QUESTION)
    meta = routing(message)
    failed, answered = meta["attempts"]
    assert (failed["model"], failed["error"]) == ("alpha", "timeout")
    # The provider ran the timed-out call: its cost is estimated, for a stream from the prompt
    # and the tokens that arrived (none here), otherwise as the router's estimate of the call.
    assert failed["cost_estimated"] is True
    if mode in STREAMS:
        prompt = count_message_tokens([HumanMessage(QUESTION)], "m-alpha")
        assert failed["cost"] == pytest.approx(llm.pool["alpha"].estimate_cost(prompt, 0))
    else:
        assert failed["cost"] == pytest.approx(meta["costs"]["alpha"])
    assert failed["cost"] > 0
    usage = message.usage_metadata
    assert usage is not None
    assert answered["cost"] == pytest.approx(
        llm.pool["beta"].estimate_cost(usage["input_tokens"], usage["output_tokens"])
    )
    assert meta["actual_cost"] == pytest.approx(answered["cost"] + failed["cost"])


def test_rejected_attempts_cost_nothing(llm: RouterChatModel, served: FakeOpenAIServer) -> None:
    served.set_behavior("m-alpha", ModelBehavior(fail_status=429))
    meta = routing(llm.invoke(QUESTION))
    assert meta["attempts"][0]["cost"] == 0.0
    assert meta["actual_cost"] == pytest.approx(meta["attempts"][1]["cost"])


def test_all_candidates_failed_is_exported_with_attempts(
    llm: RouterChatModel, served: FakeOpenAIServer
) -> None:
    assert langchain_llmrouter.AllCandidatesFailedError is AllCandidatesFailedError
    with pytest.raises(AllCandidatesFailedError) as caught:
        llm.invoke(f"{QUESTION} [[fail:500]]")
    assert [a.model for a in caught.value.attempts] == ["alpha", "beta", "gamma"]
    assert caught.value.decision is not None and caught.value.decision.model == "alpha"


# --- 3. structured output and tools, delegated ---------------------------------------------


class Answer(BaseModel):
    """An answer with a confidence from 0 to 10."""

    text: str
    confidence: int = Field(ge=0, le=10)


@pytest.mark.parametrize("strict", [None, True])
def test_with_structured_output_json_schema(
    strict: bool | None, llm: RouterChatModel, served: FakeOpenAIServer
) -> None:
    result = llm.with_structured_output(Answer, method="json_schema", strict=strict).invoke(
        "How sure are you?"
    )
    assert result == Answer(text="hello", confidence=3)
    body = served.calls[-1].body
    assert "tools" not in body
    assert body["response_format"]["type"] == "json_schema"
    assert body["response_format"]["json_schema"]["name"] == "Answer"
    assert body["response_format"]["json_schema"].get("strict") == strict


async def test_with_structured_output_json_mode_include_raw(
    llm: RouterChatModel, served: FakeOpenAIServer
) -> None:
    reply = json.dumps({"text": "Paris", "confidence": 9})
    served.set_behavior("m-alpha", ModelBehavior(reply=lambda _: reply))
    structured = llm.with_structured_output(Answer, method="json_mode", include_raw=True)
    result = await structured.ainvoke("Capital of France? Answer in JSON.")
    assert result["parsed"] == Answer(text="Paris", confidence=9)
    assert result["parsing_error"] is None
    assert routing(result["raw"])["model"] == "alpha"
    assert served.calls[-1].body["response_format"] == {"type": "json_object"}


def test_with_structured_output_function_calling_strict(
    llm: RouterChatModel, served: FakeOpenAIServer
) -> None:
    result = llm.with_structured_output(Answer, method="function_calling", strict=True).invoke(
        "How sure are you?"
    )
    assert isinstance(result, Answer)
    body = served.calls[-1].body
    assert body["tools"][0]["function"]["strict"] is True
    assert body["parallel_tool_calls"] is False


def test_with_structured_output_rejects_unknown_method(llm: RouterChatModel) -> None:
    with pytest.raises(InvalidOptionError, match="json_schema"):
        llm.with_structured_output(Answer, method="xml")  # type: ignore[arg-type]


@tool
def get_time(timezone: str) -> str:
    """Return the current time in a timezone."""
    return f"12:00 in {timezone}"


def test_bind_tools_with_response_format_reaches_the_candidate(
    llm: RouterChatModel, served: FakeOpenAIServer
) -> None:
    bound = llm.bind_tools(
        [get_time],
        tool_choice="none",
        strict=True,
        parallel_tool_calls=False,
        response_format=Answer,
    )
    message = bound.invoke("How sure are you?")
    body = served.calls[-1].body
    assert body["response_format"]["json_schema"]["name"] == "Answer"
    assert body["parallel_tool_calls"] is False
    assert body["tools"][0]["function"]["strict"] is True
    assert Answer.model_validate_json(message.text) == Answer(text="hello", confidence=3)
    assert routing(message)["model"] == "alpha"


# --- 4. the decision where LangChain apps look ---------------------------------------------


async def test_astream_events_show_the_model_the_router_and_the_decision(
    llm: RouterChatModel,
) -> None:
    events = [e async for e in llm.astream_events(QUESTION, version="v2")]
    kinds = [(e["event"], e["name"]) for e in events]
    assert ("on_chat_model_start", "RouterChatModel") in kinds
    assert ("on_chain_start", "ranked") in kinds
    router_end = next(e for e in events if e["event"] == "on_chain_end" and e["name"] == "ranked")
    assert router_end["data"]["output"].model == "alpha"
    model_start = next(e for e in events if e["event"] == "on_chat_model_start")
    assert router_end["parent_ids"][-1] == model_start["run_id"]
    streamed = [e["data"]["chunk"] for e in events if e["event"] == "on_chat_model_stream"]
    assert routing(streamed[0])["model"] == "alpha"
    assert "ChatOpenAI" not in {name for _, name in kinds}
    end = next(e for e in events if e["event"] == "on_chat_model_end")
    assert routing(end["data"]["output"])["model"] == "alpha"
    assert routing(end["data"]["output"])["actual_cost"] > 0


class Collect(BaseTracer):
    """A tracer that keeps every finished run (as LangSmith's would post it)."""

    def __init__(self) -> None:
        super().__init__()
        self.runs: list[Run] = []

    def _persist_run(self, run: Run) -> None:
        """Every run is kept in `_end_trace`."""

    def _end_trace(self, run: Run) -> None:
        super()._end_trace(run)
        self.runs.append(run)


@pytest.mark.parametrize("how", ["invoke", "generate", "stream"])
def test_traces_name_the_answering_candidate_the_same_way_on_every_path(
    how: str, llm: RouterChatModel, served: FakeOpenAIServer
) -> None:
    served.set_behavior("m-alpha", ModelBehavior(fail_status=500))
    tracer = Collect()
    if how == "invoke":
        llm.invoke(QUESTION, config={"callbacks": [tracer]})
    elif how == "generate":
        llm.generate([[HumanMessage(QUESTION)]], callbacks=[tracer])
    else:
        list(llm.stream(QUESTION, config={"callbacks": [tracer]}))
    [run] = [r for r in tracer.runs if r.run_type == "llm" and r.parent_run_id is None]
    assert run.name == "RouterChatModel"
    metadata = run.extra["metadata"]
    assert metadata["ls_model_name"] == "m-beta"  # the fallback that answered
    assert metadata["ls_provider"] == "openai"
    assert metadata["ls_gateway_info"]["chosen"] == "alpha"
    [router_run] = [r for r in tracer.runs if r.parent_run_id == run.id]
    assert router_run.name == "ranked"
    assert router_run.outputs is not None


def test_agent_stream_mode_messages_carries_the_decision(
    llm: RouterChatModel, served: FakeOpenAIServer
) -> None:
    from langchain.agents import create_agent

    agent = create_agent(model=llm, tools=[get_time])
    metas = [
        chunk.response_metadata["routing"]
        for chunk, _ in agent.stream(
            {"messages": [HumanMessage("What time is it in UTC?")]}, stream_mode="messages"
        )
        if isinstance(chunk, AIMessage | BaseMessage) and "routing" in chunk.response_metadata
    ]
    # Two model calls (the tool call, then the answer): each announces its candidate.
    assert [m["model"] for m in metas if "model" in m] == ["alpha", "alpha"]
    assert [c.tools is not None for c in served.calls] == [True, True]


# --- 5. token counting and profile, offline -------------------------------------------------


@pytest.mark.usefixtures("socket_disabled")
def test_trim_messages_counts_tokens_offline() -> None:
    pool = CandidatePool(  # an endpoint nothing listens on: counting must not need one
        [LLMCandidate(name=n, model=f"m-{n}") for n in NAMES],
        api_endpoint="http://127.0.0.1:9/v1",
        api_keys=langchain_llmrouter.APIKeys.parse(None),
    )
    llm = RouterChatModel(router=Ranked(), candidates=pool)
    history = [
        SystemMessage("You are terse."),
        *[HumanMessage(f"Question number {i} about the weather in Paris?") for i in range(20)],
    ]
    trimmed = trim_messages(
        history, token_counter=llm, max_tokens=60, strategy="last", include_system=True
    )
    assert trimmed[0] == history[0]
    assert 1 < len(trimmed) < len(history)
    assert llm.get_num_tokens_from_messages(trimmed) <= 60
    assert llm.get_num_tokens("hello world") == 2
    assert llm.get_num_tokens_from_messages([HumanMessage("hello world")]) > 2


def test_token_count_is_the_largest_among_candidates(openai_server: FakeOpenAIServer) -> None:
    from langchain_core.language_models.fake_chat_models import FakeListChatModel

    class Verbose(FakeListChatModel):
        def get_num_tokens_from_messages(self, messages: Any, tools: Any = None) -> int:
            return 1000

    from langchain_openai import ChatOpenAI

    models: dict[str, Any] = {
        "alpha": ChatOpenAI(model="gpt-4o", base_url=openai_server.base_url, api_key="x"),
        "beta": Verbose(responses=["x"]),
    }
    llm = RouterChatModel(router=Ranked(), models=models)
    assert llm.get_num_tokens_from_messages([HumanMessage("hi")]) == 1000


def test_profile_is_what_every_candidate_meets(openai_server: FakeOpenAIServer) -> None:
    from langchain.agents.middleware import SummarizationMiddleware

    windows = {"alpha": 128_000, "beta": 32_000, "gamma": 64_000, "delta": 8_000}
    pool = CandidatePool(
        [LLMCandidate(name=n, model=f"m-{n}", context_window=windows[n]) for n in NAMES[:3]],
        api_endpoint=openai_server.base_url,
        api_keys=langchain_llmrouter.APIKeys.parse(None),
    )
    llm = RouterChatModel(router=Ranked(), candidates=pool)
    assert llm.profile is not None
    assert llm.profile["max_input_tokens"] == 32_000
    SummarizationMiddleware(model=llm, trigger=("fraction", 0.8))  # needs the profile


def test_model_name_says_what_the_model_is(llm: RouterChatModel) -> None:
    assert llm.model_name == "llmrouter/ranked"
    assert llm._get_ls_params()["ls_model_name"] == "llmrouter/ranked"


# --- 6. per-call options are checked -------------------------------------------------------


@pytest.mark.parametrize(
    ("option", "value", "match"),
    [
        ("routing_mode", "bogus", "valid modes: current_only, full_context, retrieval"),
        ("cost_weight", "x", "option cost_weight: expected a number"),
        ("cost_weight", -1, "option cost_weight"),
        ("cost_weight", float("inf"), "option cost_weight"),
        ("budget", 0, "option budget"),
        ("retrieval_top_k", 0, "option retrieval_top_k"),
    ],
)
@pytest.mark.parametrize("how", ["kwarg", "configurable"])
def test_bad_option_values_are_refused_naming_the_option(
    option: str, value: Any, match: str, how: str, llm: RouterChatModel, served: FakeOpenAIServer
) -> None:
    with pytest.raises(InvalidOptionError, match=match):
        if how == "kwarg":
            llm.invoke(QUESTION, **{option: value})
        else:
            llm.with_config(configurable={option: value}).invoke(QUESTION)
    assert served.calls == []


@pytest.mark.parametrize("mode", MODES)
async def test_per_call_model_is_refused(
    mode: str, llm: RouterChatModel, served: FakeOpenAIServer
) -> None:
    with pytest.raises(InvalidOptionError, match="chooses the model per call"):
        await call(llm, mode, QUESTION, model="foo")
    assert served.calls == []


def test_router_invoke_honours_cost_weight_like_route(knn_router: BaseRouter) -> None:
    for weight in (0.0, 50.0):
        assert knn_router.invoke(QUESTION, cost_weight=weight) == knn_router.route(
            QUESTION, cost_weight=weight
        )
    assert knn_router.invoke(QUESTION, cost_weight=50.0).model != knn_router.invoke(QUESTION).model
    with pytest.raises(InvalidOptionError, match="did you mean 'cost_weight'"):
        knn_router.invoke(QUESTION, cost_wieght=50)
    with pytest.raises(InvalidOptionError, match="option cost_weight"):
        knn_router.route(QUESTION, cost_weight="x")


def test_invalid_option_error_is_exported() -> None:
    assert issubclass(langchain_llmrouter.InvalidOptionError, ValueError)
