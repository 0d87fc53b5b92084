"""Test helpers: a deterministic, in-process OpenAI-compatible chat server.

The server can inject provider faults (429, 500, 503, slow answers, connection resets mid-body
or mid-stream) at a seeded rate; see `FaultInjection`.

The names are imported lazily, so ``python -m langchain_llmrouter.testing.openai_server``
runs the module without a double import.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from langchain_llmrouter.testing.openai_server import (
        FAULT_KINDS,
        FakeOpenAIServer,
        FaultInjection,
        ModelBehavior,
        ServedCall,
    )

__all__ = ["FAULT_KINDS", "FakeOpenAIServer", "FaultInjection", "ModelBehavior", "ServedCall"]


def __getattr__(name: str) -> Any:
    """Import the exported names on first use."""
    if name in __all__:
        return getattr(import_module("langchain_llmrouter.testing.openai_server"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
