"""The Ray actors of the pipeline's Ray engine (`langchain_llmrouter.pipeline.ray_engine`):
the dispenser, one named actor holding every service's token bucket and the ``API_KEYS``
rotation for the whole cluster, and the calling actors, which call and score pairs with the
local engine's code (`Caller`, `paid_call`, `Scorer`). Ray is imported only when they run.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from langchain_core.rate_limiters import BaseRateLimiter

from langchain_llmrouter._optional import import_optional
from langchain_llmrouter.candidates import APIKeys, CandidatePool, LLMCandidate
from langchain_llmrouter.pipeline.answers import Scorer, paid_call
from langchain_llmrouter.pipeline.calling import Caller, error_label, service_bucket
from langchain_llmrouter.pipeline.config import PipelineConfig
from langchain_llmrouter.pipeline.tasks import load_plugins, render_messages


def require_ray() -> Any:
    """Import Ray, or raise `MissingDependencyError` naming the ``ray`` extra."""
    return import_optional("ray", extra="ray", feature="engine: ray")


# --- the cluster-wide rate limits and key rotation -----------------------------------------


@dataclass(frozen=True)
class _Route:
    """What the dispenser knows of one candidate."""

    bucket: str | None
    """Its service's rate-limit bucket (None: not limited)."""
    rate: float
    """Requests per second of that bucket."""
    service: str | None
    """Its service (for service-keyed ``API_KEYS``)."""
    rotation: str | None
    """Its key-rotation group (endpoint and model), or None when it needs no key."""


class _Dispenser:
    """The named actor every calling actor asks before each attempt: one token bucket per
    service (bucket size one, as the local engine's limiter) and the round-robin of
    ``API_KEYS``, both shared by the whole cluster."""

    def __init__(self, api_keys: str | None, routes: dict[str, _Route]) -> None:
        self.keys = APIKeys.parse(api_keys)
        self.routes = routes
        self.next_free: dict[str, float] = {}
        self.locks: dict[str, asyncio.Lock] = {}

    async def acquire(self, model: str) -> None:
        """Wait for the next slot of the candidate's service."""
        route = self.routes[model]
        if route.bucket is None:
            return
        lock = self.locks.setdefault(route.bucket, asyncio.Lock())
        async with lock:
            now = time.monotonic()
            wait = self.next_free.get(route.bucket, now) - now
            if wait > 0:
                await asyncio.sleep(wait)
                now = time.monotonic()
            self.next_free[route.bucket] = now + 1.0 / route.rate

    async def key(self, model: str) -> str:
        """The next API key for the candidate."""
        route = self.routes[model]
        if route.rotation is None:
            return "local"
        return self.keys.next_key(route.service, rotation=route.rotation)


def _routes(config: PipelineConfig, pool: CandidatePool, models: list[str]) -> dict[str, _Route]:
    keys = pool.api_keys
    routes = {}
    for name in models:
        candidate = pool[name]
        bucket = service_bucket(candidate.service, config.calls.requests_per_second)
        has_keys = bool(keys.keys_for(candidate.service))
        routes[name] = _Route(
            bucket=bucket[0] if bucket else None,
            rate=bucket[1] if bucket else 0.0,
            service=candidate.service,
            rotation=f"{pool.endpoint_for(name)}|{candidate.model}" if has_keys else None,
        )
    return routes


class _ClusterLimiter(BaseRateLimiter):
    """`Caller`'s rate limiter in a calling actor: a slot from the dispenser."""

    def __init__(self, dispenser: Any, model: str) -> None:
        self.dispenser, self.model = dispenser, model

    def acquire(self, *, blocking: bool = True) -> bool:
        require_ray().get(self.dispenser.acquire.remote(self.model))
        return True

    async def aacquire(self, *, blocking: bool = True) -> bool:
        await self.dispenser.acquire.remote(self.model)
        return True


# --- the calling actors --------------------------------------------------------------------


class _CallWorker:
    """A calling actor: the candidates' chat models, `Caller`s and `Scorer` of the local
    engine; its keys and rate-limit slots come from the dispenser."""

    def __init__(
        self,
        config: PipelineConfig,
        candidates: list[LLMCandidate],
        chat_model_kwargs: dict[str, Any],
        models: list[str],
        dispenser_name: str,
        needs_key: dict[str, bool],
        seed: int,
    ) -> None:
        import ray

        if config.source is not None:
            load_plugins(config.plugins, base=config.source.parent)
        dispenser = ray.get_actor(dispenser_name)
        self.pool = CandidatePool(
            candidates,
            api_endpoint=config.api_endpoint,
            api_keys=APIKeys(),
            chat_model_kwargs=chat_model_kwargs,
        )

        def key_provider(name: str) -> Callable[[], Any]:
            if not needs_key[name]:
                return lambda: "local"

            async def next_key() -> str:
                return str(await dispenser.key.remote(name))

            return next_key

        # Keys come from the dispenser (one rotation for the cluster), not this process.
        setattr(self.pool, "key_provider", key_provider)  # noqa: B010
        self.scorer = Scorer(config)
        self.retries: dict[str, int] = {}
        rng = random.Random(seed)
        calls = config.calls
        limited = {
            n for n in models if service_bucket(self.pool[n].service, calls.requests_per_second)
        }
        self.callers = {
            name: Caller(
                self.pool.chat_model(name),
                _ClusterLimiter(dispenser, name) if name in limited else None,
                calls.max_retries,
                calls.retry_backoff_s,
                rng,
                self._count_retry,
            )
            for name in models
        }

    def _count_retry(self, exc: BaseException) -> None:
        key = f"retried {error_label(exc)}"
        self.retries[key] = self.retries.get(key, 0) + 1

    def _drain(self) -> dict[str, int]:
        retries, self.retries = self.retries, {}
        return retries

    async def ready(self) -> bool:
        """True once the actor is built (its chat models made)."""
        return True

    async def run(self, job: dict[str, Any]) -> dict[str, Any]:
        """Call (unless ``job["paid"]`` holds an earlier paid response) and score one pair.

        Returns:
            ``{"paid", "performance"}``, or ``{"stage", "error", "label"}`` (plus ``paid``
            when scoring failed), each with ``retries`` (this actor's retry counts since its
            last answer).
        """
        row, model, base = job["row"], job["model"], job["base"]
        paid = job.get("paid")
        if paid is None:
            try:
                paid = await paid_call(
                    self.callers[model], self.pool[model], render_messages(row), base
                )
            except Exception as exc:
                return self._error("call", exc)
        try:
            performance = await self.scorer.score(str(paid["response"]), {**row, **base})
        except Exception as exc:
            return {**self._error("score", exc), "paid": paid}
        return {"paid": paid, "performance": performance, "retries": self._drain()}

    def _error(self, stage: str, exc: BaseException) -> dict[str, Any]:
        return {
            "stage": stage,
            "error": f"{type(exc).__name__}: {exc}",
            "label": error_label(exc),
            "retries": self._drain(),
        }
