"""Entry point of the ``llmrouter`` console script and of ``python -m langchain_llmrouter.<verb>``."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence
from types import ModuleType

from langchain_llmrouter import __version__

ALIASES = {"list-routers": ["list_routers"]}
"""Other spellings of a verb (``list_routers`` is also its ``python -m`` module's name)."""


def _verbs() -> dict[str, tuple[ModuleType, str]]:
    from langchain_llmrouter.cli import (
        bench,
        calibrate,
        chat,
        evaluate,
        infer,
        list_routers,
        pipeline,
        serve,
        simulate_users,
        train,
    )

    return {
        "train": (train, "train a router on routing data and save it"),
        "infer": (infer, "route queries and (unless --route-only) answer them"),
        "eval": (evaluate, "evaluate a trained router on test routing data"),
        "bench": (bench, "train and compare routers side by side"),
        "calibrate": (calibrate, "find the cost_weight for a target share and save it"),
        "chat": (chat, "start the Streamlit chat demo (needs the demo extra)"),
        "list-routers": (list_routers, "list built-in and plugin routers"),
        "pipeline": (pipeline, "turn benchmarks into routing data (the data pipeline's stages)"),
        "serve": (serve, "serve routing as an OpenAI-compatible API (needs the serve extra)"),
        "simulate-users": (simulate_users, "simulate users' ratings over routing data (JSONL)"),
    }


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with one subcommand per verb."""
    parser = argparse.ArgumentParser(
        prog="llmrouter", description="LLM routing for LangChain and LangGraph."
    )
    parser.add_argument("--version", action="version", version=f"langchain-llmrouter {__version__}")
    sub = parser.add_subparsers(dest="verb", metavar="VERB")
    for name, (module, help_text) in _verbs().items():
        verb = sub.add_parser(
            name, aliases=ALIASES.get(name, []), help=help_text, description=help_text
        )
        # The canonical name, whichever spelling was typed (argparse stores the alias in "verb").
        verb.set_defaults(verb_name=name)
        module.add_arguments(verb)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run one verb; user errors print one line (no traceback) and exit with status 2."""
    try:
        code = _run(argv)
        # Flush here, not at interpreter exit, so a closed pipe is caught below.
        sys.stdout.flush()
        return code
    except BrokenPipeError:
        # `llmrouter list-routers | head`: the reader left. The Python docs' recipe: point
        # stdout at devnull so the flush at exit cannot fail again, and exit with 1.
        _stdout_to_devnull()
        return 1


def _run(argv: Sequence[str] | None) -> int:
    from langchain_llmrouter.errors import LLMRouterError

    parser = build_parser()
    args = parser.parse_args(argv)
    if args.verb is None:
        parser.print_usage(sys.stderr)
        verbs = ", ".join(_verbs())
        print(
            f"error: say what to do: one of {verbs} (`llmrouter --help` describes them)",
            file=sys.stderr,
        )
        return 2
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    module, _ = _verbs()[args.verb_name]
    try:
        return int(module.run(args))
    except LLMRouterError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


def _stdout_to_devnull() -> None:
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):  # stdout is not a file descriptor (captured in-process)
        pass


def run_verb(verb: str) -> None:
    """``python -m langchain_llmrouter.<verb>``: the same as ``llmrouter <verb>``."""
    sys.exit(main([verb, *sys.argv[1:]]))


if __name__ == "__main__":
    sys.exit(main())
