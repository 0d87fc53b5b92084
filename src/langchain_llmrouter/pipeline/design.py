"""A label-free choice of pairs for the active mode of stage 3: a greedy V-optimal design.

Each candidate's score is modelled as a ridge regression on the query features; a pair is
worth the fall it brings in that candidate's predictive variance, summed over every query of
the split. The variance of a ridge prediction does not depend on the scores seen, so the
choice never looks at an answer: which queries a candidate is called on depends only on the
queries, and the pairs left unknown are missing at random, which is what a router's fit
assumes. (The value-of-information choosers of `langchain_llmrouter.pipeline.pair_value`
look at answers and leave out the pairs they expect to matter least, so a router fitted on
what they kept sees a biased sample: on RouterDC the design suits ``mfrouter`` and the
``ridge`` chooser a kNN router with ``fill_unknown: mf``; README, "Routing data at a fraction
of the calls".)
"""

from __future__ import annotations

import numpy as np

from langchain_llmrouter.pipeline.pair_value import RIDGE_ALPHA

__all__ = ["design_pairs"]


def design_pairs(
    features: np.ndarray,
    taken: np.ndarray,
    cost: np.ndarray,
    *,
    size: int,
    dollars_left: float | None = None,
) -> list[tuple[int, int]]:
    """The ``size`` pairs that most lower the summed predictive variance, chosen greedily (the
    variance is updated after each pick), at most one per query while there are enough.

    With ``x`` a query's features and intercept, ``A_j`` the ridge precision of candidate
    ``j`` over the queries it holds and ``G`` the second moment of all queries' ``x``, the
    summed variance falls by ``x' A⁻¹ G A⁻¹ x / (1 + x' A⁻¹ x)`` when ``j`` is called on
    ``x`` (in units of the score noise). Each pick updates ``A_j⁻¹`` by Sherman–Morrison and
    both quadratic forms for every query by rank-one terms, so a pick costs O(n·d).

    Args:
        features: Query features, shape (n, d) (`reduce_features`).
        taken: Pairs known, pending or excluded, boolean (n, m); they count as held (their
            scores are not needed) and are never chosen.
        cost: Each pair's worst-case dollars, shape (n, m) (used with ``dollars_left``: the
            value is then per dollar).
        size: Pairs to choose (at most).
        dollars_left: Dollars the round may cost at most (None: no dollar budget).

    Returns:
        The chosen (query, candidate) index pairs in the order picked; deterministic.
    """
    n, m = taken.shape
    x = np.hstack([np.asarray(features, dtype=np.float64), np.ones((n, 1))])
    second = x.T @ x / max(n, 1)
    inverses, spread, lever = [], np.empty((n, m)), np.empty((n, m))
    for j in range(m):
        held = x[taken[:, j]]
        inverse = np.linalg.inv(held.T @ held + RIDGE_ALPHA * np.eye(x.shape[1]))
        projected = x @ inverse
        lever[:, j] = np.einsum("id,id->i", projected, x)  # x' A⁻¹ x
        spread[:, j] = np.einsum("id,id->i", projected @ second, projected)  # x' A⁻¹GA⁻¹ x
        inverses.append(inverse)
    per_dollar = 1.0 / np.maximum(cost, 1e-12) if dollars_left is not None else np.ones((n, m))
    value = np.where(taken, -np.inf, spread / (1.0 + lever) * per_dollar)
    used_query = np.zeros(n, dtype=bool)
    chosen: list[tuple[int, int]] = []
    spend = 0.0
    while len(chosen) < size:
        if dollars_left is not None:  # what no longer fits is out for good
            value[cost > dollars_left - spend] = -np.inf
        fresh = np.where(used_query[:, None], -np.inf, value)
        pick = int(np.argmax(fresh)) if np.isfinite(fresh).any() else int(np.argmax(value))
        i, j = divmod(pick, m)
        if not np.isfinite(value[i, j]):
            break
        value[i, j] = -np.inf
        chosen.append((i, j))
        used_query[i] = True
        spend += float(cost[i, j])
        # Sherman–Morrison: A⁻¹ ← A⁻¹ - c u u', u = A⁻¹ x_i, c = 1 / (1 + x_i' u).
        u = inverses[j] @ x[i]
        c = 1.0 / (1.0 + float(x[i] @ u))
        w = inverses[j] @ (second @ u)
        xu, xw = x @ u, x @ w
        spread[:, j] += c * c * float(u @ second @ u) * xu**2 - 2.0 * c * xw * xu
        lever[:, j] -= c * xu**2
        inverses[j] -= c * np.outer(u, u)
        column = spread[:, j] / (1.0 + lever[:, j]) * per_dollar[:, j]
        value[:, j] = np.where(np.isfinite(value[:, j]), column, -np.inf)
    return chosen
