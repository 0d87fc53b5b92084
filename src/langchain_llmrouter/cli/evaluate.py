"""``llmrouter eval``: measure a trained router on test routing data (BENCHMARK.md figures)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from langchain_llmrouter.cli.common import (
    add_load_model_arg,
    add_router_args,
    candidate_pool,
    router_config,
    routing_data,
    trained_router,
)
from langchain_llmrouter.errors import ConfigError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Flags of ``eval``."""
    add_router_args(parser)
    parser.add_argument(
        "--data", type=Path, help="test routing data (default: data_path.routing_data_test)"
    )
    add_load_model_arg(parser)
    parser.add_argument("--json", action="store_true", help="print machine-readable JSON")


def run(args: argparse.Namespace) -> int:
    """Evaluate and print the table (or JSON)."""
    from langchain_llmrouter.evaluation import (
        evaluate_choices,
        evaluate_router,
        format_table,
        reference_points,
    )

    name, config = router_config(args)
    pool = candidate_pool(config)
    router = trained_router(name, config, pool, override=args.load_model_path)
    from langchain_llmrouter.graphs.base import BaseGraphRouter

    if isinstance(router, BaseGraphRouter):
        raise ConfigError(
            f"{name} is a multi-round router: it can only be judged by calling LLMs, not on "
            "recorded routing data; run it with `llmrouter infer` on queries with answers instead",
            path=config.source,
            field="router",
        )
    test = routing_data(config, "routing_data_test", pool, override=args.data)
    test = test.select_candidates([c for c in router.candidates_ if c in test.candidates])
    if not router.trainable:
        # A fixed-choice baseline is judged among the candidates the test data scores.
        router = type(router).from_params(router.get_params()).fit_candidates(test.candidate_info())
    # "Best single" is judged on the training file when there is one (BENCHMARK.md).
    train = (
        routing_data(config, "routing_data_train", pool)
        if config.data_path.routing_data_train
        else None
    )
    reference = (train or test).select_candidates(test.candidates)
    best = test.candidates.index(reference.best_single())
    predicted_all = router.predict_quality(test.queries)
    cols = [router.candidates_.index(c) for c in test.candidates]
    predicted_all = predicted_all[:, cols]
    subsets = [("all", np.ones(len(test), dtype=bool))]
    if train is not None and test.novel_mask(train).any():
        subsets.append(("novel", test.novel_mask(train)))
    splits: list[dict[str, object]] = []
    output = {"router": name, "test": test.source, "candidates": test.candidates, "splits": splits}
    tables = []
    for label, mask in subsets:
        perf, cost, predicted = test.performance[mask], test.cost[mask], predicted_all[mask]
        if router.cost_aware:
            report = evaluate_router(name, predicted, perf, cost, best)
        else:
            report = evaluate_choices(name, predicted.argmax(axis=1), perf, cost, best)
        refs = reference_points(perf, cost, best)
        splits.append(
            {
                "label": label,
                "n_queries": int(mask.sum()),
                "report": report.to_dict(),
                "references": refs.to_dict(),
            }
        )
        tables.append(
            format_table(
                [report],
                refs,
                title=f"{label} test queries ({int(mask.sum())})",
                candidate_names=test.candidates,
            )
        )
    print(json.dumps(output, indent=2) if args.json else "\n\n".join(tables))
    return 0
