"""The active mode's label-free chooser (`langchain_llmrouter.pipeline.design`): it never
looks at a score, calls each candidate where it is least known, and its rank-one updates
match a recomputation from scratch."""

from __future__ import annotations

import numpy as np
import pytest

from langchain_llmrouter.pipeline.active import choose_pairs
from langchain_llmrouter.pipeline.design import design_pairs


def _clusters(n: int = 20, seed: int = 0) -> np.ndarray:
    """Two tight clusters of ``n`` queries each, in 4 dimensions."""
    x = np.zeros((2 * n, 4))
    x[:n, 0], x[n:, 1] = 1.0, 1.0
    return x + np.random.default_rng(seed).normal(scale=0.05, size=x.shape)


def test_the_design_never_looks_at_a_score() -> None:
    x = _clusters()
    rng = np.random.default_rng(1)
    pattern = rng.random((40, 3)) < 0.4
    cost = np.ones((40, 3))
    picks = []
    for values in (rng.random((40, 3)), np.zeros((40, 3)), np.ones((40, 3))):
        known = np.where(pattern, values, np.nan)
        picks.append(
            choose_pairs(x, known, cost, size=12, pairs_left=12, dollars_left=None, model="design")
        )
    assert picks[0] == picks[1] == picks[2]
    assert len(picks[0]) == 12 and not any(pattern[p] for p in picks[0])


def test_each_candidate_is_called_where_it_is_least_known() -> None:
    x = _clusters()
    taken = np.zeros((40, 2), dtype=bool)
    taken[:20, 0] = True  # candidate 0 is known on cluster A only
    taken[20:, 1] = True  # candidate 1 on cluster B only
    chosen = design_pairs(x, taken, np.ones((40, 2)), size=4)
    assert {(i >= 20, j) for i, j in chosen} == {(True, 0), (False, 1)}
    assert len({i for i, _ in chosen}) == 4  # one pair per query while there are queries


def _brute_force(x: np.ndarray, taken: np.ndarray, size: int) -> list[tuple[int, int]]:
    """The same greedy choice, every value recomputed from inverted matrices."""
    n, m = taken.shape
    z = np.hstack([x, np.ones((n, 1))])
    second = z.T @ z / n
    taken, used, out = taken.copy(), np.zeros(n, dtype=bool), []
    for _ in range(size):
        value = np.full((n, m), -np.inf)
        for j in range(m):
            held = z[taken[:, j]]
            inverse = np.linalg.inv(held.T @ held + np.eye(z.shape[1]))
            for i in range(n):
                if not taken[i, j]:
                    a = inverse @ z[i]
                    value[i, j] = a @ second @ a / (1.0 + z[i] @ a)
        fresh = np.where(used[:, None], -np.inf, value)
        i, j = divmod(int(np.argmax(fresh if np.isfinite(fresh).any() else value)), m)
        out.append((i, j))
        taken[i, j] = used[i] = True
    return out


def test_rank_one_updates_match_a_recomputation() -> None:
    rng = np.random.default_rng(3)
    x = rng.normal(size=(9, 3))
    taken = rng.random((9, 3)) < 0.3
    size = int((~taken).sum()) - 2  # past one pair per query: the second pass too
    assert design_pairs(x, taken, np.ones((9, 3)), size=size) == _brute_force(x, taken, size)


def test_the_dollar_budget_and_the_value_per_dollar() -> None:
    x = _clusters(10)
    taken = np.zeros((20, 2), dtype=bool)
    cost = np.linspace(0.1, 1.0, 40).reshape(20, 2)
    chosen = design_pairs(x, taken, cost, size=40, dollars_left=2.0)
    spent = sum(cost[p] for p in chosen)
    assert spent <= 2.0
    left = [p for p in zip(*np.nonzero(~taken), strict=True) if p not in chosen]
    assert all(spent + cost[p] > 2.0 for p in left)  # nothing else would have fitted
    cheap = np.ones((20, 2))
    cheap[:, 1] = 100.0  # the same information costs 100 times more from candidate 1
    first = design_pairs(x, taken, cheap, size=3, dollars_left=1000.0)
    assert all(j == 0 for _, j in first)


@pytest.mark.parametrize("size", [0, 5])
def test_nothing_left_to_choose(size: int) -> None:
    taken = np.ones((5, 2), dtype=bool)
    assert design_pairs(_clusters(3)[:5], taken, np.ones((5, 2)), size=size) == []
