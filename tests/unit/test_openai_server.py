"""Tests of the fake OpenAI server, driven by the real ``ChatOpenAI`` client over HTTP."""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import socket
import time
import urllib.error
import urllib.parse
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from enum import StrEnum
from typing import Any, Literal

import openai
import pytest
from langchain_core.messages import AIMessage, AIMessageChunk, HumanMessage, ToolMessage
from langchain_core.tools import tool
from langchain_openai import ChatOpenAI
from pydantic import BaseModel, Field

from langchain_llmrouter.testing import (
    FAULT_KINDS,
    FakeOpenAIServer,
    FaultInjection,
    ModelBehavior,
    ServedCall,
)


@pytest.fixture(scope="module")
def server() -> Any:
    """One server for the whole module; tests use their own model names."""
    with FakeOpenAIServer({"alpha": ModelBehavior(), "beta": ModelBehavior()}) as srv:
        yield srv


def chat(server: FakeOpenAIServer, model: str = "alpha", **kwargs: Any) -> ChatOpenAI:
    """Return a real ChatOpenAI client pointed at ``server``."""
    kwargs.setdefault("max_retries", 0)
    return ChatOpenAI(model=model, base_url=server.base_url, api_key="test", **kwargs)


def http(server: FakeOpenAIServer, path: str, body: bytes | None = None) -> tuple[int, dict]:
    """Send a raw request (stdlib only) and return the status and decoded JSON body."""
    url = server.base_url.removesuffix("/v1") + path
    request = urllib.request.Request(url, data=body, method="POST" if body else "GET")
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


@tool
def add(a: int, b: int) -> int:
    """Add two integers."""
    return a + b


@tool
def multiply(x: float, y: float) -> float:
    """Multiply two numbers."""
    return x * y


class GetWeather(BaseModel):
    """Get the current weather in a place."""

    location: str = Field(description="city and state")
    unit: Literal["celsius", "fahrenheit"]


class Color(StrEnum):
    """A colour."""

    RED = "red"
    BLUE = "blue"


class Address(BaseModel):
    """An address."""

    city: str
    zip_code: int


class Person(BaseModel):
    """A person."""

    name: str
    age: int
    height: float
    member: bool
    favourite: Color
    address: Address
    tags: list[str]
    nickname: str | None = None


def test_invoke_prefix_and_usage(server: FakeOpenAIServer) -> None:
    result = chat(server).invoke("hello there")
    assert result.content == "[alpha] You said: hello there"
    # prompt: ceil(len("hello there") / 4) = 3; completion: 5 words.
    assert result.usage_metadata is not None
    assert result.usage_metadata["input_tokens"] == 3
    assert result.usage_metadata["output_tokens"] == 5
    assert result.usage_metadata["total_tokens"] == 8
    assert result.response_metadata["finish_reason"] == "stop"


def test_two_models_answer_recognisably(server: FakeOpenAIServer) -> None:
    assert chat(server, "alpha").invoke("x").content == "[alpha] You said: x"
    assert chat(server, "beta").invoke("x").content == "[beta] You said: x"
    assert chat(server, "not-configured").invoke("x").content == "[not-configured] You said: x"


def test_content_parts_and_history(server: FakeOpenAIServer) -> None:
    parts = [{"type": "text", "text": "first "}, {"type": "text", "text": "second"}]
    messages = [HumanMessage("old"), AIMessage("reply"), HumanMessage(content=parts)]
    assert chat(server).invoke(messages).content == "[alpha] You said: first second"


def test_stream_matches_invoke_with_usage(server: FakeOpenAIServer) -> None:
    llm = chat(server, stream_usage=True)
    prompt = "please stream these words"
    chunks = list(llm.stream(prompt))
    assert len([c for c in chunks if c.content]) > 1
    total = chunks[0]
    for chunk in chunks[1:]:
        total += chunk
    invoked = llm.invoke(prompt)
    assert total.content == invoked.content == "[alpha] You said: please stream these words"
    assert total.usage_metadata is not None and invoked.usage_metadata is not None
    for key in ("input_tokens", "output_tokens", "total_tokens"):
        assert total.usage_metadata[key] == invoked.usage_metadata[key]
    assert server.calls[-2].stream and not server.calls[-1].stream


def test_stop_and_max_tokens(server: FakeOpenAIServer) -> None:
    assert chat(server).invoke("hello there", stop=["there"]).content == "[alpha] You said: hello "
    limited = chat(server, max_tokens=2).invoke("one two three")
    assert limited.content == "[alpha] You"
    assert limited.response_metadata["finish_reason"] == "length"


def test_n_choices(server: FakeOpenAIServer) -> None:
    result = chat(server, n=2).generate([[HumanMessage("twice")]])
    texts = [g.text for g in result.generations[0]]
    assert texts == ["[alpha] You said: twice"] * 2


def test_tool_call_args_from_schema(server: FakeOpenAIServer) -> None:
    result = chat(server).bind_tools([add, GetWeather]).invoke("what is 3 + 3?")
    assert isinstance(result, AIMessage)
    assert result.content == ""
    assert result.response_metadata["finish_reason"] == "tool_calls"
    [call] = result.tool_calls
    assert call["name"] == "add"
    assert call["args"] == {"a": 3, "b": 3}
    assert call["id"] and call["id"].startswith("call_")
    assert server.calls[-1].tools is not None and len(server.calls[-1].tools) == 2

    weather = chat(server).bind_tools([GetWeather], tool_choice="GetWeather").invoke("weather?")
    assert weather.tool_calls[0]["args"] == {"location": "San Francisco", "unit": "celsius"}
    named = chat(server).bind_tools([add, multiply], tool_choice="multiply").invoke("2*2")
    assert named.tool_calls[0]["name"] == "multiply"
    assert named.tool_calls[0]["args"] == {"x": 3.0, "y": 3.0}


def test_tool_result_answered_in_text(server: FakeOpenAIServer) -> None:
    llm = chat(server).bind_tools([add])
    first = llm.invoke("add 3 and 3")
    messages = [
        HumanMessage("add 3 and 3"),
        first,
        ToolMessage("6", tool_call_id=first.tool_calls[0]["id"]),
    ]
    final = llm.invoke(messages)
    assert final.content == "[alpha] Tool result: 6"
    assert not final.tool_calls
    forced = chat(server).bind_tools([add], tool_choice="any").invoke(messages)
    assert forced.tool_calls[0]["name"] == "add"
    assert chat(server).bind_tools([add], tool_choice="none").invoke("hi").content == (
        "[alpha] You said: hi"
    )


def test_streamed_tool_call_aggregates(server: FakeOpenAIServer) -> None:
    llm = chat(server).bind_tools([add])
    chunks = list(llm.stream("add please"))
    arg_chunks = [c for c in chunks if c.tool_call_chunks and c.tool_call_chunks[0]["args"]]
    assert len(arg_chunks) >= 2
    total = chunks[0]
    for chunk in chunks[1:]:
        total += chunk
    assert isinstance(total, AIMessageChunk)
    assert total.tool_calls == llm.invoke("add please").tool_calls


@pytest.mark.parametrize("method", ["json_schema", "function_calling", None])
def test_structured_output(server: FakeOpenAIServer, method: str | None) -> None:
    kwargs = {"method": method} if method else {}
    person = chat(server).with_structured_output(Person, **kwargs).invoke("describe someone")
    assert person == Person(
        name="hello",
        age=3,
        height=3.0,
        member=True,
        favourite=Color.RED,
        address=Address(city="San Francisco", zip_code=3),
        tags=[],
        nickname="hello",
    )


def test_json_mode(server: FakeOpenAIServer) -> None:
    result = chat(server).with_structured_output(method="json_mode").invoke("answer in json")
    assert result == {"answer": "[alpha] You said: answer in json"}


def test_reply_callable_and_its_errors(server: FakeOpenAIServer) -> None:
    server.set_behavior("echo-count", ModelBehavior(reply=lambda msgs: f"{len(msgs)} messages"))
    assert chat(server, "echo-count").invoke("hi").content == "1 messages"

    def broken(messages: list[dict]) -> str:
        raise ValueError("reply exploded")

    server.set_behavior("broken", ModelBehavior(reply=broken))
    with pytest.raises(openai.InternalServerError, match="reply exploded"):
        chat(server, "broken").invoke("hi")


def test_error_statuses(server: FakeOpenAIServer) -> None:
    server.set_behavior("limited", ModelBehavior(fail_status=429))
    server.set_behavior("down", ModelBehavior(fail_status=500))
    with pytest.raises(openai.RateLimitError) as rate_error:
        chat(server, "limited").invoke("hi")
    assert rate_error.value.response.headers["retry-after"] == "0"
    assert rate_error.value.code == "rate_limit_exceeded"
    with pytest.raises(openai.InternalServerError):
        chat(server, "down").invoke("hi")
    with pytest.raises(openai.InternalServerError):
        list(chat(server, "down").stream("hi"))
    assert [c.status for c in server.calls_for("limited")] == [429]
    assert [c.status for c in server.calls_for("down")] == [500, 500]


def test_fail_times_then_retry_succeeds(server: FakeOpenAIServer) -> None:
    server.set_behavior("flaky", ModelBehavior(fail_status=500, fail_times=1))
    start = time.monotonic()
    result = chat(server, "flaky", max_retries=1).invoke("retry me")
    assert result.content == "[flaky] You said: retry me"
    assert [c.status for c in server.calls_for("flaky")] == [500, 200]
    assert time.monotonic() - start < 0.5  # retry-after-ms keeps the client's backoff short


def test_fail_trigger_in_message(server: FakeOpenAIServer) -> None:
    with pytest.raises(openai.InternalServerError):
        chat(server, "triggered").invoke("please [[fail:500]]")
    with pytest.raises(openai.RateLimitError):
        chat(server, "triggered").invoke("please [[fail:429]]")
    assert chat(server, "triggered").invoke("fine now").content == "[triggered] You said: fine now"
    assert [c.status for c in server.calls_for("triggered")] == [500, 429, 200]


def test_delay_beyond_client_timeout(server: FakeOpenAIServer) -> None:
    server.set_behavior("slow", ModelBehavior(delay_s=1.0))
    start = time.monotonic()
    with pytest.raises(openai.APITimeoutError):
        chat(server, "slow", timeout=0.2).invoke("hi")
    assert time.monotonic() - start < 0.9
    start = time.monotonic()
    assert chat(server, "sleepy").invoke("[[sleep:0.3]] hi").content.startswith("[sleepy]")
    assert time.monotonic() - start >= 0.3


async def test_concurrent_abatch(server: FakeOpenAIServer) -> None:
    server.set_behavior("parallel", ModelBehavior(delay_s=0.3))
    prompts = [f"request {i}" for i in range(8)]
    start = time.monotonic()
    results = await chat(server, "parallel").abatch(prompts)
    elapsed = time.monotonic() - start
    assert [r.content for r in results] == [f"[parallel] You said: {p}" for p in prompts]
    assert elapsed < 8 * 0.3 / 2  # served concurrently, not one after another
    assert len(server.calls_for("parallel")) == 8


async def test_ainvoke_and_astream(server: FakeOpenAIServer) -> None:
    llm = chat(server, "beta")
    result = await llm.ainvoke("async hello")
    assert result.content == "[beta] You said: async hello"
    pieces = [chunk.content async for chunk in llm.astream("async hello")]
    assert len([p for p in pieces if p]) > 1
    assert "".join(str(p) for p in pieces) == result.content
    tool_calls = (await chat(server).bind_tools([add]).ainvoke("add")).tool_calls
    assert tool_calls[0]["args"] == {"a": 3, "b": 3}
    answers = await asyncio.gather(*(llm.ainvoke(f"q{i}") for i in range(3)))
    assert [a.content for a in answers] == [f"[beta] You said: q{i}" for i in range(3)]


def test_calls_log_and_reset() -> None:
    with FakeOpenAIServer({"one": ModelBehavior(fail_status=500, fail_times=1)}) as srv:
        llm = chat(srv, "one")
        with pytest.raises(openai.InternalServerError):
            llm.invoke("a")
        llm.invoke("b")
        chat(srv, "two").invoke("c")
        assert len(srv.calls) == 3 and all(isinstance(c, ServedCall) for c in srv.calls)
        assert [c.messages[-1]["content"] for c in srv.calls_for("one")] == ["a", "b"]
        assert len(srv.calls_for("two")) == 1 and srv.calls_for("two")[0].model == "two"
        srv.reset()
        assert srv.calls == []
        with pytest.raises(openai.InternalServerError):  # failure counter was reset too
            llm.invoke("d")
    with pytest.raises(RuntimeError):
        _ = srv.base_url


def test_models_health_and_http_errors(server: FakeOpenAIServer) -> None:
    listed = openai.OpenAI(base_url=server.base_url, api_key="test").models.list()
    assert {m.id for m in listed.data} >= {"alpha", "beta"}
    assert http(server, "/health") == (200, {"status": "ok"})
    status, body = http(server, "/v1/nope")
    assert status == 404 and body["error"]["type"] == "invalid_request_error"
    status, body = http(server, "/v1/chat/completions", b"{not json")
    assert status == 400 and "Malformed JSON" in body["error"]["message"]
    assert server.calls[-1].status == 400


def test_strict_models() -> None:
    with FakeOpenAIServer({"known": ModelBehavior()}, strict_models=True) as srv:
        assert chat(srv, "known").invoke("hi").content == "[known] You said: hi"
        with pytest.raises(openai.NotFoundError) as error:
            chat(srv, "unknown").invoke("hi")
        assert error.value.code == "model_not_found"
        assert "known" in str(error.value.message)


# --- fault injection ------------------------------------------------------------------------


def raw_post(server: FakeOpenAIServer, body: dict) -> tuple[bytes, OSError | None]:
    """POST over a bare socket; return every byte received and the error that ended it."""
    url = urllib.parse.urlsplit(server.base_url)
    data = json.dumps(body).encode()
    head = (
        f"POST /v1/chat/completions HTTP/1.1\r\nHost: {url.netloc}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(data)}\r\n\r\n"
    )
    received = b""
    with socket.create_connection((url.hostname, url.port), timeout=5) as sock:
        sock.sendall(head.encode() + data)
        try:
            while chunk := sock.recv(65536):
                received += chunk
        except OSError as exc:
            return received, exc
    return received, None


def user(text: str) -> list[dict]:
    return [{"role": "user", "content": text}]


def test_fault_injection_validates() -> None:
    assert FaultInjection(0.5).kinds == FAULT_KINDS
    assert FaultInjection(0.5, kinds=["429", 500]).kinds == ("429", "500")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="rate"):
        FaultInjection(1.5)
    with pytest.raises(ValueError, match="kinds"):
        FaultInjection(0.1, kinds=("timeout",))
    with pytest.raises(ValueError, match="kinds"):
        FaultInjection(0.1, kinds=())


def test_error_faults_carry_status_headers_and_openai_json() -> None:
    faults = FaultInjection(1.0, kinds=("429",), retry_after_s=2)
    with FakeOpenAIServer(faults=faults) as srv:
        client = openai.OpenAI(base_url=srv.base_url, api_key="test", max_retries=0)
        with pytest.raises(openai.RateLimitError) as limited:
            client.chat.completions.create(model="m", messages=user("hi"))  # type: ignore[arg-type]
        headers = limited.value.response.headers
        assert headers["retry-after"] == "2" and headers["retry-after-ms"] == "2000"
        assert limited.value.code == "rate_limit_exceeded"
        srv.set_faults(FaultInjection(1.0, kinds=("503",)))
        with pytest.raises(openai.InternalServerError) as overloaded:
            chat(srv, "m").invoke("hi")
        assert overloaded.value.status_code == 503
        assert overloaded.value.type == "server_error"
        assert "overloaded" in overloaded.value.message
        srv.set_faults(FaultInjection(1.0, kinds=("500",)))
        with pytest.raises(openai.InternalServerError):
            list(chat(srv, "m").stream("hi"))
        srv.set_faults(None)
        assert chat(srv, "m").invoke("hi").content == "[m] You said: hi"
        assert [(c.status, c.fault) for c in srv.calls] == [
            (429, "429"),
            (503, "503"),
            (500, "500"),
            (200, None),
        ]
        assert [c.usage for c in srv.calls[:3]] == [None] * 3  # rejected before any work
        assert srv.calls[3].usage == {"prompt_tokens": 1, "completion_tokens": 4, "total_tokens": 5}
        assert srv.fault_counts() == {"429": 1, "503": 1, "500": 1}
        srv.reset()
        assert srv.fault_counts() == {}


@pytest.mark.parametrize(
    ("trigger", "error", "kind", "code"),
    [
        ("[[fail:400]]", openai.BadRequestError, "invalid_request_error", None),
        ("[[fail:401]]", openai.AuthenticationError, "authentication_error", "invalid_api_key"),
        ("[[fail:404]]", openai.NotFoundError, "invalid_request_error", "model_not_found"),
        ("[[fail:422]]", openai.UnprocessableEntityError, "invalid_request_error", None),
        (
            "[[fail:context_length]]",
            openai.BadRequestError,
            "invalid_request_error",
            "context_length_exceeded",
        ),
    ],
)
def test_caller_errors_are_final(
    server: FakeOpenAIServer, trigger: str, error: type[openai.APIStatusError], kind: str, code: str
) -> None:
    with pytest.raises(error) as raised:
        chat(server, "caller", max_retries=2).invoke(f"{trigger} hi")
    assert raised.value.type == kind and raised.value.code == code
    # No retry hints: the openai client must not retry these, and it did not.
    assert "retry-after" not in raised.value.response.headers
    assert "retry-after-ms" not in raised.value.response.headers
    assert len([c for c in server.calls_for("caller") if trigger in c.messages[-1]["content"]]) == 1


def test_context_window() -> None:
    models = {"tiny": ModelBehavior(context_window=5)}
    with FakeOpenAIServer(models) as srv:
        assert chat(srv, "tiny").invoke("short").content == "[tiny] You said: short"
        with pytest.raises(openai.BadRequestError) as raised:
            chat(srv, "tiny").invoke("this prompt is longer than twenty characters")
        assert raised.value.code == "context_length_exceeded"
        assert "maximum context length is 5 tokens" in raised.value.message
        with pytest.raises(openai.BadRequestError, match="maximum context length is 8192"):
            chat(srv, "other").invoke("[[fail:context_length]]")


def test_reset_body(server: FakeOpenAIServer, capfd: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(openai.APIConnectionError):
        chat(server, "resets").invoke("[[fault:reset_body]] hello")
    call = server.calls_for("resets")[-1]
    assert call.fault == "reset_body" and call.status == 200
    assert call.usage == {"prompt_tokens": 7, "completion_tokens": 5, "total_tokens": 12}
    # On the wire: status line, headers and part of the body, then a reset (not a clean FIN).
    body = {"model": "resets", "messages": user("[[fault:reset_body]] hello")}
    received, error = raw_post(server, body)
    head, _, partial = received.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200")
    length = int(re.search(rb"Content-Length: (\d+)", head).group(1))  # type: ignore[union-attr]
    assert 0 < len(partial) < length
    assert isinstance(error, ConnectionResetError)
    assert "Traceback" not in capfd.readouterr().err


def test_reset_sse_sends_role_chunk_then_breaks(
    server: FakeOpenAIServer, capfd: pytest.CaptureFixture[str]
) -> None:
    for trigger, texts in [
        ("[[fault:reset_sse]]", []),
        ("[[fault:reset_sse:2]]", ["[m] ", "You "]),
    ]:
        chunks: list[AIMessageChunk] = []
        with pytest.raises(openai.APIConnectionError):
            for chunk in chat(server, "m").stream(f"{trigger} one two three"):
                chunks.append(chunk)
        assert [c.content for c in chunks] == ["", *texts]
    calls = server.calls_for("m")[-2:]
    assert [c.fault for c in calls] == ["reset_sse", "reset_sse"]
    assert [c.usage["completion_tokens"] for c in calls if c.usage] == [0, 2]
    # reset_body on a stream and reset_sse on a plain request cut where each can.
    with pytest.raises(openai.APIConnectionError):
        list(chat(server, "m").stream("[[fault:reset_body]] x"))
    with pytest.raises(openai.APIConnectionError):
        chat(server, "m").invoke("[[fault:reset_sse]] x")
    received, error = raw_post(
        server, {"model": "m", "stream": True, "messages": user("[[fault:reset_sse]] x")}
    )
    assert b"text/event-stream" in received and b'"role": "assistant"' in received
    assert b"[DONE]" not in received and isinstance(error, ConnectionResetError)
    assert "Traceback" not in capfd.readouterr().err


async def test_reset_sse_async(server: FakeOpenAIServer) -> None:
    chunks: list[AIMessageChunk] = []
    with pytest.raises(openai.APIConnectionError):
        async for chunk in chat(server, "m").astream("[[fault:reset_sse:1]] a b c"):
            chunks.append(chunk)
    assert [c.content for c in chunks] == ["", "[m] "]


def test_slow_trips_the_client_timeout(
    server: FakeOpenAIServer, capfd: pytest.CaptureFixture[str]
) -> None:
    start = time.monotonic()
    with pytest.raises(openai.APITimeoutError):
        chat(server, "slowpoke", timeout=0.1).invoke("[[fault:slow:0.4]] hi")
    with pytest.raises(openai.APITimeoutError):
        list(chat(server, "slowpoke", timeout=0.1).stream("[[fault:slow:0.4]] hi"))
    assert time.monotonic() - start < 0.6
    calls = server.calls_for("slowpoke")
    assert [c.fault for c in calls] == ["slow", "slow"]
    # The provider did the work even though nobody waited for it.
    assert all(c.usage and c.usage["completion_tokens"] == 5 for c in calls)
    assert (
        chat(server, "slowpoke", timeout=2)
        .invoke("[[fault:slow:0.05]] ok")
        .content.startswith("[slowpoke]")
    )
    time.sleep(0.45)  # the abandoned answers are written to closed sockets by now
    assert "Traceback" not in capfd.readouterr().err


def test_slow_fault_uses_slow_s() -> None:
    with FakeOpenAIServer(faults=FaultInjection(1.0, kinds=("slow",), slow_s=0.3)) as srv:
        with pytest.raises(openai.APITimeoutError):
            chat(srv, "m", timeout=0.1).invoke("hi")
        assert srv.fault_counts() == {"slow": 1}


def fault_sequence(faults: FaultInjection, requests: int) -> list[str | None]:
    """Send ``requests`` requests one by one; return the fault each one got."""
    with FakeOpenAIServer(faults=faults) as srv:
        client = openai.OpenAI(base_url=srv.base_url, api_key="test", max_retries=0)
        for i in range(requests):
            with contextlib.suppress(openai.APIError):
                client.chat.completions.create(model="m", messages=user(f"q{i}"))  # type: ignore[arg-type]
        return [c.fault for c in srv.calls]


def test_seeded_rate_is_reproducible() -> None:
    faults = FaultInjection(0.3, kinds=("429", "500", "503"), seed=7)
    first = fault_sequence(faults, 200)
    assert first == fault_sequence(faults, 200)
    assert first != fault_sequence(FaultInjection(0.3, kinds=faults.kinds, seed=8), 200)
    injected = [f for f in first if f is not None]
    assert 40 <= len(injected) <= 80  # 30% of 200, within about three standard deviations
    assert set(injected) == {"429", "500", "503"}


def test_seeded_reset_lengths_vary_and_repeat() -> None:
    def received_texts(seed: int) -> list[int]:
        faults = FaultInjection(1.0, kinds=("reset_sse",), seed=seed)
        counts = []
        with FakeOpenAIServer(faults=faults) as srv:
            llm = chat(srv, "m")
            for _ in range(12):
                chunks: list[AIMessageChunk] = []
                with pytest.raises(openai.APIConnectionError):
                    for chunk in llm.stream("one two three four"):
                        chunks.append(chunk)
                assert chunks and chunks[0].content == ""  # the role chunk always arrives
                counts.append(len([c for c in chunks if c.content]))
            assert [c.usage["completion_tokens"] for c in srv.calls if c.usage] == counts
        return counts

    counts = received_texts(1)
    assert counts == received_texts(1)
    assert set(counts) == {0, 1, 2}


def test_set_faults_restarts_the_sequence(server: FakeOpenAIServer) -> None:
    assert server.faults is None
    server.set_faults(FaultInjection(0.5, kinds=("500",), seed=3))
    try:
        llm = chat(server, "seq")
        outcomes = []
        for _ in range(2):
            server.set_faults(FaultInjection(0.5, kinds=("500",), seed=3))
            for i in range(10):
                try:
                    llm.invoke(f"q{i}")
                    outcomes.append("ok")
                except openai.InternalServerError:
                    outcomes.append("500")
        assert outcomes[:10] == outcomes[10:] and "500" in outcomes and "ok" in outcomes
    finally:
        server.set_faults(None)
    assert chat(server, "seq").invoke("calm").content == "[seq] You said: calm"


def test_calls_snapshot_is_thread_safe() -> None:
    faults = FaultInjection(0.5, kinds=("500", "reset_body"), seed=1)
    with FakeOpenAIServer(faults=faults) as srv:
        llm = chat(srv, "m")

        def one(i: int) -> str:
            try:
                return str(llm.invoke(f"q{i}").content)
            except openai.APIError as exc:
                return type(exc).__name__

        with ThreadPoolExecutor(max_workers=8) as pool:
            results = list(pool.map(one, range(40)))
        assert len(srv.calls) == 40
        assert sum(srv.fault_counts().values()) == sum(not r.startswith("[m]") for r in results)
        assert all(c.usage is not None for c in srv.calls if c.fault != "500")
