"""``llmrouter serve``: the OpenAI-compatible server, driven by real clients over HTTP.

The server runs in uvicorn on 127.0.0.1 (a thread of this process) over a `Deployment` of the
session's kNN router and the ``smallest_llm`` baseline; its candidates are the local
`FakeOpenAIServer`, whose call log tells which candidate each request reached.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
import uvicorn
from langchain_core.messages import AIMessageChunk, HumanMessage, ToolMessage
from langchain_openai import ChatOpenAI
from serve_runner import running  # tests/unit/serve_runner.py

from langchain_llmrouter import BaseRouter, create_router
from langchain_llmrouter.cli.main import main
from langchain_llmrouter.errors import ConfigError
from langchain_llmrouter.serve import Deployment, ServerAuth, create_app, load_serve_config
from langchain_llmrouter.testing import FakeOpenAIServer, ModelBehavior

GOOD_KEY = "sk-good-0123456789"
CAPPED_KEY = "sk-capped-0123456789"
TINY_LIMIT = 1e-9
"""Dollars: the capped key's first answer uses it up."""

WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "The weather in a city.",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
        },
    },
}


@pytest.fixture(scope="module")
def deployment(candidate_pool: Any, knn_router: BaseRouter) -> Deployment:
    """The session's kNN router (``knn``, behind ``auto``) and ``smallest_llm`` (``small``)."""
    pool = candidate_pool()
    small = create_router("smallest_llm").fit_candidates(pool)
    return Deployment(pool=pool, routers={"knn": knn_router, "small": small}, default="knn")


@pytest.fixture(scope="module")
def server_url(deployment: Deployment) -> Iterator[str]:
    """The app in uvicorn on a free local port; keys ``GOOD_KEY`` and the capped ``CAPPED_KEY``."""
    auth = ServerAuth({GOOD_KEY: None, CAPPED_KEY: TINY_LIMIT})
    app = create_app(deployment, auth=auth)
    with running(app) as url:
        yield url


@pytest.fixture
def clean(served: FakeOpenAIServer, deployment: Deployment) -> Iterator[FakeOpenAIServer]:
    """The fake candidates' server with an empty log, and every candidate healthy."""
    deployment.pool.health.reset()
    yield served
    deployment.pool.health.reset()


def _client(url: str, key: str = GOOD_KEY) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{url}/v1", api_key=key, max_retries=0)


def _post(url: str, body: dict[str, Any], key: str | None = GOOD_KEY) -> httpx.Response:
    headers = {"authorization": f"Bearer {key}"} if key is not None else {}
    return httpx.post(f"{url}/v1/chat/completions", json=body, headers=headers, timeout=30)


def _ask(text: str, model: str = "auto", **extra: Any) -> dict[str, Any]:
    return {"model": model, "messages": [{"role": "user", "content": text}], **extra}


# --- the official openai client ----------------------------------------------------------


def test_openai_client_answers_with_the_routed_candidate(
    server_url: str, clean: FakeOpenAIServer, deployment: Deployment
) -> None:
    raw = _client(server_url).chat.completions.with_raw_response.create(
        model="auto", messages=[{"role": "user", "content": "What is 17 * 23?"}], user="u-1"
    )
    answer = raw.parse()
    answered = answer.model
    assert raw.headers["x-llmrouter-model"] == answered
    assert raw.headers["x-llmrouter-router"] == "knn"
    assert raw.headers["x-llmrouter-fallback"] == "false"
    assert float(raw.headers["x-llmrouter-est-cost"]) > 0
    model_id = deployment.pool[answered].model
    assert answer.choices[0].message.content == f"[{model_id}] You said: What is 17 * 23?"
    assert answer.usage is not None and answer.usage.total_tokens > 0
    routing = answer.model_extra["llmrouter"]
    assert routing["router"] == "knn" and routing["algorithm"] == "knnrouter"
    assert routing["model"] == answered and routing["requested"] == "auto"
    assert routing["actual_cost"] > 0
    [call] = clean.calls
    assert call.model == model_id and call.body["user"] == "u-1"


async def test_async_openai_stream_ends_with_usage_and_done(
    server_url: str, clean: FakeOpenAIServer
) -> None:
    client = openai.AsyncOpenAI(base_url=f"{server_url}/v1", api_key=GOOD_KEY, max_retries=0)
    stream = await client.chat.completions.create(
        model="router-small",
        messages=[{"role": "user", "content": "Name three primes."}],
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = [chunk async for chunk in stream]
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text.endswith("You said: Name three primes.")
    assert {c.model for c in chunks} == {"qwen2.5-7b-instruct"}
    assert chunks[-1].choices == [] and chunks[-1].usage is not None
    assert chunks[-1].usage.completion_tokens > 0
    assert chunks[-2].choices[0].finish_reason == "stop"
    assert chunks[-1].model_extra["llmrouter"]["actual_cost"] > 0
    assert [c.stream for c in clean.calls] == [True]


def test_raw_stream_is_sse_ending_in_done(server_url: str, clean: FakeOpenAIServer) -> None:
    with httpx.stream(
        "POST",
        f"{server_url}/v1/chat/completions",
        json=_ask("hello", "router-small", stream=True),
        headers={"authorization": f"Bearer {GOOD_KEY}"},
    ) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        assert response.headers["x-llmrouter-model"] == "qwen2.5-7b-instruct"
        lines = [line for line in response.iter_lines() if line]
    assert all(line.startswith("data: ") for line in lines)
    assert lines[-1] == "data: [DONE]"
    assert "usage" not in json.loads(lines[-2][6:])  # not asked for


@pytest.mark.parametrize("stream", [False, True])
def test_openai_client_tools_round_trip(
    server_url: str, clean: FakeOpenAIServer, stream: bool
) -> None:
    client = _client(server_url)
    messages: list[Any] = [{"role": "user", "content": "Weather in Paris?"}]
    kwargs: dict[str, Any] = {"model": "router-small", "tools": [WEATHER_TOOL]}
    if stream:
        chunks = list(client.chat.completions.create(messages=messages, stream=True, **kwargs))
        deltas = [d for c in chunks if c.choices for d in c.choices[0].delta.tool_calls or []]
        name = "".join(d.function.name or "" for d in deltas if d.function)
        arguments = "".join(d.function.arguments or "" for d in deltas if d.function)
        call_id = next(d.id for d in deltas if d.id)
        assert chunks[-1].choices[0].finish_reason == "tool_calls"
    else:
        answer = client.chat.completions.create(messages=messages, tool_choice="required", **kwargs)
        [call] = answer.choices[0].message.tool_calls or []
        name, arguments, call_id = call.function.name, call.function.arguments, call.id
        assert answer.choices[0].finish_reason == "tool_calls"
    assert name == "get_weather" and "city" in json.loads(arguments)
    assert clean.calls[0].tools == [WEATHER_TOOL]
    messages += [
        {
            "role": "assistant",
            "tool_calls": [
                {
                    "id": call_id,
                    "type": "function",
                    "function": {"name": name, "arguments": arguments},
                }
            ],
        },
        {"role": "tool", "tool_call_id": call_id, "content": "sunny, 21 C"},
    ]
    final = client.chat.completions.create(messages=messages, **kwargs)
    assert final.choices[0].message.content.endswith("Tool result: sunny, 21 C")
    assert clean.calls[-1].messages[-1] == {
        "role": "tool",
        "tool_call_id": call_id,
        "content": "sunny, 21 C",
    }


def test_request_parameters_reach_the_candidate(server_url: str, clean: FakeOpenAIServer) -> None:
    body = _ask(
        "Give JSON.",
        "router-small",
        temperature=0.3,
        max_tokens=50,
        stop=["END"],
        response_format={"type": "json_object"},
        messages=[
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "Give JSON."},
        ],
    )
    assert _post(server_url, body).status_code == 200
    [call] = clean.calls
    assert call.body["temperature"] == 0.3
    assert call.body.get("max_completion_tokens", call.body.get("max_tokens")) == 50
    assert call.body["stop"] == ["END"]
    assert call.body["response_format"] == {"type": "json_object"}
    assert call.messages[0] == {"role": "system", "content": "Be brief."}


# --- ChatOpenAI against the server ---------------------------------------------------------


async def test_chat_openai_pointed_at_the_server(server_url: str, clean: FakeOpenAIServer) -> None:
    llm = ChatOpenAI(
        model="router-small",
        base_url=f"{server_url}/v1",
        api_key=GOOD_KEY,
        max_retries=0,
        stream_usage=True,  # asks for stream_options.include_usage
    )
    message = llm.invoke([HumanMessage("hi there")])
    assert message.response_metadata["model_name"] == "qwen2.5-7b-instruct"
    assert message.text.endswith("You said: hi there")
    chunks = [c async for c in llm.astream("stream please")]
    merged = chunks[0]
    for chunk in chunks[1:]:
        merged = merged + chunk
    assert isinstance(merged, AIMessageChunk) and merged.text.endswith("You said: stream please")
    assert merged.usage_metadata is not None and merged.usage_metadata["output_tokens"] > 0
    tool_call = llm.bind_tools([WEATHER_TOOL], tool_choice="get_weather").invoke("Paris?")
    assert tool_call.tool_calls[0]["name"] == "get_weather"
    follow = llm.bind_tools([WEATHER_TOOL]).invoke(
        [
            HumanMessage("Paris?"),
            tool_call,
            ToolMessage("rain", tool_call_id=tool_call.tool_calls[0]["id"]),
        ]
    )
    assert follow.text.endswith("Tool result: rain")
    assert len(clean.calls) == 4


# --- model names -------------------------------------------------------------------------


def test_models_lists_every_name(server_url: str, deployment: Deployment) -> None:
    ids = [m.id for m in _client(server_url).models.list()]
    assert ids[:3] == ["auto", "router-knn", "router-small"]
    assert set(ids[3:]) == set(deployment.pool.names)


def test_cost_weight_in_the_model_name_steers_routing(
    server_url: str, clean: FakeOpenAIServer, deployment: Deployment
) -> None:
    question = "Prove that the square root of two is irrational, step by step."
    costly = _post(server_url, _ask(question, "router-knn-0"))
    cheap = _post(server_url, _ask(question, "router-knn-1000000"))
    assert costly.headers["x-llmrouter-cost-weight"] == "0"
    assert cheap.headers["x-llmrouter-cost-weight"] == "1e+06"
    assert float(cheap.headers["x-llmrouter-est-cost"]) <= float(
        costly.headers["x-llmrouter-est-cost"]
    )
    cheapest = min(deployment.pool, key=lambda c: c.input_price + c.output_price).input_price
    assert deployment.pool[cheap.json()["model"]].input_price == cheapest


def test_a_candidate_name_calls_it_directly(server_url: str, clean: FakeOpenAIServer) -> None:
    response = _post(server_url, _ask("hi", "llama3-70b-instruct"))
    assert response.status_code == 200
    assert response.json()["model"] == "llama3-70b-instruct"
    assert response.headers["x-llmrouter-router"] == "direct"
    assert [c.model for c in clean.calls] == ["meta/llama3-70b-instruct"]


def test_unknown_model_is_404_listing_valid_names(server_url: str, clean: FakeOpenAIServer) -> None:
    with pytest.raises(openai.NotFoundError) as caught:
        _client(server_url).chat.completions.create(
            model="gpt-5", messages=[{"role": "user", "content": "hi"}]
        )
    error = caught.value.body
    assert isinstance(error, dict) and error["code"] == "model_not_found"
    assert "router-knn" in error["message"] and "llama3-70b-instruct" in error["message"]
    assert clean.calls == []


@pytest.mark.parametrize(
    ("body", "needle"),
    [
        ({"model": "auto", "messages": []}, "messages"),
        (_ask("hi", n=2), "n"),
        (_ask("hi", frobnicate=True), "frobnicate"),
        (_ask("hi", temperature=7), "temperature"),
    ],
)
def test_bad_requests_are_400(
    server_url: str, clean: FakeOpenAIServer, body: dict[str, Any], needle: str
) -> None:
    response = _post(server_url, body)
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["type"] == "invalid_request_error" and needle in error["message"]
    assert clean.calls == []


# --- auth and spend limits ---------------------------------------------------------------


@pytest.mark.parametrize(
    "header",
    [None, "Bearer sk-wrong", f"Bearer {GOOD_KEY[:-1]}", f"Basic {GOOD_KEY}"],
    ids=["no-key", "wrong-key", "prefix-of-a-key", "not-bearer"],
)
def test_requests_without_a_valid_key_are_401(
    server_url: str, clean: FakeOpenAIServer, header: str | None
) -> None:
    headers = {"authorization": header} if header is not None else {}
    response = httpx.post(f"{server_url}/v1/chat/completions", json=_ask("hi"), headers=headers)
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "invalid_api_key"
    assert httpx.get(f"{server_url}/v1/models").status_code == 401
    assert clean.calls == []


def test_a_key_over_its_spend_limit_is_429_before_any_call(
    server_url: str, clean: FakeOpenAIServer
) -> None:
    assert _post(server_url, _ask("first", "router-small"), key=CAPPED_KEY).status_code == 200
    assert len(clean.calls) == 1
    with pytest.raises(openai.RateLimitError) as caught:
        _client(server_url, CAPPED_KEY).chat.completions.create(
            model="router-small", messages=[{"role": "user", "content": "second"}]
        )
    assert isinstance(caught.value.body, dict)
    assert caught.value.body["code"] == "spend_limit_exceeded"
    assert len(clean.calls) == 1  # the refused request reached no candidate
    assert _post(server_url, _ask("other key", "router-small")).status_code == 200


def test_keys_from_env_and_file(tmp_path: Path) -> None:
    keys = tmp_path / "keys.txt"
    keys.write_text("# team keys\nsk-file:2.5\nsk-file-2  # no limit of its own\n")
    auth = ServerAuth.from_sources(
        keys_env="K", keys_file=keys, spend_limit=1.0, environ={"K": "sk-env, sk-env-2:0.5"}
    )
    ids = {k: auth.check(f"Bearer {k}") for k in ("sk-env", "sk-env-2", "sk-file", "sk-file-2")}
    assert all(ids.values())
    assert [auth.limit(ids[k]) for k in ids] == [1.0, 0.5, 2.5, 1.0]  # type: ignore[arg-type]
    assert auth.check("Bearer sk-nope") is None and auth.check("Basic sk-env") is None
    with pytest.raises(ConfigError, match="no server keys"):
        ServerAuth.from_sources(keys_env="K", environ={})


# --- failures ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("trigger", "status", "code"),
    [
        ("500", 502, "all_candidates_failed"),
        ("503", 503, "all_candidates_failed"),
        ("429", 429, "rate_limit_exceeded"),
    ],
)
@pytest.mark.parametrize("stream", [False, True])
def test_every_candidate_failing_maps_to_the_right_status(
    server_url: str, clean: FakeOpenAIServer, trigger: str, status: int, code: str, stream: bool
) -> None:
    response = _post(server_url, _ask(f"[[fail:{trigger}]] hi", "router-small", stream=stream))
    assert response.status_code == status
    assert response.json()["error"]["code"] == code
    assert len(clean.calls) == 3  # the chosen candidate and max_fallbacks=2 more


def test_a_failed_candidate_falls_back(
    server_url: str, clean: FakeOpenAIServer, deployment: Deployment
) -> None:
    clean.set_behavior(deployment.pool["qwen2.5-7b-instruct"].model, ModelBehavior(fail_status=503))
    response = _post(server_url, _ask("hi", "router-small"))
    assert response.status_code == 200
    assert response.headers["x-llmrouter-fallback"] == "true"
    assert response.headers["x-llmrouter-chosen"] == "qwen2.5-7b-instruct"
    assert response.json()["model"] == response.headers["x-llmrouter-model"] == "codegemma-7b"
    metrics = httpx.get(f"{server_url}/metrics").text
    assert 'llmrouter_fallbacks_total{router="small"}' in metrics


# --- health and metrics ------------------------------------------------------------------


def test_health_and_metrics_call_no_candidate(server_url: str, clean: FakeOpenAIServer) -> None:
    assert httpx.get(f"{server_url}/health/liveliness").json() == {"status": "ok"}
    ready = httpx.get(f"{server_url}/health/readiness")
    assert ready.status_code == 200 and ready.json()["ready"] is True
    assert ready.json()["routers"] == {"knn": True, "small": True}
    assert _post(server_url, _ask("count me", "router-small")).status_code == 200
    metrics = httpx.get(f"{server_url}/metrics")
    assert metrics.headers["content-type"].startswith("text/plain")
    text = metrics.text
    for line in (
        'llmrouter_requests_total{router="small",status="200"}',
        'llmrouter_routed_total{candidate="qwen2.5-7b-instruct",router="small"}',
        'llmrouter_estimated_dollars_total{router="small"}',
        'llmrouter_actual_dollars_total{router="small"}',
        'llmrouter_routing_latency_seconds_count{router="small"}',
        'llmrouter_requests_total{router="-",status="401"}',
    ):
        assert line in text, line
    assert len(clean.calls) == 1


# --- config and command line -------------------------------------------------------------


def test_create_app_from_a_config_file(
    tmp_path: Path, shared_data: Path, clean: FakeOpenAIServer
) -> None:
    from fastapi.testclient import TestClient

    config = tmp_path / "serve.yaml"
    config.write_text(
        f"candidates:\n  llm_data: {shared_data / 'default_llm.json'}\n"
        f"  api_endpoint: {clean.base_url}\n  max_retries: 0\n"
        "routers:\n  cheap:\n    router: smallest_llm\n    cost_weight: 0.5\n"
        "auth:\n  keys_env: TEST_SERVE_KEYS\n"
    )
    with pytest.raises(ConfigError, match="no server keys"):
        create_app(config)
    app = create_app(config, auth=ServerAuth.disabled())
    assert app.state.llmrouter.deployment.resolve("auto").options == {"cost_weight": 0.5}
    response = TestClient(app).post("/v1/chat/completions", json=_ask("hi"))
    assert response.status_code == 200
    assert response.headers["x-llmrouter-router"] == "cheap"
    assert response.json()["model"] == "qwen2.5-7b-instruct"


def test_bad_serve_config_names_the_key(tmp_path: Path) -> None:
    config = tmp_path / "serve.yaml"
    config.write_text("candidates:\n  llm_data: x.json\nrouters:\n  a:\n    routr: knnrouter\n")
    with pytest.raises(ConfigError, match="routr"):
        load_serve_config(config)


def test_cli_refuses_to_serve_without_keys(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("LLMROUTER_SERVER_KEYS", raising=False)
    example = Path(__file__).resolve().parents[2] / "configs" / "serve" / "example.yaml"
    assert main(["serve", "--config", str(example)]) == 2
    assert "--no-auth" in capsys.readouterr().err


async def test_two_apps_from_one_config_route_alike(
    tmp_path: Path, shared_data: Path, clean: FakeOpenAIServer
) -> None:
    """Workers share nothing but the config: each builds its own app, and a prompt gets the
    same candidate from either, also when the prompts arrive concurrently."""
    import asyncio

    config = tmp_path / "serve.yaml"
    config.write_text(
        f"candidates:\n  llm_data: {shared_data / 'default_llm.json'}\n"
        f"  api_endpoint: {clean.base_url}\n  max_retries: 0\n"
        "routers:\n  spread:\n    router: randomrouter\n    hparam: {seed: 7}\n"
    )
    apps = [create_app(config, auth=ServerAuth.disabled()) for _ in range(2)]
    prompts = [f"Prompt {i}: what is {i} squared?" for i in range(24)]

    async def route(app: Any, prompt: str) -> str:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://app") as client:
            response = await client.post("/v1/chat/completions", json=_ask(prompt))
        assert response.status_code == 200, response.text
        return response.headers["x-llmrouter-model"]

    concurrent = await asyncio.gather(*(route(apps[0], p) for p in prompts))
    one_by_one = [await route(apps[1], p) for p in prompts]
    assert concurrent == one_by_one
    assert len(set(concurrent)) > 3  # the router really spreads, so the check means something


@pytest.mark.parametrize("workers", ["1", "2"])
def test_cli_keeps_idle_connections_open_past_client_expiry(
    workers: str, tmp_path: Path, shared_data: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """uvicorn's own 5 s keep-alive equals httpx's idle expiry: a client reusing a connection
    just as the server closed it got a reset (2 of 2,000 requests in the load benchmark)."""
    from langchain_llmrouter.serve.app import CONFIG_ENV, NO_AUTH_ENV

    monkeypatch.delenv(CONFIG_ENV, raising=False)  # restored after the test
    monkeypatch.delenv(NO_AUTH_ENV, raising=False)
    config = tmp_path / "serve.yaml"
    config.write_text(
        f"candidates:\n  llm_data: {shared_data / 'default_llm.json'}\n"
        "routers:\n  small:\n    router: smallest_llm\n"
    )
    seen: dict[str, Any] = {}
    monkeypatch.setattr(uvicorn, "run", lambda app, **kwargs: seen.update(kwargs))
    assert main(["serve", "--config", str(config), "--no-auth", "--workers", workers]) == 0
    assert seen["timeout_keep_alive"] == 65 > httpx.Limits().keepalive_expiry  # type: ignore[operator]
    argv = ["serve", "--config", str(config), "--no-auth", "--timeout-keep-alive", "120"]
    assert main([*argv, "--workers", workers]) == 0
    assert seen["timeout_keep_alive"] == 120
