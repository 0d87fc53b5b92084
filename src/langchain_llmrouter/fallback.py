"""When a failed candidate call may be retried on another candidate, and on which.

One policy for every entry point (`RouterChatModel`'s invoke, stream and their async
twins, and anything built on them): `classify_failure` names what went wrong,
`is_provider_failure` says whether another candidate could do better, and `plan_attempts`
orders the candidates to try, skipping those cooling down in `CandidateHealth`.
"""

from __future__ import annotations

import asyncio
import re
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from langchain_llmrouter.errors import LLMRouterError

FailureKind = Literal[
    "timeout",
    "transport",
    "rate_limit",
    "server",
    "unavailable",
    "context_length",
    "caller",
    "provider",
]
"""What went wrong in one candidate call.

- ``timeout``: the client gave up waiting (read, write or pool timeout).
- ``transport``: the connection failed, was reset, or the body was cut short.
- ``rate_limit``: 408, 409, 425 or 429: the provider asks to come back later.
- ``server``: a 5xx answer.
- ``unavailable``: the provider says the model is overloaded or not available.
- ``context_length``: the prompt does not fit the model's context window.
- ``caller``: the request itself is wrong (bad arguments, 400/401/403/404/422, a bug in
  the calling code, a configuration error of this package); another candidate would fail
  the same way, so it is raised at once.
- ``provider``: any other error raised by a provider's client library.
"""

PROVIDER_FAILURES: frozenset[str] = frozenset(
    {"timeout", "transport", "rate_limit", "server", "unavailable", "context_length", "provider"}
)
"""Failure kinds that another candidate may not have: these fall back."""

_RETRY_LATER = frozenset({408, 409, 425, 429})
_CALLER_STATUSES = frozenset({400, 401, 403, 404, 422})
_UNAVAILABLE = re.compile(
    r"overloaded|not available|unavailable|currently loading|capacity", re.IGNORECASE
)
_CONTEXT_LENGTH = re.compile(
    r"context[_ ]length|context window|maximum context|too many tokens|prompt is too long",
    re.IGNORECASE,
)
# Errors of the calling code, not of a provider: switching candidate cannot fix them.
_PROGRAMMING_ERRORS = (
    LLMRouterError,
    TypeError,
    ValueError,
    KeyError,
    AttributeError,
    NameError,
    ImportError,
    AssertionError,
    NotImplementedError,
    LookupError,
)


def _status_of(exc: BaseException) -> int | None:
    status = getattr(exc, "status_code", None)
    if status is None:
        response = getattr(exc, "response", None)
        status = getattr(response, "status_code", None)
    return status if isinstance(status, int) else None


def _error_code(exc: BaseException) -> str:
    code = getattr(exc, "code", None)
    body = getattr(exc, "body", None)
    if code is None and isinstance(body, dict):
        inner = body.get("error", body)
        code = inner.get("code") if isinstance(inner, dict) else None
    return str(code or "")


def _chain(exc: BaseException) -> list[BaseException]:
    seen: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and current not in seen and len(seen) < 8:
        seen.append(current)
        current = current.__cause__ or current.__context__
    return seen


def classify_failure(exc: BaseException) -> FailureKind:
    """Name what went wrong in a candidate call (see `FailureKind`).

    Works on the exceptions of the ``openai`` and ``httpx`` clients, on any exception that
    carries an HTTP ``status_code`` (most provider SDKs), and on Python's own errors.
    """
    status = _status_of(exc)
    if status is not None:
        text = f"{_error_code(exc)} {exc}"
        if status in _RETRY_LATER:
            return "rate_limit"
        if status >= 500:
            return "unavailable" if _UNAVAILABLE.search(text) else "server"
        if _CONTEXT_LENGTH.search(text):
            return "context_length"
        if status in _CALLER_STATUSES:
            # A 404 "model not available" is the provider's state, not the caller's mistake;
            # a 404 for an unknown model name is a configuration error.
            if status == 404 and re.search(r"not available|unavailable", text, re.IGNORECASE):
                return "unavailable"
            return "caller"
        return "caller" if 400 <= status < 500 else "provider"
    for link in _chain(exc):
        if isinstance(link, TimeoutError | asyncio.TimeoutError):
            return "timeout"
        name = type(link).__name__
        module = type(link).__module__
        if module.startswith(("httpx", "httpcore", "openai", "requests", "urllib3", "aiohttp")):
            if "Timeout" in name:
                return "timeout"
            if any(
                part in name
                for part in ("Connect", "Connection", "Protocol", "Read", "Write", "Network")
            ):
                return "transport"
        if isinstance(link, ConnectionError):
            return "transport"
    if isinstance(exc, _PROGRAMMING_ERRORS):
        return "caller"
    if _CONTEXT_LENGTH.search(str(exc)):
        return "context_length"
    if _UNAVAILABLE.search(str(exc)):
        return "unavailable"
    return "provider"


def is_provider_failure(exc: BaseException) -> bool:
    """Whether another candidate might succeed where this call failed."""
    return classify_failure(exc) in PROVIDER_FAILURES


def provider_did_work(exc: BaseException) -> bool:
    """Whether the provider probably ran the model before the call failed (so may bill it).

    A rejected request (an error status) or a connection never made costs nothing; a
    timeout while waiting for the answer, or a connection cut while the answer was being
    sent, does.
    """
    if _status_of(exc) is not None:
        return False
    for link in _chain(exc):
        name = type(link).__name__
        if "Connect" in name and "Connection" not in name:  # ConnectError, ConnectTimeout
            return False
    return classify_failure(exc) in ("timeout", "transport")


@dataclass
class Attempt:
    """One call to one candidate while answering a request."""

    model: str
    """The candidate called."""
    latency_s: float = 0.0
    """Seconds from the call to its answer, or to its failure."""
    error: FailureKind | None = None
    """What went wrong (None: this attempt answered)."""
    message: str = ""
    """The error's text (``Type: message``)."""
    usage: dict[str, int] | None = None
    """Token usage reported for this attempt, when known."""
    cost: float | None = None
    """Dollars this attempt cost, when known or estimated."""
    cost_estimated: bool = False
    """Whether ``cost`` is the router's estimate (the provider reported no usage)."""

    def to_metadata(self) -> dict[str, Any]:
        """The attempt as a plain dict for ``response_metadata["routing"]["attempts"]``."""
        return {
            "model": self.model,
            "error": self.error,
            "message": self.message,
            "latency_s": round(self.latency_s, 6),
            "usage": self.usage,
            "cost": self.cost,
            "cost_estimated": self.cost_estimated,
        }


@dataclass
class _Record:
    consecutive_failures: int = 0
    cooling_until: float = 0.0


class CandidateHealth:
    """Which candidates failed repeatedly and are cooling down; shared across requests.

    After ``allowed_fails`` provider failures in a row a candidate cools down for
    ``cooldown_s`` seconds, and `plan_attempts` skips it, so a dead provider costs a few
    timeouts rather than one per request. A success resets the count. Caller errors are
    never recorded. Safe to share between threads and event loops.
    """

    def __init__(
        self,
        allowed_fails: int = 3,
        cooldown_s: float = 5.0,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """Set the cooldown rule.

        Args:
            allowed_fails: Provider failures in a row before a cooldown (LiteLLM's default, 3).
            cooldown_s: Seconds a candidate is skipped after that (LiteLLM's default, 5).
            clock: The time source (``time.monotonic``; tests may pass their own).
        """
        if allowed_fails < 1 or cooldown_s < 0:
            raise ValueError("allowed_fails must be >= 1 and cooldown_s >= 0")
        self.allowed_fails = allowed_fails
        self.cooldown_s = cooldown_s
        self.clock = clock
        self._records: dict[str, _Record] = {}
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"CandidateHealth(allowed_fails={self.allowed_fails}, cooldown_s={self.cooldown_s})"

    def record_success(self, name: str) -> None:
        """A call to ``name`` answered."""
        with self._lock:
            record = self._records.get(name)
            if record is not None:
                record.consecutive_failures = 0

    def record_failure(self, name: str) -> bool:
        """A call to ``name`` failed with a provider failure; return whether it now cools."""
        with self._lock:
            record = self._records.setdefault(name, _Record())
            record.consecutive_failures += 1
            if record.consecutive_failures >= self.allowed_fails:
                record.cooling_until = self.clock() + self.cooldown_s
                record.consecutive_failures = 0
                return True
            return False

    def cooling(self, name: str) -> float:
        """Seconds ``name`` still cools down (0 when it may be called)."""
        with self._lock:
            record = self._records.get(name)
            if record is None:
                return 0.0
            return max(0.0, record.cooling_until - self.clock())

    def snapshot(self) -> dict[str, float]:
        """Cooling candidates and their remaining seconds."""
        with self._lock:
            now = self.clock()
            return {
                n: r.cooling_until - now for n, r in self._records.items() if r.cooling_until > now
            }

    def reset(self) -> None:
        """Forget every failure."""
        with self._lock:
            self._records.clear()


def plan_attempts(
    ranking: Sequence[str],
    *,
    max_attempts: int,
    health: CandidateHealth | None = None,
) -> tuple[list[str], list[dict[str, Any]]]:
    """The candidates to try, best first, and those skipped because they cool down.

    When every candidate cools down, the best ones are tried anyway: a request is never
    refused for health alone.

    Returns:
        ``(order, skipped)``: up to ``max_attempts`` names, and one
        ``{"model", "reason": "cooldown", "remaining_s"}`` dict per skipped candidate.
    """
    order: list[str] = []
    skipped: list[dict[str, Any]] = []
    for name in ranking:
        remaining = health.cooling(name) if health is not None else 0.0
        if remaining > 0:
            skipped.append(
                {"model": name, "reason": "cooldown", "remaining_s": round(remaining, 3)}
            )
            continue
        order.append(name)
    if not order:
        order, skipped = list(ranking), []
    return order[:max_attempts], skipped


def larger_context(order: Sequence[str], failed: str, windows: dict[str, int | None]) -> list[str]:
    """After a context-length failure of ``failed``, the candidates still worth trying.

    Where the pool knows the failed candidate's context window, only candidates known to
    have a larger one remain; where it does not, every candidate remains.
    """
    limit = windows.get(failed)
    if limit is None:
        return list(order)
    return [n for n in order if (windows.get(n) or 0) > limit]
