"""How the kNN router's k and index size were chosen: 5-fold cross-validation on TRAIN only.

Prints the mean quality at cost_weight 0 of held-out folds for each (k, weights) on MiniLM,
then for each featuriser and ``dims`` (the principal components the index keeps) at k=50;
the test file is not touched, so the benchmark's test figures stay honest.

Usage: python benchmarks/knn_k_selection.py [--data ../shared/data/llmrouter_example]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from langchain_llmrouter import CandidatePool, RoutingDataset, create_router
from langchain_llmrouter.embeddings import builtin_embeddings, embed_texts
from langchain_llmrouter.routers import choose

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "llmrouter_example"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--folds", type=int, default=5)
    args = parser.parse_args()
    pool = CandidatePool.from_json(args.data / "default_llm.json")
    train = RoutingDataset.from_file(args.data / "routerdc_train.json", candidates=pool)
    x = train.embed()
    folds = np.random.default_rng(0).permutation(len(train)) % args.folds
    best_single = train.candidates.index(train.best_single())
    print(
        f"{args.folds}-fold CV on {len(train)} train queries; always-best-single in CV: "
        f"{np.nanmean(train.performance[:, best_single]):.4f}"
    )
    print("| k | weights | CV quality at cost_weight 0 |\n| --- | --- | --- |")
    for k in (5, 10, 20, 30, 50, 80):
        for weights in ("uniform", "distance"):
            score = cv_quality(train, x, folds, k=k, weights=weights)
            print(f"| {k} | {weights} | {score:.4f} |")
    print("\n| featuriser | dims | CV quality at cost_weight 0 (k=50) |\n| --- | --- | --- |")
    for name in ("all-MiniLM-L6-v2", "static-minilm-l6-v2"):
        vectors = embed_texts(train.queries, builtin_embeddings(name))
        for dims in (None, 256, 128, 64, 32):
            score = cv_quality(train, vectors, folds, k=50, dims=dims)
            print(f"| {name} | {dims or 'all'} | {score:.4f} |")


def cv_quality(train: RoutingDataset, x: np.ndarray, folds: np.ndarray, **params: object) -> float:
    """Mean held-out quality of the kNN router's choices over the folds."""
    scores = []
    for f in range(int(folds.max()) + 1):
        held = folds == f
        router = create_router("knnrouter", **params)
        router.fit(train.subset(~held), query_embeddings=x[~held])
        queries = [train.queries[i] for i in np.flatnonzero(held)]
        predicted = router.predict_quality(queries, query_embeddings=x[held])
        chosen = choose(predicted, train.cost[held])
        scores.append(train.performance[held][np.arange(held.sum()), chosen].mean())
    return float(np.mean(scores))


if __name__ == "__main__":
    main()
