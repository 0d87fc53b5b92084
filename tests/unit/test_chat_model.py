"""Behaviour of `RouterChatModel`, driving real ``ChatOpenAI`` candidates over HTTP.

Every candidate is served by the session's local `FakeOpenAIServer`, which answers
``"[<model id>] You said: ..."``, so each test can tell which candidate answered and
check that it is the one the router chose.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from uuid import UUID

import numpy as np
import openai
import pytest
from chat_calls import MODES, call, routing  # tests/unit/chat_calls.py
from langchain_core.callbacks import BaseCallbackHandler, get_usage_metadata_callback
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, SystemMessage
from langchain_core.prompts import ChatPromptTemplate
from langchain_core.tools import tool
from langchain_openai import ChatOpenAI
from pydantic import BaseModel, Field, ValidationError

from langchain_llmrouter import (
    BaseRouter,
    CandidatePool,
    MissingAPIKeyError,
    MissingEndpointError,
    RouterChatModel,
    RoutingDataset,
    create_router,
)
from langchain_llmrouter.chat_model import AllCandidatesFailedError, routing_text
from langchain_llmrouter.embeddings import embed_texts
from langchain_llmrouter.testing import FakeOpenAIServer, ModelBehavior

PoolFactory = Callable[..., CandidatePool]
QUESTION = "Who wrote Hamlet?"

# --- helpers -------------------------------------------------------------------------------


def model_id(pool: CandidatePool, name: str) -> str:
    """The API model id the server sees for a candidate."""
    return pool[name].model


def assert_answered_by(message: BaseMessage, pool: CandidatePool, name: str) -> None:
    """The text of ``message`` comes from candidate ``name`` (the server's reply prefix)."""
    assert message.text.startswith(f"[{model_id(pool, name)}] "), message.text


class RecordingRouter(BaseRouter):
    """An untrained router that records the text it routes on; prefers candidates in order."""

    name = "recording"
    trainable = False

    def __init__(self) -> None:
        super().__init__()
        self.seen: list[str] = []

    def _fit(self, dataset: RoutingDataset | None, query_embeddings: np.ndarray | None) -> None:
        """Nothing to learn."""

    def _predict_quality(
        self, queries: list[str], query_embeddings: np.ndarray | None
    ) -> np.ndarray:
        self.seen.extend(queries)
        return np.tile(np.linspace(1.0, 0.0, len(self.candidates_)), (len(queries), 1))


class RunRecorder(BaseCallbackHandler):
    """Records chat-model runs (starts, ends, the candidate named at the end) and chain runs."""

    def __init__(self) -> None:
        self.starts: list[dict[str, Any]] = []
        self.ends: list[UUID] = []
        self.gateways: list[dict[str, Any]] = []
        self.chains: list[tuple[str, UUID | None, Any]] = []
        self._chains: dict[UUID, tuple[str, UUID | None]] = {}

    def on_chat_model_start(
        self,
        serialized: dict[str, Any],
        messages: list[list[BaseMessage]],
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        metadata: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        self.starts.append(
            {
                "run_id": run_id,
                "parent_run_id": parent_run_id,
                "metadata": metadata or {},
                "tags": kwargs.get("tags") or [],
            }
        )

    def on_llm_end(self, response: Any, *, run_id: UUID, **kwargs: Any) -> None:
        self.ends.append(run_id)
        for generations in response.generations:
            for generation in generations:
                info = generation.generation_info or {}
                if "lc_gateway_metadata" in info:
                    self.gateways.append(info["lc_gateway_metadata"])

    def on_chain_start(
        self,
        serialized: Any,
        inputs: Any,
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        **kwargs: Any,
    ) -> None:
        self._chains[run_id] = (kwargs.get("name") or "", parent_run_id)

    def on_chain_end(self, outputs: Any, *, run_id: UUID, **kwargs: Any) -> None:
        name, parent = self._chains.pop(run_id)
        self.chains.append((name, parent, outputs))


class GetWeather(BaseModel):
    """Get the current weather in a city."""

    city: str = Field(description="The city, e.g. Paris")


@tool
def get_time(timezone: str) -> str:
    """Return the current time in a timezone."""
    return f"12:00 in {timezone}"


class Answer(BaseModel):
    """An answer with a confidence from 0 to 10."""

    text: str
    confidence: int = Field(ge=0, le=10)


# --- fixtures ------------------------------------------------------------------------------


@pytest.fixture
def pool(candidate_pool: PoolFactory) -> CandidatePool:
    """A fresh pool of the example candidates on the local server (no keys, no retries)."""
    return candidate_pool()


@pytest.fixture
def llm(knn_router: BaseRouter, pool: CandidatePool) -> RouterChatModel:
    """The router chat model under test: kNN over the example candidates."""
    return RouterChatModel(router=knn_router, candidates=pool)


PRICEY, CHEAP = "llama3-chatqa-1.5-70b", "gemma-2-9b-it"  # $0.90 vs $0.10 per M tokens
COST_WEIGHT = 10.0  # the quality gap (0.4) is worth ~2.4 at these prices: 10 flips it


@pytest.fixture(scope="module")
def pricey_router(candidate_pool: PoolFactory) -> BaseRouter:
    """A kNN router whose data says the dear candidate always beats the cheap one (1.0 vs 0.6)."""
    pool = candidate_pool()
    queries = ["What is 2+2?", QUESTION, "Name a prime number.", "Translate 'cat' to French."]
    data = RoutingDataset(
        queries=queries,
        candidates=[PRICEY, CHEAP],
        performance=np.tile([1.0, 0.6], (len(queries), 1)),
        cost=np.full((len(queries), 2), np.nan),
        candidate_specs={name: pool[name] for name in (PRICEY, CHEAP)},
    )
    return create_router("knnrouter", k=2).fit(data)


# --- answering through the routed candidate ------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
async def test_answer_comes_from_routed_candidate(
    mode: str, llm: RouterChatModel, pool: CandidatePool, served: FakeOpenAIServer
) -> None:
    expected = llm.decide([HumanMessage(QUESTION)]).model
    message = await call(llm, mode, QUESTION)
    assert routing(message)["model"] == expected
    assert_answered_by(message, pool, expected)
    assert message.text.endswith(f"You said: {QUESTION}")
    [served_call] = served.calls
    assert served_call.model == model_id(pool, expected)
    assert served_call.stream is mode.endswith("stream")
    assert served_call.api_key == "local"  # a local endpoint needs no key


@pytest.mark.parametrize("mode", ["batch", "abatch"])
async def test_batch_routes_each_input_on_its_own(
    mode: str, llm: RouterChatModel, pool: CandidatePool, served: FakeOpenAIServer
) -> None:
    texts = ["Hello", "What is 2+2?"]
    expected = [llm.decide([HumanMessage(t)]).model for t in texts]
    assert expected[0] != expected[1], "pick inputs the router sends to different candidates"
    results = llm.batch(texts) if mode == "batch" else await llm.abatch(texts)
    for text, name, message in zip(texts, expected, results, strict=True):
        assert routing(message)["model"] == name
        assert_answered_by(message, pool, name)
        assert message.text.endswith(f"You said: {text}")
    assert sorted(c.model for c in served.calls) == sorted(model_id(pool, n) for n in expected)


def test_routing_metadata(llm: RouterChatModel, knn_router: BaseRouter) -> None:
    message = llm.invoke(QUESTION)
    meta = routing(message)
    decision = knn_router.route(QUESTION)
    assert meta["router"] == "knnrouter"
    assert meta["model"] == meta["chosen"] == decision.model == meta["ranking"][0]
    assert meta["ranking"] == decision.ranking
    assert sorted(meta["ranking"]) == sorted(knn_router.candidates_)
    assert set(meta["scores"]) == set(meta["costs"]) == set(knn_router.candidates_)
    assert meta["scores"] == pytest.approx(decision.scores)
    assert meta["est_cost"] == pytest.approx(meta["costs"][meta["model"]])
    assert meta["cost_weight"] == 0.0
    assert meta["budget"] is None
    assert meta["model"] in meta["reason"]
    assert meta["fallback"] is False
    assert meta["failed"] == []
    usage = message.usage_metadata
    assert usage is not None and usage["input_tokens"] > 0 and usage["output_tokens"] > 0
    candidate = llm.pool[meta["model"]]
    expected_cost = candidate.estimate_cost(usage["input_tokens"], usage["output_tokens"])
    assert meta["actual_cost"] == pytest.approx(expected_cost)
    assert meta["actual_cost"] > 0
    # The candidate's own metadata is kept next to the routing.
    assert message.response_metadata["model_name"] == candidate.model


@pytest.mark.parametrize("mode", ["stream", "astream"])
async def test_stream_carries_routing_first_and_actual_cost_last(
    mode: str, llm: RouterChatModel
) -> None:
    if mode == "stream":
        chunks = list(llm.stream(QUESTION))
    else:
        chunks = [chunk async for chunk in llm.astream(QUESTION)]
    first_meta = chunks[0].response_metadata["routing"]
    assert first_meta["model"] == llm.decide([HumanMessage(QUESTION)]).model
    assert "actual_cost" not in first_meta
    with_routing = [c for c in chunks if "routing" in c.response_metadata]
    assert len(with_routing) == 2, "routing on the first chunk and actual_cost on a final one"
    final = with_routing[-1]
    assert final.text == ""
    assert final.response_metadata["routing"]["actual_cost"] > 0
    assert chunks[-1].chunk_position == "last"


# --- per-call options ----------------------------------------------------------------------


@pytest.mark.parametrize("how", ["kwarg", "configurable", "field"])
def test_cost_weight_moves_choice_to_cheaper_candidate(
    how: str, pricey_router: BaseRouter, pool: CandidatePool, served: FakeOpenAIServer
) -> None:
    plain = RouterChatModel(router=pricey_router, candidates=pool)
    assert routing(plain.invoke(QUESTION))["model"] == PRICEY
    if how == "kwarg":
        message = plain.invoke(QUESTION, cost_weight=COST_WEIGHT)
    elif how == "configurable":
        message = plain.with_config(configurable={"cost_weight": COST_WEIGHT}).invoke(QUESTION)
    else:
        weighted = RouterChatModel(router=pricey_router, candidates=pool, cost_weight=COST_WEIGHT)
        message = weighted.invoke(QUESTION)
    meta = routing(message)
    assert meta["model"] == CHEAP
    assert meta["cost_weight"] == COST_WEIGHT
    assert meta["ranking"] == [CHEAP, PRICEY]
    assert_answered_by(message, pool, CHEAP)
    assert served.calls[-1].model == model_id(pool, CHEAP)
    # Routing options are the router's: they never reach the provider.
    assert "cost_weight" not in served.calls[-1].body


async def test_configurable_cost_weight_applies_to_astream(
    pricey_router: BaseRouter, pool: CandidatePool
) -> None:
    weighted = RouterChatModel(router=pricey_router, candidates=pool).with_config(
        configurable={"cost_weight": COST_WEIGHT}
    )
    message = await call(weighted, "astream", QUESTION)
    assert routing(message)["model"] == CHEAP
    assert_answered_by(message, pool, CHEAP)


def test_call_kwargs_override_configurable(pricey_router: BaseRouter, pool: CandidatePool) -> None:
    weighted = RouterChatModel(router=pricey_router, candidates=pool).with_config(
        configurable={"cost_weight": COST_WEIGHT}
    )
    assert routing(weighted.invoke(QUESTION, cost_weight=0.0))["model"] == PRICEY


def test_budget_excludes_dear_candidate(
    pricey_router: BaseRouter, pool: CandidatePool, served: FakeOpenAIServer
) -> None:
    plain = RouterChatModel(router=pricey_router, candidates=pool)
    costs = plain.decide([HumanMessage(QUESTION)]).costs
    budget = (costs[CHEAP] + costs[PRICEY]) / 2
    for message in (
        plain.invoke(QUESTION, budget=budget),
        plain.with_config(configurable={"budget": budget}).invoke(QUESTION),
    ):
        assert routing(message)["model"] == CHEAP
        assert routing(message)["budget"] == budget
        assert_answered_by(message, pool, CHEAP)
    assert all("budget" not in c.body for c in served.calls)


# --- routing mode --------------------------------------------------------------------------

CONVERSATION = [
    SystemMessage("Be brief."),
    HumanMessage("Tom has 3 apples and buys 5 more. How many apples does he have?"),
    AIMessage("8"),
    HumanMessage("thanks!"),
]
FULL_TEXT = (
    "system: Be brief.\n"
    "human: Tom has 3 apples and buys 5 more. How many apples does he have?\n"
    "ai: 8\n"
    "human: thanks!"
)


@pytest.mark.parametrize(
    ("how", "expected"),
    [
        ("default", "thanks!"),
        ("field", FULL_TEXT),
        ("kwarg", FULL_TEXT),
        ("configurable", FULL_TEXT),
        ("kwarg_current_only", "thanks!"),
    ],
)
def test_routing_mode_sets_text_the_router_sees(
    how: str, expected: str, pool: CandidatePool, served: FakeOpenAIServer
) -> None:
    router = RecordingRouter()
    mode = "full_context" if how == "field" else "current_only"
    llm = RouterChatModel(router=router, candidates=pool, routing_mode=mode)
    if how == "kwarg":
        message = llm.invoke(CONVERSATION, routing_mode="full_context")
    elif how == "configurable":
        message = llm.with_config(configurable={"routing_mode": "full_context"}).invoke(
            CONVERSATION
        )
    elif how == "kwarg_current_only":
        full = RouterChatModel(router=router, candidates=pool, routing_mode="full_context")
        message = full.invoke(CONVERSATION, routing_mode="current_only")
    else:
        message = llm.invoke(CONVERSATION)
    assert router.seen == [expected]
    # The candidate still receives the whole conversation.
    assert [m["role"] for m in served.calls[-1].messages] == ["system", "user", "assistant", "user"]
    assert "routing_mode" not in served.calls[-1].body
    assert_answered_by(message, pool, routing(message)["model"])


def test_routing_mode_changes_knn_choice(
    llm: RouterChatModel, knn_router: BaseRouter, pool: CandidatePool
) -> None:
    on_last = knn_router.route("thanks!").model
    on_all = knn_router.route(FULL_TEXT).model
    assert on_last != on_all, "pick a conversation whose two routing texts route differently"
    current = llm.invoke(CONVERSATION)
    full = llm.invoke(CONVERSATION, routing_mode="full_context")
    assert routing(current)["model"] == on_last
    assert routing(full)["model"] == on_all
    assert_answered_by(current, pool, on_last)
    assert_answered_by(full, pool, on_all)


RETRIEVAL_CONVERSATION = [
    HumanMessage("Write a Python function that sorts a list of numbers."),
    AIMessage("def sort(xs): return sorted(xs)"),
    HumanMessage("What is the capital city of France?"),
    AIMessage("Paris."),
    HumanMessage("Who painted the Mona Lisa?"),
    AIMessage("Leonardo da Vinci."),
    HumanMessage("Now make that Python code sort in descending order."),
]


@pytest.mark.parametrize(
    ("top_k", "expected"),
    [
        (1, [0, 3]),
        (2, [0, 1, 3]),  # the two nearest, in conversation order, then the current message
        (5, [0, 1, 2, 3]),
    ],
)
def test_retrieval_mode_adds_the_most_similar_earlier_questions(
    top_k: int, expected: list[int], pool: CandidatePool, served: FakeOpenAIServer
) -> None:
    asked = [m.text for m in RETRIEVAL_CONVERSATION if m.type == "human"]
    similarity_order = ["sorts a list", "capital city", "Mona Lisa"]
    text = routing_text(RETRIEVAL_CONVERSATION, "retrieval", top_k=top_k)
    assert text.split("\n") == [asked[i] for i in expected]
    # By cosine: the Python question is nearest; France and the Mona Lisa follow in that order
    # (checked with the embedder itself, so the test states what it relies on).
    vectors = embed_texts(asked)
    vectors = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    ranked = np.argsort(-(vectors[:3] @ vectors[3]))
    assert [similarity_order[i] for i in ranked] == similarity_order

    router = RecordingRouter()
    llm = RouterChatModel(
        router=router, candidates=pool, routing_mode="retrieval", retrieval_top_k=top_k
    )
    llm.invoke(RETRIEVAL_CONVERSATION)
    llm.invoke(RETRIEVAL_CONVERSATION, routing_mode="retrieval", retrieval_top_k=1)
    assert router.seen == [text, routing_text(RETRIEVAL_CONVERSATION, "retrieval", top_k=1)]
    assert routing_text(RETRIEVAL_CONVERSATION[:1], "retrieval") == asked[0]  # nothing earlier


def test_stop_is_forwarded_to_candidate(llm: RouterChatModel, served: FakeOpenAIServer) -> None:
    message = llm.invoke("hello you there", stop=["you"])
    assert served.calls[-1].body["stop"] == ["you"]
    assert message.text.endswith("You said: hello ")


@pytest.mark.parametrize("mode", MODES)
async def test_generation_params_are_sent_to_the_chosen_candidate(
    mode: str, llm: RouterChatModel, served: FakeOpenAIServer
) -> None:
    tuned = llm.model_copy(update={"temperature": 0.25, "max_tokens": 64, "stop": ["you"]})
    message = await call(tuned, mode, "hello you there")
    body = served.calls[-1].body
    assert (body["temperature"], body["stop"]) == (0.25, ["you"])
    assert body.get("max_tokens", body.get("max_completion_tokens")) == 64
    assert message.text.endswith("You said: hello ")
    # A per-call value wins over the model's default.
    await call(tuned, mode, "hello you there", temperature=0.9, stop=["there"])
    assert (served.calls[-1].body["temperature"], served.calls[-1].body["stop"]) == (0.9, ["there"])


def test_generation_params_are_traced(llm: RouterChatModel) -> None:
    tuned = llm.model_copy(update={"temperature": 0.25, "max_tokens": 64, "stop": ["x"]})
    params = tuned._get_ls_params()
    assert (params["ls_temperature"], params["ls_max_tokens"], params["ls_stop"]) == (
        0.25,
        64,
        ["x"],
    )


def test_streaming_field_makes_invoke_stream(
    llm: RouterChatModel, served: FakeOpenAIServer
) -> None:
    streaming = llm.model_copy(update={"streaming": True})
    streaming.model_fields_set.add("streaming")
    message = streaming.invoke(QUESTION)
    assert served.calls[-1].stream is True
    assert routing(message)["model"] == routing(llm.invoke(QUESTION))["model"]
    assert served.calls[-1].stream is False


# --- tools and structured output -----------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
async def test_bind_tools_sends_tools_to_chosen_candidate(
    mode: str, llm: RouterChatModel, pool: CandidatePool, served: FakeOpenAIServer
) -> None:
    text = "What is the weather in Paris?"
    expected = llm.decide([HumanMessage(text)]).model
    message = await call(llm.bind_tools([GetWeather, get_time]), mode, text)
    assert isinstance(message, AIMessage)
    assert [c["name"] for c in message.tool_calls] == ["GetWeather"]
    assert message.tool_calls[0]["args"] == {"city": "San Francisco"}  # the server's schema value
    assert routing(message)["model"] == expected
    served_call = served.calls[-1]
    assert served_call.model == model_id(pool, expected)
    assert served_call.tools is not None
    assert [t["function"]["name"] for t in served_call.tools] == ["GetWeather", "get_time"]
    assert "city" in served_call.tools[0]["function"]["parameters"]["properties"]


def test_bind_tools_forwards_tool_choice(llm: RouterChatModel, served: FakeOpenAIServer) -> None:
    message = llm.bind_tools([GetWeather, get_time], tool_choice="get_time").invoke("Time?")
    assert served.calls[-1].body["tool_choice"] == {
        "type": "function",
        "function": {"name": "get_time"},
    }
    assert isinstance(message, AIMessage)
    assert [c["name"] for c in message.tool_calls] == ["get_time"]


def test_with_structured_output_pydantic(
    llm: RouterChatModel, pool: CandidatePool, served: FakeOpenAIServer
) -> None:
    result = llm.with_structured_output(Answer).invoke("How sure are you?")
    assert isinstance(result, Answer)
    assert result == Answer(text="hello", confidence=3)  # the server's schema instance
    served_call = served.calls[-1]
    assert served_call.tools is not None
    assert [t["function"]["name"] for t in served_call.tools] == ["Answer"]
    # As on ChatOpenAI: the schema's tool is forced by name.
    assert served_call.body["tool_choice"] == {"type": "function", "function": {"name": "Answer"}}

    raw = llm.with_structured_output(Answer, include_raw=True).invoke("How sure are you?")
    assert raw["parsed"] == result
    assert raw["parsing_error"] is None
    assert_answered_by_tool(raw["raw"], pool)


def assert_answered_by_tool(message: BaseMessage, pool: CandidatePool) -> None:
    """A tool-call answer carries routing naming the candidate the server saw."""
    meta = routing(message)
    assert message.response_metadata["model_name"] == model_id(pool, meta["model"])


# --- callbacks -----------------------------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
async def test_callbacks_see_one_chat_model_run_with_the_router_as_its_child(
    mode: str, llm: RouterChatModel, pool: CandidatePool, served: FakeOpenAIServer
) -> None:
    recorder = RunRecorder()
    message = await call(llm, mode, QUESTION, config={"callbacks": [recorder]})
    chosen = routing(message)["model"]
    [run] = recorder.starts
    assert run["parent_run_id"] is None
    assert run["metadata"]["ls_provider"] == "llmrouter"
    assert run["metadata"]["ls_model_name"] == "llmrouter/knnrouter"
    assert run["metadata"]["llmrouter_router"] == "knnrouter"
    assert recorder.ends == [run["run_id"]]
    # The router is a child run whose output is the decision.
    [(name, parent, output)] = recorder.chains
    assert (name, parent) == ("knnrouter", run["run_id"])
    assert output.model == chosen
    # The run ends naming the candidate that answered (the tracer promotes this).
    [gateway] = recorder.gateways
    assert gateway["model"] == model_id(pool, chosen)
    assert gateway["provider"] == "openai"
    assert [c.model for c in served.calls] == [model_id(pool, chosen)]


@pytest.mark.parametrize("mode", MODES)
async def test_model_level_callbacks_and_tags_are_honoured(mode: str, llm: RouterChatModel) -> None:
    recorder = RunRecorder()
    own = llm.model_copy(update={"callbacks": [recorder], "tags": ["mine"]})
    await call(own, mode, QUESTION)
    [run] = recorder.starts
    assert run["metadata"]["llmrouter_router"] == "knnrouter"
    assert "mine" in run["tags"]
    assert recorder.ends == [run["run_id"]]


def test_generate_reports_model_callbacks_once(llm: RouterChatModel) -> None:
    recorder = RunRecorder()
    own = llm.model_copy(update={"callbacks": [recorder]})
    result = own.generate([[HumanMessage(QUESTION)]])
    assert result.generations[0][0].message.response_metadata["routing"]["router"] == "knnrouter"
    assert len(recorder.starts) == len(recorder.ends) == 1


def test_a_chain_sees_one_chat_model_run(llm: RouterChatModel, served: FakeOpenAIServer) -> None:
    recorder = RunRecorder()
    chain = ChatPromptTemplate.from_messages([("human", "{q}")]) | llm
    chain.invoke({"q": QUESTION}, config={"callbacks": [recorder]})
    assert len(recorder.starts) == 1
    assert len(served.calls) == 1


@pytest.mark.parametrize("mode", MODES)
async def test_usage_callback_counts_each_call_once(mode: str, llm: RouterChatModel) -> None:
    with get_usage_metadata_callback() as usage:
        message = await call(llm, mode, QUESTION)
    assert message.usage_metadata is not None
    [counted] = usage.usage_metadata.values()
    assert counted["total_tokens"] == message.usage_metadata["total_tokens"] > 0


# --- fallback ------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
async def test_fallback_to_next_best_when_chosen_fails(
    mode: str, llm: RouterChatModel, pool: CandidatePool, served: FakeOpenAIServer
) -> None:
    ranking = llm.decide([HumanMessage(QUESTION)]).ranking
    chosen, backup = ranking[0], ranking[1]
    served.set_behavior(model_id(pool, chosen), ModelBehavior(fail_status=500))
    message = await call(llm, mode, QUESTION)
    meta = routing(message)
    assert meta["chosen"] == chosen
    assert meta["model"] == backup
    assert meta["fallback"] is True
    assert [f["model"] for f in meta["failed"]] == [chosen]
    assert "Error code: 500" in meta["failed"][0]["error"]
    assert_answered_by(message, pool, backup)
    assert [c.status for c in served.calls_for(model_id(pool, chosen))] == [500]
    assert [c.status for c in served.calls_for(model_id(pool, backup))] == [200]
    if mode.endswith("stream"):
        assert meta["actual_cost"] > 0  # the final chunk prices the backup's answer


@pytest.mark.parametrize("mode", MODES)
async def test_all_candidates_failing_raises(
    mode: str, llm: RouterChatModel, pool: CandidatePool, served: FakeOpenAIServer
) -> None:
    text = f"{QUESTION} [[fail:500]]"
    tried = llm.decide([HumanMessage(text)]).ranking[: 1 + llm.max_fallbacks]
    with pytest.raises(AllCandidatesFailedError) as caught:
        await call(llm, mode, text)
    assert [name for name, _ in caught.value.failures] == tried
    assert all(isinstance(e, openai.InternalServerError) for _, e in caught.value.failures)
    assert isinstance(caught.value.__cause__, openai.InternalServerError)
    assert [(c.model, c.status) for c in served.calls] == [
        (model_id(pool, name), 500) for name in tried
    ]


@pytest.mark.parametrize("mode", MODES)
async def test_no_fallbacks_reraises_provider_error(
    mode: str, knn_router: BaseRouter, pool: CandidatePool, served: FakeOpenAIServer
) -> None:
    llm = RouterChatModel(router=knn_router, candidates=pool, max_fallbacks=0)
    with pytest.raises(openai.InternalServerError):
        await call(llm, mode, f"{QUESTION} [[fail:500]]")
    assert [c.status for c in served.calls] == [500]


def test_fallback_on_limits_which_errors_fall_back(
    knn_router: BaseRouter, pool: CandidatePool, served: FakeOpenAIServer
) -> None:
    llm = RouterChatModel(router=knn_router, candidates=pool, fallback_on=(openai.RateLimitError,))
    with pytest.raises(openai.InternalServerError):
        llm.invoke(f"{QUESTION} [[fail:500]]")
    assert len(served.calls) == 1
    served.reset()
    with pytest.raises(AllCandidatesFailedError):
        llm.invoke(f"{QUESTION} [[fail:429]]")
    assert [c.status for c in served.calls] == [429] * (1 + llm.max_fallbacks)


# --- keys, pools and configuration errors --------------------------------------------------


@pytest.mark.parametrize("keys", ["k1,k2", '["k1", "k2"]', '{"nvidia": "k1,k2"}'])
async def test_api_keys_rotate_per_call(
    keys: str, candidate_pool: PoolFactory, served: FakeOpenAIServer
) -> None:
    pool = candidate_pool(api_keys=keys)
    llm = RouterChatModel(router=create_router("smallest_llm"), candidates=pool)
    llm.invoke("one")
    await llm.ainvoke("two")
    llm.invoke("three")
    assert len({c.model for c in served.calls}) == 1
    assert [c.api_key for c in served.calls] == ["k1", "k2", "k1"]


def test_models_dict_of_chat_models(
    knn_router: BaseRouter, openai_server: FakeOpenAIServer, served: FakeOpenAIServer
) -> None:
    models: dict[str, Any] = {
        name: ChatOpenAI(
            model=f"custom/{name}",
            base_url=openai_server.base_url,
            api_key="given",
            max_retries=0,
        )
        for name in (CHEAP, "llama-3.1-8b-instruct", "qwen2.5-7b-instruct")
    }
    llm = RouterChatModel(router=knn_router, models=models)
    assert llm.pool.names == list(models)
    # Prices come from the fitted router.
    assert llm.pool[CHEAP].input_price == pytest.approx(0.1)
    message = llm.invoke(QUESTION)
    meta = routing(message)
    assert sorted(meta["ranking"]) == sorted(models)
    # The router's best candidate among those given.
    assert meta["model"] == next(n for n in knn_router.route(QUESTION).ranking if n in models)
    assert message.text.startswith(f"[custom/{meta['model']}] ")
    assert served.calls[-1].api_key == "given"


def test_models_dict_with_untrained_baseline(openai_server: FakeOpenAIServer) -> None:
    models: dict[str, Any] = {
        name: ChatOpenAI(model=name, base_url=openai_server.base_url, api_key="x", max_retries=0)
        for name in ("alpha", "beta")
    }
    llm = RouterChatModel(router=create_router("largest_llm"), models=models)
    message = llm.invoke("hi")
    assert routing(message)["model"] in models
    assert message.text.startswith(f"[{routing(message)['model']}] ")


def test_router_candidates_missing_from_models(
    knn_router: BaseRouter, openai_server: FakeOpenAIServer
) -> None:
    stranger = ChatOpenAI(model="x", base_url=openai_server.base_url, api_key="x")
    with pytest.raises(ValidationError, match="none of the router's candidates"):
        RouterChatModel(router=knn_router, models={"stranger": stranger})


@pytest.mark.usefixtures("socket_disabled")
def test_missing_endpoint_names_candidate(candidate_pool: PoolFactory) -> None:
    llm = RouterChatModel(
        router=create_router("smallest_llm"), candidates=candidate_pool(api_endpoint=None)
    )
    chosen = llm.decide([HumanMessage("hi")]).model
    with pytest.raises(MissingEndpointError, match=repr(chosen)):
        llm.invoke("hi")


@pytest.mark.usefixtures("socket_disabled")
@pytest.mark.parametrize("mode", MODES)
async def test_missing_api_key_for_remote_endpoint(mode: str, candidate_pool: PoolFactory) -> None:
    # With sockets disabled, any connection attempt would raise SocketBlockedError, which
    # RouterChatModel would treat as a provider failure and wrap in AllCandidatesFailedError.
    pool = candidate_pool(api_endpoint="https://example.invalid/v1")
    llm = RouterChatModel(router=create_router("smallest_llm"), candidates=pool)
    chosen = llm.decide([HumanMessage("hi")]).model
    with pytest.raises(MissingAPIKeyError, match=f"candidate {chosen!r}"):
        await call(llm, mode, "hi")


def test_unfitted_trainable_router_is_rejected(pool: CandidatePool) -> None:
    with pytest.raises(ValidationError, match="knnrouter is not fitted"):
        RouterChatModel(router=create_router("knnrouter"), candidates=pool)


def test_needs_candidates_or_models(knn_router: BaseRouter) -> None:
    with pytest.raises(ValidationError, match="give candidates="):
        RouterChatModel(router=knn_router)


@pytest.mark.parametrize(
    ("name", "params", "expected"),
    [
        ("smallest_llm", {}, "qwen2.5-7b-instruct"),  # 7B; ties on price go to list order
        ("largest_llm", {}, "mixtral-8x22b-instruct-v0.1"),  # 141B
        ("randomrouter", {"seed": 7}, None),
    ],
)
def test_untrained_baselines_are_set_up_from_pool(
    name: str,
    params: dict[str, Any],
    expected: str | None,
    pool: CandidatePool,
    served: FakeOpenAIServer,
) -> None:
    router = create_router(name, **params)
    assert not router.is_fitted
    llm = RouterChatModel(router=router, candidates=pool)
    assert router.is_fitted
    assert router.candidates_ == pool.names
    first, second = llm.invoke(QUESTION), llm.invoke(QUESTION)
    chosen = routing(first)["model"]
    if expected is not None:
        assert chosen == expected
    assert routing(second)["model"] == chosen  # seeded random: same text, same candidate
    assert_answered_by(first, pool, chosen)
    assert {c.model for c in served.calls} == {model_id(pool, chosen)}
