"""``llmrouter train``: fit a router on routing data and save it (JSON + safetensors).

With ``tune: true`` in the config (the default) a single-round router's hyperparameters are
first chosen by grouped CV on the training data (`langchain_llmrouter.routers.tuning`);
``--add-candidate NAME --data FILE`` instead adds a candidate to a saved router from its
scores on a few queries (`langchain_llmrouter.routers.new_candidates`) and saves it again.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from langchain_llmrouter.cli.common import (
    add_router_args,
    candidate_pool,
    check_writable,
    interactions_data,
    model_dir,
    router_config,
    routing_data,
    trained_router,
)

if TYPE_CHECKING:
    import numpy as np

    from langchain_llmrouter.config import RouterConfig
    from langchain_llmrouter.data import RoutingDataset
    from langchain_llmrouter.routers.estimator import RouterEstimator


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Flags of ``train``."""
    add_router_args(parser)
    parser.add_argument(
        "--save", type=Path, help="directory to save to (default: model_path.save_model_path)"
    )
    parser.add_argument("--quiet", action="store_true", help="print only the JSON summary")
    parser.add_argument(
        "--no-tune",
        action="store_true",
        help="keep hparam as given (overrides tune: true in the config)",
    )
    parser.add_argument(
        "--add-candidate",
        metavar="NAME",
        help="add candidate NAME (from data_path.llm_data) to the saved router, from --data",
    )
    parser.add_argument(
        "--data",
        type=Path,
        help="with --add-candidate: routing data with NAME's scores on a few (<= 50) queries",
    )


def run(args: argparse.Namespace) -> int:
    """Train and save; prints a JSON summary."""
    from langchain_llmrouter.personal.router import PersonalRouter
    from langchain_llmrouter.routers.registry import get_router_class

    name, config = router_config(args)
    if args.add_candidate is not None or args.data is not None:
        return _add_candidate(args, name, config)
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
        tune = config.tune and not args.no_tune and _can_tune(name, config, dataset, args.quiet)
        if tune and not args.quiet:
            print(
                f"tuning {name}: grouped {config.tune_folds}-fold CV on the training data, "
                f"{config.tune_budget_s:g} s budget (tune: false in the config to skip)",
                flush=True,
            )
        if tune:
            from langchain_llmrouter.routers.tuning import fit_with_tuning

            fit_with_tuning(
                router,
                dataset,
                query_embeddings,
                budget_s=config.tune_budget_s,
                n_folds=config.tune_folds,
            )
        else:
            router.fit(dataset, query_embeddings=query_embeddings)
        if tune and not args.quiet:
            print(_tuning_summary(router.tuning_), flush=True)
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
                **_tuning_fields(router),
            }
        )
    )
    return 0


def _can_tune(name: str, config: RouterConfig, dataset: RoutingDataset, quiet: bool) -> bool:
    """Whether ``llmrouter train`` tunes this router on this data (else says why, when the
    config asked for tuning explicitly)."""
    from langchain_llmrouter.routers.tuning import tune_skip_reason

    reason = tune_skip_reason(name, dataset)
    if reason is not None and "tune" in config.model_fields_set and not quiet:
        print(f"not tuning {name}: {reason}", flush=True)
    return reason is None


def _tuning_summary(record: dict[str, Any]) -> str:
    """One or a few lines on what tuning chose."""
    if "members" in record:
        lines = [f"tuned the ensemble's members in {record['seconds']:.0f} s:"]
        for member in record["members"]:
            if member.get("chosen") is None:
                lines.append(f"  {member['router']}: not tuned (no search space)")
            else:
                lines.append(f"  {member['router']}: {_choice(member)}")
        return "\n".join(lines)
    return f"tuned in {record['seconds']:.0f} s: {_choice(record)}"


def _choice(record: dict[str, Any]) -> str:
    chosen = ", ".join(f"{k}={v!r}" for k, v in record["chosen"].items())
    n = len(record["trials"])
    return (
        f"{chosen} (CV {record['metric'].upper()} {record['cv_score']:.4f}; hparam as given "
        f"{record['start_cv_score']:.4f}; "
        f"{n} setting{'' if n == 1 else 's'} tried)"
    )


def _tuning_fields(router: RouterEstimator) -> dict[str, Any]:
    record = getattr(router, "tuning_", None)
    if not record:
        return {}
    if "members" in record:
        return {"tuned_members": [m.get("chosen") for m in record["members"]]}
    return {"tuned": record["chosen"], f"cv_{record['metric']}": record["cv_score"]}


def _add_candidate(args: argparse.Namespace, name: str, config: RouterConfig) -> int:
    """``--add-candidate NAME --data FILE``: load, add, save (to --save or where it was)."""
    from langchain_llmrouter.data import RoutingDataset
    from langchain_llmrouter.errors import ConfigError, UnknownCandidateError
    from langchain_llmrouter.routers.base import BaseRouter
    from langchain_llmrouter.routers.new_candidates import FEW_ANSWERS

    if args.add_candidate is None or args.data is None:
        missing = "--data FILE" if args.data is None else "--add-candidate NAME"
        raise ConfigError(f"--add-candidate NAME and --data FILE go together; add {missing}")
    candidate_name = args.add_candidate
    pool = candidate_pool(config)
    if candidate_name not in pool:
        raise UnknownCandidateError(candidate_name, pool.names, context=str(config.source))
    source = model_dir(config, for_loading=True)
    if source is None or not (source / "router.json").is_file():
        raise ConfigError(
            f"no trained {name} at {source}; train it first",
            path=config.source,
            field="model_path.load_model_path",
        )
    router = trained_router(name, config, pool)
    if not isinstance(router, BaseRouter):
        raise ConfigError(f"--add-candidate: {name} is a graph router (single-round only)")
    if candidate_name in router.candidates_:
        raise ConfigError(
            f"--add-candidate: {candidate_name!r} is already a candidate of the router at "
            f"{source} (its candidates: {', '.join(router.candidates_)})"
        )
    answers = RoutingDataset.from_file(args.data, candidates=pool, unknown_candidates="drop")
    if candidate_name not in answers.candidates:
        raise ConfigError(
            f"no scores for {candidate_name!r} in this file (its candidates: "
            f"{', '.join(answers.candidates)})",
            path=args.data,
            field="model_name",
        )
    answers = answers.select_candidates([candidate_name])
    try:
        router.add_candidate(pool[candidate_name], answers)
    except ValueError as exc:
        raise ConfigError(f"--add-candidate: {exc}", path=args.data) from None
    target = args.save if args.save is not None else source
    check_writable(target, what="--save", directory=True)
    router.save(target)
    n = len(answers)
    if not args.quiet:
        note = f" (more than {FEW_ANSWERS}: a full refit may do better)" if n > FEW_ANSWERS else ""
        print(f"added {candidate_name} to {name} from {n} answered queries{note}", flush=True)
    print(
        json.dumps(
            {
                "router": name,
                "added_candidate": candidate_name,
                "answers": n,
                "candidates": list(router.candidates_),
                "saved_to": str(target),
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
