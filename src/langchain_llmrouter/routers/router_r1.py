"""Moved: Router-R1's registry class is `langchain_llmrouter.graphs.router_r1_router`.

Router-R1 runs as a LangGraph graph, so its class follows the graph routers' contract
(`langchain_llmrouter.graphs.base.BaseGraphRouter`) and lives with the graphs. The old names
still resolve here, imported on first use (this module does not import the graphs).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from langchain_llmrouter.graphs.router_r1_router import (
        RouterR1Params,
        RouterR1Router,
        policy_client,
    )

_MOVED = {
    "RouterR1Params": "langchain_llmrouter.graphs.router_r1_router",
    "RouterR1Router": "langchain_llmrouter.graphs.router_r1_router",
    "policy_client": "langchain_llmrouter.graphs.router_r1_router",
}

__all__ = ["RouterR1Params", "RouterR1Router", "policy_client"]


def __getattr__(name: str) -> Any:
    module = _MOVED.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)


def __dir__() -> list[str]:
    return __all__
