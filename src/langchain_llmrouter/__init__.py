"""langchain-llmrouter: LLM routing for LangChain and LangGraph.

Heavy submodules load lazily, so ``import langchain_llmrouter`` does not import
torch, scikit-learn or sentence-transformers.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

if TYPE_CHECKING:
    from langchain_llmrouter.candidates import APIKeys, CandidatePool, LLMCandidate
    from langchain_llmrouter.chat_model import (
        AllCandidatesFailedError,
        PartialStreamError,
        RouterChatModel,
    )
    from langchain_llmrouter.data import RoutingDataset
    from langchain_llmrouter.embeddings import CachedEmbeddings, MiniLMEmbeddings
    from langchain_llmrouter.errors import (
        CandidateMismatchError,
        ConfigError,
        DataFormatError,
        GraphInputError,
        GraphRouterError,
        GraphToolCallingError,
        InvalidOptionError,
        LLMRouterError,
        MissingAPIKeyError,
        MissingEndpointError,
        NotFittedError,
        RouterLoadError,
        UnknownCandidateError,
        UnknownRouterError,
    )
    from langchain_llmrouter.fallback import CandidateHealth
    from langchain_llmrouter.graphs import (
        RouterGraphChatModel,
        build_automix_graph,
        build_knn_multiround_graph,
        build_llm_multiround_graph,
        build_router_r1_graph,
    )
    from langchain_llmrouter.middleware import RouterMiddleware
    from langchain_llmrouter.personal.feedback import FeedbackStore
    from langchain_llmrouter.personal.interactions import Interaction
    from langchain_llmrouter.personal.router import PersonalRouter
    from langchain_llmrouter.routers import (
        BaseRouter,
        RoutingDecision,
        available_routers,
        create_router,
        get_router_class,
        load_router,
        register_router,
    )
    from langchain_llmrouter.static_embeddings import StaticEmbeddings

_EXPORTS: dict[str, str] = {
    "APIKeys": "candidates",
    "CandidatePool": "candidates",
    "LLMCandidate": "candidates",
    "RouterChatModel": "chat_model",
    "AllCandidatesFailedError": "chat_model",
    "PartialStreamError": "chat_model",
    "CandidateHealth": "fallback",
    "InvalidOptionError": "errors",
    "RoutingDataset": "data",
    "CachedEmbeddings": "embeddings",
    "MiniLMEmbeddings": "embeddings",
    "CandidateMismatchError": "errors",
    "ConfigError": "errors",
    "DataFormatError": "errors",
    "GraphInputError": "errors",
    "GraphRouterError": "errors",
    "GraphToolCallingError": "errors",
    "LLMRouterError": "errors",
    "MissingAPIKeyError": "errors",
    "MissingEndpointError": "errors",
    "NotFittedError": "errors",
    "RouterLoadError": "errors",
    "UnknownCandidateError": "errors",
    "UnknownRouterError": "errors",
    "RouterGraphChatModel": "graphs",
    "RouterMiddleware": "middleware",
    "FeedbackStore": "personal.feedback",
    "Interaction": "personal.interactions",
    "PersonalRouter": "personal.router",
    "build_automix_graph": "graphs",
    "build_knn_multiround_graph": "graphs",
    "build_llm_multiround_graph": "graphs",
    "build_router_r1_graph": "graphs",
    "BaseRouter": "routers",
    "RoutingDecision": "routers",
    "available_routers": "routers",
    "create_router": "routers",
    "get_router_class": "routers",
    "load_router": "routers",
    "register_router": "routers",
    "StaticEmbeddings": "static_embeddings",
}

__all__ = [
    "APIKeys",
    "AllCandidatesFailedError",
    "BaseRouter",
    "CachedEmbeddings",
    "CandidateHealth",
    "CandidateMismatchError",
    "CandidatePool",
    "ConfigError",
    "DataFormatError",
    "FeedbackStore",
    "GraphInputError",
    "GraphRouterError",
    "GraphToolCallingError",
    "Interaction",
    "InvalidOptionError",
    "LLMCandidate",
    "LLMRouterError",
    "MiniLMEmbeddings",
    "MissingAPIKeyError",
    "MissingEndpointError",
    "NotFittedError",
    "PartialStreamError",
    "PersonalRouter",
    "RouterChatModel",
    "RouterGraphChatModel",
    "RouterLoadError",
    "RouterMiddleware",
    "RoutingDataset",
    "RoutingDecision",
    "StaticEmbeddings",
    "UnknownCandidateError",
    "UnknownRouterError",
    "__version__",
    "available_routers",
    "build_automix_graph",
    "build_knn_multiround_graph",
    "build_llm_multiround_graph",
    "build_router_r1_graph",
    "create_router",
    "get_router_class",
    "load_router",
    "register_router",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'langchain_llmrouter' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"langchain_llmrouter.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__
