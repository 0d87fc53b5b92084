"""Personalised routers against the best non-personalised router, on simulated users.

For each strategy (``cost_quality``, ``hidden_taste``), 200 simulated users rate 10–60 answers to
routerdc_train queries (training) and 30 answers to routerdc_test queries (testing); the users'
tastes are the same on both sides (`langchain_llmrouter.personal.evaluate.simulated_benchmark`).
Prints, side by side in one run:

* pairwise accuracy and AUC on the test side's same-question pairs (ties skipped), for
  ``gmtrouter``, ``personalizedrouter`` and four non-personalised routers (kNN, MLP, MF, SVM)
  trained on the same ratings, averaged per query (`population_dataset`);
* the mean noise-free rating (0..5) each user gives the chosen candidate on their test queries,
  against the best non-personalised router and the per-user oracle;
* new users: 20% of users are held out of training; with k = 5, 10, 20 of their training-side
  ratings revealed (`PersonalRouter.observe`, no retraining), the share of the full-data gain in
  pairwise accuracy (and in utility) they reach on their test side. Full data: the model trained
  with them (all 25–60 of their training-side ratings), the gain over the best
  non-personalised router on the same users. With 40 new users one split's share swings by
  tens of points, so ``--splits`` (default 3) repeats the split with other users held out and
  pools the gains.

Usage: python benchmarks/personalised.py [--strategies cost_quality,hidden_taste] [--seed 0]
       [--splits 3]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

import numpy as np

from langchain_llmrouter import StaticEmbeddings, create_router
from langchain_llmrouter.personal import split_users
from langchain_llmrouter.personal.evaluate import (
    SimulatedBenchmark,
    oracle_utility,
    pairwise_metrics,
    population_dataset,
    preference_pairs,
    simulated_benchmark,
    utility,
)
from langchain_llmrouter.personal.interactions import Interaction

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "llmrouter_example"
PERSONAL = ("gmtrouter", "personalizedrouter")
REVEAL = (5, 10, 20)
POPULATION = {
    "knnrouter": {"k": 50, "weights": "distance", "metric": "cosine"},
    "mlprouter": {},
    "mfrouter": {},
    "svmrouter": {},
}


def _asked(
    test: list[Interaction], bench: SimulatedBenchmark
) -> tuple[list[str], list[int], list[str]]:
    """Distinct (user, test query) pairs: users, dataset rows, texts."""
    seen: dict[tuple[str, str], None] = {}
    for x in test:
        seen.setdefault((x.user_id, x.query), None)
    users = [u for u, _ in seen]
    texts = [q for _, q in seen]
    return users, bench.rows(texts), texts


def _oracle_pairs(bench: SimulatedBenchmark) -> dict[str, float]:
    """Pairwise accuracy on the test pairs of each user's expected rating, and of the mean
    expected rating over every user."""
    population = bench.population
    column = {n: j for j, n in enumerate(population.candidates)}
    index = {u: k for k, u in enumerate(population.user_ids)}
    rows = bench.rows(bench.test)
    mean = {
        r: np.mean([population.expected_rating(u, r) for u in range(len(index))], axis=0)
        for r in set(rows)
    }
    own = np.array(
        [
            population.expected_rating(index[x.user_id], r)[column[x.model]]
            for x, r in zip(bench.test, rows, strict=True)
        ]
    )
    everyone = np.array([mean[r][column[x.model]] for x, r in zip(bench.test, rows, strict=True)])
    pairs = preference_pairs(bench.test)
    out = {}
    for name, score in (("user", own), ("population", everyone)):
        win, lose = score[[a for a, _ in pairs]], score[[b for _, b in pairs]]
        out[name] = float(np.mean((win > lose) + 0.5 * (win == lose)))
    return out


def _fit(name: str, data: Any, bench: SimulatedBenchmark, embeddings: StaticEmbeddings) -> Any:
    if name in PERSONAL:
        return create_router(name, embeddings=embeddings).fit(data, candidates=bench.candidates)
    return create_router(name, embeddings=embeddings, **POPULATION[name]).fit(data)


def run_strategy(data: Path, strategy: str, seed: int, splits: int = 1) -> None:
    embeddings = StaticEmbeddings()
    bench = simulated_benchmark(data, strategy=strategy, seed=seed)  # type: ignore[arg-type]
    users, rows, texts = _asked(bench.test, bench)
    x_test = embeddings.embed_documents(texts)
    x_rows = np.asarray(x_test, dtype=np.float32)
    oracle = oracle_utility(bench.population, users, rows).mean()
    print(
        f"\n## {strategy}: {len({x.user_id for x in bench.train})} users, "
        f"{len(bench.train)} training ratings, {len(bench.test)} test ratings "
        f"({len(users)} user-query pairs); per-user oracle utility {oracle:.3f}\n"
    )
    ceiling = _oracle_pairs(bench)
    print(
        "pairwise accuracy of the planted users' own noise-free ratings (the per-user oracle): "
        f"{ceiling['user']:.3f}; of their mean over all users (the best any router that routes "
        f"everyone alike can do): {ceiling['population']:.3f}\n"
    )
    print("| router | pairwise accuracy | AUC | utility (0..5) | share of oracle | fit s |")
    print("| --- | --- | --- | --- | --- | --- |")
    table = population_dataset(bench.train, bench.candidates)
    results: dict[str, dict[str, float]] = {}
    routers: dict[str, Any] = {}
    for name in [*POPULATION, *PERSONAL]:
        start = time.perf_counter()
        router = _fit(name, bench.train if name in PERSONAL else table, bench, embeddings)
        seconds = time.perf_counter() - start
        routers[name] = router
        pairs = pairwise_metrics(router, bench.test)
        gained = utility(router, bench.population, users, rows, texts, query_embeddings=x_rows)
        results[name] = {"acc": pairs.accuracy, "auc": pairs.auc, "utility": gained.mean()}
        print(
            f"| {name} | {pairs.accuracy:.3f} | {pairs.auc:.3f} | {gained.mean():.3f} | "
            f"{gained.mean() / oracle:.1%} | {seconds:.1f} |"
        )
    best = max(POPULATION, key=lambda n: results[n]["acc"])
    print(f"\nbest non-personalised router (by pairwise accuracy): {best}")
    for name in PERSONAL:
        gain = results[name]["acc"] - results[best]["acc"]
        print(f"{name}: {gain * 100:+.1f} points of pairwise accuracy over {best}")

    _new_users(bench, routers, best, embeddings, seed, splits)


def _new_users(
    bench: SimulatedBenchmark,
    routers: dict[str, Any],
    best: str,
    embeddings: StaticEmbeddings,
    seed: int,
    splits: int,
) -> None:
    """The new-user table: per split (seeds ``seed`` ..), 20% of users held out of training,
    k of their training-side ratings revealed; shares of the full-data gain pooled over
    splits (mean gain at k over mean full-data gain), each split's share in brackets."""
    # (router, k) -> per split: (accuracy, utility); k = 0: the full-data model.
    got: dict[tuple[str, int], list[tuple[float, float]]] = {}
    base: list[tuple[float, float]] = []
    n_new = n_ratings = 0
    for offset in range(splits):
        split = split_users(bench.train, new_user_fraction=0.2, reveal=REVEAL, seed=seed + offset)
        new = set(split.new_users)
        new_test = [x for x in bench.test if x.user_id in new]
        n_new, n_ratings = len(new), len(new_test)
        users, rows, texts = _asked(new_test, bench)
        x_new = np.asarray(embeddings.embed_documents(texts), dtype=np.float32)

        asked = (users, rows, texts, x_new)

        def measure(router: Any) -> tuple[float, float]:
            return _measure(router, bench, new_test, asked)  # noqa: B023 (called at once)

        base.append(measure(routers[best]))
        for name in PERSONAL:
            got.setdefault((name, 0), []).append(measure(routers[name]))
            inductive = _fit(name, split.train, bench, embeddings)
            for k in sorted(split.revealed):
                for user in new:
                    inductive.forget(user)
                by_user: dict[str, list[Interaction]] = {}
                for x in split.revealed[k]:
                    by_user.setdefault(x.user_id, []).append(x)
                for user, seen in by_user.items():
                    inductive.observe(user, seen)
                got.setdefault((name, k), []).append(measure(inductive))
    base_arr = np.array(base)
    print(
        f"\nnew users: {splits} split(s) (seeds {seed}..{seed + splits - 1}), each holding "
        f"{n_new} users out of training ({n_ratings} test ratings); {best} on them: accuracy "
        f"{base_arr[:, 0].mean():.3f}, utility {base_arr[:, 1].mean():.3f} (mean over splits)\n"
    )
    print("| router | revealed k | accuracy | share of full-data accuracy gain | utility | "
          "share of full-data utility gain |")  # fmt: skip
    print("| --- | --- | --- | --- | --- | --- |")
    for name in PERSONAL:
        full = np.array(got[(name, 0)])
        for k in (0, *REVEAL):
            arr = np.array(got[(name, k)])
            cells = []
            for col in (0, 1):
                gain, full_gain = arr[:, col] - base_arr[:, col], full[:, col] - base_arr[:, col]
                pooled = gain.mean() / full_gain.mean() if full_gain.mean() else np.nan
                each = ", ".join(
                    f"{g / f:.0%}" if f else "n/a" for g, f in zip(gain, full_gain, strict=True)
                )
                share = f"{pooled:.0%}" + (f" ({each})" if splits > 1 else "")
                cells += [f"{arr[:, col].mean():.3f}", "100%" if k == 0 else share]
            label = "all (trained with them)" if k == 0 else str(k)
            print(f"| {name} | {label} | {' | '.join(cells)} |")


def _measure(
    router: Any,
    bench: SimulatedBenchmark,
    test: list[Interaction],
    asked: tuple[list[str], list[int], list[str], np.ndarray],
) -> tuple[float, float]:
    """(pairwise accuracy on ``test``, mean utility of the ``asked`` user-query pairs)."""
    users, rows, texts, x = asked
    gained = utility(router, bench.population, users, rows, texts, query_embeddings=x)
    return pairwise_metrics(router, test).accuracy, float(gained.mean())


def shrunk_tastes(
    users: list[str], columns: np.ndarray, residuals: np.ndarray, n_columns: int, strength: float
) -> dict[str, np.ndarray]:
    """Each user's taste per candidate: the sum of their residuals on it over their count of
    them plus ``strength`` pseudo-ratings (one row per rating: user, candidate column, residual)."""
    total: dict[str, np.ndarray] = {}
    count: dict[str, np.ndarray] = {}
    for user, column, residual in zip(users, columns, residuals, strict=True):
        total.setdefault(user, np.zeros(n_columns))[column] += residual
        count.setdefault(user, np.zeros(n_columns))[column] += 1
    return {u: total[u] / (count[u] + strength) for u in total}


def run_ceiling(data: Path, strategy: str, seed: int, splits: int) -> None:
    """The idealised new-user estimator: the population's prediction (mfrouter) plus each
    user's per-candidate residual mean, shrunk by a prior of ``strength`` pseudo-ratings, for
    every strength of a grid. The best strength in hindsight (chosen on the new users
    themselves) makes this a ceiling of what residual shrinkage gets from k ratings, not a
    method."""
    embeddings = StaticEmbeddings()
    bench = simulated_benchmark(data, strategy=strategy, seed=seed)  # type: ignore[arg-type]
    mf = _fit("mfrouter", population_dataset(bench.train, bench.candidates), bench, embeddings)
    column = {n: j for j, n in enumerate(mf.candidates_)}

    def baseline(interactions: list[Interaction]) -> np.ndarray:
        queries = sorted({x.query for x in interactions})
        row = {q: i for i, q in enumerate(queries)}
        scores = mf.predict_quality(queries)
        return np.array([scores[row[x.query], column[x.model]] for x in interactions])

    strengths = (0.5, 1.0, 2.0, 4.0, 8.0)
    # strength -> k (0: the full history) -> per split (accuracy, mfrouter's accuracy)
    got: dict[float, dict[int, list[tuple[float, float]]]] = {s: {} for s in strengths}
    for offset in range(splits):
        split = split_users(bench.train, new_user_fraction=0.2, reveal=REVEAL, seed=seed + offset)
        new = set(split.new_users)
        test = [x for x in bench.test if x.user_id in new]
        pairs = preference_pairs(test)
        base = baseline(test)

        def accuracy(score: np.ndarray, pairs: list[tuple[int, int]] = pairs) -> float:
            win, lose = score[[a for a, _ in pairs]], score[[b for _, b in pairs]]
            return float(np.mean((win > lose) + 0.5 * (win == lose)))

        seen = {0: [x for x in bench.train if x.user_id in new], **split.revealed}
        for strength in strengths:
            for k, revealed in seen.items():
                tastes = shrunk_tastes(
                    [x.user_id for x in revealed],
                    np.array([column[x.model] for x in revealed]),
                    np.array([x.rating / 5 for x in revealed]) - baseline(revealed),
                    len(column),
                    strength,
                )
                personal = base + np.array([tastes[x.user_id][column[x.model]] for x in test])
                got[strength].setdefault(k, []).append((accuracy(personal), accuracy(base)))
    print(
        f"\n## {strategy}: idealised new-user estimator (mfrouter + shrunk residual means), "
        f"{splits} split(s); shares pooled over splits\n"
    )
    print("| prior strength | full-data accuracy | " + " | ".join(
        f"k={k} accuracy (share)" for k in REVEAL) + " |")  # fmt: skip
    print("| --- | --- |" + " --- |" * len(REVEAL))
    for strength in strengths:
        full = np.array(got[strength][0])
        cells = [f"{full[:, 0].mean():.3f}"]
        for k in REVEAL:
            arr = np.array(got[strength][k])
            share = (arr[:, 0] - arr[:, 1]).mean() / (full[:, 0] - full[:, 1]).mean()
            cells.append(f"{arr[:, 0].mean():.3f} ({share:.0%})")
        print(f"| {strength:g} | {' | '.join(cells)} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--strategies", default="cost_quality,hidden_taste")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--splits",
        type=int,
        default=3,
        help="new-user splits (seeds --seed, --seed+1, ...); shares are pooled over them",
    )
    parser.add_argument(
        "--ceiling",
        action="store_true",
        help="only the idealised new-user estimator (shrunk residual means; no routers trained)",
    )
    args = parser.parse_args()
    for strategy in args.strategies.split(","):
        run = run_ceiling if args.ceiling else run_strategy
        run(args.data, strategy.strip(), args.seed, args.splits)


if __name__ == "__main__":
    main()
