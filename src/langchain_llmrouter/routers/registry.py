"""Routers by name: built-ins (imported lazily) and plugins found at run time.

A name maps to a single-round router (a `BaseRouter`) or to a router that runs as a
LangGraph graph (a `langchain_llmrouter.graphs.base.BaseGraphRouter`); `router_kind` says
which. Plugins are Python files that define such a class decorated with `register_router`. They are discovered, once per process and before the first
lookup, from:

1. ``./custom_routers/`` (relative to the working directory),
2. ``~/.llmrouter/plugins/``,
3. every path in ``$LLMROUTER_PLUGINS`` (``os.pathsep``-separated directories or ``.py`` files),
4. the ``langchain_llmrouter.routers`` entry-point group of installed packages.

Discovery imports (runs) those files, so only put code you trust there; set
``LLMROUTER_NO_PLUGINS=1`` to turn it off. Loading a *saved* router never runs
code from the saved directory: it only names the router class.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import os
import sys
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from langchain_llmrouter.errors import UnknownRouterError

if TYPE_CHECKING:
    from langchain_core.embeddings import Embeddings

    from langchain_llmrouter.graphs.base import BaseGraphRouter
    from langchain_llmrouter.routers.base import BaseRouter

RouterKind = Literal["single", "graph"]
"""``"single"``: one routing decision per query (`BaseRouter`); ``"graph"``: runs as a
LangGraph graph (`BaseGraphRouter`)."""

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
    "ensemble": "langchain_llmrouter.routers.ensemble:EnsembleRouter",
    # Personalised routers (`PersonalRouter`): scores depend on the user (``user_id``).
    "gmtrouter": "langchain_llmrouter.routers.gmtrouter:GMTRouter",
    "personalizedrouter": "langchain_llmrouter.routers.personalizedrouter:PersonalizedRouter",
    # Graph routers (`BaseGraphRouter`): they run as LangGraph graphs (`as_graph`).
    "automix": "langchain_llmrouter.graphs.automix_router:AutoMixRouter",
    "router_r1": "langchain_llmrouter.graphs.router_r1_router:RouterR1Router",
    "knnmultiroundrouter": "langchain_llmrouter.graphs.multiround_router:KNNMultiRoundRouter",
    "llmmultiroundrouter": "langchain_llmrouter.graphs.multiround_router:LLMMultiRoundRouter",
}
_PLUGINS: dict[str, type[BaseRouter] | type[BaseGraphRouter]] = {}
_PLUGIN_SOURCES: dict[str, str] = {}
"""Plugin router name -> where it came from (a file, an entry point, or "code")."""

PLUGIN_ENV = "LLMROUTER_PLUGINS"
NO_PLUGINS_ENV = "LLMROUTER_NO_PLUGINS"
ENTRY_POINT_GROUP = "langchain_llmrouter.routers"


@dataclass
class PluginError:
    """A plugin file that could not be imported (the other plugins still load)."""

    source: str
    error: str


_discovery: dict[str, Any] = {"done": False, "loaded": set(), "errors": []}
_loading_source: list[str] = []  # the file being imported, so `register_router` can record it


def register_router(name: str | None = None) -> Any:
    """Class decorator registering a router under ``name`` (default: the class's ``name``).

    Plugins may override a built-in name.
    """

    def decorate(
        cls: type[BaseRouter] | type[BaseGraphRouter],
    ) -> type[BaseRouter] | type[BaseGraphRouter]:
        key = (name or cls.name).lower()
        _PLUGINS[key] = cls
        _PLUGIN_SOURCES[key] = _loading_source[-1] if _loading_source else "code"
        return cls

    return decorate


def plugin_paths() -> list[Path]:
    """Where plugins are looked for, in order (paths that do not exist are included)."""
    paths = [Path.cwd() / "custom_routers", Path.home() / ".llmrouter" / "plugins"]
    extra = os.environ.get(PLUGIN_ENV, "")
    paths += [Path(p).expanduser() for p in extra.split(os.pathsep) if p.strip()]
    return paths


def _plugin_files(path: Path) -> list[Path]:
    if path.is_file():
        return [path] if path.suffix == ".py" else []
    if not path.is_dir():
        return []
    files = [p for p in sorted(path.glob("*.py")) if not p.name.startswith("_")]
    files += [p / "__init__.py" for p in sorted(path.iterdir()) if (p / "__init__.py").is_file()]
    return files


def _import_plugin_file(file: Path) -> None:
    # A unique module name per file, so two plugin folders may both hold "router.py".
    digest = hashlib.sha1(str(file).encode()).hexdigest()[:10]
    stem = file.parent.name if file.name == "__init__.py" else file.stem
    module_name = f"_llmrouter_plugin_{digest}_{stem}"
    spec = importlib.util.spec_from_file_location(
        module_name,
        file,
        submodule_search_locations=[str(file.parent)] if file.name == "__init__.py" else None,
    )
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot import {file}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    _loading_source.append(str(file))
    try:
        spec.loader.exec_module(module)
    except BaseException:
        sys.modules.pop(module_name, None)
        raise
    finally:
        _loading_source.pop()


def discover_plugins(*, force: bool = False) -> list[PluginError]:
    """Import plugin routers from the plugin paths and entry points (once per process).

    Args:
        force: Look again (new files and new ``$LLMROUTER_PLUGINS`` entries are imported;
            files imported before are not imported twice).

    Returns:
        The plugins that failed to import; each is also reported as a warning.
    """
    if _discovery["done"] and not force:
        return list(_discovery["errors"])
    _discovery["done"] = True
    if os.environ.get(NO_PLUGINS_ENV, "").strip() not in ("", "0"):
        return []
    loaded: set[str] = _discovery["loaded"]
    errors: list[PluginError] = _discovery["errors"]
    for path in plugin_paths():
        for file in _plugin_files(path):
            key = str(file.resolve())
            if key in loaded:
                continue
            loaded.add(key)
            try:
                _import_plugin_file(file.resolve())
            except Exception as exc:  # one broken plugin must not hide the others
                errors.append(PluginError(str(file), f"{type(exc).__name__}: {exc}"))
                warnings.warn(f"router plugin {file} failed to import: {exc}", stacklevel=2)
    from importlib.metadata import entry_points

    for entry in entry_points(group=ENTRY_POINT_GROUP):
        key = f"entry-point:{entry.value}"
        if key in loaded:
            continue
        loaded.add(key)
        _loading_source.append(f"entry point {entry.name} = {entry.value}")
        try:
            entry.load()
        except Exception as exc:
            errors.append(PluginError(key, f"{type(exc).__name__}: {exc}"))
            warnings.warn(f"router plugin entry point {entry.value} failed: {exc}", stacklevel=2)
        finally:
            _loading_source.pop()
    return list(errors)


def builtin_routers() -> list[str]:
    """Names of the routers that ship with the package."""
    return sorted(_BUILTIN)


def plugin_routers() -> list[str]:
    """Names of plugin routers (registered in code or discovered)."""
    discover_plugins()
    return sorted(_PLUGINS)


def plugin_source(name: str) -> str | None:
    """Where a plugin router came from: a file path, an entry point, or ``"code"``."""
    return _PLUGIN_SOURCES.get(name.lower()) if name.lower() in _PLUGINS else None


def available_routers() -> list[str]:
    """Every router name that `get_router_class` accepts."""
    discover_plugins()
    return sorted(set(_BUILTIN) | set(_PLUGINS))


def get_router_class(name: str) -> type[BaseRouter] | type[BaseGraphRouter]:
    """The router class registered under ``name`` (case-insensitive).

    Raises:
        UnknownRouterError: listing the valid names.
    """
    discover_plugins()
    key = name.lower()
    if key in _PLUGINS:
        return _PLUGINS[key]
    if key not in _BUILTIN:
        raise UnknownRouterError(name, available_routers())
    module_name, class_name = _BUILTIN[key].split(":")
    return getattr(importlib.import_module(module_name), class_name)


def router_kind(name: str) -> RouterKind:
    """Which contract the router registered as ``name`` follows.

    ``"graph"`` for a `BaseGraphRouter`: it decides while calling LLMs, so it runs as a
    LangGraph graph (``router.as_graph(candidates)``) and cannot be judged on recorded
    routing data (``knnmultiroundrouter`` is one even though it also routes single queries
    as a kNN router). ``"single"`` for a `BaseRouter`: one routing decision per query.

    Raises:
        UnknownRouterError: listing the valid names.
        TypeError: the class registered under ``name`` follows neither contract.
    """
    from langchain_llmrouter.graphs.base import BaseGraphRouter
    from langchain_llmrouter.routers.base import BaseRouter

    cls = get_router_class(name)
    if issubclass(cls, BaseGraphRouter):
        return "graph"
    if issubclass(cls, BaseRouter):
        return "single"
    raise TypeError(f"{name} is registered as {cls!r}, neither a BaseRouter nor a BaseGraphRouter")


def create_router(
    name: str, *, embeddings: Embeddings | None = None, **params: Any
) -> BaseRouter | BaseGraphRouter:
    """An unfitted router by name, with validated hyperparameters."""
    return get_router_class(name).from_params(params, embeddings=embeddings)


def load_router(
    name_or_path: str | Path,
    path: str | Path | None = None,
    *,
    embeddings: Embeddings | None = None,
) -> BaseRouter | BaseGraphRouter:
    """Load a saved router (never unpickles or runs code from the files).

    ``load_router("knnrouter", "models/knnrouter")`` checks that the directory holds
    that router; ``load_router("models/knnrouter")`` loads whatever it holds: it reads the
    router's name from ``router.json`` and calls the registered class's ``load``.

    Raises:
        RouterLoadError: the files are damaged, or hold another router than ``name``.
        UnknownRouterError: the name (given, or in ``router.json``) is not registered.
    """
    from langchain_llmrouter.routers.estimator import read_saved_router

    if path is None:
        document, _ = read_saved_router(name_or_path)
        return get_router_class(document["router"]).load(name_or_path, embeddings=embeddings)
    return get_router_class(str(name_or_path)).load(path, embeddings=embeddings)
