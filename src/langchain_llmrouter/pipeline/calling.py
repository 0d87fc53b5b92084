"""How stage 3 calls a candidate: rate limiting per service, retries with back-off for
transient errors, token usage and cost estimates, and the candidates' chat models."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.rate_limiters import BaseRateLimiter, InMemoryRateLimiter

from langchain_llmrouter.candidates import CandidatePool, LLMCandidate, estimate_input_tokens
from langchain_llmrouter.errors import UnknownCandidateError
from langchain_llmrouter.pipeline.config import PipelineConfig

_RETRY_AFTER_CAP_S = 60.0


def is_transient(exc: BaseException) -> bool:
    """Whether an error is worth retrying: rate limits, server errors, timeouts, dropped
    connections. Bad requests, authentication and unknown models are not."""
    status = _status(exc)
    if status is not None:
        return status in (408, 409, 425, 429) or status >= 500
    if isinstance(exc, TimeoutError | ConnectionError):
        return True
    name = type(exc).__name__
    return "Timeout" in name or "Connection" in name or "RemoteProtocol" in name


def _status(exc: BaseException) -> int | None:
    status = getattr(exc, "status_code", None)
    if status is None:
        status = getattr(getattr(exc, "response", None), "status_code", None)
    return status if isinstance(status, int) else None


def error_label(exc: BaseException) -> str:
    """A short name for an error, for counts: ``HTTP 429`` or the exception's type."""
    status = _status(exc)
    return f"HTTP {status}" if status is not None else type(exc).__name__


def _retry_after(exc: BaseException) -> float | None:
    headers = getattr(getattr(exc, "response", None), "headers", None)
    value = headers.get("retry-after") if headers is not None else None
    try:
        return min(float(value), _RETRY_AFTER_CAP_S) if value is not None else None
    except ValueError:
        return None


@dataclass
class Caller:
    """Calls one candidate with rate limiting and retries."""

    model: BaseChatModel
    limiter: BaseRateLimiter | None
    max_retries: int
    backoff_s: float
    rng: random.Random
    on_retry: Callable[[BaseException], None]

    async def __call__(
        self, messages: list[BaseMessage], before_send: Callable[[], None] | None = None
    ) -> tuple[AIMessage, float, int]:
        """The answer, the latency of the successful attempt, and the attempts made;
        ``before_send`` runs once, after the rate limiter and just before the first send."""
        attempt = 0
        while True:
            attempt += 1
            if self.limiter is not None:
                await self.limiter.aacquire()
            if attempt == 1 and before_send is not None:
                before_send()
            started = time.perf_counter()
            try:
                message = await self.model.ainvoke(messages)
            except Exception as exc:
                if attempt > self.max_retries or not is_transient(exc):
                    raise
                self.on_retry(exc)
                delay = _retry_after(exc)
                if delay is None:
                    delay = self.backoff_s * 2 ** (attempt - 1) * self.rng.uniform(0.5, 1.5)
                await asyncio.sleep(delay)
                continue
            assert isinstance(message, AIMessage)
            return message, time.perf_counter() - started, attempt


def service_bucket(
    service: str | None, per_service: Mapping[str, float]
) -> tuple[str, float] | None:
    """The rate-limit bucket of a service and its requests per second (``"*"`` covers
    services not listed; names match case-insensitively), or None when it is not limited."""
    limits = {k.lower(): v for k, v in per_service.items()}
    service = (service or "").lower()
    if service in limits:
        return service, limits[service]
    return ("*", limits["*"]) if "*" in limits else None


def rate_limiters(
    pool: CandidatePool, names: list[str], per_service: Mapping[str, float]
) -> dict[str, InMemoryRateLimiter | None]:
    """One shared limiter per service (``"*"`` covers services not listed)."""
    by_service: dict[str, InMemoryRateLimiter] = {}
    out: dict[str, InMemoryRateLimiter | None] = {}
    for name in names:
        bucket = service_bucket(pool[name].service, per_service)
        if bucket is None:
            out[name] = None
            continue
        key, rate = bucket
        if key not in by_service:
            by_service[key] = InMemoryRateLimiter(
                requests_per_second=rate,
                check_every_n_seconds=min(0.05, 0.5 / rate),
                max_bucket_size=1,
            )
        out[name] = by_service[key]
    return out


def usage_tokens(message: AIMessage, prompt_text: str) -> tuple[int, int, bool]:
    """Input and output tokens from ``usage_metadata``; estimated (and flagged) if absent."""
    usage = message.usage_metadata
    if usage and (usage.get("input_tokens") or usage.get("output_tokens")):
        return int(usage.get("input_tokens") or 0), int(usage.get("output_tokens") or 0), False
    return estimate_input_tokens(prompt_text), estimate_input_tokens(message.text), True


def worst_case_cost(candidate: LLMCandidate, messages: list[BaseMessage], max_tokens: int) -> float:
    """Upper estimate of one call's dollars, reserved against ``max_cost`` before the call:
    the prompt at 4 characters a token with a 25% margin, plus ``max_tokens`` of output."""
    prompt = "".join(m.text for m in messages)
    return candidate.estimate_cost(estimate_input_tokens(prompt) * 1.25, max_tokens)


def build_pool(config: PipelineConfig) -> CandidatePool:
    """The candidates of ``data_path.llm_data``, their ``ChatOpenAI`` set up for stage 3."""
    calls = config.calls
    return CandidatePool.from_json(
        config.input(config.data_path.llm_data, what="data_path.llm_data"),
        api_endpoint=config.api_endpoint,
        chat_model_kwargs={
            "max_retries": 0,  # retried here, through the rate limiter
            "timeout": calls.timeout_s,
            "max_tokens": calls.max_tokens,
            "temperature": calls.temperature,
        },
    )


def selected_models(config: PipelineConfig, pool: CandidatePool) -> list[str]:
    """The candidates to call (``calls.models``, else all), each checked for an endpoint and
    key before any call is made.

    Raises:
        UnknownCandidateError: listing the valid names.
        MissingEndpointError, MissingAPIKeyError: naming the candidate.
    """
    names = config.calls.models or pool.names
    for name in names:
        if name not in pool:
            raise UnknownCandidateError(name, pool.names, context="calls.models")
    for name in names:
        pool.chat_model(name)  # a candidate without an endpoint or key fails here, named
    return list(names)
