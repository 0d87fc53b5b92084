"""Online feedback: new users rate 10 answers through `RouterChatModel.feedback`, then ask 50 more.

For each strategy, 20% of the 200 simulated users (`benchmarks/personalised.py`'s benchmark) are
held out of training. Each plays one session through a `RouterChatModel` whose candidates are a
local OpenAI-compatible server (127.0.0.1) and whose ratings go to a SQLite feedback store: 10
queries answered and rated (noisy, rounded, as the user rates), then 50 queries whose answers
are scored by the user's noise-free rating. No retraining happens. Printed side by side on the
same 50 queries per user: the best non-personalised router, the personalised router's cold start
(no user), the session's answers, and the personalised router trained with the user (offline,
full data); and the share of the offline gain the session reaches.

Usage: python benchmarks/personal_feedback.py [--routers gmtrouter,personalizedrouter]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

from langchain_llmrouter import CandidatePool, RouterChatModel, StaticEmbeddings, create_router
from langchain_llmrouter.personal import split_users
from langchain_llmrouter.personal.evaluate import (
    online_session,
    pairwise_metrics,
    population_dataset,
    simulated_benchmark,
    utility,
)
from langchain_llmrouter.testing import FakeOpenAIServer

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "llmrouter_example"
POPULATION = {
    "knnrouter": {"k": 50, "weights": "distance", "metric": "cosine"},
    "mlprouter": {},
    "mfrouter": {},
    "svmrouter": {},
}


def run(data: Path, strategy: str, names: list[str], seed: int, server: FakeOpenAIServer) -> None:
    embeddings = StaticEmbeddings()
    bench = simulated_benchmark(data, strategy=strategy, seed=seed)  # type: ignore[arg-type]
    split = split_users(bench.train, new_user_fraction=0.2, reveal=(10,), seed=seed)
    table = population_dataset(bench.train, bench.candidates)
    baselines = {
        n: create_router(n, embeddings=embeddings, **kw).fit(table) for n, kw in POPULATION.items()
    }
    best = max(baselines, key=lambda n: pairwise_metrics(baselines[n], bench.test).accuracy)
    pool = CandidatePool(
        bench.candidates, api_endpoint=server.base_url, chat_model_kwargs={"max_retries": 0}
    )
    population = bench.population
    test_rows = np.arange(bench.n_train_queries, len(bench.dataset))
    usable = ~np.isnan(population.quality[test_rows]).any(axis=1)
    if strategy == "cost_quality":
        usable &= ~np.isnan(population.norm_cost[test_rows]).any(axis=1)
    candidates_rows = test_rows[usable]
    # The same 60 queries per user, and the same stream of rating noise, for every router.
    rng = np.random.default_rng(seed)
    asked = {
        user: [int(r) for r in rng.choice(candidates_rows, size=60, replace=False)]
        for user in split.new_users
    }
    print(f"\n## {strategy}: {len(split.new_users)} new users, 10 rated answers then 50 queries; "
          f"best non-personalised router: {best}\n")  # fmt: skip
    print("| router | non-personalised | cold start | after 10 ratings (online) | "
          "trained with the user (offline) | share of offline gain | s |")  # fmt: skip
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for name in names:
        start = time.perf_counter()
        full = create_router(name, embeddings=embeddings).fit(bench.train, candidates=pool)
        inductive = create_router(name, embeddings=embeddings).fit(split.train, candidates=pool)
        with tempfile.TemporaryDirectory() as tmp:
            llm = RouterChatModel(
                router=inductive, candidates=pool, feedback_store=Path(tmp) / "feedback.db"
            )
            base, cold, online, offline = [], [], [], []
            rng = np.random.default_rng([seed, 1])
            for user in split.new_users:
                rows = asked[user]
                texts = [bench.dataset.queries[r] for r in rows]
                assert not inductive.has_user(user)
                asker = [user] * (len(rows) - 10)
                cold.append(
                    utility(inductive, population, asker, rows[10:], texts[10:], personalised=False)
                )
                session = online_session(llm, population, user, rows, texts, rng=rng)
                online.append(session.utility)
                base.append(utility(baselines[best], population, asker, rows[10:], texts[10:]))
                offline.append(utility(full, population, asker, rows[10:], texts[10:]))
            llm.feedback_store.close()
        b, c, on, off = (float(np.mean(np.concatenate(v))) for v in (base, cold, online, offline))
        share = (on - b) / (off - b) if off != b else float("nan")
        print(
            f"| {name} | {b:.3f} | {c:.3f} | {on:.3f} | {off:.3f} | {share:.0%} | "
            f"{time.perf_counter() - start:.0f} |"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--strategies", default="cost_quality,hidden_taste")
    parser.add_argument("--routers", default="gmtrouter,personalizedrouter")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    with FakeOpenAIServer() as server:
        for strategy in args.strategies.split(","):
            run(args.data, strategy.strip(), args.routers.split(","), args.seed, server)


if __name__ == "__main__":
    main()
