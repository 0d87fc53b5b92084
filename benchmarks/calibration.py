"""Calibration to a target share: calibrate on one half of routerdc_test, check the other half.

Trains knnrouter as ``configs/train/knnrouter.yaml`` does (k=50, distance weights, cosine,
``dims: 64``, the static featuriser) on routerdc_train.json, splits the 500 test queries into
two random halves, calibrates the ``cost_weight`` that sends ``--target-share`` of the first
half to ``--candidate``, and routes the held-out half at that weight. Prints the curve on the
calibration half (share, predicted and true quality, $ per 1k at a range of weights), the
held-out figures, and the held-out share over ``--splits`` other random halvings.

Usage: python benchmarks/calibration.py [--data ../shared/data/llmrouter_example]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from langchain_llmrouter import CandidatePool, RoutingDataset, StaticEmbeddings, create_router
from langchain_llmrouter.calibration import Calibration, calibrate
from langchain_llmrouter.routers.base import BaseRouter

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "llmrouter_example"
STRONG = "llama-3.1-nemotron-51b-instruct"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--target-share", type=float, default=0.2)
    parser.add_argument("--candidate", default=STRONG)
    parser.add_argument("--seed", type=int, default=0, help="the split shown in full")
    parser.add_argument("--splits", type=int, default=100, help="more random halvings to check")
    args = parser.parse_args()

    pool = CandidatePool.from_json(args.data / "default_llm.json")
    train = RoutingDataset.from_file(args.data / "routerdc_train.json", candidates=pool)
    test = RoutingDataset.from_file(args.data / "routerdc_test.json", candidates=pool)
    router = create_router(
        "knnrouter", k=50, weights="distance", metric="cosine", dims=64,
        embeddings=StaticEmbeddings(),
    )  # fmt: skip
    router.fit(train)
    x = router.embed_queries(test.queries)

    calib, held, calibration = _calibrate_half(router, test, x, args, args.seed)
    print(
        f"knnrouter (k=50, static, dims 64) trained on {len(train)} queries; routerdc_test "
        f"split at random (seed {args.seed}) into {len(calib)} calibration and {len(held)} "
        f"held-out queries; target {args.target_share:.0%} to {args.candidate}\n"
    )
    print(f"The curve on the calibration half ({len(calibration.curve)} intervals in all):\n")
    weights = sorted({0.0, 0.01, 0.03, 0.05, 0.1, 0.2, 0.3, 0.5, 1.0, 3.0, calibration.cost_weight})
    print(calibration.table(weights))
    figures = _held_out(router, test, x, held, calibration)
    print(
        f"\ncalibrated cost_weight {calibration.cost_weight:.4f}: calibration half share "
        f"{calibration.share:.1%}, Q {calibration.quality:.3f}, "
        f"${calibration.cost_per_1k:.3f}/1k; held-out half share {figures['share']:.1%}, "
        f"Q {figures['quality']:.3f}, ${figures['cost_per_1k']:.3f}/1k"
    )
    shares = []
    for seed in range(args.seed + 1, args.seed + 1 + args.splits):
        _, other, cal = _calibrate_half(router, test, x, args, seed)
        shares.append(_held_out(router, test, x, other, cal)["share"])
    held_shares = np.array(shares)
    within = np.mean(np.abs(held_shares - args.target_share) <= 0.02 + 1e-9)
    # Two independent halves of n queries: binomial noise alone gives this spread.
    noise = np.sqrt(2 * args.target_share * (1 - args.target_share) / len(held))
    print(
        f"over {args.splits} other random halvings: held-out share mean {held_shares.mean():.1%}, "
        f"sd {held_shares.std():.1%} (binomial noise of two halves alone: {noise:.1%}), "
        f"min {held_shares.min():.1%}, max {held_shares.max():.1%}; within ±2 points in "
        f"{within:.0%} of them"
    )


def _calibrate_half(
    router: BaseRouter, test: RoutingDataset, x: np.ndarray, args: argparse.Namespace, seed: int
) -> tuple[np.ndarray, np.ndarray, Calibration]:
    """Split the test rows in two at random; calibrate on the first half."""
    order = np.random.default_rng(seed).permutation(len(test))
    calib, held = np.sort(order[: len(test) // 2]), np.sort(order[len(test) // 2 :])
    calibration = calibrate(
        router,
        test.subset(calib),
        target_share=args.target_share,
        candidate=args.candidate,
        query_embeddings=x[calib],
    )
    return calib, held, calibration


def _held_out(
    router: BaseRouter,
    test: RoutingDataset,
    x: np.ndarray,
    rows: np.ndarray,
    calibration: Calibration,
) -> dict[str, float]:
    """Route the held-out rows at the calibrated weight as the router would."""
    decisions = router.route_batch(
        [test.queries[i] for i in rows],
        cost_weight=calibration.cost_weight,
        query_embeddings=x[rows],
    )
    chosen = np.array([test.candidates.index(d.model) for d in decisions])
    return {
        "share": float(np.mean([d.model == calibration.candidate for d in decisions])),
        "quality": float(np.nanmean(test.performance[rows, chosen])),
        "cost_per_1k": float(np.mean([d.est_cost for d in decisions]) * 1000),
    }


if __name__ == "__main__":
    main()
