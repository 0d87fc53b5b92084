"""``llmrouter bench``: train and compare routers side by side on a train/test pair."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

DEFAULT_BENCH_CONFIG = Path("configs/bench/routerdc.yaml")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Flags of ``bench``."""
    parser.add_argument(
        "--config", type=Path, help=f"benchmark YAML (default: {DEFAULT_BENCH_CONFIG} if present)"
    )
    parser.add_argument("--routers", help="comma-separated router names (default: the config's)")
    parser.add_argument("--train", type=Path, help="training routing data (overrides the config)")
    parser.add_argument("--test", type=Path, help="test routing data (overrides the config)")
    parser.add_argument("--llm-data", type=Path, help="candidates JSON (overrides the config)")
    parser.add_argument("--json", action="store_true", help="print machine-readable JSON")
    parser.add_argument("--output", type=Path, help="also write the JSON figures to this file")
    parser.add_argument(
        "--calibrate",
        metavar="METHODS",
        help="also bench every cost-aware router with its qualities calibrated on out-of-fold "
        "training predictions: isotonic (a map per candidate), isotonic-pooled (one map), or "
        "both comma-separated; a '<row>+<method>' row beside each",
    )
    parser.add_argument(
        "--plot",
        type=Path,
        metavar="FILE.png",
        help="also draw the quality-cost curves of all test queries to this image "
        "(needs the 'demo' extra)",
    )


def _with_calibrated_rows(
    routers: dict[str, dict[str, Any]], methods: list[str]
) -> dict[str, dict[str, Any]]:
    """Each row, followed by its calibrated twins where the router predicts qualities."""
    from langchain_llmrouter.routers.registry import get_router_class, router_kind

    rows: dict[str, dict[str, Any]] = {}
    for label, params in routers.items():
        rows[label] = params
        name = (params or {}).get("router", label)
        if not isinstance(name, str) or "calibrate" in (params or {}):
            continue
        if router_kind(name) == "single" and getattr(get_router_class(name), "cost_aware", False):
            for method in methods:
                rows[f"{label}+{method}"] = {**(params or {}), "router": name, "calibrate": method}
    return rows


def run(args: argparse.Namespace) -> int:
    """Run the benchmark and print the tables."""
    from langchain_llmrouter.candidates import CandidatePool
    from langchain_llmrouter.config import BenchConfig, DataPaths, load_bench_config
    from langchain_llmrouter.data import RoutingDataset
    from langchain_llmrouter.errors import ConfigError
    from langchain_llmrouter.evaluation.bench import CALIBRATION_METHODS, run_benchmark

    if args.plot:
        from langchain_llmrouter.evaluation.plot import check_plot_path

        check_plot_path(args.plot)  # no matplotlib or a bad suffix: say so before training

    config_path = args.config or (DEFAULT_BENCH_CONFIG if DEFAULT_BENCH_CONFIG.is_file() else None)
    config = load_bench_config(config_path) if config_path else BenchConfig(data_path=DataPaths())
    paths = config.data_path
    train_path = args.train or config.resolve(
        paths.routing_data_train, what="data_path.routing_data_train"
    )
    test_path = args.test or config.resolve(
        paths.routing_data_test, what="data_path.routing_data_test"
    )
    llm_path = args.llm_data or config.resolve(paths.llm_data, what="data_path.llm_data")
    for value, key in (
        (train_path, "routing_data_train"),
        (test_path, "routing_data_test"),
        (llm_path, "llm_data"),
    ):
        if value is None:
            raise ConfigError(
                "missing: give it in a --config or on the command line", field=f"data_path.{key}"
            )
    routers = config.routers
    if args.routers:
        names = [n.strip().lower() for n in args.routers.split(",") if n.strip()]
        routers = {n: config.routers.get(n, {}) for n in names}
    if args.calibrate:
        methods = [m.strip() for m in args.calibrate.split(",") if m.strip()]
        bad = [m for m in methods if m not in CALIBRATION_METHODS]
        if bad or not methods:
            raise ConfigError(
                f"must be {' or '.join(CALIBRATION_METHODS)} (comma-separated), got {bad}",
                field="--calibrate",
            )
        routers = _with_calibrated_rows(routers, methods)

    def log(message: str) -> None:
        print(message, file=sys.stderr)

    pool = CandidatePool.from_json(llm_path)  # type: ignore[arg-type]
    if paths.llm_embedding_data:
        pool.add_embeddings(
            config.resolve(paths.llm_embedding_data, what="data_path.llm_embedding_data")  # type: ignore[arg-type]
        )
    train = RoutingDataset.from_file(train_path, candidates=pool)  # type: ignore[arg-type]
    test = RoutingDataset.from_file(test_path, candidates=pool)  # type: ignore[arg-type]
    result = run_benchmark(train, test, routers, embeddings=config.build_embeddings(), log=log)
    figures = result.to_dict()
    figures.update(train=str(train_path), test=str(test_path))
    if args.output:
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(json.dumps(figures, indent=2) + "\n", encoding="utf-8")
    if args.plot:
        from langchain_llmrouter.evaluation.plot import plot_quality_cost

        title = f"Quality vs cost on {test_path.name}"  # type: ignore[union-attr]
        written = plot_quality_cost(result, args.plot, title=title)
        log(f"wrote the quality-cost plot to {written}")
    print(json.dumps(figures, indent=2) if args.json else result.format())
    return 0
