"""Routers by name: built-ins (imported lazily) and plugins registered at run time."""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import TYPE_CHECKING, Any

from langchain_llmrouter.errors import UnknownRouterError

if TYPE_CHECKING:
    from langchain_core.embeddings import Embeddings

    from langchain_llmrouter.routers.base import BaseRouter

# name -> "module:Class"; importing lazily keeps `list-routers` fast and torch-free.
_BUILTIN: dict[str, str] = {
    "smallest_llm": "langchain_llmrouter.routers.baselines:SmallestLLMRouter",
    "largest_llm": "langchain_llmrouter.routers.baselines:LargestLLMRouter",
    "randomrouter": "langchain_llmrouter.routers.baselines:RandomRouter",
    "oracle": "langchain_llmrouter.routers.baselines:OracleRouter",
    "knnrouter": "langchain_llmrouter.routers.knn:KNNRouter",
    "svmrouter": "langchain_llmrouter.routers.svm:SVMRouter",
    "mlprouter": "langchain_llmrouter.routers.mlp:MLPRouter",
    "mfrouter": "langchain_llmrouter.routers.mf:MFRouter",
    "elorouter": "langchain_llmrouter.routers.elo:EloRouter",
    "routerdc": "langchain_llmrouter.routers.routerdc:RouterDC",
    "hybrid_llm": "langchain_llmrouter.routers.hybrid_llm:HybridLLMRouter",
    "graphrouter": "langchain_llmrouter.routers.graphrouter:GraphRouter",
    "causallm_router": "langchain_llmrouter.routers.causallm:CausalLMRouter",
}
_PLUGINS: dict[str, type[BaseRouter]] = {}


def register_router(name: str | None = None) -> Any:
    """Class decorator registering a router under ``name`` (default: the class's ``name``).

    Plugins may override a built-in name.
    """

    def decorate(cls: type[BaseRouter]) -> type[BaseRouter]:
        key = (name or cls.name).lower()
        _PLUGINS[key] = cls
        return cls

    return decorate


def builtin_routers() -> list[str]:
    """Names of the routers that ship with the package."""
    return sorted(_BUILTIN)


def plugin_routers() -> list[str]:
    """Names of routers registered at run time."""
    return sorted(_PLUGINS)


def available_routers() -> list[str]:
    """Every router name that `get_router_class` accepts."""
    return sorted(set(_BUILTIN) | set(_PLUGINS))


def get_router_class(name: str) -> type[BaseRouter]:
    """The router class registered under ``name`` (case-insensitive).

    Raises:
        UnknownRouterError: listing the valid names.
    """
    key = name.lower()
    if key in _PLUGINS:
        return _PLUGINS[key]
    if key not in _BUILTIN:
        raise UnknownRouterError(name, available_routers())
    module_name, class_name = _BUILTIN[key].split(":")
    return getattr(importlib.import_module(module_name), class_name)


def create_router(name: str, *, embeddings: Embeddings | None = None, **params: Any) -> BaseRouter:
    """An unfitted router by name, with validated hyperparameters."""
    return get_router_class(name).from_params(params, embeddings=embeddings)


def load_router(
    name_or_path: str | Path,
    path: str | Path | None = None,
    *,
    embeddings: Embeddings | None = None,
) -> BaseRouter:
    """Load a saved router.

    ``load_router("knnrouter", "models/knnrouter")`` checks that the directory holds
    that router; ``load_router("models/knnrouter")`` loads whatever it holds.
    """
    from langchain_llmrouter.routers.base import BaseRouter

    if path is None:
        return BaseRouter.load(name_or_path, embeddings=embeddings)
    return get_router_class(str(name_or_path)).load(path, embeddings=embeddings)
