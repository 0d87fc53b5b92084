"""All three stages in order: queries, candidate embeddings, calls and scores.

Run: ``llmrouter pipeline run --config CONFIG`` (from a checkout also
``python -m data_pipeline.run --config CONFIG``); ``--stages calls`` runs only some of
them, e.g. on query files you already have. ``--engine ray`` (or ``engine: ray`` in the
config) runs them on Ray (`langchain_llmrouter.pipeline.ray_engine`). Exit codes as for
`langchain_llmrouter.pipeline.call_candidates`: 0 done, 3 pairs left (run again), 2 bad
input.
"""

from __future__ import annotations

import argparse
import contextlib
import io
from collections.abc import Callable

from langchain_llmrouter.pipeline._io import cli_main
from langchain_llmrouter.pipeline.call_candidates import apply_engine_flags, run_stage
from langchain_llmrouter.pipeline.commands import RUN_STAGES
from langchain_llmrouter.pipeline.commands import STAGES as COMMANDS
from langchain_llmrouter.pipeline.config import PipelineConfig, load_pipeline_config
from langchain_llmrouter.pipeline.embed_candidates import embed_candidates

STAGES = RUN_STAGES
"""The stages ``--stages`` names, in the order they run."""


def run(args: argparse.Namespace) -> int:
    """Run the stages named by ``args.stages`` (`commands.add_run_arguments`) in order."""
    stages: list[str] = args.stages

    def pipeline() -> int:
        config = load_pipeline_config(args.config)
        apply_engine_flags(config, args)
        on_ray = config.engine == "ray"
        if on_ray:
            from langchain_llmrouter.pipeline.ray_engine import run_on_driver_node
        if "queries" in stages:
            from langchain_llmrouter.pipeline.queries import generate_queries

            print("== stage 1: queries" + (" (a Ray task)" if on_ray else ""))
            if on_ray:
                print(run_on_driver_node(config, _queries_report), end="")
            else:
                generate_queries(config)
        if "embed" in stages:
            print("== stage 2: candidate embeddings" + (" (a Ray task)" if on_ray else ""))
            if on_ray:
                print(run_on_driver_node(config, _embed_report), end="")
            else:
                embed_candidates(config)
        if "calls" in stages:
            print("== stage 3: calls and scores")
            return run_stage(config, args)
        return 0

    return cli_main(pipeline)


def _captured(stage: Callable[[PipelineConfig], object], config: PipelineConfig) -> str:
    """What a stage prints, captured (a Ray task's output would go to its worker's log)."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        stage(config)
    return out.getvalue()


def _queries_report(config: PipelineConfig) -> str:
    from langchain_llmrouter.pipeline.queries import generate_queries

    return _captured(generate_queries, config)


def _embed_report(config: PipelineConfig) -> str:
    return _captured(embed_candidates, config)


def main(
    argv: list[str] | None = None, *, prog: str = "python -m langchain_llmrouter.pipeline.run"
) -> int:
    """Command line: ``--config FILE [--stages ...]`` and the stage-3 flags; the same as
    ``llmrouter pipeline run``."""
    return run(COMMANDS["run"].parser(prog).parse_args(argv))


if __name__ == "__main__":
    raise SystemExit(main())
