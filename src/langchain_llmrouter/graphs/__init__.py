"""Multi-round and agentic routers as LangGraph state machines.

Each builder returns a compiled graph whose input is ``{"question": ...}`` and whose final
state holds the extracted ``answer``, every LLM call made (``calls``), their total ``cost``
and the ``stop_reason``. A graph runs on its own, as a node or subgraph of your own graph,
or as a chat model through `RouterGraphChatModel`. Builders take ``checkpointer``, ``store``
and ``name`` from the caller and never create their own.

Names load lazily, so importing this package does not import the graphs' dependencies.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from langchain_llmrouter.graphs._common import LLMCall, RouterGraphState
    from langchain_llmrouter.graphs.automix import build_automix_graph
    from langchain_llmrouter.graphs.chat_model import RouterGraphChatModel
    from langchain_llmrouter.graphs.multiround import (
        build_knn_multiround_graph,
        build_llm_multiround_graph,
    )
    from langchain_llmrouter.graphs.router_r1 import build_router_r1_graph
    from langchain_llmrouter.graphs.vllm_policy import VLLMChatModel

_EXPORTS: dict[str, str] = {
    "LLMCall": "_common",
    "RouterGraphState": "_common",
    "RouterGraphChatModel": "chat_model",
    "build_automix_graph": "automix",
    "build_knn_multiround_graph": "multiround",
    "build_llm_multiround_graph": "multiround",
    "build_router_r1_graph": "router_r1",
    "VLLMChatModel": "vllm_policy",
}

__all__ = [
    "LLMCall",
    "RouterGraphChatModel",
    "RouterGraphState",
    "VLLMChatModel",
    "build_automix_graph",
    "build_knn_multiround_graph",
    "build_llm_multiround_graph",
    "build_router_r1_graph",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'langchain_llmrouter.graphs' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"langchain_llmrouter.graphs.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__
