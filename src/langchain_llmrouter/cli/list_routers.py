"""``llmrouter list-routers``: the routers this installation knows, built-in and plugin apart."""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Flags of ``list-routers`` (none)."""


def _describe(name: str) -> str:
    from langchain_llmrouter.routers.registry import get_router_class

    try:
        cls = get_router_class(name)
    except Exception as exc:  # a router whose optional dependency is missing still gets listed
        return f"  {name:<22} (cannot load: {exc})"
    summary = (cls.__doc__ or "").strip().splitlines()[0] if cls.__doc__ else ""
    kind = "trainable" if cls.trainable else "no training"
    if getattr(cls, "personal", False):
        kind = "per user"  # learns each user's preferences from ratings
    return f"  {name:<22} {kind:<12} {summary}"


def run(args: argparse.Namespace) -> int:
    """Print built-in and plugin routers apart, with where each plugin came from."""
    from langchain_llmrouter.routers.registry import (
        builtin_routers,
        discover_plugins,
        plugin_paths,
        plugin_routers,
        plugin_source,
    )

    errors = discover_plugins()
    plugins = plugin_routers()
    print("built-in routers:")
    for name in builtin_routers():
        if name in plugins:
            print(f"  {name:<22} (overridden by a plugin below)")
        else:
            print(_describe(name))
    print("plugin routers:" if plugins else "plugin routers: (none found)")
    for name in plugins:
        print(_describe(name))
        print(f"  {'':<22} from {plugin_source(name)}")
    print("plugin search path: " + ", ".join(str(p) for p in plugin_paths()))
    for error in errors:
        print(f"plugin failed to import: {error.source}: {error.error}")
    return 0
