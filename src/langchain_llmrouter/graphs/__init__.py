"""Multi-round and agentic routers as LangGraph state machines.

Each builder returns a compiled graph whose input is ``{"question": ...}`` or
``{"messages": [...]}`` (a LangGraph ``MessagesState``'s shape: the last human message is the
question, and the answer is appended to ``messages`` as an ``AIMessage``); anything else
raises `GraphInputError`. The final state holds the extracted ``answer``, every LLM call made
(``calls``), their total ``cost`` and the ``stop_reason``. A graph runs on its own, as a node
or subgraph of your own graph, or as a chat model through `RouterGraphChatModel` (which
cannot call tools: `GraphToolCallingError` says what to use instead). Builders take ``checkpointer``, ``store``
and ``name`` from the caller and never create their own. The registry's graph routers
(``router_r1``, ``automix``, ``knnmultiroundrouter``, ``llmmultiroundrouter``) follow
`BaseGraphRouter`: they fit and save like single-round routers and build their graph with
``as_graph(candidates)``.

Names load lazily, so importing this package does not import the graphs' dependencies.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from langchain_llmrouter.graphs._common import (
        GraphInputError,
        LLMCall,
        RouterGraphInput,
        RouterGraphState,
    )
    from langchain_llmrouter.graphs.automix import build_automix_graph
    from langchain_llmrouter.graphs.automix_router import AutoMixRouter
    from langchain_llmrouter.graphs.base import BaseGraphRouter
    from langchain_llmrouter.graphs.chat_model import GraphToolCallingError, RouterGraphChatModel
    from langchain_llmrouter.graphs.multiround_knn import build_knn_multiround_graph
    from langchain_llmrouter.graphs.multiround_llm import build_llm_multiround_graph
    from langchain_llmrouter.graphs.multiround_router import (
        KNNMultiRoundRouter,
        LLMMultiRoundRouter,
    )
    from langchain_llmrouter.graphs.router_r1 import build_router_r1_graph
    from langchain_llmrouter.graphs.router_r1_router import RouterR1Router
    from langchain_llmrouter.graphs.vllm_policy import VLLMChatModel

_EXPORTS: dict[str, str] = {
    "AutoMixRouter": "automix_router",
    "BaseGraphRouter": "base",
    "KNNMultiRoundRouter": "multiround_router",
    "LLMMultiRoundRouter": "multiround_router",
    "RouterR1Router": "router_r1_router",
    "GraphInputError": "_common",
    "LLMCall": "_common",
    "RouterGraphInput": "_common",
    "RouterGraphState": "_common",
    "GraphToolCallingError": "chat_model",
    "RouterGraphChatModel": "chat_model",
    "build_automix_graph": "automix",
    "build_knn_multiround_graph": "multiround_knn",
    "build_llm_multiround_graph": "multiround_llm",
    "build_router_r1_graph": "router_r1",
    "VLLMChatModel": "vllm_policy",
}

__all__ = [
    "AutoMixRouter",
    "BaseGraphRouter",
    "GraphInputError",
    "GraphToolCallingError",
    "KNNMultiRoundRouter",
    "LLMCall",
    "LLMMultiRoundRouter",
    "RouterGraphChatModel",
    "RouterGraphInput",
    "RouterGraphState",
    "RouterR1Router",
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
