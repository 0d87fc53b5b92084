"""Cross-validation pieces shared by fit-time tuning and the stacked ensemble.

Folds group duplicate queries (by normalised text) so that no query is scored by a router
that saw it; the scores are per query so that two settings can be compared with a paired
standard error.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from langchain_llmrouter.data import RoutingDataset
    from langchain_llmrouter.routers.base import BaseRouter

__all__ = [
    "apgr_per_query",
    "cross_val_predict",
    "grouped_folds",
    "normalise_query",
    "q0_per_query",
]


def normalise_query(text: str) -> str:
    """The text duplicates are grouped by: Unicode NFKC, case-folded, whitespace collapsed."""
    return re.sub(r"\s+", " ", unicodedata.normalize("NFKC", text).casefold()).strip()


def grouped_folds(queries: Sequence[str], n_folds: int, seed: int = 0) -> np.ndarray:
    """A fold number per query; queries with the same normalised text share a fold.

    Groups are dealt to folds at random (seeded) in turn, so folds have nearly equal
    numbers of distinct queries.
    """
    if n_folds < 2:
        raise ValueError(f"n_folds must be at least 2, got {n_folds}")
    keys = [normalise_query(q) for q in queries]
    _, group = np.unique(np.asarray(keys, dtype=object), return_inverse=True)
    group = group.ravel()
    n_groups = int(group.max()) + 1 if len(group) else 0
    if n_groups < n_folds:
        raise ValueError(f"{n_groups} distinct queries cannot fill {n_folds} folds")
    order = np.random.default_rng(seed).permutation(n_groups)
    fold_of_group = np.empty(n_groups, dtype=np.int64)
    fold_of_group[order] = np.arange(n_groups) % n_folds
    return fold_of_group[group]


def q0_per_query(predicted: np.ndarray, performance: np.ndarray) -> np.ndarray:
    """True quality of the candidate ranked first at cost weight 0, per query (shape (n,)).

    Candidates without a score (NaN) are never chosen; a query with no score at all
    counts 0.
    """
    perf = np.asarray(performance, dtype=np.float64)
    pred = np.where(np.isnan(perf), -np.inf, np.nan_to_num(predicted, nan=-np.inf))
    chosen = pred.argmax(axis=1)
    return np.nan_to_num(perf[np.arange(len(perf)), chosen], nan=0.0)


def apgr_per_query(advantage: np.ndarray, gap: np.ndarray) -> np.ndarray:
    """Each query's share of APGR (their mean is APGR times the mean ``gap``), shape (n,).

    RouteLLM's APGR ranks queries by the predicted advantage of the strong model and, for
    each share s in 0, 0.05, ..., 1, sends the top ``round(s*n)`` to it:
    APGR = mean over s of the quality gained over the weak model, over the whole gap. That
    sum splits by query: query i, ranked r-th, counts its true ``gap`` (strong minus weak)
    once for every share whose top ``round(s*n)`` includes it. Dividing by the mean gap
    gives APGR (`langchain_llmrouter.evaluation.apgr_cpt` computes the same figure).

    Args:
        advantage: (n,) predicted quality of the strong candidate minus the weak one.
        gap: (n,) true quality of the strong candidate minus the weak one.
    """
    n = len(advantage)
    rank = np.empty(n, dtype=np.int64)
    rank[np.argsort(-np.asarray(advantage), kind="stable")] = np.arange(n)
    tops = (np.arange(21) * n + 10) // 20  # queries sent to the strong model at each share
    counted = (tops[None, :] > rank[:, None]).sum(axis=1) / 21.0
    return np.asarray(gap, dtype=np.float64) * counted


def cross_val_predict(
    make: Callable[[], BaseRouter],
    dataset: RoutingDataset,
    query_embeddings: np.ndarray | None,
    folds: np.ndarray,
    *,
    only: Sequence[int] | None = None,
) -> np.ndarray:
    """Out-of-fold predicted qualities, (n, n_candidates) (NaN for folds not run, and for
    candidates the router does not keep).

    Args:
        make: Builds an unfitted router.
        dataset: The training data.
        query_embeddings: Its embeddings (None for routers that use none).
        folds: A fold number per query (`grouped_folds`).
        only: The folds to run (default: all).
    """
    out = np.full((len(dataset), len(dataset.candidates)), np.nan)
    for fold in range(int(folds.max()) + 1) if only is None else only:
        held, kept = np.flatnonzero(folds == fold), np.flatnonzero(folds != fold)
        x = None if query_embeddings is None else query_embeddings[kept]
        router = make().fit(dataset.subset(kept), query_embeddings=x)
        queries = [dataset.queries[i] for i in held]
        x_held = None if query_embeddings is None else query_embeddings[held]
        predicted = router.predict_quality(queries, query_embeddings=x_held)
        # A router may keep only some of the candidates (a two-model router, say): the
        # others stay NaN, never chosen.
        cols = np.array([dataset.candidates.index(c) for c in router.candidates_], dtype=np.intp)
        out[np.ix_(held, cols)] = predicted
    return out
