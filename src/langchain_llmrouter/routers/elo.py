"""Elo router: Bradley–Terry ratings of the candidates, fitted to pairwise comparisons.

Each training query yields battles between candidates whose scores differ; Bradley–Terry
ratings are fitted by Newton's method with an L2 prior, either once (``global``) or per query
from its ``k`` nearest training queries (``similarity``, RouteLLM's similarity-weighted Elo),
and a logistic calibration turns ratings into expected quality. The method, where it departs
from LLMRouter's ``elorouter``, and its benchmark figures: ``docs/routers/elo.md``. The
neighbours come from `langchain_llmrouter.routers.vector_index` (``index: exact`` by default,
FAISS ``flat`` / ``hnsw`` / ``ivf`` for large stores), and `EloRouter.add_examples` appends
labelled queries to the similarity store without a refit.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
from pydantic import Field

from langchain_llmrouter.routers.base import BaseRouter, RouterParams
from langchain_llmrouter.routers.knn import _examples
from langchain_llmrouter.routers.vector_index import (
    IndexedStoreMixin,
    VectorIndex,
    VectorIndexParams,
)

if TYPE_CHECKING:
    from langchain_core.embeddings import Embeddings

    from langchain_llmrouter.data import RoutingDataset

ELO_SCALE = 400.0 / np.log(10.0)
"""Elo points per natural-log unit of Bradley–Terry strength."""
ELO_BASE = 1000.0
"""Elo of an average candidate (ratings are centred)."""
_CHUNK = 512
"""Most queries per vectorised block in the similarity variant."""
_BLOCK_NUMBERS = 1 << 22
"""Most gathered battle entries per block (bounds memory for large ``k``)."""


class EloParams(RouterParams, VectorIndexParams):
    variant: Literal["global", "similarity"] = "similarity"
    """``global``: one rating per candidate; ``similarity``: ratings re-fitted per query from its neighbours."""
    ties: Literal["skip", "half"] = "skip"
    """Equal scores: no battle (``skip``) or half a win each way (``half``)."""
    prior: float = Field(default=10.0, gt=0)
    """L2 prior strength on the ratings (in battles); pulls towards 0 (global) or the global rating (similarity)."""
    k: int = Field(default=100, ge=1)
    """Neighbouring training queries per query (``similarity`` only)."""
    temperature: float = Field(default=0.2, gt=0)
    """Softmax temperature of the neighbour weights over cosine similarity (``similarity`` only)."""


def comparison_matrices(performance: np.ndarray, ties: str = "skip") -> np.ndarray:
    """Battles per query: ``wins[n, i, j]`` is 1 where candidate i beat j on query n.

    Args:
        performance: (n_queries, n_candidates) scores; NaN (missing) never battles.
        ties: ``"skip"`` or ``"half"`` (equal scores give 0.5 to each side).

    Returns:
        (n_queries, n_candidates, n_candidates) float array with a zero diagonal.
    """
    p = np.asarray(performance, dtype=np.float64)
    known = ~np.isnan(p)
    both = known[:, :, None] & known[:, None, :]
    a, b = p[:, :, None], p[:, None, :]
    wins = ((a > b) & both).astype(np.float64)
    if ties == "half":
        off_diagonal = ~np.eye(p.shape[1], dtype=bool)
        wins += 0.5 * ((a == b) & both & off_diagonal)
    return wins


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return np.exp(-np.logaddexp(0.0, -x))


def fit_bradley_terry(
    wins: np.ndarray,
    *,
    prior: float = 1.0,
    centre: np.ndarray | None = None,
    max_iter: int = 100,
    tol: float = 1e-9,
    max_step: float = 2.0,
) -> np.ndarray:
    """Maximum a-posteriori Bradley–Terry strengths by Newton's method, batched.

    Maximises ``sum_ij wins_ij * log sigmoid(theta_i - theta_j) - prior/2 * ||theta - centre||^2``,
    which is strictly concave, so the answer is unique; steps are capped at ``max_step``
    nats so early iterations cannot overshoot.

    Args:
        wins: (m, m) or (batch, m, m) win counts (``wins[i, j]``: i beat j; may be fractional).
        prior: L2 prior strength (> 0).
        centre: The prior's mean, shape (m,) or (batch, m); default 0.
        max_iter: Newton iterations at most.
        tol: Stop when every strength moves less than this.
        max_step: Largest change of any strength in one iteration.

    Returns:
        Strengths in natural-log units, the shape of ``wins`` without its last axis.
        With ``centre`` 0 (or centred) they sum to zero.
    """
    if prior <= 0:
        raise ValueError(f"prior must be > 0, got {prior}")
    w = np.asarray(wins, dtype=np.float64)
    single = w.ndim == 2
    if single:
        w = w[None]
    batch, m, _ = w.shape
    mu = np.zeros((batch, m)) if centre is None else np.broadcast_to(centre, (batch, m))
    theta = np.array(mu, dtype=np.float64)
    games = w + np.swapaxes(w, 1, 2)
    w_t = np.swapaxes(w, 1, 2)
    ridge = prior * np.eye(m)
    diag = np.arange(m)
    for _ in range(max_iter):
        p = _sigmoid(theta[:, :, None] - theta[:, None, :])  # P(i beats j)
        grad = (w * (1.0 - p)).sum(axis=2) - (w_t * p).sum(axis=2) - prior * (theta - mu)
        v = games * p * (1.0 - p)
        # Negative Hessian: graph Laplacian of the weighted battles plus the prior.
        neg_hess = -v
        neg_hess[:, diag, diag] += v.sum(axis=2)
        step = np.linalg.solve(neg_hess + ridge, grad[:, :, None])[:, :, 0]
        biggest = np.abs(step).max(axis=1, keepdims=True)
        step *= np.minimum(1.0, max_step / np.maximum(biggest, 1e-300))
        theta += step
        if biggest.max() < tol:
            break
    return theta[0] if single else theta


def fit_calibration(
    rating: np.ndarray, target: np.ndarray, *, ridge: float = 1e-6
) -> tuple[float, float]:
    """(a, b) of ``quality = sigmoid(a + b * rating)`` by logistic regression on soft targets.

    Args:
        rating: Ratings (natural-log units), any shape.
        target: Scores in [0, 1] of the same shape; NaN entries are ignored.
        ridge: Tiny L2 on (a, b) so a constant rating still gives a finite answer.

    Returns:
        ``a`` and ``b``, with ``b >= 0`` (a negative slope is replaced by the best
        constant, so ratings never rank candidates upside down).
    """
    r = np.asarray(rating, dtype=np.float64).ravel()
    y = np.asarray(target, dtype=np.float64).ravel()
    keep = ~np.isnan(y)
    r, y = r[keep], np.clip(y[keep], 0.0, 1.0)
    if len(y) == 0:
        return 0.0, 0.0
    x = np.stack([np.ones_like(r), r], axis=1)
    coef = np.zeros(2)
    for _ in range(100):
        p = _sigmoid(x @ coef)
        grad = x.T @ (y - p) - ridge * coef
        hess = (x * (p * (1 - p))[:, None]).T @ x + ridge * np.eye(2)
        step = np.linalg.solve(hess, grad)
        coef += step
        if np.abs(step).max() < 1e-10:
            break
    if coef[1] < 0:
        mean = float(np.clip(y.mean(), 1e-6, 1 - 1e-6))
        return float(np.log(mean / (1 - mean))), 0.0
    return float(coef[0]), float(coef[1])


def to_elo(theta: np.ndarray) -> np.ndarray:
    """Bradley–Terry strengths (natural log) as Elo points around 1000."""
    return ELO_BASE + ELO_SCALE * (np.asarray(theta) - np.mean(theta, axis=-1, keepdims=True))


class EloRouter(IndexedStoreMixin, BaseRouter):
    """Bradley–Terry (Elo) ratings of the candidates, global or re-fitted per query from its neighbours."""

    name = "elorouter"
    Params = EloParams
    uses_embeddings = True

    def __init__(
        self,
        *,
        variant: Literal["global", "similarity"] = "similarity",
        ties: Literal["skip", "half"] = "skip",
        prior: float = 10.0,
        k: int = 100,
        temperature: float = 0.2,
        index: Literal["auto", "exact", "flat", "hnsw", "ivf"] = "exact",
        hnsw_m: int = 32,
        hnsw_ef_construction: int = 80,
        hnsw_ef_search: int = 128,
        ivf_nlist: int | None = None,
        ivf_nprobe: int = 32,
        index_code: str | None = None,
        cost_weight: float = 0.0,
        budget: float | None = None,
        embeddings: Embeddings | None = None,
    ) -> None:
        super().__init__(cost_weight=cost_weight, budget=budget, embeddings=embeddings)
        self.variant = variant
        self.ties = ties
        self.prior = prior
        self.k = k
        self.temperature = temperature
        self.index = index
        self.hnsw_m = hnsw_m
        self.hnsw_ef_construction = hnsw_ef_construction
        self.hnsw_ef_search = hnsw_ef_search
        self.ivf_nlist = ivf_nlist
        self.ivf_nprobe = ivf_nprobe
        self.index_code = index_code

    # --- fitting --------------------------------------------------------------------------

    def _fit(self, dataset: RoutingDataset | None, query_embeddings: np.ndarray | None) -> None:
        assert dataset is not None
        performance = np.asarray(dataset.performance, dtype=np.float64)
        wins = comparison_matrices(performance, self.ties)
        self.theta_ = fit_bradley_terry(wins.sum(axis=0), prior=self.prior)
        self.n_battles_ = float(wins.sum())
        if self.variant == "global":
            rating = np.broadcast_to(self.theta_, performance.shape)
        else:
            assert query_embeddings is not None
            x = np.asarray(query_embeddings, dtype=np.float32)
            unit = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
            self.index_ = VectorIndex.from_params(self, "cosine").build(unit)
            self._set_scores(performance)
            rating = self._local_ratings(unit, leave_out=True)
        self.calibration_ = fit_calibration(rating, performance)

    def _set_scores(self, performance: np.ndarray) -> None:
        """Keep the training scores and their battles (also on load and after adding)."""
        self.train_y_ = performance
        n, m = performance.shape
        self._battles = comparison_matrices(performance, self.ties).reshape(n, m * m)

    def _local_ratings(self, x: np.ndarray, *, leave_out: bool = False) -> np.ndarray:
        """Ratings re-fitted per query from its ``k`` nearest training queries.

        Args:
            x: (n, dim) query embeddings.
            leave_out: ``x`` is the training set itself, in order: skip each query's own row
                (or, where an approximate index misses it, the farthest neighbour found).
        """
        n_train, m = self.train_y_.shape
        out = np.empty((len(x), m))
        unit = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
        unit = unit.astype(np.float32)
        k = min(self.k, n_train - 1 if leave_out else n_train)
        if k < 1:  # a single training query, left out: only the prior is left
            out[:] = self.theta_
            return out
        # Gathering (chunk, k, m * m) battles: keep each block to a few million numbers.
        chunk = max(1, min(_CHUNK, _BLOCK_NUMBERS // (k * m * m)))
        for start in range(0, len(x), chunk):
            block = slice(start, start + chunk)
            dist, index = self.index_.search(unit[block], k + 1 if leave_out else k)
            if leave_out:
                dist, index = _drop_own(dist, index, start)
            valid = index >= 0
            near = np.where(valid, 1.0 - dist.astype(np.float64), -np.inf)  # cosine similarity
            weight = np.exp((near - near.max(axis=1, keepdims=True)) / self.temperature)
            weight *= valid.sum(axis=1, keepdims=True) / np.maximum(
                weight.sum(axis=1, keepdims=True), 1e-300
            )
            index = np.where(valid, index, 0)
            wins = np.einsum("bk,bkj->bj", weight, self._battles[index]).reshape(-1, m, m)
            out[block] = fit_bradley_terry(wins, prior=self.prior, centre=self.theta_)
        return out

    def add_examples(
        self, queries: Sequence[str] | np.ndarray, scores: np.ndarray | Sequence[Sequence[float]]
    ) -> EloRouter:
        """Append labelled queries to the similarity store, with no refit; returns self.

        The global ratings and the calibration stay as fitted; new queries take part in
        the per-query ratings of later queries. Save the router afterwards to keep them.

        Args:
            queries: Query texts (embedded with the router's featuriser) or their embeddings.
            scores: (n, n_candidates) scores in the order of ``candidates_``; NaN: unknown.
        """
        self._check_fitted()
        if self.variant != "similarity":
            raise ValueError("add_examples: the global variant keeps no store of queries")
        x, y = _examples(self, queries, scores, self.train_y_.shape[1])
        self.index_.add(x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12))
        self._set_scores(np.concatenate([self.train_y_, y.astype(self.train_y_.dtype)]))
        return self

    # --- prediction -----------------------------------------------------------------------

    def ratings(
        self, queries: list[str] | None = None, query_embeddings: np.ndarray | None = None
    ) -> np.ndarray:
        """Bradley–Terry strengths (natural log), (n, n_candidates); global ones if no queries.

        Args:
            queries: Queries to rate the candidates for (``similarity`` variant).
            query_embeddings: Their embeddings (computed when missing).
        """
        self._check_fitted()
        if queries is None or self.variant == "global":
            n = 1 if queries is None else len(queries)
            return np.tile(self.theta_, (n, 1))
        if query_embeddings is None:
            query_embeddings = self.embed_queries(queries)
        x = np.asarray(query_embeddings, dtype=np.float32)
        if x.ndim != 2 or x.shape[1] != self.index_.dim_:
            raise ValueError(
                f"query embeddings have shape {x.shape} but the router was trained on "
                f"dimension {self.index_.dim_}"
            )
        return self._local_ratings(x)

    def _predict_quality(
        self, queries: list[str], query_embeddings: np.ndarray | None
    ) -> np.ndarray:
        rating = self.ratings(queries, query_embeddings)
        a, b = self.calibration_
        return _sigmoid(a + b * rating)

    # --- persistence ----------------------------------------------------------------------

    def _get_state(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        elo = to_elo(self.theta_)
        meta: dict[str, Any] = {
            "elo": {c: round(float(e), 2) for c, e in zip(self.candidates_, elo, strict=True)},
            "calibration": {"a": self.calibration_[0], "b": self.calibration_[1]},
            "n_battles": self.n_battles_,
        }
        arrays = {"theta": self.theta_}
        if self.variant == "similarity":
            index_meta, store_arrays = self._store_state()
            meta |= index_meta
            arrays |= store_arrays
        return meta, arrays

    def _set_state(self, meta: dict[str, Any], arrays: dict[str, np.ndarray]) -> None:
        self.theta_ = arrays["theta"]
        self.calibration_ = (float(meta["calibration"]["a"]), float(meta["calibration"]["b"]))
        self.n_battles_ = float(meta.get("n_battles", 0.0))
        if self.variant == "similarity":
            self._set_scores(arrays["train_y"])
            self._restore_index(meta, arrays, "cosine")


def _drop_own(dist: np.ndarray, index: np.ndarray, start: int) -> tuple[np.ndarray, np.ndarray]:
    """Each row's k + 1 neighbours less its own training row (or, if absent, the farthest)."""
    n, width = index.shape
    own = index == np.arange(start, start + n)[:, None]
    drop = np.where(own.any(axis=1), own.argmax(axis=1), width - 1)
    keep = np.ones(index.shape, dtype=bool)
    keep[np.arange(n), drop] = False
    return dist[keep].reshape(n, width - 1), index[keep].reshape(n, width - 1)
