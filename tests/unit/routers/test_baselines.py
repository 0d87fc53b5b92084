"""The baselines (routers/baselines.py): smallest / largest candidate, random, oracle."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from langchain_llmrouter import (
    CandidatePool,
    ConfigError,
    LLMCandidate,
    LLMRouterError,
    RoutingDataset,
    RoutingDecision,
    create_router,
)


def _chosen_quality(data: RoutingDataset, decisions: list[RoutingDecision]) -> np.ndarray:
    cols = [data.candidates.index(d.model) for d in decisions]
    return data.performance[np.arange(len(data)), cols]


@pytest.mark.parametrize("name", ["smallest_llm", "largest_llm", "randomrouter"])
def test_baselines_take_no_cost_params(name: str) -> None:
    with pytest.raises(ConfigError, match=r"hparam\.cost_weight"):
        create_router(name, cost_weight=1.0)


@pytest.mark.parametrize(
    ("name", "expected"),
    [("smallest_llm", "qwen2.5-7b-instruct"), ("largest_llm", "mixtral-8x22b-instruct-v0.1")],
)
def test_size_baselines_on_the_shared_pool(
    example_pool: CandidatePool, name: str, expected: str
) -> None:
    router = create_router(name).fit_candidates(example_pool)
    decisions = router.route_batch(["short", "a much longer question " * 20])
    assert {d.model for d in decisions} == {expected}
    sizes = [c.size_billions for c in example_pool]
    chosen = example_pool[expected].size_billions
    assert chosen == (min(sizes) if name == "smallest_llm" else max(sizes))
    assert decisions[0].scores[expected] == 1.0
    assert sum(decisions[0].scores.values()) == 1.0
    # Fixed baselines ignore the cost policy.
    for kwargs in ({"cost_weight": 1000.0}, {"budget": 1e-9}):
        decision = router.route("short", **kwargs)
        assert decision.model == expected
        assert (decision.cost_weight, decision.budget) == (0.0, None)
    assert router.invoke("x", {"configurable": {"cost_weight": 50}}).model == expected


@pytest.mark.parametrize(
    ("name", "expected"),
    [("smallest_llm", "llama3-chatqa-1.5-8b"), ("largest_llm", "llama3-chatqa-1.5-70b")],
)
def test_size_baselines_fitted_on_data(short_fit: RoutingDataset, name: str, expected: str) -> None:
    # Two 8B candidates at the same price: the smallest is the first of them in column order.
    data = short_fit.select_candidates(
        ["llama3-chatqa-1.5-8b", "llama-3.1-8b-instruct", "gemma-2-9b-it", "llama3-chatqa-1.5-70b"]
    )
    assert create_router(name).fit(data).route("q").model == expected


def _candidate(name: str, size: str | None, price: float) -> LLMCandidate:
    return LLMCandidate(name=name, model=name, size=size, input_price=price, output_price=price)


@pytest.mark.parametrize(
    ("candidates", "smallest", "largest"),
    [
        (
            [
                _candidate("dear-7b", "7B", 0.5),
                _candidate("cheap-7b", "7B", 0.1),
                _candidate("cheap-70b", "70B", 1.0),
                _candidate("dear-70b", "70B", 2.0),
                _candidate("unknown", None, 0.01),
            ],
            "cheap-7b",
            "dear-70b",
        ),
        (
            [
                _candidate("mid", None, 0.5),
                _candidate("low", None, 0.1),
                _candidate("high", None, 3),
            ],
            "low",
            "high",
        ),
        (
            [_candidate("first", "7B", 0.2), _candidate("second", "7B", 0.2)],
            "first",
            "first",
        ),
    ],
    ids=["ties-by-price", "no-sizes-use-price", "full-tie-list-order"],
)
def test_size_baselines_tie_breaks(
    candidates: list[LLMCandidate], smallest: str, largest: str
) -> None:
    assert create_router("smallest_llm").fit_candidates(candidates).route("q").model == smallest
    assert create_router("largest_llm").fit_candidates(candidates).route("q").model == largest


def test_random_router_is_reproducible_per_query(example_pool: CandidatePool) -> None:
    queries = [f"question number {i}" for i in range(60)]
    first = create_router("randomrouter", seed=1).fit_candidates(example_pool)
    second = create_router("randomrouter", seed=1).fit_candidates(example_pool)
    picks = [d.model for d in first.route_batch(queries)]
    assert [d.model for d in second.route_batch(queries)] == picks
    assert [d.model for d in first.route_batch(queries[::-1])] == picks[::-1]
    assert [first.route(q).model for q in queries[:5]] == picks[:5]
    assert [d.model for d in first.route_batch(queries, cost_weight=1000.0)] == picks
    other = create_router("randomrouter", seed=2).fit_candidates(example_pool)
    assert [d.model for d in other.route_batch(queries)] != picks


def test_random_router_is_roughly_uniform(example_pool: CandidatePool) -> None:
    router = create_router("randomrouter", seed=1).fit_candidates(example_pool)
    counts = Counter(d.model for d in router.route_batch([f"q{i}" for i in range(1400)]))
    assert set(counts) == set(example_pool.names)
    # 100 expected per candidate; the standard deviation is about 9.6.
    assert all(55 <= n <= 145 for n in counts.values()), counts


def test_unseeded_random_router_varies(example_pool: CandidatePool) -> None:
    router = create_router("randomrouter").fit_candidates(example_pool)
    queries = ["same question"] * 50
    assert len({d.model for d in router.route_batch(queries)}) > 1


def test_oracle_picks_the_true_best(short_fit: RoutingDataset) -> None:
    oracle = create_router("oracle").fit(short_fit)
    decisions = oracle.route_batch(short_fit.queries)
    quality = _chosen_quality(short_fit, decisions)
    np.testing.assert_array_equal(quality, short_fit.performance.max(axis=1))
    # Among equally good candidates the cheapest is chosen.
    for i, decision in enumerate(decisions):
        best = short_fit.performance[i] == short_fit.performance[i].max()
        assert decision.est_cost == pytest.approx(short_fit.cost[i][best].min())
    assert quality.mean() > short_fit.performance.mean(axis=0).max() + 0.1


def test_oracle_rejects_unseen_queries(
    short_fit: RoutingDataset, example_pool: CandidatePool
) -> None:
    oracle = create_router("oracle").fit(short_fit.head(10))
    with pytest.raises(LLMRouterError, match="oracle only routes queries"):
        oracle.route_batch([short_fit.queries[0], "never seen before"])
    with pytest.raises(TypeError):
        create_router("oracle").fit_candidates(example_pool)


def test_oracle_never_picks_a_missing_score() -> None:
    data = RoutingDataset(
        queries=["q"],
        candidates=["a", "b"],
        performance=np.array([[np.nan, 0.0]]),
        cost=np.array([[0.0, 1.0]]),
    )
    assert create_router("oracle").fit(data).route("q").model == "b"
