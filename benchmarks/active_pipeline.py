"""Stage 3's active mode replayed on RouterDC's scores: routing data at a fraction of the calls.

A simulated provider answers each (training query, candidate) pair with its stored score in
routerdc_train, so no money is spent. For each budget (a share of the 5,608 × 9 training
pairs), the pairs are chosen either by the active chooser (`pipeline.active.next_round`, the
function stage 3's `ActivePlan` calls between rounds: a random seed round, then rounds chosen
by value of information) or uniformly at random; the router is trained on the pairs chosen
(the others unknown) and its quality at cost weight 0 (Q0) measured on routerdc_test, all 500
queries and the 381 novel ones, against the same router trained on every pair.

The chooser is driven directly on the score matrix rather than through the whole stage 3
(files, journal, workers): the rounds are the same, and seven budgets × two strategies would
otherwise make ~300,000 simulated calls on a shared two-core machine.

Usage: python benchmarks/active_pipeline.py [--routers knnrouter mlprouter mfrouter ...]
    [--budgets 10 15 20 30 50 75 100] [--batch 256] [--seed-share 0.2] [--plot docs/x.png]
    [--knn-prior-count 25] [--sparse-check]

The "random" column is what ``calls.active_seed_share: 1.0`` calls (the same seeded
permutation of the pairs).
"""

from __future__ import annotations

import argparse
import dataclasses
import time
from pathlib import Path
from typing import Any

import numpy as np

from langchain_llmrouter import CandidatePool, RoutingDataset, create_router
from langchain_llmrouter.config import load_config
from langchain_llmrouter.embeddings import embed_texts
from langchain_llmrouter.pipeline.active import next_round
from langchain_llmrouter.pipeline.pair_value import reduce_features
from langchain_llmrouter.routers import choose
from langchain_llmrouter.static_embeddings import StaticEmbeddings

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "llmrouter_example"
CONFIGS = Path(__file__).resolve().parents[1] / "configs" / "train"
PARAMS: dict[str, dict[str, Any]] = {  # each router's shipped hyperparameters
    name: {
        k: v for k, v in load_config(CONFIGS / f"{name}.yaml").hparam.items() if k != "cost_weight"
    }
    for name in ("knnrouter", "mlprouter", "mfrouter", "elorouter", "svmrouter")
}


def active_pairs(
    features: np.ndarray,
    scores: np.ndarray,
    cost: np.ndarray,
    budget: int,
    *,
    seed_share: float,
    batch: int,
    model: str,
    seed: int,
) -> tuple[np.ndarray, int]:
    """Replay the active rounds: the known-score matrix after the budget, and the rounds."""
    known = np.full(scores.shape, np.nan)
    pending = np.zeros(scores.shape, dtype=bool)
    rounds = 0
    while chosen := next_round(
        features,
        known,
        cost,
        pending,
        budget_pairs=budget,
        budget_dollars=None,
        seed_count=max(1, round(seed_share * budget)),
        seed=seed,
        batch_size=batch,
        model=model,
    ):
        rows, cols = np.array(chosen).T
        known[rows, cols] = scores[rows, cols]  # the simulated provider's answer
        rounds += 1
    return known, rounds


def random_pairs(scores: np.ndarray, budget: int, seed: int) -> np.ndarray:
    """The known-score matrix after ``budget`` pairs chosen uniformly at random."""
    flat = np.random.default_rng(seed).permutation(scores.size)[:budget]
    known = np.full(scores.shape, np.nan)
    known.flat[flat] = scores.flat[flat]
    return known


def q0_per_query(predicted: np.ndarray, test: RoutingDataset) -> np.ndarray:
    """Test quality of each query's choice at cost weight 0."""
    chosen = choose(predicted, test.cost)
    return np.asarray(test.performance[np.arange(len(test)), chosen], dtype=float)


def interval(diff: np.ndarray, seed: int = 0, draws: int = 2000) -> tuple[float, float]:
    """Paired bootstrap 95% interval of a mean difference over test queries."""
    rng = np.random.default_rng(seed)
    means = diff[rng.integers(0, len(diff), size=(draws, len(diff)))].mean(axis=1)
    low, high = np.percentile(means, [2.5, 97.5])
    return float(low), float(high)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument(
        "--routers",
        nargs="+",
        default=["knnrouter"],
        choices=list(PARAMS),
    )
    parser.add_argument("--budgets", nargs="+", type=float, default=[10, 15, 20, 30, 50, 75, 100])
    parser.add_argument("--batch", type=int, default=256, help="pairs per active round")
    parser.add_argument("--seed-share", type=float, default=0.2)
    parser.add_argument("--model", default="ridge", help="the chooser's quick router")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--plot", type=Path, default=None, help="save the curve as a PNG")
    parser.add_argument(
        "--knn-prior-count",
        type=float,
        default=None,
        help="knnrouter's prior_count (shrinkage toward each candidate's mean) instead of the "
        "shipped value",
    )
    parser.add_argument(
        "--sparse-check",
        action="store_true",
        help="only measure how sparse scores of weak candidates affect each router",
    )
    args = parser.parse_args()

    pool = CandidatePool.from_json(args.data / "default_llm.json")
    train = RoutingDataset.from_file(args.data / "routerdc_train.json", candidates=pool)
    test = RoutingDataset.from_file(args.data / "routerdc_test.json", candidates=pool)
    embeddings = StaticEmbeddings()
    x_train = embed_texts(train.queries, embeddings)
    x_test = embed_texts(test.queries, embeddings)
    novel = test.novel_mask(train)
    scores = np.asarray(train.performance, dtype=float)
    total = int((~np.isnan(scores)).sum())
    features = reduce_features(x_train)
    cost = np.nan_to_num(np.asarray(train.cost, dtype=float), nan=0.0)
    print(f"{len(train)} training queries × {len(train.candidates)} candidates = {total} pairs")

    params = {name: dict(values) for name, values in PARAMS.items()}
    if args.knn_prior_count is not None:
        params["knnrouter"]["prior_count"] = args.knn_prior_count

    def q0s(name: str, known: np.ndarray) -> np.ndarray:
        router: Any = create_router(name, embeddings=embeddings, **params[name])
        router.fit(dataclasses.replace(train, performance=known), query_embeddings=x_train)
        predicted = router.predict_quality(test.queries, query_embeddings=x_test)
        order = [router.candidates_.index(c) for c in test.candidates]
        return q0_per_query(predicted[:, order], test)

    if args.sparse_check:
        sparse_check(args.routers, scores, q0s, args.seed)
        return
    full = {name: q0s(name, scores) for name in args.routers}
    for name, per_query in full.items():
        print(f"{name} full data: Q0 {per_query.mean():.4f} (novel {per_query[novel].mean():.4f})")
    rows: list[dict[str, Any]] = []
    for share in args.budgets:
        budget = round(share / 100 * total)
        started = time.perf_counter()
        if budget >= total:  # every pair: nothing to choose
            known_active, rounds = scores, 0
        else:
            known_active, rounds = active_pairs(
                features,
                scores,
                cost,
                budget,
                seed_share=args.seed_share,
                batch=args.batch,
                model=args.model,
                seed=args.seed,
            )
        choose_s = time.perf_counter() - started
        known_random = random_pairs(scores, budget, args.seed)
        for name in args.routers:
            active, rand = q0s(name, known_active), q0s(name, known_random)
            low, high = interval(active - full[name])
            rows.append(
                {
                    "router": name,
                    "share": share,
                    "calls": budget,
                    "rounds": rounds,
                    "choose_s": choose_s,
                    "active": active.mean(),
                    "active_novel": active[novel].mean(),
                    "random": rand.mean(),
                    "random_novel": rand[novel].mean(),
                    "full": full[name].mean(),
                    "delta": active.mean() - full[name].mean(),
                    "low": low,
                    "high": high,
                }
            )
            r = rows[-1]
            print(
                f"{name} {share:g}%: active {r['active']:.4f} random {r['random']:.4f} "
                f"full {r['full']:.4f} ({rounds} rounds, chooser {choose_s:.1f} s)",
                flush=True,
            )
    print(
        f"\nseed share {args.seed_share}, {args.batch} pairs a round, chooser {args.model}, "
        f"seed {args.seed}; Q0 on routerdc_test, all 500 (novel 381)\n"
    )
    print(
        "| router | calls (% of pairs) | active Q0 | random Q0 | full-data Q0 | "
        "active − full [95% CI] |\n|---|---|---|---|---|---|"
    )
    for r in rows:
        print(
            f"| {r['router']} | {r['calls']} ({r['share']:g}%) | {r['active']:.4f} "
            f"({r['active_novel']:.4f}) | {r['random']:.4f} ({r['random_novel']:.4f}) | "
            f"{r['full']:.4f} | {r['delta']:+.4f} [{r['low']:+.3f}, {r['high']:+.3f}] |"
        )
    if args.plot is not None:
        plot(rows, args.plot)


def sparse_check(routers: list[str], scores: np.ndarray, q0s: Any, seed: int) -> None:
    """Q0 with every score of the 3 candidates best on the training file and, of the other
    candidates, none or a random few: how much scattered scores of weak candidates hurt."""
    top = np.argsort(-np.nanmean(scores, axis=0))[:3]
    rng = np.random.default_rng(seed)
    print("| router | other candidates' scores kept | pairs | Q0 |\n|---|---|---|---|")
    for density in (0.0, 0.02, 0.06, 0.15, 1.0):
        known = np.full(scores.shape, np.nan)
        keep = rng.random(scores.shape) < density
        keep[:, top] = True
        known[keep] = scores[keep]
        for name in routers:
            share = keep.mean()
            print(f"| {name} | {density:.0%} | {share:.1%} | {q0s(name, known).mean():.4f} |")


def plot(rows: list[dict[str, Any]], path: Path) -> None:
    """Q0 against calls made, active and random, with the full-data line."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for name in dict.fromkeys(r["router"] for r in rows):
        mine = [r for r in rows if r["router"] == name]
        shares = [r["share"] for r in mine]
        (line,) = ax.plot(shares, [r["active"] for r in mine], "o-", label=f"{name} active")
        ax.plot(shares, [r["random"] for r in mine], "s--", color=line.get_color(), alpha=0.6)
        ax.axhline(mine[0]["full"], color=line.get_color(), lw=0.8, ls=":")
    ax.set_xlabel("training pairs called (% of all)")
    ax.set_ylabel("Q0 on routerdc_test (500)")
    ax.set_title("Active vs random pair choice (dotted: all pairs; dashed: random)")
    ax.legend()
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    print(f"curve -> {path}")


if __name__ == "__main__":
    main()
