"""The value of calling a (query, candidate) pair, for the active mode of stage 3.

The chooser's quick routers (a Bayesian ridge or a kNN on reduced query embeddings) and the
value each gives an unknown pair: the knowledge gradient of one score, i.e. the expected gain
in the query's best score (``ridge``) or the expected fall in a kNN router's regret over the
queries whose neighbourhoods hold it (``knn``). `langchain_llmrouter.pipeline.active` chooses
the pairs to call from these values.
"""

from __future__ import annotations

import hashlib
import math
from typing import Any

import numpy as np

from langchain_llmrouter.routers.vector_index import VectorIndex

__all__ = [
    "PAIR_VALUES",
    "RIDGE_ALPHA",
    "knn_values",
    "nearest_neighbours",
    "pair_values",
    "reduce_features",
    "ridge_posterior",
    "ridge_values",
]

RIDGE_ALPHA = 1.0
"""The prior precision of the choosers' per-candidate ridge (also the design's)."""
_KNN_K = 50
_FEATURE_DIMS = 64


# --- the quick routers ------------------------------------------------------------------------


def reduce_features(x: np.ndarray, dims: int = _FEATURE_DIMS) -> np.ndarray:
    """Unit-length query embeddings projected on their first ``dims`` principal components
    (deterministic: an SVD of the centred matrix, signs fixed)."""
    x = np.asarray(x, dtype=np.float64)
    x = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
    centred = x - x.mean(axis=0)
    if x.shape[0] < 2 or x.shape[1] <= dims:
        return centred
    _, _, vt = np.linalg.svd(centred, full_matrices=False)
    vt = vt[:dims]
    vt *= np.where(vt[np.arange(len(vt)), np.abs(vt).argmax(axis=1)] < 0, -1.0, 1.0)[:, None]
    return np.asarray(centred @ vt.T)


def ridge_posterior(x: np.ndarray, known: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Bayesian ridge per candidate on ``x``: the predicted score and the variance of that
    prediction for every query (candidates without known scores: 0.5 and 0.25).

    Args:
        x: Query features, shape (n, d).
        known: Scores, shape (n, m), NaN where unknown.
    """
    n, m = known.shape
    design = np.hstack([x, np.ones((n, 1))])
    mean = np.full((n, m), 0.5)
    var = np.full((n, m), 0.25)
    for j in range(m):
        rows = ~np.isnan(known[:, j])
        if not rows.any():
            continue
        a, y = design[rows], known[rows, j]
        precision = a.T @ a + RIDGE_ALPHA * np.eye(design.shape[1])
        inverse = np.linalg.inv(precision)
        weights = inverse @ (a.T @ y)
        residual = float(np.mean((a @ weights - y) ** 2)) if len(y) > 1 else 0.25
        mean[:, j] = design @ weights
        var[:, j] = max(residual, 0.01) * np.einsum("id,de,ie->i", design, inverse, design)
    return np.clip(mean, 0.0, 1.0), var


def nearest_neighbours(x: np.ndarray, k: int = _KNN_K) -> np.ndarray:
    """The ``k`` nearest queries of each query (itself included), cosine, shape (n, k);
    the last result is cached, since every round asks for the same features."""
    key = (x.shape, k, hashlib.sha1(np.ascontiguousarray(x).tobytes()).hexdigest())
    if _NEIGHBOURS.get("key") == key:
        return np.asarray(_NEIGHBOURS["value"])
    features = np.asarray(x, dtype=np.float32)
    index = VectorIndex("exact", "cosine").build(features)  # searched in blocks
    out = index.search(features, min(k, len(x)), ordered=False)[1]
    _NEIGHBOURS.update(key=key, value=out)
    return out


_NEIGHBOURS: dict[str, Any] = {}


def knn_values(x: np.ndarray, known: np.ndarray, k: int = _KNN_K) -> np.ndarray:
    """Each unknown pair's value to a kNN router: the expected fall in the regret of the
    router's choices if that pair's score were known, summed over the queries that have the
    pair's query among their ``k`` nearest; known pairs get -inf.

    The router (as ``knnrouter``) estimates a candidate at a query by the mean of its known
    neighbour scores (its overall mean when there are none) and picks the highest. The
    belief about true qualities is the Bayesian ridge's prediction (`ridge_posterior`); the
    regret at a query is the believed quality lost by the router's pick. A new score ``y``
    (1 with the believed probability at the pair's own query) changes the estimates of every
    neighbourhood that holds it; the value is the regret now minus its expectation after.
    It is negative for a first, lone score of a weak candidate (one lucky answer would make
    it look best) and largest where the router's pick rests on a few scores.
    """
    neighbours = nearest_neighbours(x, k)
    is_known = ~np.isnan(known)
    overall = np.nan_to_num(np.nanmean(np.where(is_known, known, np.nan), axis=0), nan=0.5)
    belief = np.clip(ridge_posterior(x, known)[0], 0.0, 1.0)
    count = is_known[neighbours].sum(axis=1).astype(float)
    total = np.where(is_known, known, 0.0)[neighbours].sum(axis=1)
    estimate = np.where(count > 0, total / np.maximum(count, 1.0), overall)
    regret_now = _regret(belief, estimate)
    m = known.shape[1]
    after = np.empty((2, *known.shape))  # regret at each query if candidate j got one more y
    for j in range(m):
        for y in (0, 1):
            changed = estimate.copy()
            changed[:, j] = (total[:, j] + y) / (count[:, j] + 1.0)
            after[y, :, j] = _regret(belief, changed)
    rows = neighbours.ravel()
    spread = neighbours.shape[1]
    drop0 = np.zeros(known.shape)
    np.add.at(drop0, rows, np.repeat(regret_now[:, None] - after[0], spread, axis=0))
    step = np.zeros(known.shape)
    np.add.at(step, rows, np.repeat(after[1] - after[0], spread, axis=0))
    value = drop0 - belief * step  # E over y ~ Bernoulli(belief at the pair's query)
    return np.where(is_known, -np.inf, value)


def _regret(belief: np.ndarray, estimate: np.ndarray) -> np.ndarray:
    """Per query: the believed quality lost by picking the highest estimate."""
    rows = np.arange(len(belief))
    return np.asarray(belief.max(axis=1) - belief[rows, estimate.argmax(axis=1)])


def ridge_values(x: np.ndarray, known: np.ndarray) -> np.ndarray:
    """Each unknown pair's value under the Bayesian ridge (`ridge_posterior`, `pair_values`)."""
    mean, var = ridge_posterior(x, known)
    return pair_values(known, mean, var)


PAIR_VALUES = {"ridge": ridge_values, "knn": knn_values}
"""The chooser's value functions by ``calls.active_model`` name."""


# --- the value of a pair ----------------------------------------------------------------------


def pair_values(known: np.ndarray, mean: np.ndarray, var: np.ndarray) -> np.ndarray:
    """For each unknown pair, the expected gain in its query's best score if the pair's score
    were drawn (Gaussian around the prediction, with the prediction's variance plus a
    Bernoulli score's, capped at 1); known pairs get -inf.

    With the best other candidate at ``c`` and ``y ~ N(mu, s^2)`` capped at 1, the gain is
    ``E[min(max(y, c), 1)] - max(mu, c) = c + E[(y - c)+] - E[(y - 1)+] - max(mu, c)``: zero
    when another candidate already scored 1, largest when the pair is uncertain and close to
    the query's best.
    """
    is_known = ~np.isnan(known)
    best = np.where(is_known, known, np.clip(mean, 0.0, 1.0))
    p = np.clip(best, 0.02, 0.98)
    s = np.sqrt(np.maximum(var, 0.0) + p * (1.0 - p))
    others = _best_other(best)
    gain = others + _above(best, others, s) - _above(best, 1.0, s) - np.maximum(best, others)
    return np.where(is_known, -np.inf, np.maximum(gain, 0.0))


def _best_other(values: np.ndarray) -> np.ndarray:
    """For each cell, the highest value among the other columns of its row (0 if none)."""
    if values.shape[1] < 2:
        return np.zeros_like(values)
    order = np.sort(values, axis=1)
    top, second = order[:, -1:], order[:, -2:-1]
    return np.where(values >= top, second, top)


def _above(mu: np.ndarray, level: np.ndarray | float, s: np.ndarray) -> np.ndarray:
    """``E[(y - level)+]`` for ``y ~ N(mu, s^2)``."""
    z = (mu - level) / s
    phi = np.exp(-0.5 * z**2) / math.sqrt(2 * math.pi)
    cdf = 0.5 * (1.0 + _erf(z / math.sqrt(2.0)))
    return np.asarray(s * (z * cdf + phi))


def _erf(x: np.ndarray) -> np.ndarray:
    """The error function (Abramowitz and Stegun 7.1.26, absolute error under 1.5e-7)."""
    x = np.asarray(x, dtype=np.float64)
    t = 1.0 / (1.0 + 0.3275911 * np.abs(x))
    poly = t * (
        0.254829592 + t * (-0.284496736 + t * (1.421413741 + t * (-1.453152027 + t * 1.061405429)))
    )
    return np.sign(x) * (1.0 - poly * np.exp(-(x**2)))
