"""``llmrouter train``: fit a router on routing data and save it (JSON + safetensors)."""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from langchain_llmrouter.cli.common import (
    add_router_args,
    candidate_pool,
    model_dir,
    router_config,
    routing_data,
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Flags of ``train``."""
    add_router_args(parser)
    parser.add_argument(
        "--save", type=Path, help="directory to save to (default: model_path.save_model_path)"
    )
    parser.add_argument("--quiet", action="store_true", help="print only the JSON summary")


def run(args: argparse.Namespace) -> int:
    """Train and save; prints a JSON summary."""
    from langchain_llmrouter.routers.registry import get_router_class

    name, config = router_config(args)
    cls = get_router_class(name)
    pool = candidate_pool(config)
    router = cls.from_params(
        config.hparam, embeddings=config.build_embeddings(), source=str(config.source)
    )
    target = model_dir(config, for_loading=False, override=args.save)
    if target is None:
        from langchain_llmrouter.errors import ConfigError

        raise ConfigError(
            "missing: where to save the router",
            path=config.source,
            field="model_path.save_model_path",
        )
    start = time.perf_counter()
    if cls.trainable:
        dataset = routing_data(config, "routing_data_train", pool)
        if not args.quiet:
            print(
                f"training {name} on {len(dataset)} queries x {len(dataset.candidates)} candidates from {dataset.source}"
            )
        router.fit(dataset)
        n_queries = len(dataset)
    else:
        if not args.quiet:
            print(f"{name} needs no training data: setting it up from the {len(pool)} candidates")
        router.fit_candidates(pool)
        n_queries = 0
    seconds = time.perf_counter() - start
    router.save(target)
    print(
        json.dumps(
            {
                "router": name,
                "saved_to": str(target),
                "train_queries": n_queries,
                "fit_seconds": round(seconds, 3),
            }
        )
    )
    return 0
