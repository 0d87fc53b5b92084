"""A new candidate from 50 answers (`router.add_candidate`) against a full refit that has it.

For each router and each of the 9 RouterDC candidates: train on routerdc_train without it, add
it from its scores on 50 random (seeded) training queries, and compare the quality at cost
weight 0 (Q0) on routerdc_test, all 9 candidates, with the same router trained on all of them.

Usage: python benchmarks/new_candidate.py [--routers knnrouter mlprouter] [--answers 50]
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import numpy as np

from langchain_llmrouter import CandidatePool, RoutingDataset, create_router
from langchain_llmrouter.config import load_config
from langchain_llmrouter.embeddings import embed_texts
from langchain_llmrouter.routers import choose
from langchain_llmrouter.static_embeddings import StaticEmbeddings

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "llmrouter_example"
CONFIGS = Path(__file__).resolve().parents[1] / "configs" / "train"
PARAMS: dict[str, dict[str, Any]] = {  # each router's shipped hyperparameters
    name: {
        k: v for k, v in load_config(CONFIGS / f"{name}.yaml").hparam.items() if k != "cost_weight"
    }
    for name in ("knnrouter", "mlprouter")
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--routers", nargs="+", default=list(PARAMS))
    parser.add_argument("--answers", type=int, default=50)
    parser.add_argument("--components", type=int, default=0)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    pool = CandidatePool.from_json(args.data / "default_llm.json")
    train = RoutingDataset.from_file(args.data / "routerdc_train.json", candidates=pool)
    test = RoutingDataset.from_file(args.data / "routerdc_test.json", candidates=pool)
    embeddings = StaticEmbeddings()
    x_train = embed_texts(train.queries, embeddings)
    x_test = embed_texts(test.queries, embeddings)
    specs = {c.name: c for c in train.candidate_info()}
    rows: dict[str, dict[str, tuple[float, float]]] = {}
    for name in args.routers:

        def make(name: str = name) -> Any:
            return create_router(name, embeddings=embeddings, **PARAMS[name])

        full = make().fit(train, query_embeddings=x_train)
        q_full = q0(full.predict_quality(test.queries, query_embeddings=x_test), test)
        rows[name] = {}
        for j, held in enumerate(train.candidates):
            rest = [c for c in train.candidates if c != held]
            router = make().fit(train.select_candidates(rest), query_embeddings=x_train)
            rng = np.random.default_rng(args.seed + j)
            answered = rng.choice(len(train), args.answers, replace=False)
            router.add_candidate(
                specs[held],
                train.subset(answered).select_candidates([held]),
                query_embeddings=x_train[answered],
                n_components=args.components,
            )
            predicted = router.predict_quality(test.queries, query_embeddings=x_test)
            order = [router.candidates_.index(c) for c in test.candidates]
            rows[name][held] = (q0(predicted[:, order], test), q_full)
            print(f"{name} {held}: added {rows[name][held][0]:.4f} full {q_full:.4f}", flush=True)
    print(f"\n{args.answers} answers, {args.components} principal components, seed {args.seed}")
    header = " | ".join(f"{n} added | {n} full | {n} ΔQ0" for n in rows)
    print(f"| held-out candidate | {header} |\n|---|" + "---|" * (3 * len(rows)))
    for held in train.candidates:
        cells = " | ".join(
            f"{rows[n][held][0]:.4f} | {rows[n][held][1]:.4f} | {rows[n][held][0] - rows[n][held][1]:+.4f}"
            for n in rows
        )
        print(f"| {held} | {cells} |")
    for n in rows:
        deltas = np.array([a - f for a, f in rows[n].values()])
        print(f"{n}: mean ΔQ0 {deltas.mean():+.4f}, mean |ΔQ0| {np.abs(deltas).mean():.4f}")


def q0(predicted: np.ndarray, test: RoutingDataset) -> float:
    """Mean test quality of the choices at cost weight 0."""
    chosen = choose(predicted, test.cost)
    return float(np.mean(test.performance[np.arange(len(test)), chosen]))


if __name__ == "__main__":
    main()
