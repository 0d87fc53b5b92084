"""Candidate LLMs: what each one is, what it costs, and how to call it.

`LLMCandidate` describes one model (LLMRouter's candidate JSON format);
`CandidatePool` holds an ordered set of them, resolves endpoints and API keys,
and builds one LangChain chat model per candidate. A user may instead hand a
dict of any LangChain chat models to `CandidatePool.from_models`.
"""

from __future__ import annotations

import itertools
import json
import math
import os
import re
import threading
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlparse

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from langchain_llmrouter.errors import (
    DataFormatError,
    MissingAPIKeyError,
    MissingEndpointError,
    UnknownCandidateError,
)
from langchain_llmrouter.fallback import CandidateHealth
from langchain_llmrouter.jsonl import read_text

if TYPE_CHECKING:
    from langchain_core.language_models import BaseChatModel

DEFAULT_OUTPUT_TOKENS = 200
"""Output tokens assumed per answer when the data has no token counts (BENCHMARK.md)."""

MAX_PRICE = 100_000.0
"""Highest price accepted, in dollars per million tokens (100x the dearest model of 2025):
a larger one is a typo or a unit mix-up, and would dominate every cost-aware decision."""
MAX_TOKENS = 1_000_000_000
"""Highest token count accepted for one call or context window (data and candidate JSON)."""

_SIZE_UNITS = {"K": 1e-6, "M": 1e-3, "B": 1.0, "T": 1e3}
_LOCAL_HOSTS = frozenset({"localhost", "127.0.0.1", "::1", "0.0.0.0"})


def parse_size_billions(size: str | float | int | None) -> float | None:
    """Parse a model size such as ``"7B"``, ``"8x7B"`` or ``"300M"`` into billions of parameters.

    A bare number (``7`` or ``"7"``) is read as billions. Returns None when the size is
    missing or cannot be parsed.
    """
    if size is None:
        return None
    if isinstance(size, int | float):
        return float(size)
    match = re.fullmatch(r"\s*(?:(\d+)\s*x\s*)?(\d+(?:\.\d+)?)\s*([KMBT]?)\s*", size, re.IGNORECASE)
    if not match:
        return None
    experts = int(match.group(1) or 1)
    return experts * float(match.group(2)) * _SIZE_UNITS[match.group(3).upper() or "B"]


def estimate_input_tokens(text: str) -> int:
    """Estimate prompt tokens as ``ceil(len(text) / 4)``, the rule of BENCHMARK.md."""
    return max(1, math.ceil(len(text) / 4))


class LLMCandidate(BaseModel):
    """One candidate LLM a router can choose.

    Field names follow LLMRouter's ``default_llm.json``; ``feature`` is accepted as
    an alias of ``description``.
    """

    model_config = ConfigDict(extra="forbid", populate_by_name=True, frozen=True)

    name: str
    """Short name, the key the routers and the routing data use."""
    model: str = ""
    """Provider model id sent in the API request (defaults to ``name``)."""
    service: str | None = None
    """Key into a service-keyed ``API_KEYS`` object (e.g. ``"NVIDIA"``)."""
    api_endpoint: str | None = None
    """OpenAI-compatible base URL for this candidate; falls back to the pool's."""
    input_price: float = Field(default=0.0, ge=0, le=MAX_PRICE, allow_inf_nan=False)
    """Dollars per million input tokens."""
    output_price: float = Field(default=0.0, ge=0, le=MAX_PRICE, allow_inf_nan=False)
    """Dollars per million output tokens."""
    size: str | None = None
    """Parameter count as written in the JSON, e.g. ``"7B"`` or ``"8x22B"``."""
    description: str = Field(default="", alias="feature")
    """Free-text description of the model's strengths (LLMRouter's ``feature``)."""
    embedding: list[float] | None = None
    """Optional embedding of the description (``default_llm_embeddings.json``)."""
    context_window: int | None = Field(default=None, gt=0, le=MAX_TOKENS)
    """Maximum prompt tokens the model accepts, if known (limits fallback after a
    context-length error, and `RouterChatModel.profile`)."""

    @model_validator(mode="before")
    @classmethod
    def _model_defaults_to_name(cls, data: Any) -> Any:
        if isinstance(data, dict) and not data.get("model") and data.get("name"):
            data = {**data, "model": data["name"]}
        return data

    @field_validator("size", mode="before")
    @classmethod
    def _size_to_str(cls, value: Any) -> Any:
        return str(value) if isinstance(value, int | float) else value

    @property
    def size_billions(self) -> float | None:
        """The parsed size in billions of parameters, or None if unknown."""
        return parse_size_billions(self.size)

    def estimate_cost(self, input_tokens: float, output_tokens: float) -> float:
        """Dollars for one call with the given token counts."""
        return (input_tokens * self.input_price + output_tokens * self.output_price) / 1e6


class APIKeys:
    """API keys from ``API_KEYS``, rotated round-robin per call.

    Accepts the four formats LLMRouter accepts: a JSON list (``["k1","k2"]``), a
    comma-separated list (``k1,k2``), a single key, or a JSON object keyed by
    service (``{"NVIDIA": "k1,k2", "OpenAI": ["k3"]}``; values may be a key, a
    comma list or a JSON list). Service names match case-insensitively.
    """

    def __init__(
        self, shared: list[str] | None = None, by_service: dict[str, list[str]] | None = None
    ):
        self.shared = list(shared or [])
        self.by_service = {k.lower(): list(v) for k, v in (by_service or {}).items()}
        self._counters: dict[str, Iterator[int]] = {}
        self._lock = threading.Lock()

    @classmethod
    def parse(cls, raw: str | None) -> APIKeys:
        """Parse an ``API_KEYS`` value (None or empty means no keys)."""
        raw = (raw or "").strip()
        if not raw:
            return cls()
        if raw[0] in '[{"':
            try:
                value = json.loads(raw)
            except json.JSONDecodeError as exc:
                raise DataFormatError(
                    f"API_KEYS looks like JSON but does not parse: {exc.msg} at column {exc.colno}",
                    field="API_KEYS",
                ) from None
            if isinstance(value, dict):
                return cls(by_service={str(k): _split_keys(v) for k, v in value.items()})
            return cls(shared=_split_keys(value))
        return cls(shared=_split_keys(raw))

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> APIKeys:
        """Read ``API_KEYS`` from the environment."""
        env = os.environ if environ is None else environ
        return cls.parse(env.get("API_KEYS"))

    def __bool__(self) -> bool:
        return bool(self.shared or any(self.by_service.values()))

    def keys_for(self, service: str | None) -> list[str]:
        """All keys usable for a service (the shared list when keys are not keyed by service)."""
        if self.by_service:
            if service is None:
                return []
            return self.by_service.get(service.lower(), [])
        return self.shared

    def next_key(self, service: str | None, *, rotation: str = "") -> str:
        """The next key for ``service`` in round-robin order.

        Args:
            service: The candidate's service (used only with service-keyed keys).
            rotation: Extra text naming the rotation group (endpoint, model).
        """
        keys = self.keys_for(service)
        if not keys:
            raise MissingAPIKeyError(self._missing_message(service))
        group = f"{(service or '').lower()}|{rotation}"
        with self._lock:
            counter = self._counters.setdefault(group, itertools.count())
            index = next(counter)
        return keys[index % len(keys)]

    def _missing_message(self, service: str | None) -> str:
        if self.by_service:
            return (
                f"API_KEYS has no key for service {service!r}; it has keys for: "
                f"{', '.join(sorted(self.by_service))}"
            )
        return "no API key: set API_KEYS (a key, a comma list, a JSON list, or a JSON object keyed by service)"


def _split_keys(value: Any) -> list[str]:
    if isinstance(value, list):
        return [str(v).strip() for v in value if str(v).strip()]
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("["):
            try:
                return _split_keys(json.loads(text))
            except json.JSONDecodeError as exc:
                raise DataFormatError(
                    f"a key list in API_KEYS does not parse: {exc.msg} at column {exc.colno}",
                    field="API_KEYS",
                ) from None
        return [part.strip() for part in text.split(",") if part.strip()]
    raise DataFormatError(
        f"API key entries must be strings or lists, got {type(value).__name__}", field="API_KEYS"
    )


def is_local_endpoint(url: str) -> bool:
    """Whether an endpoint is on this machine (such endpoints may need no API key)."""
    try:
        host = urlparse(url).hostname
    except ValueError:
        return False
    return host in _LOCAL_HOSTS


class CandidatePool:
    """An ordered set of candidate LLMs and the chat models that call them.

    Build one with `from_json` (LLMRouter's candidate JSON), `from_candidates`, or
    `from_models` (any LangChain chat models you already have).
    """

    def __init__(
        self,
        candidates: list[LLMCandidate],
        *,
        api_endpoint: str | None = None,
        api_keys: APIKeys | None = None,
        models: Mapping[str, BaseChatModel] | None = None,
        chat_model_kwargs: Mapping[str, Any] | None = None,
        source: str | None = None,
        health: CandidateHealth | None = None,
    ) -> None:
        """Create a pool.

        Args:
            candidates: The candidates, in a stable order.
            api_endpoint: Default endpoint for candidates without their own.
            api_keys: Keys to use; read from ``API_KEYS`` when None.
            models: Ready chat models by candidate name; these are used as given.
            chat_model_kwargs: Extra keyword arguments for every ``ChatOpenAI`` built.
            source: Where the candidates came from, for messages.
            health: Failure counts and cooldowns, shared by every request that uses the
                pool (a new `CandidateHealth` with LiteLLM's defaults when None).
        """
        names = [c.name for c in candidates]
        duplicates = {n for n in names if names.count(n) > 1}
        if duplicates:
            raise ValueError(f"duplicate candidate names: {', '.join(sorted(duplicates))}")
        self._candidates = {c.name: c for c in candidates}
        self.api_endpoint = api_endpoint
        self._api_keys = api_keys
        self._models: dict[str, BaseChatModel] = dict(models or {})
        self.chat_model_kwargs = dict(chat_model_kwargs or {})
        self.source = source
        self.health = health if health is not None else CandidateHealth()
        unknown = set(self._models) - set(self._candidates)
        if unknown:
            raise UnknownCandidateError(sorted(unknown)[0], self._candidates, context="models")

    # --- construction -------------------------------------------------------------------

    @classmethod
    def from_json(cls, path: str | Path, **kwargs: Any) -> CandidatePool:
        """Load LLMRouter's candidate JSON: an object keyed by candidate name.

        Raises:
            DataFormatError: naming the file, line and field of a malformed entry.
        """
        path = Path(path)
        if not path.exists():
            raise DataFormatError("candidates file not found", path=path)
        text = read_text(path)
        try:
            raw = json.loads(text)
        except json.JSONDecodeError as exc:
            raise DataFormatError(f"invalid JSON: {exc.msg}", path=path, line=exc.lineno) from None
        if not isinstance(raw, dict):
            raise DataFormatError(
                "expected a JSON object keyed by candidate name", path=path, line=1
            )
        candidates = []
        for name, entry in raw.items():
            line = _line_of_key(text, name)
            if not isinstance(entry, dict):
                raise DataFormatError(
                    "candidate entry must be an object", path=path, line=line, field=name
                )
            fields = {"name": name, "model": entry.get("model", name), **entry}
            try:
                candidates.append(LLMCandidate.model_validate(fields))
            except ValidationError as exc:
                err = exc.errors()[0]
                loc = ".".join(str(p) for p in err["loc"])
                raise DataFormatError(
                    f"{err['msg']} (got {err.get('input')!r})",
                    path=path,
                    line=line,
                    field=f"{name}.{loc}",
                ) from None
        kwargs.setdefault("source", str(path))
        return cls(candidates, **kwargs)

    def add_embeddings(self, path: str | Path) -> CandidatePool:
        """Take each candidate's description embedding from another candidate JSON.

        LLMRouter keeps them in a second file (``default_llm_embeddings.json``); its
        entries are matched by candidate name, and those the pool lacks are ignored.

        Returns:
            The pool itself.

        Raises:
            DataFormatError: naming the file, line and field of a malformed entry.
        """
        other = CandidatePool.from_json(path, api_keys=APIKeys())
        for name, candidate in list(self._candidates.items()):
            if name in other and other[name].embedding is not None:
                self._candidates[name] = candidate.model_copy(
                    update={"embedding": other[name].embedding}
                )
        return self

    @classmethod
    def from_models(
        cls,
        models: Mapping[str, BaseChatModel],
        *,
        prices: Mapping[str, tuple[float, float]] | None = None,
        candidates: list[LLMCandidate] | None = None,
    ) -> CandidatePool:
        """Wrap chat models you already have.

        Args:
            models: Chat models by candidate name.
            prices: Optional ``(input_price, output_price)`` per million tokens by name.
            candidates: Full descriptions, if you have them (overrides ``prices``).
        """
        if candidates is None:
            prices = prices or {}
            candidates = [
                LLMCandidate(
                    name=name,
                    model=str(getattr(m, "model_name", None) or getattr(m, "model", None) or name),
                    input_price=prices.get(name, (0.0, 0.0))[0],
                    output_price=prices.get(name, (0.0, 0.0))[1],
                )
                for name, m in models.items()
            ]
        return cls(candidates, models=models)

    # --- collection protocol ------------------------------------------------------------

    @property
    def names(self) -> list[str]:
        """Candidate names in pool order."""
        return list(self._candidates)

    def __len__(self) -> int:
        return len(self._candidates)

    def __iter__(self) -> Iterator[LLMCandidate]:
        return iter(self._candidates.values())

    def __contains__(self, name: object) -> bool:
        return name in self._candidates

    def __getitem__(self, name: str) -> LLMCandidate:
        try:
            return self._candidates[name]
        except KeyError:
            raise UnknownCandidateError(name, self._candidates) from None

    def subset(self, names: list[str]) -> CandidatePool:
        """A pool with only ``names``, in that order, sharing keys and models."""
        return CandidatePool(
            [self[n] for n in names],
            api_endpoint=self.api_endpoint,
            api_keys=self._api_keys,
            models={n: m for n, m in self._models.items() if n in names},
            chat_model_kwargs=self.chat_model_kwargs,
            source=self.source,
            health=self.health,
        )

    # --- calling ------------------------------------------------------------------------

    @property
    def api_keys(self) -> APIKeys:
        """The keys in use (read from ``API_KEYS`` on first use when not given)."""
        if self._api_keys is None:
            self._api_keys = APIKeys.from_env()
        return self._api_keys

    def endpoint_for(self, name: str) -> str:
        """The candidate's own endpoint, else the pool's, else an error naming it."""
        candidate = self[name]
        endpoint = candidate.api_endpoint or self.api_endpoint
        if not endpoint:
            raise MissingEndpointError(
                f"candidate {name!r} has no api_endpoint and the config gives no default "
                "api_endpoint; set one of them"
                + (f" (candidates from {self.source})" if self.source else "")
            )
        return endpoint

    def key_provider(self, name: str) -> Callable[[], str]:
        """A callable that returns the next API key for a candidate on every request.

        ``ChatOpenAI`` calls it before each request, so several keys rotate per call.
        """
        candidate = self[name]
        endpoint = self.endpoint_for(name)
        keys = self.api_keys
        if not keys.keys_for(candidate.service):
            if is_local_endpoint(endpoint):
                return lambda: "local"
            raise MissingAPIKeyError(
                f"candidate {name!r}: {keys._missing_message(candidate.service)}"
            )
        rotation = f"{endpoint}|{candidate.model}"
        return lambda: keys.next_key(candidate.service, rotation=rotation)

    def has_chat_model(self, name: str) -> bool:
        """Whether a chat model is given or can be built (endpoint and key resolve)."""
        if name in self._models:
            return True
        try:
            self.key_provider(name)
        except (MissingEndpointError, MissingAPIKeyError):
            return False
        return True

    def chat_model(self, name: str) -> BaseChatModel:
        """The chat model for a candidate, built on first use (``ChatOpenAI``)."""
        if name not in self._models:
            self[name]  # raises a listing error for unknown names
            self._models[name] = self._build_chat_model(name)
        return self._models[name]

    def _build_chat_model(self, name: str) -> BaseChatModel:
        from langchain_openai import ChatOpenAI

        candidate = self[name]
        kwargs: dict[str, Any] = {"stream_usage": True, **self.chat_model_kwargs}
        return ChatOpenAI(
            model=candidate.model,
            base_url=self.endpoint_for(name),
            api_key=self.key_provider(name),
            **kwargs,
        )

    def cheapest(self) -> str:
        """Name of the candidate with the lowest price (input + output)."""
        return min(self, key=lambda c: (c.input_price + c.output_price, c.name)).name

    def to_json_dict(self) -> dict[str, dict[str, Any]]:
        """The pool in LLMRouter's candidate JSON shape."""
        return {
            c.name: c.model_dump(by_alias=True, exclude={"name"}, exclude_none=True) for c in self
        }

    def __repr__(self) -> str:
        return f"CandidatePool({self.names})"


def _line_of_key(text: str, key: str) -> int | None:
    """1-based line of the first ``"key":`` in a JSON text (for error messages)."""
    needle = json.dumps(key)
    for number, line in enumerate(text.splitlines(), start=1):
        if needle in line and ":" in line.split(needle, 1)[1][:5]:
            return number
    return None
