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


class KNNRouter(BaseRouter):
    """Predicts each candidate's quality from the k nearest training queries (embedding space)."""

    name = "knnrouter"
    Params = KNNParams
    uses_embeddings = True

    def __init__(
        self,
        *,
        k: int = 50,
        weights: Literal["uniform", "distance"] = "distance",
        metric: Literal["cosine", "l2"] = "cosine",
        cost_weight: float = 0.0,
        budget: float | None = None,
        embeddings: Embeddings | None = None,
    ) -> None:
        super().__init__(cost_weight=cost_weight, budget=budget, embeddings=embeddings)
        self.k = k
        self.weights = weights
        self.metric = metric

    def _fit(self, dataset: RoutingDataset | None, query_embeddings: np.ndarray | None) -> None:
        assert dataset is not None and query_embeddings is not None
        self._build_index(
            np.asarray(query_embeddings, dtype=np.float32),
            np.asarray(dataset.performance, dtype=np.float32),
        )

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
            index = np.argpartition(dist, k - 1, axis=1)[:, :k]
        else:
            index = np.broadcast_to(np.arange(dist.shape[1]), dist.shape).copy()
        return np.take_along_axis(dist, index, axis=1), index

    def _predict_quality(
        self, queries: list[str], query_embeddings: np.ndarray | None
    ) -> np.ndarray:
        assert query_embeddings is not None
        x = np.asarray(query_embeddings, dtype=np.float32)
        if x.shape[1] != self.train_x_.shape[1]:
            raise ValueError(
                f"query embeddings have dimension {x.shape[1]} but the router was trained on {self.train_x_.shape[1]}"
            )
        distance, index = self._neighbours(x)
        if self.weights == "distance":
            w = 1.0 / (np.maximum(distance, 0.0) + 1e-6)
        else:
            w = np.ones_like(distance)
        y = self.train_y_[index]  # (n, k, m)
        known = ~np.isnan(y)
        w3 = w[:, :, None] * known
        total = w3.sum(axis=1)
        predicted = (np.nan_to_num(y) * w3).sum(axis=1) / np.maximum(total, 1e-12)
        # A candidate none of the neighbours has a score for gets the candidate's global mean.
        return np.where(total > 0, predicted, self._global_mean)

    def _get_state(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        return {}, {"train_x": self.train_x_, "train_y": self.train_y_}

    def _set_state(self, meta: dict[str, Any], arrays: dict[str, np.ndarray]) -> None:
        self._build_index(arrays["train_x"], arrays["train_y"])
