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
  with them.

Usage: python benchmarks/personalised.py [--strategies cost_quality,hidden_taste] [--seed 0]
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


def run_strategy(data: Path, strategy: str, seed: int) -> None:
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

    split = split_users(bench.train, new_user_fraction=0.2, reveal=(5, 10, 20), seed=seed)
    new = set(split.new_users)
    new_test = [x for x in bench.test if x.user_id in new]
    new_users, new_rows, new_texts = _asked(new_test, bench)
    x_new = np.asarray(embeddings.embed_documents(new_texts), dtype=np.float32)
    base_acc = pairwise_metrics(routers[best], new_test).accuracy
    base_util = utility(
        routers[best], bench.population, new_users, new_rows, new_texts, query_embeddings=x_new
    ).mean()
    print(
        f"\nnew users: {len(new)} held out of training ({len(new_test)} test ratings); "
        f"{best} on them: accuracy {base_acc:.3f}, utility {base_util:.3f}\n"
    )
    print("| router | revealed k | accuracy | share of full-data accuracy gain | utility | "
          "share of full-data utility gain |")  # fmt: skip
    print("| --- | --- | --- | --- | --- | --- |")
    for name in PERSONAL:
        full = routers[name]
        full_acc = pairwise_metrics(full, new_test).accuracy
        full_util = utility(
            full, bench.population, new_users, new_rows, new_texts, query_embeddings=x_new
        ).mean()
        print(
            f"| {name} | all (trained with them) | {full_acc:.3f} | 100% | {full_util:.3f} | 100% |"
        )
        inductive = _fit(name, split.train, bench, embeddings)
        for k in sorted(split.revealed):
            for user in new:
                inductive.forget(user)
            by_user: dict[str, list[Interaction]] = {}
            for x in split.revealed[k]:
                by_user.setdefault(x.user_id, []).append(x)
            for user, seen in by_user.items():
                inductive.observe(user, seen)
            acc = pairwise_metrics(inductive, new_test).accuracy
            got = utility(
                inductive, bench.population, new_users, new_rows, new_texts, query_embeddings=x_new
            ).mean()
            share_acc = (acc - base_acc) / (full_acc - base_acc) if full_acc != base_acc else np.nan
            share_util = (
                (got - base_util) / (full_util - base_util) if full_util != base_util else np.nan
            )
            print(f"| {name} | {k} | {acc:.3f} | {share_acc:.0%} | {got:.3f} | {share_util:.0%} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--strategies", default="cost_quality,hidden_taste")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    for strategy in args.strategies.split(","):
        run_strategy(args.data, strategy.strip(), args.seed)


if __name__ == "__main__":
    main()
