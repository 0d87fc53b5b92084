"""Moved: the multi-round routers' registry classes are in
`langchain_llmrouter.graphs.multiround_router`.

``knnmultiroundrouter`` and ``llmmultiroundrouter`` run as LangGraph graphs, so their
classes follow the graph routers' contract (`langchain_llmrouter.graphs.base.BaseGraphRouter`)
and live with the graphs. The old names still resolve here, imported on first use (this
module does not import the graphs).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from langchain_llmrouter.graphs.multiround_router import (
        KNNMultiRoundParams,
        KNNMultiRoundRouter,
        LLMMultiRoundRouter,
        MultiRoundParams,
    )

_MOVED = {
    "KNNMultiRoundParams": "langchain_llmrouter.graphs.multiround_router",
    "KNNMultiRoundRouter": "langchain_llmrouter.graphs.multiround_router",
    "LLMMultiRoundRouter": "langchain_llmrouter.graphs.multiround_router",
    "MultiRoundParams": "langchain_llmrouter.graphs.multiround_router",
}

__all__ = ["KNNMultiRoundParams", "KNNMultiRoundRouter", "LLMMultiRoundRouter", "MultiRoundParams"]


def __getattr__(name: str) -> Any:
    module = _MOVED.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)


def __dir__() -> list[str]:
    return __all__
