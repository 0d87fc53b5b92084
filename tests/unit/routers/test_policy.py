"""The cost policy (routers/policy.py): `rank_candidates` / `choose`, and the policy applied
through a router (cost weight, budget)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from langchain_llmrouter import (
    BaseRouter,
    RoutingDataset,
    create_router,
)
from langchain_llmrouter.routers import choose, rank_candidates

CHEAPEST = "gemma-2-9b-it"  # the cheapest of the 9 RouterDC candidates ($0.10 / $0.10)


def test_higher_cost_weight_never_costs_more(
    short_knn: BaseRouter, short_held: RoutingDataset, short_held_emb: np.ndarray
) -> None:
    costs = []
    for weight in (0.0, 0.1, 1.0, 10.0):
        decisions = short_knn.route_batch(
            short_held.queries, cost_weight=weight, query_embeddings=short_held_emb
        )
        assert {d.cost_weight for d in decisions} == {weight}
        costs.append(np.array([d.est_cost for d in decisions]))
    for cheaper, dearer in zip(costs[1:], costs[:-1], strict=True):
        assert (cheaper <= dearer).all()
    means = [c.mean() for c in costs]
    assert means == sorted(means, reverse=True)
    assert means[-1] < means[0]


def test_router_level_cost_weight_is_the_default(
    short_fit: RoutingDataset,
    short_fit_emb: np.ndarray,
    short_held: RoutingDataset,
    short_held_emb: np.ndarray,
) -> None:
    router = create_router("knnrouter", k=10, cost_weight=10.0)
    router.fit(short_fit, query_embeddings=short_fit_emb)
    own = router.route_batch(short_held.queries[:30], query_embeddings=short_held_emb[:30])
    override = router.route_batch(
        short_held.queries[:30], query_embeddings=short_held_emb[:30], cost_weight=0
    )
    assert {d.cost_weight for d in own} == {10.0}
    assert sum(d.est_cost for d in own) < sum(d.est_cost for d in override)


def test_budget_is_kept_when_affordable(
    short_knn: BaseRouter, short_held: RoutingDataset, short_held_emb: np.ndarray
) -> None:
    budget = 1e-4  # fits the 7-9B candidates for short queries, never the 49B+ ones
    free = short_knn.route_batch(short_held.queries, query_embeddings=short_held_emb)
    assert any(d.est_cost > budget for d in free)
    # A 10,000-token prompt that no candidate can answer within the budget.
    queries = [*short_held.queries, "x" * 40_000]
    emb = np.vstack([short_held_emb, short_held_emb[:1]])
    decisions = short_knn.route_batch(queries, budget=budget, query_embeddings=emb)
    assert decisions[-1].model == CHEAPEST and decisions[-1].est_cost > budget
    for decision in decisions:
        assert decision.budget == budget
        affordable = {m: c for m, c in decision.costs.items() if c <= budget}
        if affordable:
            assert decision.est_cost <= budget
            # The best predicted candidate within the budget.
            best = max(affordable, key=lambda m: decision.scores[m])
            assert decision.scores[decision.model] == decision.scores[best]
        else:
            assert decision.est_cost == min(decision.costs.values())


def _rank(predicted: list[float], cost: list[float], weight: float = 0.0, **kw: Any) -> list[int]:
    return rank_candidates(np.array([predicted]), np.array([cost]), weight, **kw)[0].tolist()


@pytest.mark.parametrize(
    ("predicted", "cost", "weight", "kwargs", "expected"),
    [
        ([0.2, 0.9, 0.5], [1, 1, 1], 0.0, {}, [1, 2, 0]),
        ([0.5, 0.5, 0.5], [3, 1, 2], 0.0, {}, [1, 2, 0]),  # ties: cheaper wins
        ([0.5, 0.5, 0.5], [1, 1, 1], 0.0, {}, [0, 1, 2]),  # then the earlier
        ([0.9, 0.8], [1e-3, 1e-4], 0.05, {}, [0, 1]),  # 0.85 > 0.795
        ([0.9, 0.8], [1e-3, 1e-4], 0.2, {}, [1, 0]),  # 0.7 < 0.78
        ([0.9, 0.5, 0.1], [3, 2, 1], 0.0, {"budget": 2.5}, [1, 2, 0]),
        ([0.9, 0.5, 0.1], [3, 2, 1], 0.0, {"budget": 0.5}, [2, 0, 1]),  # none fits: cheapest
        (
            [0.9, 0.5, 0.1],
            [3, 2, 1],
            0.0,
            {"available": np.array([[False, True, True]])},
            [1, 2, 0],
        ),
        ([np.nan, 0.1], [1, 1], 0.0, {}, [1, 0]),  # unknown quality goes last
        ([0.5, 0.4], [np.nan, 1], 0.0, {"budget": 5.0}, [1, 0]),  # unknown cost is over budget
    ],
    ids=[
        "quality",
        "tie-cheaper",
        "tie-order",
        "weight-low",
        "weight-high",
        "budget",
        "budget-none-fits",
        "availability",
        "nan-quality",
        "nan-cost",
    ],
)
def test_rank_candidates(
    predicted: list[float],
    cost: list[float],
    weight: float,
    kwargs: dict[str, Any],
    expected: list[int],
) -> None:
    assert _rank(predicted, cost, weight, **kwargs) == expected
    chosen = choose(np.array([predicted]), np.array([cost]), weight, **kwargs)
    assert chosen.tolist() == expected[:1]


def test_rank_candidates_is_per_row() -> None:
    predicted = np.array([[0.9, 0.1], [0.1, 0.9]])
    assert choose(predicted, np.zeros((2, 2))).tolist() == [0, 1]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (([[0.5]], [[1.0]], -1.0), "cost_weight must be >= 0"),
        (([[0.5, 0.2]], [[1.0]], 0.0), "shape"),
    ],
)
def test_rank_candidates_rejects_bad_input(args: tuple[Any, ...], message: str) -> None:
    predicted, cost, weight = args
    with pytest.raises(ValueError, match=message):
        rank_candidates(np.array(predicted), np.array(cost), weight)


@pytest.mark.parametrize(
    ("predicted", "cost"),
    [([0.9, 0.1, 0.5], [1.0, 2.0, 3.0]), ([0.0, 0.1, 0.9], [0.1, 2.0, 3.0])],
    ids=["cheapest-unavailable", "only-affordable-unavailable"],
)
def test_budget_fallback_respects_availability(predicted: list[float], cost: list[float]) -> None:
    available = np.array([[False, True, True]])
    assert _rank(predicted, cost, budget=0.5, available=available)[0] == 1
