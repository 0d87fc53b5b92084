"""Lazy imports of optional heavy dependencies, with an error that names the extra to install."""

from __future__ import annotations

import importlib
from types import ModuleType

from langchain_llmrouter.errors import LLMRouterError


class MissingDependencyError(LLMRouterError, ImportError):
    """An optional dependency is not installed; the message says which extra provides it."""


def import_optional(module: str, *, extra: str, feature: str) -> ModuleType:
    """Import ``module`` or raise `MissingDependencyError` naming the pip extra.

    Args:
        module: The module to import, e.g. ``"torch_geometric"``.
        extra: The extra of this package that installs it, e.g. ``"graph"``.
        feature: What needs it, for the message, e.g. ``"graphrouter"``.
    """
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise MissingDependencyError(
            f"{feature} needs {module.split('.')[0]}, which is not installed: "
            f"pip install 'langchain-llmrouter[{extra}]'"
        ) from exc
