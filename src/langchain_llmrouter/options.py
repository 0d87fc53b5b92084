"""Per-call routing options (``cost_weight``, ``budget``, ...): their names and checks.

`RouterChatModel` and `BaseRouter.invoke` take these per call, as keyword arguments or
through ``configurable``; both check them here, so a bad value is refused the same way
wherever it is given, with an error that names the option.
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Iterable, Mapping
from typing import Any

from langchain_llmrouter.errors import InvalidOptionError

ROUTING_MODES = ("current_only", "full_context", "retrieval")
"""The routing modes of `RouterChatModel` (see `routing_text`)."""

ROUTER_OPTIONS = ("cost_weight", "budget", "user_id")
"""Options every router takes per call (``user_id`` shapes only personalised routers'
scores; the others route the same for everyone)."""

MAX_USER_ID = 256
"""Longest accepted user id, in characters."""

CHAT_OPTIONS = (*ROUTER_OPTIONS, "routing_mode", "retrieval_top_k")
"""Options `RouterChatModel` takes per call (the rest go to the chosen candidate)."""


def _number(name: str, value: Any, *, allow_zero: bool) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidOptionError(
            f"option {name}: expected a number, got {value!r} ({type(value).__name__})"
        )
    number = float(value)
    if not math.isfinite(number) or number < 0 or (number == 0 and not allow_zero):
        bound = ">= 0" if allow_zero else "> 0"
        raise InvalidOptionError(f"option {name}: expected a finite number {bound}, got {value!r}")
    return number


def check_option(name: str, value: Any) -> Any:
    """Return ``value`` checked for the per-call option ``name`` (None means "not given").

    Raises:
        InvalidOptionError: naming the option, what it expects and what it got.
    """
    if value is None:
        return None
    if name == "cost_weight":
        return _number(name, value, allow_zero=True)
    if name == "budget":
        return _number(name, value, allow_zero=False)
    if name == "user_id":
        if not isinstance(value, str) or not value or len(value) > MAX_USER_ID:
            raise InvalidOptionError(
                f"option user_id: expected a non-empty string of at most {MAX_USER_ID} "
                f"characters, got {value!r}"[:300]
            )
        return value
    if name == "routing_mode":
        if value not in ROUTING_MODES:
            raise InvalidOptionError(
                f"option routing_mode: unknown mode {value!r}; valid modes: "
                f"{', '.join(ROUTING_MODES)}"
            )
        return value
    if name == "retrieval_top_k":
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise InvalidOptionError(
                f"option retrieval_top_k: expected an integer >= 1, got {value!r}"
            )
        return value
    raise InvalidOptionError(f"unknown routing option {name!r}; valid: {', '.join(CHAT_OPTIONS)}")


def check_options(options: Mapping[str, Any]) -> dict[str, Any]:
    """Check every option of ``options`` (see `check_option`)."""
    return {name: check_option(name, value) for name, value in options.items()}


def misspelt_option(names: Iterable[str], valid: Iterable[str] = CHAT_OPTIONS) -> None:
    """Refuse a keyword that is a near miss of a routing option (``cost_wieght``).

    Such a keyword would otherwise be sent to the provider, or silently ignored.

    Raises:
        InvalidOptionError: naming the keyword and the option it resembles.
    """
    valid = list(valid)
    for name in names:
        if name in valid:
            continue
        close = difflib.get_close_matches(name, valid, n=1, cutoff=0.8)
        if close:
            raise InvalidOptionError(
                f"unknown option {name!r}; did you mean {close[0]!r}? "
                f"(routing options: {', '.join(valid)})"
            )
