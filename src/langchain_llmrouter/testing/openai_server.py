"""A small, deterministic OpenAI-compatible chat-completions server.

It serves ``/v1/chat/completions`` (plain and streaming, with tools, structured output,
``stop``, ``max_tokens`` and ``n``), ``/v1/models`` and ``/health`` using only the standard
library, so tests, examples and demos can drive real OpenAI clients (for instance
``langchain_openai.ChatOpenAI``) over HTTP without network access or API keys.

Every answer is recognisable: the default reply is ``"[<model>] You said: <last user text>"``,
so a test can tell which model answered. Failures and slowness are available on demand:

* per model through :class:`ModelBehavior` (``fail_status``, ``delay_s``, ``context_window``);
* per request, by a trigger in the last user message: ``[[fail:NNN]]`` (any HTTP status, with
  OpenAI's error JSON for it), ``[[fail:context_length]]``, ``[[sleep:0.5]]``, and
  ``[[fault:KIND]]`` for the kinds in :data:`FAULT_KINDS` (``[[fault:reset_sse:2]]`` sends the
  role chunk and two text chunks before the reset, ``[[fault:slow:0.3]]`` sleeps 0.3 s);
* at random, for load tests: ``FaultInjection(rate=0.1, seed=0)`` draws a fault for a share
  of the requests from a seeded generator, so a run can be reproduced.

Each request is logged as a :class:`ServedCall` with the fault injected and the tokens the
"provider" worked on, so a test can compare what a client accounted for with what it would
have been billed.

Usage: ``with FakeOpenAIServer() as server: ChatOpenAI(model="m", base_url=server.base_url,
api_key="test")``. Command line (serves until Ctrl-C)::

    python -m langchain_llmrouter.testing.openai_server --port 8000 --model small --model big
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import random
import re
import socket
import struct
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

__all__ = ["FAULT_KINDS", "FakeOpenAIServer", "FaultInjection", "ModelBehavior", "ServedCall"]

FAULT_KINDS: tuple[str, ...] = ("429", "500", "503", "slow", "reset_body", "reset_sse")
"""The provider faults :class:`FaultInjection` and ``[[fault:KIND]]`` can inject."""

_FAIL_RE = re.compile(r"\[\[fail:(\d{3}|context_length)\]\]")
_SLEEP_RE = re.compile(r"\[\[sleep:([0-9]*\.?[0-9]+)\]\]")
_FAULT_RE = re.compile(r"\[\[fault:([a-z0-9_]+)(?::([0-9]*\.?[0-9]+))?\]\]")
_RETRYABLE = frozenset({408, 409, 429})  # plus every 5xx: what the openai client retries
_DEFAULT_CONTEXT_WINDOW = 8192  # for [[fail:context_length]] on a model without a window
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
        fault: Inject this fault (one of :data:`FAULT_KINDS`) into every request.
        fault_text_chunks: With ``fault="reset_sse"``, text chunks sent after the role chunk.
        context_window: Reject prompts longer than this many tokens (the server's estimate,
            ``ceil(characters / 4)`` per message) with OpenAI's 400 ``context_length_exceeded``.
    """

    reply: Callable[[list[dict]], str] | None = None
    delay_s: float = 0.0
    fail_status: int | None = None
    fail_times: int | None = None
    context_window: int | None = None
    fault: str | None = None
    fault_text_chunks: int = 0

    def __post_init__(self) -> None:
        if self.fault is not None and self.fault not in FAULT_KINDS:
            raise ValueError(
                f"ModelBehavior.fault must be one of {FAULT_KINDS}, got {self.fault!r}"
            )


@dataclass(frozen=True)
class FaultInjection:
    """Random provider faults: each request fails with probability ``rate``.

    The draw comes from a generator seeded with ``seed``, one draw per request in arrival
    order, so the same seed and the same requests give the same faults. A faulty request gets
    one kind drawn uniformly from ``kinds``:

    * ``"429"``: rate limited, with ``Retry-After`` (``retry_after_s``) and ``retry-after-ms``;
    * ``"500"``: server error; ``"503"``: "model overloaded" (with the retry headers);
    * ``"slow"``: the answer comes after ``slow_s`` seconds (meant to exceed the client's
      timeout); the work is done, so its usage is recorded even if the client gave up;
    * ``"reset_body"``: a non-streamed answer is cut after its headers and half its JSON body
      by a TCP reset (a streamed one is cut as ``reset_sse``);
    * ``"reset_sse"``: a streamed answer is cut by a TCP reset after the role chunk and zero,
      one or two text chunks (drawn too); a non-streamed one is cut as ``reset_body``.

    Attributes:
        rate: Probability in [0, 1] that a request gets a fault.
        kinds: The fault kinds to draw from (a subset of :data:`FAULT_KINDS`).
        seed: Seed of the fault generator.
        slow_s: Seconds a ``"slow"`` answer waits.
        retry_after_s: Seconds announced by ``"429"`` and ``"503"`` faults.
        sse_text_chunks: Text chunks a ``"reset_sse"`` fault sends before the reset (None:
            drawn from 0, 1 and 2; 0: the connection drops before the first token).
    """

    rate: float
    kinds: tuple[str, ...] = FAULT_KINDS
    seed: int = 0
    slow_s: float = 5.0
    retry_after_s: float = 1.0
    sse_text_chunks: int | None = None

    def __post_init__(self) -> None:
        kinds = (self.kinds,) if isinstance(self.kinds, str | int) else self.kinds
        kinds = tuple(str(k) for k in kinds)
        unknown = [k for k in kinds if k not in FAULT_KINDS]
        if unknown or not kinds:
            raise ValueError(
                f"FaultInjection.kinds must be a non-empty subset of {FAULT_KINDS}; "
                f"got {self.kinds!r}"
            )
        if not 0.0 <= self.rate <= 1.0:
            raise ValueError(f"FaultInjection.rate must be in [0, 1]; got {self.rate!r}")
        if self.slow_s < 0 or self.retry_after_s < 0:
            raise ValueError("FaultInjection.slow_s and retry_after_s must not be negative")
        object.__setattr__(self, "kinds", kinds)


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
        fault: The injected fault kind (see :data:`FAULT_KINDS`), or ``None``.
        usage: The tokens the server worked on for this request (``prompt_tokens``,
            ``completion_tokens``, ``total_tokens``): what a provider would bill, also when
            the connection was reset mid-answer or the client timed out. ``None`` when the
            request was rejected with an error status before any work.
    """

    model: str
    messages: list[dict]
    stream: bool
    status: int
    tools: list[dict] | None
    time: float
    body: dict = field(default_factory=dict, repr=False)
    api_key: str = field(default="", repr=False)
    fault: str | None = None
    usage: dict[str, int] | None = None


class _HTTPError(Exception):
    """An error answer: status, message, OpenAI error code/type and retry delay."""

    def __init__(
        self,
        status: int,
        message: str,
        code: str | None = None,
        *,
        kind: str | None = None,
        param: str | None = None,
        retry_after_s: float | None = None,
    ) -> None:
        super().__init__(message)
        self.status, self.message, self.code = status, message, code
        self.kind, self.param, self.retry_after_s = kind, param, retry_after_s


def _status_error(status: int, model: str, retry_after_s: float | None = None) -> _HTTPError:
    """Return the error a provider would send for ``status``, in OpenAI's words."""
    if status == 400:
        return _HTTPError(400, f"Simulated invalid request for model '{model}'.")
    if status == 401:
        return _HTTPError(
            401,
            "Incorrect API key provided. You can find your API key at "
            "https://platform.openai.com/account/api-keys.",
            "invalid_api_key",
            kind="authentication_error",
        )
    if status == 403:
        return _HTTPError(
            403, f"You do not have access to the model '{model}'.", kind="permission_error"
        )
    if status == 404:
        return _HTTPError(
            404,
            f"The model `{model}` does not exist or you do not have access to it.",
            "model_not_found",
        )
    if status == 429:
        wait = 0.0 if retry_after_s is None else retry_after_s
        return _HTTPError(
            429,
            f"Rate limit reached for {model} in organization org-test on requests per min "
            f"(RPM): Limit 60, Used 60, Requested 1. Please try again in {wait:g}s.",
            "rate_limit_exceeded",
            kind="requests",
            retry_after_s=retry_after_s,
        )
    if status == 500:
        return _HTTPError(
            500, "The server had an error while processing your request. Sorry about that!"
        )
    if status == 503:
        return _HTTPError(
            503,
            f"The model `{model}` is overloaded with other requests. Please retry later.",
            retry_after_s=retry_after_s,
        )
    return _HTTPError(status, f"Simulated error {status} for model '{model}'.")


def _context_error(window: int, tokens: int) -> _HTTPError:
    """Return OpenAI's 400 for a prompt longer than the model's context window."""
    return _HTTPError(
        400,
        f"This model's maximum context length is {window} tokens. However, your messages "
        f"resulted in {tokens} tokens. Please reduce the length of the messages.",
        "context_length_exceeded",
        param="messages",
    )


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


@dataclass
class _Answer:
    """What to send for one request, and how to break it.

    Attributes:
        events: The response (one item) or, when streaming, its chunks.
        fault: The injected fault, if any.
        sent_chunks: For ``reset_sse``, the chunks sent before the reset.
        slow_s: Seconds to wait before answering (the ``slow`` fault).
    """

    events: list[dict]
    fault: str | None = None
    sent_chunks: int = 0
    slow_s: float = 0.0


class _Handler(BaseHTTPRequestHandler):
    """Request handler; ``self.server.owner`` is the :class:`FakeOpenAIServer`."""

    protocol_version = "HTTP/1.1"
    timeout = 60
    server: _Server

    def setup(self) -> None:
        """Send every write at once: a reset must not overtake bytes held back by Nagle."""
        super().setup()
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

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

    def _send_json(
        self,
        status: int,
        payload: Any,
        headers: dict[str, str] | None = None,
        *,
        reset: bool = False,
    ) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        if reset:  # headers and half the body, then the connection dies
            self.wfile.write(data[: len(data) // 2])
            self._reset()
            return
        self.wfile.write(data)
        self.wfile.flush()

    def _send_error(self, error: _HTTPError) -> None:
        status, code = error.status, error.code
        kind = error.kind or ("server_error" if status >= 500 else "invalid_request_error")
        body = {"error": {"message": error.message, "type": kind, "param": error.param}}
        body["error"]["code"] = code
        headers = {}
        # Only retryable statuses announce a retry delay (4xx caller errors are final). The
        # default is 1 ms so client retries in tests do not wait.
        if status in _RETRYABLE or status >= 500:
            wait = 0.001 if error.retry_after_s is None else error.retry_after_s
            headers = {
                "retry-after": f"{wait:g}" if error.retry_after_s is not None else "0",
                "retry-after-ms": str(max(1, round(wait * 1000))),
            }
        self._send_json(error.status, body, headers)

    def _reset(self) -> None:
        """Abort the connection with a TCP RST instead of an orderly close."""
        self.close_connection = True
        try:
            self.wfile.flush()
            time.sleep(0.005)  # let the bytes written so far reach the client first
            # SO_LINGER (on, 0 s) makes close() send RST, as a crashed provider proxy does.
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            # The buffered reader holds a reference to the socket; close it too so the file
            # descriptor (and the connection) really closes now. The writer holds none, and
            # stays open so the handler's own final flush is a no-op.
            self.rfile.close()
            self.connection.close()
        except OSError:
            pass

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
            answer = owner._answer(call)
        except _HTTPError as error:
            owner._record(call, status=error.status)
            self._send_error(error)
            return
        try:
            if answer.slow_s > 0:
                time.sleep(answer.slow_s)
            owner._record(call, status=200)
            reset = answer.fault in ("reset_body", "reset_sse")
            if call.stream:
                self._stream(answer.events, answer.sent_chunks if reset else None)
            else:
                self._send_json(200, answer.events[0], reset=reset)
        except (BrokenPipeError, ConnectionResetError):
            # The client gave up (e.g. its timeout fired during a slow answer); the work is
            # done and recorded, so there is nothing left to do for this connection.
            self.close_connection = True

    def _stream(self, events: list[dict], reset_after: int | None = None) -> None:
        """Send ``events`` as SSE; with ``reset_after``, only that many, then reset."""
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        lines = [f"data: {json.dumps(e)}\n\n" for e in events] + ["data: [DONE]\n\n"]
        for event in lines if reset_after is None else lines[:reset_after]:
            data = event.encode()
            self.wfile.write(f"{len(data):X}\r\n".encode() + data + b"\r\n")
            self.wfile.flush()
        if reset_after is not None:
            self._reset()
            return
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()


class _Server(ThreadingHTTPServer):
    """Threading HTTP server that knows its owner and ignores dropped connections."""

    daemon_threads = True
    request_queue_size = 1024  # smaller backlogs drop bursts of connects (1 s SYN retry)
    owner: FakeOpenAIServer

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Ignore clients that hung up (e.g. after a client-side timeout) and reset sockets."""
        if not isinstance(sys.exc_info()[1], OSError):
            super().handle_error(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        """Close the connection, quietly when the handler has already reset it."""
        if request.fileno() == -1:  # closed by `_Handler._reset`
            return
        super().shutdown_request(request)


class FakeOpenAIServer:
    """An in-process OpenAI-compatible chat-completions server for tests and demos.

    Args:
        models: Behavior per served model name (listed by ``/v1/models``).
        default: Behavior for model names not in ``models`` (default ``ModelBehavior()``).
        host: Interface to bind.
        port: Port to bind; 0 lets the OS choose a free one.
        strict_models: Answer unknown model names with 404 ``model_not_found``.
        faults: Random provider faults to inject (see :class:`FaultInjection`).
    """

    def __init__(
        self,
        models: dict[str, ModelBehavior] | None = None,
        *,
        default: ModelBehavior | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        strict_models: bool = False,
        faults: FaultInjection | None = None,
    ) -> None:
        self._models = dict(models or {})
        self._default = default or ModelBehavior()
        self._host, self._port, self._strict = host, port, strict_models
        self._lock = threading.Lock()
        self._calls: list[ServedCall] = []
        self._failures: dict[str, int] = {}
        self._faults: FaultInjection | None = None
        self._rng = random.Random(0)
        self.set_faults(faults)
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

    @property
    def faults(self) -> FaultInjection | None:
        """The random fault injection in force, if any."""
        with self._lock:
            return self._faults

    def set_faults(self, faults: FaultInjection | None) -> None:
        """Inject ``faults`` from now on (``None`` stops); the generator restarts at its seed."""
        with self._lock:
            self._faults = faults
            self._rng = random.Random(faults.seed if faults is not None else 0)

    def fault_counts(self) -> dict[str, int]:
        """How many requests got each injected fault kind (random or triggered)."""
        return dict(Counter(c.fault for c in self.calls if c.fault is not None))

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

    def _record(self, call: ServedCall, **fields: Any) -> None:
        """Update a logged call under the lock, so snapshots never see half an update."""
        with self._lock:
            for name, value in fields.items():
                setattr(call, name, value)

    def _draw_fault(self) -> tuple[str | None, int]:
        """Draw this request's random fault and its reset length (call with the lock held).

        Every faulty request takes the same number of draws whatever its kind, so the fault
        sequence does not depend on whether requests stream.
        """
        faults = self._faults
        if faults is None or faults.rate <= 0 or self._rng.random() >= faults.rate:
            return None, 0
        kind = self._rng.choice(faults.kinds)
        drawn = self._rng.randrange(3)
        return kind, drawn if faults.sse_text_chunks is None else faults.sse_text_chunks

    def _answer(self, call: ServedCall) -> _Answer:
        """Check failures, faults and delays and build the answer (or raise the error)."""
        body, model, messages = call.body, call.model, call.messages
        with self._lock:
            behavior = self._models.get(model)
            if behavior is None and self._strict:
                known = ", ".join(sorted(self._models)) or "(none)"
                detail = f"The model '{model}' does not exist. Known models: {known}."
                raise _HTTPError(404, detail, "model_not_found")
            behavior = behavior or self._default
            fail: int | str | None = None
            if behavior.fail_status is not None:
                count = self._failures.get(model, 0)
                if behavior.fail_times is None or count < behavior.fail_times:
                    self._failures[model] = count + 1
                    fail = behavior.fail_status
            fault, text_chunks = self._draw_fault()
            settings = self._faults or FaultInjection(0.0)
        user_text = _last_text(messages, "user")
        sleep = _SLEEP_RE.search(user_text)
        delay = behavior.delay_s + (float(sleep.group(1)) if sleep else 0.0)
        if delay > 0:
            time.sleep(delay)
        # Precedence: a trigger in the message, then the model's behavior, then chance.
        slow_s = settings.slow_s
        fail_trigger, fault_trigger = _FAIL_RE.search(user_text), _FAULT_RE.search(user_text)
        if fail_trigger:
            group = fail_trigger.group(1)
            fail, fault = (group if group == "context_length" else int(group)), None
        elif fault_trigger:
            fault, argument = fault_trigger.group(1), fault_trigger.group(2)
            if fault not in FAULT_KINDS:
                raise _HTTPError(400, f"Unknown fault trigger {fault!r}; use one of {FAULT_KINDS}.")
            fail, text_chunks = None, 0
            if argument is not None and fault == "slow":
                slow_s = float(argument)
            elif argument is not None:
                text_chunks = int(float(argument))
        elif fail is not None:
            fault = None
        elif behavior.fault is not None:
            fault, text_chunks = behavior.fault, behavior.fault_text_chunks
        prompt_tokens = _usage(messages, "")["prompt_tokens"]
        window = behavior.context_window
        if fail == "context_length":
            window = window or _DEFAULT_CONTEXT_WINDOW
            raise _context_error(window, max(prompt_tokens, window + 1))
        if fail is not None:
            raise _status_error(int(fail), model)
        if fault in ("429", "500", "503"):
            self._record(call, fault=fault)
            raise _status_error(int(fault), model, settings.retry_after_s)
        if window is not None and prompt_tokens > window:
            raise _context_error(window, prompt_tokens)

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
        answer = _Answer([], fault, slow_s=slow_s if fault == "slow" else 0.0)
        if not call.stream:
            message: dict[str, Any] = {"role": "assistant", "content": None if tool_call else text}
            message.update({"tool_calls": [tool_call]} if tool_call else {})
            choices = [
                {"index": i, "message": message, "finish_reason": finish, "logprobs": None}
                for i in range(n)
            ]
            answer.events = [
                {**head, "object": "chat.completion", "choices": choices, "usage": usage}
            ]
        else:
            include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
            answer.events = list(
                _chunks(head, n, text, tool_call, finish, usage if include_usage else None)
            )
        if call.stream and fault in ("reset_body", "reset_sse"):
            # The role chunk plus up to `text_chunks` deltas, never the finish chunk: the
            # provider billed the prompt and the tokens it streamed before the connection died.
            deltas = next(
                i
                for i, event in enumerate(answer.events)
                if any(c.get("finish_reason") for c in event.get("choices") or [])
            )
            text_chunks = min(text_chunks, deltas - 1)
            answer.sent_chunks = 1 + text_chunks
            usage = _streamed_usage(prompt_tokens, answer.events[: answer.sent_chunks])
        self._record(call, fault=fault, usage=usage)
        return answer


def _streamed_usage(prompt_tokens: int, events: list[dict]) -> dict[str, int]:
    """Return the usage of a stream cut after ``events``: the prompt and the words sent."""
    pieces: list[str] = []
    for event in events:
        for choice in event.get("choices") or []:
            delta = choice.get("delta") or {}
            pieces.append(delta.get("content") or "")
            for call in delta.get("tool_calls") or []:
                pieces.append((call.get("function") or {}).get("arguments") or "")
    completion = len("".join(pieces).split())
    return dict(
        prompt_tokens=prompt_tokens,
        completion_tokens=completion,
        total_tokens=prompt_tokens + completion,
    )


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
    parser.add_argument("--fault-rate", type=float, default=0.0, help="share of faulty answers")
    parser.add_argument(
        "--fault-kinds", default=",".join(FAULT_KINDS), help="comma-separated fault kinds"
    )
    parser.add_argument("--fault-seed", type=int, default=0)
    parser.add_argument("--slow-s", type=float, default=5.0, help="delay of a 'slow' fault")
    args = parser.parse_args(argv)
    models = {name: ModelBehavior(delay_s=args.delay) for name in args.model}
    default = ModelBehavior(delay_s=args.delay)
    faults = None
    if args.fault_rate > 0:
        kinds = tuple(k.strip() for k in args.fault_kinds.split(",") if k.strip())
        try:
            faults = FaultInjection(args.fault_rate, kinds, args.fault_seed, args.slow_s)
        except ValueError as exc:
            parser.error(str(exc))
    with FakeOpenAIServer(
        models, default=default, host=args.host, port=args.port, faults=faults
    ) as server:
        print(f"Fake OpenAI server at {server.base_url} (Ctrl-C to stop)", flush=True)
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            print("Stopping.", flush=True)


if __name__ == "__main__":
    main()
