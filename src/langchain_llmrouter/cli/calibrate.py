"""``llmrouter calibrate``: the ``cost_weight`` for a target share (or cost), saved with the router.

Routes a sample of your queries once, prints the share–quality–cost curve, and writes the
chosen ``cost_weight`` (and the calibration) into the saved router's ``router.json`` through
the router's own save, so ``llmrouter infer``, ``load_router`` and
``RouterChatModel(target_share=...)`` use it.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from langchain_llmrouter.cli.common import (
    add_load_model_arg,
    add_router_args,
    candidate_pool,
    model_dir,
    router_config,
    trained_router,
)
from langchain_llmrouter.errors import ConfigError, DataFormatError

if TYPE_CHECKING:
    from langchain_llmrouter.candidates import CandidatePool
    from langchain_llmrouter.data import RoutingDataset


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Flags of ``calibrate``."""
    add_router_args(parser)
    parser.add_argument(
        "--queries",
        required=True,
        type=Path,
        help="sample of your queries: .txt (one per line), .json (list), .jsonl, or routing "
        "data (then the curve also shows the true quality)",
    )
    target = parser.add_mutually_exclusive_group(required=True)
    target.add_argument(
        "--target-share", type=float, help="share in [0, 1] of the sample to send to --candidate"
    )
    target.add_argument(
        "--target-cost-per-1k", type=float, help="mean dollars per 1,000 queries to meet instead"
    )
    parser.add_argument(
        "--candidate", help="the candidate whose share is targeted (default: the dearest)"
    )
    parser.add_argument("--json", action="store_true", help="print the calibration as JSON")
    parser.add_argument(
        "--dry-run", action="store_true", help="print the curve and the value; write nothing"
    )
    add_load_model_arg(parser)


def read_sample(path: Path, pool: CandidatePool) -> list[str] | RoutingDataset:
    """Routing data (with true quality) if the file is routing data, else bare queries."""
    from langchain_llmrouter.cli.infer import read_queries
    from langchain_llmrouter.data import RoutingDataset

    if not path.is_file():
        raise DataFormatError("queries file not found", path=path)
    if path.suffix.lower() in (".json", ".jsonl", ".csv"):
        try:
            return RoutingDataset.from_file(path, candidates=pool, unknown_candidates="drop")
        except DataFormatError:
            pass  # not routing data: a list of queries, read below
    return read_queries(path)


def run(args: argparse.Namespace) -> int:
    """Calibrate, print the curve and the value, and save it with the router."""
    from langchain_llmrouter.calibration import calibrate
    from langchain_llmrouter.routers.base import BaseRouter

    name, config = router_config(args)
    pool = candidate_pool(config)
    # A trainable router that was never saved: this says how to train it.
    router = trained_router(name, config, pool, override=args.load_model_path)
    directory = model_dir(config, for_loading=True, override=args.load_model_path)
    if directory is None or not (directory / "router.json").is_file():
        raise ConfigError(
            f"calibrate writes into a saved router, and there is none at {directory}",
            path=config.source,
            field="model_path.load_model_path",
        )
    if not isinstance(router, BaseRouter):
        raise ConfigError(
            f"{name} is a multi-round router: it has no single cost_weight to calibrate"
        )
    sample = read_sample(args.queries, pool)
    if len(sample) == 0:
        raise DataFormatError("no queries in the file", path=args.queries)
    calibration = calibrate(
        router,
        sample,
        target_share=args.target_share,
        candidate=args.candidate,
        target_cost_per_1k=args.target_cost_per_1k,
    )
    if not args.dry_run:
        calibration.apply(router)
        router.save(directory)
    if args.json:
        document: dict[str, Any] = calibration.model_dump()
        document["saved_to"] = None if args.dry_run else str(directory / "router.json")
        print(json.dumps(document, indent=2))
        return 0
    target = (
        f"{calibration.target_share:.1%} of queries to {calibration.candidate}"
        if calibration.target_share is not None
        else f"${calibration.target_cost_per_1k:g} per 1k queries"
    )
    print(f"{name} on {calibration.n_queries} queries from {args.queries}; target: {target}\n")
    print(calibration.table())
    quality = "" if calibration.quality is None else f", true Q {calibration.quality:.3f}"
    print(
        f"\ncost_weight {calibration.cost_weight:.6g}: {calibration.share:.1%} to "
        f"{calibration.candidate}, predicted Q {calibration.quality_proxy:.3f}{quality}, "
        f"${calibration.cost_per_1k:.3f} per 1k queries"
    )
    if args.dry_run:
        print("(dry run: nothing written)", file=sys.stderr)
    else:
        print(f"wrote cost_weight {calibration.cost_weight:.6g} to {directory / 'router.json'}")
    return 0
