"""Each embedding router's default featuriser: 5-fold cross-validation on the TRAIN file only.

For every router that reads query embeddings, prints the mean held-out quality at
cost_weight 0 on MiniLM and on the static featuriser, and the featuriser the shipped
config (configs/train/<router>.yaml) uses by this rule: the static one wherever it is within
0.01 of MiniLM (a fiftieth of the featuriser's time for at most that much quality; the
standard error of a test Q0 on 500 queries is about 0.02), MiniLM elsewhere. The test file
is not touched.

Usage: python benchmarks/featuriser_selection.py [--data ../shared/data/llmrouter_example]
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import numpy as np

from langchain_llmrouter import CandidatePool, RoutingDataset, create_router
from langchain_llmrouter.embeddings import builtin_embeddings, embed_texts
from langchain_llmrouter.routers import choose

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "llmrouter_example"
FEATURISERS = ("all-MiniLM-L6-v2", "static-minilm-l6-v2")
# Hyperparameters that go with a featuriser (kNN's index size: benchmarks/knn_k_selection.py).
PARAMS: dict[tuple[str, str], dict[str, Any]] = {("knnrouter", "static-minilm-l6-v2"): {"dims": 64}}
ROUTERS = ("knnrouter", "elorouter", "mlprouter", "svmrouter", "mfrouter", "hybrid_llm")
TOLERANCE = 0.01


def cv_quality(
    name: str, params: dict[str, Any], train: RoutingDataset, x: np.ndarray, folds: np.ndarray
) -> float:
    """Mean held-out quality of the router's choices over the folds."""
    scores = []
    for f in range(int(folds.max()) + 1):
        held = folds == f
        router = create_router(name, **params)
        router.fit(train.subset(~held), query_embeddings=x[~held])
        queries = [train.queries[i] for i in np.flatnonzero(held)]
        predicted = router.predict_quality(queries, query_embeddings=x[held])
        chosen = choose(predicted, train.cost[held])
        scores.append(train.performance[held][np.arange(held.sum()), chosen].mean())
    return float(np.mean(scores))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--folds", type=int, default=5)
    args = parser.parse_args()
    pool = CandidatePool.from_json(args.data / "default_llm.json")
    train = RoutingDataset.from_file(args.data / "routerdc_train.json", candidates=pool)
    folds = np.random.default_rng(0).permutation(len(train)) % args.folds
    vectors = {name: embed_texts(train.queries, builtin_embeddings(name)) for name in FEATURISERS}
    print(f"{args.folds}-fold CV on {len(train)} train queries, quality at cost_weight 0")
    print(
        "| router | MiniLM | static | static − MiniLM | default |\n| --- | --- | --- | --- | --- |"
    )
    for router in ROUTERS:
        minilm, static = (
            cv_quality(router, PARAMS.get((router, f), {}), train, vectors[f], folds)
            for f in FEATURISERS
        )
        default = "static" if static >= minilm - TOLERANCE else "MiniLM"
        print(f"| {router} | {minilm:.4f} | {static:.4f} | {static - minilm:+.4f} | {default} |")


if __name__ == "__main__":
    main()
