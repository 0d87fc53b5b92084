"""The one cost policy every single-round router shares.

A router predicts an expected quality per candidate; the policy turns those
predictions and the candidates' costs into a choice:
``argmax(quality − cost_weight × cost_per_1k)``, where ``cost_per_1k`` is the cost
in dollars per 1,000 queries, optionally restricted to candidates within a
per-query ``budget`` in dollars. Ties go to the cheaper, then the earlier candidate.
"""

from __future__ import annotations

import numpy as np


def policy_utility(predicted: np.ndarray, cost: np.ndarray, cost_weight: float) -> np.ndarray:
    """``predicted − cost_weight × cost × 1000`` (cost given in dollars per query)."""
    if cost_weight < 0:
        raise ValueError(f"cost_weight must be >= 0, got {cost_weight}")
    if cost_weight == 0:
        return np.asarray(predicted, dtype=np.float64)
    return predicted - cost_weight * np.where(np.isnan(cost), 0.0, cost) * 1000.0


def rank_candidates(
    predicted: np.ndarray,
    cost: np.ndarray,
    cost_weight: float = 0.0,
    *,
    budget: float | None = None,
    available: np.ndarray | None = None,
) -> np.ndarray:
    """Order candidates per query, best first, under the shared policy.

    Args:
        predicted: (n, m) predicted quality.
        cost: (n, m) dollars per call.
        cost_weight: Quality given up per dollar per 1,000 queries.
        budget: Max dollars per call; candidates above it go after those within it
            (if none fits, the cheapest comes first).
        available: (n, m) boolean mask; unavailable candidates go last.

    Returns:
        (n, m) integer array of candidate indices, best first.
    """
    predicted = np.asarray(predicted, dtype=np.float64)
    cost = np.asarray(cost, dtype=np.float64)
    if predicted.shape != cost.shape:
        raise ValueError(f"predicted has shape {predicted.shape} but cost has shape {cost.shape}")
    utility = policy_utility(predicted, cost, cost_weight)
    utility = np.where(np.isnan(utility), -np.inf, utility)  # (np.nan_to_num is slower)
    safe_cost = np.where(np.isnan(cost), np.inf, cost)
    usable = (
        np.ones(predicted.shape, dtype=bool)
        if available is None
        else np.broadcast_to(np.asarray(available, dtype=bool), predicted.shape)
    )
    tier = np.where(usable, 0, 2)  # lower tier ranks first; unavailable candidates go last
    if budget is not None:
        over = safe_cost > budget
        none_fit = ~(usable & ~over).any(axis=1, keepdims=True)
        tier = np.where(usable & over & ~none_fit, 1, tier)
        # With nothing available affordable, the cheapest available candidate leads.
        usable_cost = np.where(usable, safe_cost, np.inf)
        cheapest = usable & (usable_cost == usable_cost.min(axis=1, keepdims=True))
        utility = np.where(none_fit & cheapest, np.inf, utility)
    index = np.broadcast_to(np.arange(predicted.shape[1]), predicted.shape)
    # np.lexsort sorts by the last key first.
    return np.lexsort((index, safe_cost, -utility, tier), axis=1)


def choose(
    predicted: np.ndarray,
    cost: np.ndarray,
    cost_weight: float = 0.0,
    *,
    budget: float | None = None,
    available: np.ndarray | None = None,
) -> np.ndarray:
    """The chosen candidate index per query under the shared policy (see `rank_candidates`)."""
    return rank_candidates(predicted, cost, cost_weight, budget=budget, available=available)[:, 0]
