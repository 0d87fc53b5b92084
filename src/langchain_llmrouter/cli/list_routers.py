"""``llmrouter list-routers``: the routers this installation knows."""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Flags of ``list-routers`` (none)."""


def _describe(name: str) -> str:
    from langchain_llmrouter.routers.registry import get_router_class

    try:
        cls = get_router_class(name)
    except Exception as exc:  # a broken plugin must not hide the others
        return f"  {name:<22} (cannot load: {exc})"
    summary = (cls.__doc__ or "").strip().splitlines()[0] if cls.__doc__ else ""
    kind = "trainable" if cls.trainable else "no training"
    return f"  {name:<22} {kind:<12} {summary}"


def run(args: argparse.Namespace) -> int:
    """Print built-in and plugin routers apart."""
    from langchain_llmrouter.routers.registry import builtin_routers, plugin_routers

    print("built-in routers:")
    for name in builtin_routers():
        print(_describe(name))
    plugins = plugin_routers()
    print("plugin routers:" if plugins else "plugin routers: (none found)")
    for name in plugins:
        print(_describe(name))
    return 0
