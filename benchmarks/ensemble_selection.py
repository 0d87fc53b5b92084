"""How `ensemble`'s default members and meta-model were chosen: cross-validation on the train file.

Each candidate member's predictions on routerdc_train.json are made out of fold (grouped 5-fold,
as the ensemble fits them); each stack (a set of members and a meta-model) is then scored by a
second grouped 5-fold split of those predictions: quality at cost weight 0 of the candidate the
stack ranks first. The test file is never read. Prints each member alone, the plain mean, and the
stacks best first.

Usage: OPENBLAS_NUM_THREADS=1 python benchmarks/ensemble_selection.py [--members knn,mlp,mf,elo,svm]
"""

from __future__ import annotations

import argparse
import itertools
import time
from pathlib import Path

import numpy as np

from langchain_llmrouter import CandidatePool, RoutingDataset
from langchain_llmrouter.routers.crossval import grouped_folds, q0_per_query
from langchain_llmrouter.routers.ensemble import EnsembleRouter

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "llmrouter_example"
MEMBERS = {
    "knn": {"router": "knnrouter", "k": 50, "dims": 64},
    "mlp": {"router": "mlprouter"},
    "mf": {"router": "mfrouter"},
    "elo": {"router": "elorouter"},
    "svm": {"router": "svmrouter"},
}
METAS = [("nnls", 0.0, 0), ("ridge", 1.0, 0), ("ridge", 10.0, 0), ("ridge", 10.0, 8)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--members", default=",".join(MEMBERS))
    parser.add_argument("--top", type=int, default=10, help="stacks to print")
    args = parser.parse_args()
    pool = CandidatePool.from_json(args.data / "default_llm.json")
    train = RoutingDataset.from_file(args.data / "routerdc_train.json", candidates=pool)
    x = train.embed()
    y = np.nan_to_num(train.performance)

    def quality(pred: np.ndarray) -> float:
        return float(q0_per_query(pred, train.performance).mean())

    names = args.members.split(",")
    oof: dict[str, np.ndarray] = {}
    for name in names:
        start = time.perf_counter()
        single = EnsembleRouter(members=[MEMBERS[name]])
        single._set_candidates(train.candidate_info(), train)
        oof[name] = single.out_of_fold(train, x)[:, 0]
        print(f"{name:<4} alone, out of fold: {quality(oof[name]):.4f} "
              f"({time.perf_counter() - start:.0f} s)", flush=True)  # fmt: skip
    print(f"best single candidate: {y.mean(0).max():.4f}; "
          f"mean of all members: {quality(np.mean(list(oof.values()), axis=0)):.4f}\n")  # fmt: skip

    # Another split than the members' folds (duplicates, by normalised text, kept together).
    folds = grouped_folds(train.queries, 5, seed=1)
    results = []
    for size in range(2, len(names) + 1):
        for members in itertools.combinations(names, size):
            stacked = np.stack([oof[n] for n in members], axis=1)
            for meta, alpha, n_components in METAS:
                pred = np.zeros_like(y)
                for fold in range(5):
                    fit, held = folds != fold, folds == fold
                    router = EnsembleRouter(
                        members=[MEMBERS[n] for n in members],
                        meta=meta,
                        alpha=alpha,
                        n_components=n_components,
                    )
                    router._fit_features(x[fit])
                    q_fit = [train.queries[i] for i in np.flatnonzero(fit)]
                    q_held = [train.queries[i] for i in np.flatnonzero(held)]
                    coef, intercept = router._fit_meta(
                        stacked[fit], router._query_features(q_fit, x[fit]), y[fit]
                    )
                    m = len(members)
                    pred[held] = (
                        np.einsum("nmc,cm->nc", stacked[held], coef[:, :m])
                        + intercept
                        + router._query_features(q_held, x[held]) @ coef[:, m:].T
                    )
                label = f"{'+'.join(members)}, {meta}" + (
                    f" (alpha {alpha:g}, {n_components} components)" if meta == "ridge" else ""
                )
                results.append((quality(pred), label))
    print("| stack | CV quality |\n| --- | --- |")
    for score, label in sorted(results, reverse=True)[: args.top]:
        print(f"| {label} | {score:.4f} |")


if __name__ == "__main__":
    main()
