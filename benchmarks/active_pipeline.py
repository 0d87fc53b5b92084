"""Stage 3's active mode replayed on RouterDC's scores: routing data at a fraction of the calls.

A simulated provider answers each (training query, candidate) pair with its stored score in
routerdc_train, so no money is spent. For each budget (a share of the 5,608 × 9 training
pairs), the pairs are chosen either by an active chooser (`pipeline.active.next_round`, the
function stage 3's `ActivePlan` calls between rounds: a random seed round, then rounds chosen
by value of information or by the label-free design) or uniformly at random; the router is
trained on the pairs chosen (the others unknown) and its quality at cost weight 0 (Q0) measured on routerdc_test, all 500
queries and the 381 novel ones, against the same router trained on every pair.

The chooser is driven directly on the score matrix rather than through the whole stage 3
(files, journal, workers): the rounds are the same, and five budgets × three ways × five seeds
would otherwise make ~1,000,000 simulated calls on a shared two-core machine.

Usage: python benchmarks/active_pipeline.py [--routers knnrouter mfrouter ...]
    [--budgets 10 20 30 50 75] [--models ridge design] [--seeds 1 2 3 7 42] [--batch 256]
    [--seed-share 0.2] [--params 'knnrouter={"fill_unknown": "none"}'] [--plot docs/x.png]
    [--sparse-check]

Each chooser of ``--models`` is compared with random pairs ("random": what
``calls.active_seed_share: 1.0`` calls, the same seeded permutation of the pairs), each averaged
over ``--seeds`` (the seed of the random round and of the random pairs).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path
from typing import Any

import numpy as np

from langchain_llmrouter import CandidatePool, RoutingDataset, create_router
from langchain_llmrouter.config import load_config
from langchain_llmrouter.embeddings import embed_texts
from langchain_llmrouter.pipeline.active import CHOOSERS, next_round
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
) -> np.ndarray:
    """Replay the active rounds: the known-score matrix after the budget."""
    known = np.full(scores.shape, np.nan)
    pending = np.zeros(scores.shape, dtype=bool)
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
    return known


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
    parser.add_argument(
        "--models",
        nargs="+",
        default=["ridge"],
        choices=CHOOSERS,
        help="the choosers (calls.active_model) to compare, each against random pairs",
    )
    parser.add_argument(
        "--seeds",
        nargs="+",
        type=int,
        default=[42],
        help="seeds of the random round and of the random pairs; Q0 is averaged over them",
    )
    parser.add_argument("--plot", type=Path, default=None, help="save the curve as a PNG")
    parser.add_argument(
        "--params",
        nargs="+",
        default=[],
        metavar="ROUTER=JSON",
        help="hyperparameters replacing a router's shipped ones (also for its full-data "
        'figure), e.g. knnrouter=\'{"fill_unknown": "mf"}\'',
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
    for item in args.params:
        name, _, given = item.partition("=")
        params[name].update(json.loads(given))

    def q0s(name: str, known: np.ndarray) -> np.ndarray:
        router: Any = create_router(name, embeddings=embeddings, **params[name])
        router.fit(dataclasses.replace(train, performance=known), query_embeddings=x_train)
        predicted = router.predict_quality(test.queries, query_embeddings=x_test)
        order = [router.candidates_.index(c) for c in test.candidates]
        return q0_per_query(predicted[:, order], test)

    if args.sparse_check:
        sparse_check(args.routers, scores, q0s, args.seeds[0])
        return
    full = {name: q0s(name, scores) for name in args.routers}
    for name, per_query in full.items():
        print(f"{name} full data: Q0 {per_query.mean():.4f} (novel {per_query[novel].mean():.4f})")
    ways = [*args.models, "random"]
    rows: list[dict[str, Any]] = []
    for share in args.budgets:
        budget = round(share / 100 * total)
        runs = {name: {way: [] for way in ways} for name in args.routers}
        for seed in args.seeds:  # the seed of the random round and of the random pairs
            for way in ways:
                if budget >= total:  # every pair: nothing to choose, the full-data figure
                    for name in args.routers:
                        runs[name][way].append(full[name])
                    continue
                if way == "random":
                    known = random_pairs(scores, budget, seed)
                else:
                    known = active_pairs(
                        features,
                        scores,
                        cost,
                        budget,
                        seed_share=args.seed_share,
                        batch=args.batch,
                        model=way,
                        seed=seed,
                    )
                for name in args.routers:
                    runs[name][way].append(q0s(name, known))
        for name in args.routers:
            # Per test query, the mean over seeds: the interval is over test queries.
            row: dict[str, Any] = {"router": name, "share": share, "calls": budget}
            row["full"] = full[name].mean()
            for way in ways:
                per_query = np.mean(runs[name][way], axis=0)
                row[way] = per_query.mean()
                row[f"{way}_novel"] = per_query[novel].mean()
                row[f"{way}_seeds"] = [float(r.mean()) for r in runs[name][way]]
                row[f"{way}_ci"] = interval(per_query - full[name])
            rows.append(row)
            print(
                f"{name} {share:g}%: "
                + "; ".join(
                    f"{way} {row[way]:.4f} ({' '.join(f'{q:.3f}' for q in row[f'{way}_seeds'])})"
                    for way in ways
                )
                + f"; full {row['full']:.4f}",
                flush=True,
            )
    print(
        f"\nseed share {args.seed_share}, {args.batch} pairs a round, seeds "
        f"{' '.join(map(str, args.seeds))} (Q0 averaged over them), params {args.params}; "
        "Q0 on routerdc_test, all 500 (novel 381); [95% CI] of the difference to full data\n"
    )
    print(
        "| router | calls (% of pairs) | "
        + " | ".join(f"{way} Q0" for way in ways)
        + " | full-data Q0 |\n|"
        + "---|" * (len(ways) + 3)
    )
    for r in rows:
        cells = [
            f"{r[way]:.4f} ({r[f'{way}_novel']:.4f}) {r[way] - r['full']:+.4f} "
            f"[{r[f'{way}_ci'][0]:+.3f}, {r[f'{way}_ci'][1]:+.3f}]"
            for way in ways
        ]
        print(
            f"| {r['router']} | {r['calls']} ({r['share']:g}%) | {' | '.join(cells)} | "
            f"{r['full']:.4f} |"
        )
    if args.plot is not None:
        plot(rows, ways, args.plot)


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


def plot(rows: list[dict[str, Any]], ways: list[str], path: Path) -> None:
    """Q0 against calls made for each way of choosing pairs, with the full-data line."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.5, 4.2))
    styles = ["o-", "^-", "d-"]
    for name in dict.fromkeys(r["router"] for r in rows):
        mine = [r for r in rows if r["router"] == name]
        shares = [r["share"] for r in mine]
        colour = None
        for way, style in zip(ways, [*styles[: len(ways) - 1], "s--"], strict=True):
            (line,) = ax.plot(
                shares, [r[way] for r in mine], style, color=colour, label=f"{name} {way}"
            )
            colour = line.get_color()
        ax.axhline(mine[0]["full"], color=colour, lw=0.8, ls=":")
    ax.set_xlabel("training pairs called (% of all)")
    ax.set_ylabel("Q0 on routerdc_test (500)")
    ax.set_title("Pairs chosen by each chooser vs at random (dotted: all pairs)")
    ax.legend(fontsize=7)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    print(f"curve -> {path}")


if __name__ == "__main__":
    main()
