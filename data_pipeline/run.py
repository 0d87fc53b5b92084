"""All three stages in order: queries, candidate embeddings, calls and scores.

Run: ``python -m data_pipeline.run --config data_pipeline/sample_config.yaml``
(``--stages calls`` runs only some of them, e.g. on query files you already have).
Exit codes as for `data_pipeline.call_candidates`: 0 done, 3 pairs left (run again), 2 bad
input.
"""

from __future__ import annotations

import argparse

from data_pipeline._io import cli_main
from data_pipeline.call_candidates import add_call_arguments, run_stage
from data_pipeline.config import load_pipeline_config
from data_pipeline.embed_candidates import embed_candidates

STAGES = ("queries", "embed", "calls")


def main(argv: list[str] | None = None) -> int:
    """Command line: ``python -m data_pipeline.run --config FILE [--stages ...]``."""
    parser = argparse.ArgumentParser(
        prog="python -m data_pipeline.run", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--config", required=True, help="pipeline YAML config")
    parser.add_argument(
        "--stages",
        default=",".join(STAGES),
        help=f"comma list of stages to run, in order (default: {','.join(STAGES)})",
    )
    add_call_arguments(parser)
    args = parser.parse_args(argv)
    stages = [s.strip() for s in args.stages.split(",") if s.strip()]
    unknown = [s for s in stages if s not in STAGES]
    if unknown:
        parser.error(f"unknown stage {unknown[0]!r}; valid stages: {', '.join(STAGES)}")

    def run() -> int:
        config = load_pipeline_config(args.config)
        if "queries" in stages:
            from data_pipeline.queries import generate_queries

            print("== stage 1: queries")
            generate_queries(config)
        if "embed" in stages:
            print("== stage 2: candidate embeddings")
            embed_candidates(config)
        if "calls" in stages:
            print("== stage 3: calls and scores")
            return run_stage(config, args)
        return 0

    return cli_main(run)


if __name__ == "__main__":
    raise SystemExit(main())
