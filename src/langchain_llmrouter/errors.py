"""Typed errors raised by langchain-llmrouter.

Every error that comes from bad user input says where the problem is (file, line,
field) or lists the valid choices, so it can be fixed without reading our code.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path


class LLMRouterError(Exception):
    """Base class of every error raised by this package."""


class DataFormatError(LLMRouterError, ValueError):
    """A routing-data, candidate or config file is malformed.

    Attributes:
        path: The file that holds the problem.
        line: 1-based line number, where the format has lines.
        field: The offending field (dotted path for nested fields).
    """

    def __init__(
        self,
        message: str,
        *,
        path: str | Path | None = None,
        line: int | None = None,
        field: str | None = None,
    ) -> None:
        self.path = str(path) if path is not None else None
        self.line = line
        self.field = field
        where = []
        if self.path:
            where.append(self.path)
        if line is not None:
            where.append(f"line {line}")
        if field:
            where.append(f"field '{field}'")
        prefix = ", ".join(where)
        super().__init__(f"{prefix}: {message}" if prefix else message)


class ConfigError(DataFormatError):
    """A YAML config is malformed or has an unknown key."""


class UnknownNameError(LLMRouterError, KeyError):
    """A router, candidate or other name is not known; the message lists the valid ones."""

    def __init__(self, kind: str, name: str, valid: Iterable[str]) -> None:
        self.kind = kind
        self.name = name
        self.valid = sorted(valid)
        super().__init__(
            f"unknown {kind} {name!r}; valid {kind}s: {', '.join(self.valid) or '(none)'}"
        )

    def __str__(self) -> str:  # KeyError would otherwise quote the whole message
        return str(self.args[0])


class UnknownRouterError(UnknownNameError):
    """No router is registered under the requested name."""

    def __init__(self, name: str, valid: Iterable[str]) -> None:
        super().__init__("router", name, valid)


class UnknownCandidateError(UnknownNameError):
    """A candidate LLM name is not in the pool (or the data)."""

    def __init__(self, name: str, valid: Iterable[str], *, context: str = "") -> None:
        super().__init__("candidate", name, valid)
        if context:
            self.args = (f"{context}: {self.args[0]}",)


class CandidateMismatchError(LLMRouterError, ValueError):
    """Routing data names candidates that the candidate pool does not have."""

    def __init__(self, path: str | Path, unknown: Iterable[str], pool: Iterable[str]) -> None:
        self.path = str(path)
        self.unknown = sorted(unknown)
        self.pool = sorted(pool)
        super().__init__(
            f"{path}: candidates in the data but not in the candidate pool: "
            f"{', '.join(self.unknown)} (pool: {', '.join(self.pool)}). "
            "Add them to the candidates JSON, or pass unknown_candidates='drop' to ignore them."
        )


class MissingEndpointError(LLMRouterError, ValueError):
    """A candidate has no API endpoint, and the config gives none either."""


class MissingAPIKeyError(LLMRouterError, ValueError):
    """No API key is available for a candidate's service."""


class NotFittedError(LLMRouterError, RuntimeError):
    """A router was asked to route before `fit` (or `load`)."""


class RouterLoadError(LLMRouterError, ValueError):
    """A saved router directory is missing files or is inconsistent."""


class GraphRouterError(LLMRouterError, TypeError):
    """A multi-round (graph) router was asked for a single routing decision.

    Routers such as ``router_r1``, ``llmmultiroundrouter`` and ``automix`` decide while they
    call LLMs, so they run as LangGraph graphs: use ``router.as_graph(candidates)`` or
    `RouterGraphChatModel`, not `RouterChatModel` or ``router.invoke``.
    """

    def __init__(self, name: str) -> None:
        super().__init__(
            f"{name} is a multi-round router: it decides while calling LLMs, so it cannot return "
            f"a single routing decision. Run it as a graph: router.as_graph(candidates), or "
            f"RouterGraphChatModel(graph=router.as_graph(candidates)) as a chat model."
        )


class InvalidOptionError(LLMRouterError, ValueError):
    """A per-call routing option (``cost_weight``, ``budget``, ...) has a bad value or name."""


class GraphInputError(LLMRouterError, ValueError):
    """A router graph was given an input it cannot answer.

    A graph takes ``{"question": "<text>"}`` or ``{"messages": [...]}`` (a list of messages,
    message dicts or ``(role, text)`` tuples with at least one human message); the message
    says which of these it got instead.
    """


class GraphToolCallingError(LLMRouterError, NotImplementedError):
    """`RouterGraphChatModel` was asked to call tools or to return structured output.

    The message says why it cannot and what to use instead. A `NotImplementedError`, like
    LangChain's own answer for a chat model without tool calling.
    """
