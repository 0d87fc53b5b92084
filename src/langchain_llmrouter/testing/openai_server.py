"""A small, deterministic OpenAI-compatible chat-completions server.

It serves ``/v1/chat/completions`` (plain and streaming, with tools, structured output,
``stop``, ``max_tokens`` and ``n``), ``/v1/models`` and ``/health`` using only the standard
library, so tests, examples and demos can drive real OpenAI clients (for instance
``langchain_openai.ChatOpenAI``) over HTTP without network access or API keys.

Every answer is recognisable: the default reply is ``"[<model>] You said: <last user text>"``,
so a test can tell which model answered. Failures and slowness are available on demand,
per model through :class:`ModelBehavior` or per request with ``[[fail:500]]``,
``[[fail:429]]`` or ``[[sleep:0.5]]`` in the last user message.

Usage: ``with FakeOpenAIServer() as server: ChatOpenAI(model="m", base_url=server.base_url,
api_key="test")``. Command line (serves until Ctrl-C)::

    python -m langchain_llmrouter.testing.openai_server --port 8000 --model small --model big
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import re
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

__all__ = ["FakeOpenAIServer", "ModelBehavior", "ServedCall"]

_FAIL_RE = re.compile(r"\[\[fail:(\d{3})\]\]")
_SLEEP_RE = re.compile(r"\[\[sleep:([0-9]*\.?[0-9]+)\]\]")
_FORMATS = {  # JSON-schema string formats, so pydantic fields such as datetime validate
    "date-time": "2024-01-01T00:00:00Z",
    "date": "2024-01-01",
    "time": "12:00:00",
    "duration": "PT1S",
    "email": "user@example.com",
    "uri": "https://example.com/",
    "uuid": "00000000-0000-4000-8000-000000000000",
}


@dataclass
class ModelBehavior:
    """How one served model answers.

    Attributes:
        reply: Given the OpenAI-format messages, return the reply text. ``None`` gives the
            default ``"[<model>] You said: <last user text>"``.
        delay_s: Seconds to sleep before answering (before the first chunk when streaming).
        fail_status: Answer every request with this HTTP error status (e.g. 429, 500).
        fail_times: With ``fail_status``, fail only the first N requests, then answer normally.
    """

    reply: Callable[[list[dict]], str] | None = None
    delay_s: float = 0.0
    fail_status: int | None = None
    fail_times: int | None = None


@dataclass
class ServedCall:
    """One chat-completions request the server received.

    Attributes:
        model: The requested model name (``""`` when the body could not be read).
        messages: The OpenAI-format messages of the request.
        stream: Whether the client asked for a streamed answer.
        status: The HTTP status of the answer (0 while it is still being prepared).
        tools: The request's ``tools``, if any.
        time: ``time.time()`` when the request arrived.
        body: The whole decoded request body (for checking other parameters).
        api_key: The bearer token the client sent (to check key rotation).
    """

    model: str
    messages: list[dict]
    stream: bool
    status: int
    tools: list[dict] | None
    time: float
    body: dict = field(default_factory=dict, repr=False)
    api_key: str = field(default="", repr=False)


class _HTTPError(Exception):
    """An error answer: HTTP status, message and optional OpenAI error code."""

    def __init__(self, status: int, message: str, code: str | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.code = status, message, code


def _text(content: Any) -> str:
    """Return the text of a message ``content`` (a string or a list of content parts)."""
    if isinstance(content, list):
        parts = [p.get("text") if isinstance(p, dict) else p for p in content]
        return "".join(p for p in parts if isinstance(p, str))
    return content if isinstance(content, str) else ""


def _last_text(messages: list[dict], role: str) -> str:
    """Return the text of the last message with ``role``, or ``""``."""
    for message in reversed(messages):
        if message.get("role") == role:
            return _text(message.get("content"))
    return ""


def _instance(schema: Any, root: dict, name: str = "", depth: int = 0) -> Any:
    """Generate a deterministic instance of a JSON schema (resolving ``$ref``)."""
    if not isinstance(schema, dict) or depth > 12:
        return None
    if "$ref" in schema:
        target: Any = root
        for part in schema["$ref"].lstrip("#/").split("/"):
            target = target.get(part, {}) if isinstance(target, dict) else {}
        return _instance(target, root, name, depth + 1)
    if "const" in schema:
        return schema["const"]
    if schema.get("enum"):
        return schema["enum"][0]
    for key in ("anyOf", "oneOf", "allOf"):
        if schema.get(key):
            branches = [
                b for b in schema[key] if not (isinstance(b, dict) and b.get("type") == "null")
            ]
            return _instance((branches or schema[key])[0], root, name, depth + 1)
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "null")
    if kind is None:
        kind = "object" if "properties" in schema else "string"
    if kind == "object":
        props = schema.get("properties") or {}
        return {k: _instance(v, root, k, depth + 1) for k, v in props.items()}
    if kind == "array":
        count = int(schema.get("minItems", 0))
        return [_instance(schema.get("items", {}), root, name, depth + 1) for _ in range(count)]
    if kind in ("integer", "number"):
        low = max(schema.get("minimum", -math.inf), schema.get("exclusiveMinimum", -math.inf) + 1)
        high = min(schema.get("maximum", math.inf), schema.get("exclusiveMaximum", math.inf) - 1)
        value = min(max(3, low), high)
        return int(value) if kind == "integer" else float(value)
    if kind == "boolean":
        return True
    if kind == "null":
        return None
    if schema.get("format") in _FORMATS:
        return _FORMATS[schema["format"]]
    lowered = name.lower()
    text = "San Francisco" if "location" in lowered or "city" in lowered else "hello"
    return text[: schema.get("maxLength", len(text))].ljust(schema.get("minLength", 0), "x")


def _usage(messages: list[dict], reply: str) -> dict[str, int]:
    """Return the deterministic token usage of one answer."""
    prompt = max(1, sum(math.ceil(len(_text(m.get("content"))) / 4) for m in messages))
    completion = max(1, len(reply.split()))
    return dict(
        prompt_tokens=prompt, completion_tokens=completion, total_tokens=prompt + completion
    )


def _truncate(text: str, stop: Any, max_tokens: Any) -> tuple[str, str]:
    """Apply ``stop`` strings and a whitespace-token limit; return text and finish reason."""
    stops = [stop] if isinstance(stop, str) else [s for s in stop or [] if isinstance(s, str) and s]
    cuts = [text.find(s) for s in stops if s and s in text]
    if cuts:
        text = text[: min(cuts)]
    if isinstance(max_tokens, int) and max_tokens >= 0:
        words = list(re.finditer(r"\S+", text))
        if len(words) > max_tokens:
            end = words[max_tokens - 1].end() if max_tokens else 0
            return text[:end], "length"
    return text, "stop"


def _fill_call(call: ServedCall, raw: bytes) -> None:
    """Fill ``call`` from a raw request body; raise a 400 error if it is unusable."""
    try:
        body = json.loads(raw or b"null")
    except ValueError as exc:
        raise _HTTPError(400, f"Malformed JSON body: {exc}") from exc
    if not isinstance(body, dict):
        raise _HTTPError(400, "The request body must be a JSON object.")
    messages = body.get("messages")
    call.messages = (
        [m for m in messages if isinstance(m, dict)] if isinstance(messages, list) else []
    )
    call.model, call.stream = str(body.get("model") or ""), bool(body.get("stream"))
    call.tools, call.body = body.get("tools") or None, body
    if not call.model or not call.messages:
        raise _HTTPError(400, "Both 'model' and a non-empty 'messages' list are required.")


class _Handler(BaseHTTPRequestHandler):
    """Request handler; ``self.server.owner`` is the :class:`FakeOpenAIServer`."""

    protocol_version = "HTTP/1.1"
    timeout = 60
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        """Stay quiet."""

    def end_headers(self) -> None:
        """Close every connection after its answer.

        Pooled keep-alive connections break clients (e.g. langchain-openai's cached async
        client) that are reused across event loops, as pytest-asyncio does per test.
        """
        self.send_header("Connection", "close")
        self.close_connection = True
        super().end_headers()

    def _send_json(self, status: int, payload: Any, headers: dict[str, str] | None = None) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(data)
        self.wfile.flush()

    def _send_error(self, error: _HTTPError) -> None:
        status, code = error.status, error.code
        kind = "server_error" if status >= 500 else "invalid_request_error"
        if status == 429:
            kind, code = "requests", code or "rate_limit_exceeded"
        body = {"error": {"message": error.message, "type": kind, "code": code}}
        retry = status == 429 or status >= 500
        headers = {"retry-after": "0", "retry-after-ms": "1"} if retry else {}
        self._send_json(error.status, body, headers)

    def do_GET(self) -> None:
        """Serve ``/v1/models`` and ``/health``."""
        path = self.path.split("?", 1)[0].rstrip("/")
        if path == "/health":
            self._send_json(200, {"status": "ok"})
        elif path == "/v1/models":
            data = [
                {"id": n, "object": "model", "owned_by": "llmrouter-test"}
                for n in self.server.owner.model_names
            ]
            self._send_json(200, {"object": "list", "data": data})
        else:
            self._send_error(_HTTPError(404, f"Unknown path: GET {path}", "unknown_url"))

    def do_POST(self) -> None:
        """Serve ``/v1/chat/completions``."""
        path = self.path.split("?", 1)[0].rstrip("/")
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        if path not in ("/v1/chat/completions", "/chat/completions"):
            self._send_error(_HTTPError(404, f"Unknown path: POST {path}", "unknown_url"))
            return
        owner = self.server.owner
        call = ServedCall("", [], False, 0, None, time.time())
        auth = self.headers.get("Authorization") or ""
        call.api_key = auth.removeprefix("Bearer ").strip()
        try:
            try:
                _fill_call(call, raw)
            finally:
                owner._log(call)
            chunks = owner._answer(call)
        except _HTTPError as error:
            call.status = error.status
            self._send_error(error)
            return
        call.status = 200
        if call.stream:
            self._stream(chunks)
        else:
            self._send_json(200, next(chunks))

    def _stream(self, events: Iterator[dict]) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        for event in [*(f"data: {json.dumps(e)}\n\n" for e in events), "data: [DONE]\n\n"]:
            data = event.encode()
            self.wfile.write(f"{len(data):X}\r\n".encode() + data + b"\r\n")
            self.wfile.flush()
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()


class _Server(ThreadingHTTPServer):
    """Threading HTTP server that knows its owner and ignores dropped connections."""

    daemon_threads = True
    request_queue_size = 128  # the default 5 drops bursts of connects (1 s SYN retry)
    owner: FakeOpenAIServer

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Ignore clients that hung up (e.g. after a client-side timeout)."""
        if not isinstance(sys.exc_info()[1], ConnectionError | TimeoutError):
            super().handle_error(request, client_address)


class FakeOpenAIServer:
    """An in-process OpenAI-compatible chat-completions server for tests and demos.

    Args:
        models: Behavior per served model name (listed by ``/v1/models``).
        default: Behavior for model names not in ``models`` (default ``ModelBehavior()``).
        host: Interface to bind.
        port: Port to bind; 0 lets the OS choose a free one.
        strict_models: Answer unknown model names with 404 ``model_not_found``.
    """

    def __init__(
        self,
        models: dict[str, ModelBehavior] | None = None,
        *,
        default: ModelBehavior | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        strict_models: bool = False,
    ) -> None:
        self._models = dict(models or {})
        self._default = default or ModelBehavior()
        self._host, self._port, self._strict = host, port, strict_models
        self._lock = threading.Lock()
        self._calls: list[ServedCall] = []
        self._failures: dict[str, int] = {}
        self._httpd: _Server | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> FakeOpenAIServer:
        """Bind the port and serve in a daemon thread; return ``self``."""
        if self._httpd is None:
            self._httpd = _Server((self._host, self._port), _Handler)
            self._httpd.owner = self
            self._thread = threading.Thread(
                target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
            )
            self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving, close the socket and join the serving thread."""
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            if self._thread is not None:
                self._thread.join(timeout=5)
            self._httpd, self._thread = None, None

    def __enter__(self) -> FakeOpenAIServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def base_url(self) -> str:
        """The OpenAI base URL, e.g. ``http://127.0.0.1:54321/v1`` (needs a started server)."""
        if self._httpd is None:
            raise RuntimeError("FakeOpenAIServer is not running; call start() first.")
        host = "127.0.0.1" if self._host in ("", "0.0.0.0") else self._host
        return f"http://{host}:{self._httpd.server_port}/v1"

    @property
    def model_names(self) -> list[str]:
        """The configured model names."""
        with self._lock:
            return list(self._models)

    @property
    def calls(self) -> list[ServedCall]:
        """A snapshot of every chat-completions request received, failed ones included."""
        with self._lock:
            return list(self._calls)

    def calls_for(self, model: str) -> list[ServedCall]:
        """Return the logged requests for ``model``."""
        return [c for c in self.calls if c.model == model]

    def reset(self) -> None:
        """Clear the call log and the ``fail_times`` counters."""
        with self._lock:
            self._calls.clear()
            self._failures.clear()

    def set_behavior(self, model: str, behavior: ModelBehavior) -> None:
        """Set (or add) the behavior of ``model`` and reset its ``fail_times`` counter."""
        with self._lock:
            self._models[model] = behavior
            self._failures.pop(model, None)

    def _log(self, call: ServedCall) -> None:
        with self._lock:
            self._calls.append(call)

    def _answer(self, call: ServedCall) -> Iterator[dict]:
        """Check failures and delays, build the answer; yield the response or its chunks."""
        body, model, messages = call.body, call.model, call.messages
        with self._lock:
            behavior = self._models.get(model)
            if behavior is None and self._strict:
                known = ", ".join(sorted(self._models)) or "(none)"
                detail = f"The model '{model}' does not exist. Known models: {known}."
                raise _HTTPError(404, detail, "model_not_found")
            behavior = behavior or self._default
            fail = None
            if behavior.fail_status is not None:
                count = self._failures.get(model, 0)
                if behavior.fail_times is None or count < behavior.fail_times:
                    self._failures[model] = count + 1
                    fail = behavior.fail_status
        user_text = _last_text(messages, "user")
        sleep = _SLEEP_RE.search(user_text)
        delay = behavior.delay_s + (float(sleep.group(1)) if sleep else 0.0)
        if delay > 0:
            time.sleep(delay)
        trigger = _FAIL_RE.search(user_text)
        if trigger:
            fail = int(trigger.group(1))
        if fail is not None:
            raise _HTTPError(fail, f"Simulated error {fail} for model '{model}'.")

        tool_call, text, finish = _choose_tool(body, messages), "", "tool_calls"
        if tool_call is None:
            text = _reply_text(behavior, model, messages)
            text = _format(body.get("response_format"), text)
            limit = body.get("max_completion_tokens", body.get("max_tokens"))
            text, finish = _truncate(text, body.get("stop"), limit)
        reply = tool_call["function"]["arguments"] if tool_call else text
        n: int = body["n"] if isinstance(body.get("n"), int) and body["n"] > 0 else 1
        digest = hashlib.sha1(json.dumps([model, messages, reply]).encode()).hexdigest()
        head = {"id": f"chatcmpl-{digest[:24]}", "created": int(call.time), "model": model}
        usage = _usage(messages, reply)
        if not call.stream:
            message: dict[str, Any] = {"role": "assistant", "content": None if tool_call else text}
            message.update({"tool_calls": [tool_call]} if tool_call else {})
            choices = [
                {"index": i, "message": message, "finish_reason": finish, "logprobs": None}
                for i in range(n)
            ]
            return iter([{**head, "object": "chat.completion", "choices": choices, "usage": usage}])
        include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
        return _chunks(head, n, text, tool_call, finish, usage if include_usage else None)


def _chunks(
    head: dict, n: int, text: str, tool_call: dict | None, finish: str, usage: dict | None
) -> Iterator[dict]:
    """Yield the streamed chunks of an answer."""
    chunk = {**head, "object": "chat.completion.chunk"}

    def one(index: int, delta: dict, reason: str | None = None) -> dict:
        return {**chunk, "choices": [{"index": index, "delta": delta, "finish_reason": reason}]}

    for i in range(n):
        if tool_call:
            yield one(i, {"role": "assistant", "content": None})
            function = tool_call["function"]
            first = {**tool_call, "function": {"name": function["name"], "arguments": ""}}
            yield one(i, {"tool_calls": [{"index": 0, **first}]})
            args, size = function["arguments"], max(1, math.ceil(len(function["arguments"]) / 3))
            for piece in [args[j : j + size] for j in range(0, len(args), size)]:
                yield one(i, {"tool_calls": [{"index": 0, "function": {"arguments": piece}}]})
        else:
            yield one(i, {"role": "assistant", "content": ""})
            for word in re.findall(r"\S*\s*", text):
                if word:
                    yield one(i, {"content": word})
        yield one(i, {}, finish)
    if usage is not None:
        yield {**chunk, "choices": [], "usage": usage}


def _choose_tool(body: dict, messages: list[dict]) -> dict | None:
    """Return the tool call to answer with, or ``None`` to answer in text."""
    tools = [t for t in body.get("tools") or [] if isinstance(t, dict) and "function" in t]
    choice = body.get("tool_choice", "auto")
    if not tools or choice == "none":
        return None
    if isinstance(choice, dict):
        name = (choice.get("function") or {}).get("name")
        matches = [t for t in tools if t["function"].get("name") == name]
        if not matches:
            raise _HTTPError(400, f"tool_choice names an unknown function: {name!r}.")
        tool = matches[0]
    elif choice in ("required", "any") or messages[-1].get("role") != "tool":
        tool = tools[0]
    else:
        return None
    function = tool["function"]
    schema = function.get("parameters") or {"type": "object", "properties": {}}
    arguments = json.dumps(_instance(schema, schema))
    digest = hashlib.sha1(f"{function['name']}{arguments}{len(messages)}".encode()).hexdigest()
    return {
        "id": f"call_{digest[:24]}",
        "type": "function",
        "function": {"name": function["name"], "arguments": arguments},
    }


def _reply_text(behavior: ModelBehavior, model: str, messages: list[dict]) -> str:
    """Return the text answer: the behavior's ``reply`` or the deterministic default."""
    if behavior.reply is not None:
        try:
            return str(behavior.reply(messages))
        except Exception as exc:
            raise _HTTPError(500, f"reply() raised {type(exc).__name__}: {exc}") from exc
    if messages and messages[-1].get("role") == "tool":
        return f"[{model}] Tool result: {_text(messages[-1].get('content'))[:200]}"
    return f"[{model}] You said: {_last_text(messages, 'user')[:200]}"


def _format(response_format: Any, text: str) -> str:
    """Shape ``text`` for ``response_format`` (JSON replies from ``reply`` are kept)."""
    if not isinstance(response_format, dict) or response_format.get("type") == "text":
        return text
    try:
        parsed = json.loads(text)
    except ValueError:
        parsed = None
    if response_format.get("type") == "json_schema":
        if parsed is not None:
            return text
        schema = (response_format.get("json_schema") or {}).get("schema") or {}
        return json.dumps(_instance(schema, schema))
    return text if isinstance(parsed, dict) else json.dumps({"answer": text})


def main(argv: list[str] | None = None) -> None:
    """Serve until Ctrl-C: ``python -m langchain_llmrouter.testing.openai_server``."""
    parser = argparse.ArgumentParser(description="Serve a fake OpenAI-compatible chat API.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--model", action="append", default=[], help="model name (repeatable)")
    parser.add_argument("--delay", type=float, default=0.0, help="seconds before each answer")
    args = parser.parse_args(argv)
    models = {name: ModelBehavior(delay_s=args.delay) for name in args.model}
    default = ModelBehavior(delay_s=args.delay)
    with FakeOpenAIServer(models, default=default, host=args.host, port=args.port) as server:
        print(f"Fake OpenAI server at {server.base_url} (Ctrl-C to stop)", flush=True)
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            print("Stopping.", flush=True)


if __name__ == "__main__":
    main()
