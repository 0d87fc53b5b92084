"""The FastAPI app of ``llmrouter serve`` (needs the ``serve`` extra).

Each chat-completions request is one `RouterChatModel` call: the request's messages become
LangChain messages, tools are bound with ``bind_tools``, and the answer (or stream) is written
back in OpenAI's format with the decision in ``x-llmrouter-*`` headers and an extra
``llmrouter`` field. Nothing here routes, retries or falls back on its own.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, TypeVar

from langchain_core.messages import AIMessageChunk
from pydantic import BaseModel, ValidationError

from langchain_llmrouter._optional import import_optional

import_optional("fastapi", extra="serve", feature="llmrouter serve")

from fastapi import FastAPI, Request  # noqa: E402
from fastapi.exceptions import RequestValidationError  # noqa: E402
from fastapi.responses import JSONResponse, Response, StreamingResponse  # noqa: E402
from starlette.exceptions import HTTPException  # noqa: E402

from langchain_llmrouter import __version__  # noqa: E402
from langchain_llmrouter.errors import (  # noqa: E402
    InvalidOptionError,
    LLMRouterError,
    UnknownNameError,
)
from langchain_llmrouter.serve.auth import ServerAuth  # noqa: E402
from langchain_llmrouter.serve.convert import (  # noqa: E402
    ROUTING_FIELD,
    ChunkWriter,
    completion,
    error_body,
    to_langchain,
)
from langchain_llmrouter.serve.deployment import (  # noqa: E402
    DIRECT,
    Deployment,
    ServeConfig,
    Target,
    load_serve_config,
)
from langchain_llmrouter.serve.metrics import CONTENT_TYPE, ServerMetrics, spent  # noqa: E402
from langchain_llmrouter.serve.schemas import (  # noqa: E402
    ChatCompletionRequest,
    FeedbackRequest,
)

logger = logging.getLogger(__name__)
_Body = TypeVar("_Body", bound=BaseModel)

CONFIG_ENV = "LLMROUTER_SERVE_CONFIG"
"""The config path `app_from_env` loads (set by ``llmrouter serve`` for its workers)."""
NO_AUTH_ENV = "LLMROUTER_SERVE_NO_AUTH"
"""``1``: `app_from_env` serves without authentication (``--no-auth``)."""


class APIError(Exception):
    """An error answer in OpenAI's format."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        kind: str = "invalid_request_error",
        code: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status, self.message, self.kind, self.code = status, message, kind, code
        self.headers = headers or {}

    def response(self) -> JSONResponse:
        """The JSON answer."""
        return JSONResponse(
            error_body(self.message, self.kind, self.code), self.status, headers=self.headers
        )


def auth_from_config(config: ServeConfig) -> ServerAuth:
    """The key store a config describes (keys from its environment variable and file)."""
    keys_file = config.resolve(config.auth.keys_file, what="auth.keys_file")
    return ServerAuth.from_sources(
        keys_env=config.auth.keys_env, keys_file=keys_file, spend_limit=config.auth.spend_limit
    )


def create_app(
    deployment: Deployment | ServeConfig | str | Path, *, auth: ServerAuth | None = None
) -> FastAPI:
    """The server app.

    Args:
        deployment: What to serve: a built `Deployment`, or a serve config (loaded here).
        auth: Inbound keys (default: the config's ``auth`` section; required with a
            `Deployment`). `ServerAuth.disabled` serves everyone.
    """
    if isinstance(deployment, str | Path):
        deployment = load_serve_config(deployment)
    if isinstance(deployment, ServeConfig):
        config = deployment
        auth = auth if auth is not None else auth_from_config(config)
        deployment = Deployment.from_config(config)
    if auth is None:
        raise ValueError("give auth= (a ServerAuth, or ServerAuth.disabled() for local use)")
    server = _Server(deployment, auth)
    app = FastAPI(title="llmrouter serve", version=__version__)
    app.state.llmrouter = server

    @app.exception_handler(APIError)
    async def _api_error(request: Request, exc: APIError) -> JSONResponse:
        return exc.response()

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        return APIError(400, str(exc)).response()

    @app.exception_handler(HTTPException)
    async def _http(request: Request, exc: HTTPException) -> JSONResponse:
        code = "not_found" if exc.status_code == 404 else None
        return APIError(exc.status_code, str(exc.detail), code=code).response()

    app.add_api_route("/v1/chat/completions", server.chat_completions, methods=["POST"])
    app.add_api_route("/v1/models", server.models, methods=["GET"])
    app.add_api_route("/v1/feedback", server.feedback, methods=["POST"])
    app.add_api_route("/health/liveliness", server.liveliness, methods=["GET"])
    app.add_api_route("/health/readiness", server.readiness, methods=["GET"])
    app.add_api_route("/metrics", server.metrics_text, methods=["GET"])
    return app


def app_from_env() -> FastAPI:
    """The app for a uvicorn worker: config from ``LLMROUTER_SERVE_CONFIG`` (a factory)."""
    path = os.environ.get(CONFIG_ENV)
    if not path:
        raise LLMRouterError(f"set {CONFIG_ENV} to a serve config")
    no_auth = os.environ.get(NO_AUTH_ENV) == "1"
    return create_app(path, auth=ServerAuth.disabled() if no_auth else None)


class _Server:
    """The endpoints, over one deployment, key store and set of metrics."""

    def __init__(self, deployment: Deployment, auth: ServerAuth) -> None:
        self.deployment = deployment
        self.auth = auth
        self.metrics = ServerMetrics(deployment.pool.health)

    # --- health and metrics (no LLM calls, no key) ------------------------------------------

    async def liveliness(self) -> dict[str, str]:
        """The process answers."""
        return {"status": "ok"}

    async def readiness(self) -> JSONResponse:
        """Routers fitted and candidates callable (200), or not (503)."""
        state = self.deployment.ready()
        return JSONResponse(state, status_code=200 if state["ready"] else 503)

    async def metrics_text(self) -> Response:
        """Prometheus metrics."""
        return Response(self.metrics.exposition(), media_type=CONTENT_TYPE)

    # --- the OpenAI API -----------------------------------------------------------------

    def _key(self, request: Request) -> bytes:
        key_id = self.auth.check(request.headers.get("authorization"))
        if key_id is None:
            self.metrics.failed("-", 401)
            raise APIError(
                401,
                "missing or invalid API key: send 'Authorization: Bearer <key>'",
                code="invalid_api_key",
                headers={"www-authenticate": "Bearer"},
            )
        return key_id

    async def models(self, request: Request) -> dict[str, Any]:
        """The model names a client may ask for."""
        self._key(request)
        data = [
            {"id": name, "object": "model", "created": 0, "owned_by": "llmrouter"}
            for name in self.deployment.model_names()
        ]
        return {"object": "list", "data": data}

    async def feedback(self, request: Request) -> dict[str, Any]:
        """Record a user's rating of an answer; a personalised router uses it at once."""
        self._key(request)
        body = await _parsed(request, FeedbackRequest)
        try:
            rated = await asyncio.to_thread(
                self.deployment.feedback, body.id, body.score, user_id=body.user
            )
        except KeyError as exc:
            raise APIError(404, str(exc), code="answer_not_found") from None
        except InvalidOptionError as exc:
            raise APIError(400, str(exc)) from None
        return {
            "object": "feedback",
            "id": body.id,
            "user": rated.user_id,
            "model": rated.model,
            "rating": rated.rating,
        }

    async def chat_completions(self, request: Request) -> Response:
        """Route one chat completion (streamed or not) through `RouterChatModel`."""
        key_id = self._key(request)
        body = await _parsed(request, ChatCompletionRequest)
        try:
            target = self.deployment.resolve(body.model)
        except UnknownNameError as exc:
            self.metrics.failed("-", 404)
            raise APIError(404, str(exc), code="model_not_found") from None
        if self.auth.over_limit(key_id):
            self.metrics.failed(target.label, 429)
            raise APIError(
                429,
                f"this key has used its spend limit (${self.auth.limit(key_id):g})",
                kind="insufficient_quota",
                code="spend_limit_exceeded",
            )
        model: Any = target.model
        if body.tools:
            model = model.bind_tools(
                body.tools,
                tool_choice=body.tool_choice,
                parallel_tool_calls=body.parallel_tool_calls,
            )
        kwargs = {**body.call_kwargs(), **target.options}
        if body.user is not None:
            kwargs["user_id"] = body.user  # a personalised router routes for this user
        messages = to_langchain(body.messages)
        if body.stream:
            include_usage = bool(body.stream_options and body.stream_options.include_usage)
            return await self._stream(model, messages, kwargs, target, key_id, body, include_usage)
        started = time.perf_counter()
        try:
            message = await model.ainvoke(messages, **kwargs)
        except Exception as exc:
            raise self._failed(exc, target, key_id) from None
        routing = self._public(message.response_metadata.get("routing", {}), target, body.model)
        self._answered(routing, target, key_id, started)
        payload = completion(message, model=routing["model"], routing=routing)
        return Response(
            json.dumps(payload, default=str),
            media_type="application/json",
            headers=_headers(routing),
        )

    async def _stream(
        self,
        model: Any,
        messages: list[Any],
        kwargs: dict[str, Any],
        target: Target,
        key_id: bytes,
        body: ChatCompletionRequest,
        include_usage: bool,
    ) -> Response:
        started = time.perf_counter()
        chunks = aiter(model.astream(messages, **kwargs))
        try:  # the first chunk carries the decision; failures before it get a status
            first = await anext(chunks)
        except Exception as exc:
            raise self._failed(exc, target, key_id) from None
        routing = self._public(first.response_metadata.get("routing", {}), target, body.model)
        writer = ChunkWriter(model=routing["model"], include_usage=include_usage, routing=routing)

        async def events() -> AsyncIterator[str]:
            final = dict(routing)
            chunk: AIMessageChunk | None = first
            try:
                yield _sse(writer.first())
                while chunk is not None:
                    final.update(chunk.response_metadata.get("routing") or {})
                    out = writer.feed(chunk)
                    if out is not None:
                        yield _sse(out)
                    chunk = await anext(chunks, None)
            except Exception as exc:
                error = self._failed(exc, target, key_id)
                yield _sse(error_body(error.message, error.kind, error.code))
                return
            finally:
                await chunks.aclose()
            final = self._public(final, target, body.model)
            self._answered(final, target, key_id, started)
            for out in writer.last(final):
                yield _sse(out)
            yield "data: [DONE]\n\n"

        return StreamingResponse(
            events(), media_type="text/event-stream", headers=_headers(routing)
        )

    # --- bookkeeping ------------------------------------------------------------------------

    @staticmethod
    def _public(routing: dict[str, Any], target: Target, requested: str) -> dict[str, Any]:
        """The decision as clients see it: the router by its served name, what was asked."""
        return {
            **routing,
            "router": target.label,
            "algorithm": routing.get("router") if target.label != DIRECT else None,
            "requested": requested,
        }

    def _answered(
        self, routing: dict[str, Any], target: Target, key_id: bytes, started: float
    ) -> None:
        self.auth.charge(key_id, spent(routing))
        self.metrics.answered(target.label, routing, time.perf_counter() - started)

    def _failed(self, exc: Exception, target: Target, key_id: bytes) -> APIError:
        """Account for a failed request; the error to answer with."""
        attempts = getattr(exc, "attempts", None) or []
        dollars = sum(float(getattr(a, "cost", None) or 0.0) for a in attempts)
        self.auth.charge(key_id, dollars)
        error = _error_for(exc)
        if error.status >= 500 and not attempts:
            logger.exception("request failed", exc_info=exc)
        self.metrics.failed(target.label, error.status, dollars)
        return error


def _error_for(exc: Exception) -> APIError:
    """The HTTP answer for a failed call (the request path has already fallen back)."""
    from langchain_llmrouter.chat_model import AllCandidatesFailedError, PartialStreamError
    from langchain_llmrouter.errors import InvalidOptionError

    if isinstance(exc, AllCandidatesFailedError):
        kinds = [a.error for a in exc.attempts if a.error is not None]
        retry = {"retry-after": "1"}
        if kinds and all(k == "rate_limit" for k in kinds):
            return APIError(
                429, str(exc), kind="rate_limit_error", code="rate_limit_exceeded", headers=retry
            )
        if not kinds or all(k in ("rate_limit", "unavailable") for k in kinds):
            return APIError(
                503, str(exc), kind="server_error", code="all_candidates_failed", headers=retry
            )
        return APIError(502, str(exc), kind="server_error", code="all_candidates_failed")
    if isinstance(exc, PartialStreamError):
        return APIError(502, str(exc), kind="server_error", code="stream_interrupted")
    if isinstance(exc, InvalidOptionError | ValueError | TypeError):
        return APIError(400, str(exc))
    status = getattr(exc, "status_code", None)
    if isinstance(status, int):  # a candidate's caller error, raised at once
        message = getattr(exc, "message", None) or str(exc)
        if status == 429:
            return APIError(429, message, kind="rate_limit_error", code="rate_limit_exceeded")
        if status in (400, 413, 422):
            return APIError(400, message, code=getattr(exc, "code", None))
        return APIError(502, f"candidate answered {status}: {message}", kind="server_error")
    return APIError(500, f"{type(exc).__name__}: {exc}", kind="server_error")


async def _parsed(request: Request, schema: type[_Body]) -> _Body:
    """The request's JSON body as ``schema``; a 400 naming the problem otherwise."""
    try:
        return schema.model_validate(await request.json())
    except json.JSONDecodeError as exc:
        raise APIError(400, f"the body is not JSON: {exc}") from None
    except ValidationError as exc:
        raise APIError(400, _validation_message(exc)) from None


def _validation_message(exc: ValidationError) -> str:
    parts = []
    for error in exc.errors():
        where = ".".join(str(p) for p in error["loc"]) or "body"
        parts.append(f"{where}: {error['msg']}")
    return "invalid request: " + "; ".join(parts)


def _headers(routing: dict[str, Any]) -> dict[str, str]:
    """The decision in ``x-llmrouter-*`` headers."""
    headers = {
        "x-llmrouter-model": str(routing.get("model")),
        "x-llmrouter-router": str(routing.get("router")),
        "x-llmrouter-chosen": str(routing.get("chosen")),
        "x-llmrouter-est-cost": f"{float(routing.get('est_cost') or 0.0):.6g}",
        "x-llmrouter-fallback": "true" if routing.get("fallback") else "false",
    }
    if routing.get("cost_weight") is not None:
        headers["x-llmrouter-cost-weight"] = f"{float(routing['cost_weight']):g}"
    return headers


def _sse(payload: dict[str, Any]) -> str:
    return f"data: {json.dumps(payload, default=str)}\n\n"


__all__ = ["ROUTING_FIELD", "APIError", "app_from_env", "auth_from_config", "create_app"]
