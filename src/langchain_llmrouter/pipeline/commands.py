"""The pipeline's stages as commands: their names, one-line summaries, flags and modules.

``llmrouter pipeline <stage>`` and ``python -m data_pipeline.<stage>`` build their argument
parsers from `STAGES`. This module imports only argparse, so the ``llmrouter`` parser stays
quick to build; a stage's module (and what it needs) is imported when that stage runs, by
its name in `Stage.module`.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from dataclasses import dataclass

RUN_STAGES = ("queries", "embed", "calls")
"""What ``run --stages`` accepts, in the order the stages run."""

ENGINES = ("local", "ray")
"""What ``--engine`` accepts (the config's ``engine``)."""


def positive_int(text: str) -> int:
    """An argparse type: an integer of at least 1."""
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def run_stage_list(text: str) -> list[str]:
    """An argparse type: a comma list of `RUN_STAGES` names."""
    stages = [s.strip() for s in text.split(",") if s.strip()]
    unknown = [s for s in stages if s not in RUN_STAGES]
    if unknown:
        raise argparse.ArgumentTypeError(
            f"unknown stage {unknown[0]!r}; valid stages: {', '.join(RUN_STAGES)}"
        )
    return stages


def add_config_argument(parser: argparse.ArgumentParser) -> None:
    """``--config``: every stage reads the pipeline's YAML config."""
    parser.add_argument("--config", required=True, help="pipeline YAML config")


def add_query_arguments(parser: argparse.ArgumentParser) -> None:
    """Flags of stage 1 (``queries``)."""
    add_config_argument(parser)
    parser.add_argument("--tasks", default=None, help="comma list of tasks (overrides the config)")
    parser.add_argument(
        "--sample-size", type=positive_int, default=None, help="queries per task (overrides)"
    )


def add_call_arguments(parser: argparse.ArgumentParser) -> None:
    """The stage-3 flags other than ``--config`` (shared with ``run``)."""
    parser.add_argument(
        "--max-cost",
        type=float,
        default=None,
        help="dollar bound on everything recorded (overrides calls.max_cost)",
    )
    parser.add_argument(
        "--limit", type=int, default=None, help="only the first N queries of each split"
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument(
        "--engine",
        choices=ENGINES,
        default=None,
        help="where the stages run: local (default) or ray (needs the ray extra; overrides "
        "the config's engine)",
    )
    parser.add_argument(
        "--ray-address",
        default=None,
        help="Ray cluster to join with --engine ray (overrides ray_address; default: a local Ray)",
    )


def add_call_stage_arguments(parser: argparse.ArgumentParser) -> None:
    """Flags of stage 3 (``call-candidates``)."""
    add_config_argument(parser)
    add_call_arguments(parser)


def add_run_arguments(parser: argparse.ArgumentParser) -> None:
    """Flags of ``run`` (all stages in order)."""
    add_config_argument(parser)
    parser.add_argument(
        "--stages",
        type=run_stage_list,
        default=",".join(RUN_STAGES),
        help=f"comma list of stages to run, in order (default: {','.join(RUN_STAGES)})",
    )
    add_call_arguments(parser)


@dataclass(frozen=True)
class Stage:
    """One command of the pipeline."""

    name: str
    """The ``llmrouter pipeline`` verb."""
    module: str
    """The module whose ``run(args)`` runs it (and whose ``main(argv)`` is its command line)."""
    summary: str
    """One line, for help."""
    add_arguments: Callable[[argparse.ArgumentParser], None]
    """Declares its flags on a parser."""
    aliases: tuple[str, ...] = ()
    """Other spellings (the ``python -m`` module's name)."""

    def parser(self, prog: str) -> argparse.ArgumentParser:
        """A stand-alone parser for the stage (its ``python -m`` command line)."""
        parser = argparse.ArgumentParser(prog=prog, description=self.summary)
        self.add_arguments(parser)
        return parser


_PACKAGE = "langchain_llmrouter.pipeline"

STAGES: dict[str, Stage] = {
    stage.name: stage
    for stage in (
        Stage(
            "queries",
            f"{_PACKAGE}.queries",
            "stage 1: sample benchmarks (or query files) into query files",
            add_query_arguments,
        ),
        Stage(
            "embed-candidates",
            f"{_PACKAGE}.embed_candidates",
            "stage 2: embed the candidates' descriptions",
            add_config_argument,
            aliases=("embed_candidates",),
        ),
        Stage(
            "call-candidates",
            f"{_PACKAGE}.call_candidates",
            "stage 3: call every candidate on every query, score, write routing data (resumable)",
            add_call_stage_arguments,
            aliases=("call_candidates",),
        ),
        Stage(
            "run",
            f"{_PACKAGE}.run",
            "all three stages in order: queries, candidate embeddings, calls and scores",
            add_run_arguments,
        ),
    )
}
"""The pipeline's commands by verb, in the order they run."""
