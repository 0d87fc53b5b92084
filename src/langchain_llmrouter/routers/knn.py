"""kNN router: a candidate's expected quality is its mean score on the k nearest training queries.

Unlike LLMRouter's kNN classifier over "best model" labels (which breaks ties by
file order and cannot trade quality for cost), this predicts every candidate's
quality, so the shared cost policy applies.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

import numpy as np
from pydantic import Field

from langchain_llmrouter.routers.base import BaseRouter, RouterParams

if TYPE_CHECKING:
    from langchain_core.embeddings import Embeddings

    from langchain_llmrouter.data import RoutingDataset


class KNNParams(RouterParams):
    k: int = Field(default=50, ge=1)
    """Number of neighbours."""
    weights: Literal["uniform", "distance"] = "distance"
    """``distance`` weighs each neighbour by 1 / (distance + 1e-6)."""
    metric: Literal["cosine", "l2"] = "cosine"
    """Distance between query embeddings."""
    dims: int | None = Field(default=None, ge=1)
    """Search in the training queries' first ``dims`` principal components (None: the
    whole vectors). The search reads the whole index for every query, so a smaller index
    is a faster one: at 128 dims, 5,608 queries take 2.9 MB instead of 8.6 MB."""


class KNNRouter(BaseRouter):
    """Predicts each candidate's quality from the k nearest training queries (embedding space)."""

    name = "knnrouter"
    Params = KNNParams
    uses_embeddings = True
    pca_mean_: np.ndarray | None = None
    pca_components_: np.ndarray | None = None

    def __init__(
        self,
        *,
        k: int = 50,
        weights: Literal["uniform", "distance"] = "distance",
        metric: Literal["cosine", "l2"] = "cosine",
        dims: int | None = None,
        cost_weight: float = 0.0,
        budget: float | None = None,
        embeddings: Embeddings | None = None,
    ) -> None:
        super().__init__(cost_weight=cost_weight, budget=budget, embeddings=embeddings)
        self.k = k
        self.weights = weights
        self.metric = metric
        self.dims = dims

    def _fit(self, dataset: RoutingDataset | None, query_embeddings: np.ndarray | None) -> None:
        assert dataset is not None and query_embeddings is not None
        x = np.asarray(query_embeddings, dtype=np.float32)
        self.pca_mean_ = self.pca_components_ = None
        if self.dims is not None and self.dims < x.shape[1]:
            mean = x.astype(np.float64).mean(axis=0)
            _, _, vt = np.linalg.svd(x - mean, full_matrices=False)
            vt = vt[: self.dims]
            # Fix each axis's sign so that the same data gives the same index everywhere.
            vt *= np.where(vt[np.arange(len(vt)), np.abs(vt).argmax(axis=1)] < 0, -1.0, 1.0)[
                :, None
            ]
            self.pca_mean_ = mean.astype(np.float32)
            self.pca_components_ = np.ascontiguousarray(vt.T, dtype=np.float32)
        self._build_index(self._project(x), np.asarray(dataset.performance, dtype=np.float32))

    def _project(self, x: np.ndarray) -> np.ndarray:
        if self.pca_components_ is None:
            return x
        if x.shape[1] != self.pca_components_.shape[0]:
            raise ValueError(
                f"query embeddings have dimension {x.shape[1]} but the router was trained on "
                f"{self.pca_components_.shape[0]}"
            )
        return (x - self.pca_mean_) @ self.pca_components_

    def _build_index(self, train_x: np.ndarray, train_y: np.ndarray) -> None:
        self.train_x_ = train_x
        self.train_y_ = train_y
        self.n_neighbors_ = min(self.k, len(train_x))
        if self.metric == "cosine":
            norms = np.linalg.norm(train_x, axis=1, keepdims=True)
            self._unit_x = train_x / np.maximum(norms, 1e-12)
        else:
            self._sq_norms = (train_x.astype(np.float64) ** 2).sum(axis=1)
        self._global_mean = np.nan_to_num(np.nanmean(train_y, axis=0), nan=0.0)
        # Missing scores as 0 with a 0/1 mask, so a query's weighted mean is two products.
        self._known_y = (~np.isnan(train_y)).astype(np.float32)
        self._filled_y = np.where(np.isnan(train_y), 0.0, train_y).astype(np.float32)

    def _neighbours(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(distances, indices) of the k nearest training queries, by brute force.

        One matrix product per batch: at these sizes (thousands of 384-d vectors) it
        is faster than a tree and than scikit-learn's per-call validation overhead.
        """
        k = self.n_neighbors_
        if self.metric == "cosine":
            unit = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
            dist = 1.0 - unit @ self._unit_x.T
        else:
            sq = (x.astype(np.float64) ** 2).sum(axis=1, keepdims=True)
            dist = np.sqrt(np.maximum(sq - 2.0 * (x @ self.train_x_.T) + self._sq_norms, 0.0))
        if k < dist.shape[1]:
            index = smallest_k(dist, k)
        else:
            index = np.broadcast_to(np.arange(dist.shape[1]), dist.shape).copy()
        return np.take_along_axis(dist, index, axis=1), index

    def _predict_quality(
        self, queries: list[str], query_embeddings: np.ndarray | None
    ) -> np.ndarray:
        assert query_embeddings is not None
        x = self._project(np.asarray(query_embeddings, dtype=np.float32))
        if x.shape[1] != self.train_x_.shape[1]:
            raise ValueError(
                f"query embeddings have dimension {x.shape[1]} but the router was trained on {self.train_x_.shape[1]}"
            )
        distance, index = self._neighbours(x)
        if self.weights == "distance":
            w = 1.0 / (np.maximum(distance, 0.0) + 1e-6)
        else:
            w = np.ones_like(distance)
        w = w[:, None, :]  # (n, 1, k) @ (n, k, m): each query's weighted sums over its neighbours
        total = (w @ self._known_y[index])[:, 0, :]
        predicted = (w @ self._filled_y[index])[:, 0, :] / np.maximum(total, 1e-12)
        # A candidate none of the neighbours has a score for gets the candidate's global mean.
        return np.where(total > 0, predicted, self._global_mean)

    def _get_state(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        arrays = {"train_x": self.train_x_, "train_y": self.train_y_}
        if self.pca_components_ is not None and self.pca_mean_ is not None:
            arrays |= {"pca_mean": self.pca_mean_, "pca_components": self.pca_components_}
        return {}, arrays

    def _set_state(self, meta: dict[str, Any], arrays: dict[str, np.ndarray]) -> None:
        self.pca_mean_ = arrays.get("pca_mean")
        self.pca_components_ = arrays.get("pca_components")
        self._build_index(arrays["train_x"], arrays["train_y"])


def smallest_k(dist: np.ndarray, k: int) -> np.ndarray:
    """Column indices of each row's k smallest values (in no order); exact.

    `np.argpartition` over every column costs as much as the distance matrix itself, so
    first bound each row's k-th smallest by the k-th smallest of a quarter of its columns
    (an upper bound, since the quarter is a subset), keep the columns at or under it (a few
    times k of them), and partition only those.
    """
    n, width = dist.shape
    block = max(width // 4, 4 * k)
    if block >= width:
        return np.argpartition(dist, k - 1, axis=1)[:, :k]
    bound = np.partition(dist[:, :block], k - 1, axis=1)[:, k - 1]
    rows, cols = np.nonzero(dist <= bound[:, None])  # at least k per row
    counts = np.bincount(rows, minlength=n)
    if counts.min() < k:  # NaN distances: no bound holds
        return np.argpartition(dist, k - 1, axis=1)[:, :k]
    slot = np.arange(len(rows)) - np.repeat(np.cumsum(counts) - counts, counts)
    kept = np.full((n, int(counts.max())), np.inf, dtype=dist.dtype)
    kept[rows, slot] = dist[rows, cols]
    kept_cols = np.zeros(kept.shape, dtype=np.int64)
    kept_cols[rows, slot] = cols
    pick = np.argpartition(kept, k - 1, axis=1)[:, :k]
    return np.take_along_axis(kept_cols, pick, axis=1)
