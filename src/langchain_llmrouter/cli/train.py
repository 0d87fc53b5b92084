"""``llmrouter train``: fit a router on routing data and save it (JSON + safetensors)."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

from langchain_llmrouter.cli.common import (
    add_router_args,
    candidate_pool,
    check_writable,
    interactions_data,
    model_dir,
    router_config,
    routing_data,
)

if TYPE_CHECKING:
    import numpy as np

    from langchain_llmrouter.data import RoutingDataset
    from langchain_llmrouter.routers.estimator import RouterEstimator


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Flags of ``train``."""
    add_router_args(parser)
    parser.add_argument(
        "--save", type=Path, help="directory to save to (default: model_path.save_model_path)"
    )
    parser.add_argument("--quiet", action="store_true", help="print only the JSON summary")


def run(args: argparse.Namespace) -> int:
    """Train and save; prints a JSON summary."""
    from langchain_llmrouter.personal.router import PersonalRouter
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
    if args.save is not None:
        check_writable(target, what="--save", directory=True)
    else:
        check_writable(
            target, what="model_path.save_model_path", directory=True, source=config.source
        )
    start = time.perf_counter()
    if isinstance(router, PersonalRouter):
        interactions, feedback_through = interactions_data(config)
        if not args.quiet:
            users = len({x.user_id for x in interactions})
            print(f"training {name} on {len(interactions)} ratings by {users} users", flush=True)
        router.fit(interactions, candidates=pool)
        router.feedback_through_ = feedback_through  # the served model starts after these
        n_queries = len({x.query for x in interactions})
    elif cls.trainable:
        dataset = routing_data(config, "routing_data_train", pool)
        if not args.quiet:
            print(
                f"training {name} on {len(dataset)} queries x {len(dataset.candidates)} candidates from {dataset.source}",
                flush=True,  # before the progress on stderr, also when stdout is a pipe
            )
        query_embeddings = None
        if cls.uses_embeddings and not args.quiet:
            query_embeddings = _embed_with_progress(router, dataset)
        router.fit(dataset, query_embeddings=query_embeddings)
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


def _embed_with_progress(router: RouterEstimator, dataset: RoutingDataset) -> np.ndarray:
    """The training queries' embeddings, through the disk cache, with progress on stderr.

    Embedding is most of a first training run (a minute or more for thousands of queries
    on a CPU), so it should not look like a hang.
    """
    from langchain_llmrouter.cli.progress import ProgressEmbeddings
    from langchain_llmrouter.embeddings import default_cache_dir, default_embeddings, embed_texts

    embedder = ProgressEmbeddings(getattr(router, "embeddings", None) or default_embeddings())
    vectors = embed_texts(dataset.queries, embedder)
    if not embedder.embedded:
        print(
            f"the {len(dataset):,} query embeddings came from the cache in {default_cache_dir()}",
            file=sys.stderr,
        )
    return vectors
