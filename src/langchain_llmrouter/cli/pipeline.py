"""``llmrouter pipeline <stage>``: the data pipeline's stages, benchmarks to routing data.

Each stage's flags come from `langchain_llmrouter.pipeline.commands` (argparse only); the
stage's module is imported when it runs. From a repository checkout the same commands are
``python -m data_pipeline.<stage>``.
"""

from __future__ import annotations

import argparse
import importlib

from langchain_llmrouter.pipeline import SAMPLE_CONFIG
from langchain_llmrouter.pipeline.commands import STAGES


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """One subcommand per stage, each with that stage's flags."""
    parser.epilog = f"A sample config to start from: {SAMPLE_CONFIG}"
    stages = parser.add_subparsers(dest="stage", metavar="STAGE", required=True)
    for stage in STAGES.values():
        command = stages.add_parser(
            stage.name, aliases=list(stage.aliases), help=stage.summary, description=stage.summary
        )
        # The canonical name, whichever spelling was typed.
        command.set_defaults(stage_name=stage.name)
        stage.add_arguments(command)


def run(args: argparse.Namespace) -> int:
    """Run the chosen stage (its module's ``run(args)``); its exit code."""
    module = importlib.import_module(STAGES[args.stage_name].module)
    return int(module.run(args))
