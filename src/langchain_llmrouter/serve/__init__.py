"""``llmrouter serve``: an OpenAI-compatible routing server over `RouterChatModel`.

A thin layer: each ``/v1/chat/completions`` request becomes LangChain messages and one
`RouterChatModel` call (``ainvoke`` or ``astream``), so routing, fallback, candidate health
and cost accounting are the request path's own. FastAPI and uvicorn (the ``serve`` extra)
are imported only by `create_app`'s module, so importing this package stays light.

Example:
    .. code-block:: python

        from langchain_llmrouter.serve import Deployment, ServerAuth, create_app

        app = create_app(Deployment(pool=pool, routers={"knn": router}), auth=ServerAuth.disabled())
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from langchain_llmrouter.serve.app import create_app
    from langchain_llmrouter.serve.auth import ServerAuth
    from langchain_llmrouter.serve.deployment import (
        AuthConfig,
        Deployment,
        ServeConfig,
        load_serve_config,
    )

__all__ = [
    "AuthConfig",
    "Deployment",
    "ServeConfig",
    "ServerAuth",
    "create_app",
    "load_serve_config",
]

_LAZY = {
    "create_app": "app",
    "ServerAuth": "auth",
    "AuthConfig": "deployment",
    "Deployment": "deployment",
    "ServeConfig": "deployment",
    "load_serve_config": "deployment",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        module = importlib.import_module(f"{__name__}.{_LAZY[name]}")
        return getattr(module, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
