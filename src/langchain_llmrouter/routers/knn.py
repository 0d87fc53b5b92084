"""kNN router: a candidate's expected quality is its mean score on the k nearest training queries.

Unlike LLMRouter's kNN classifier over "best model" labels (which breaks ties by
file order and cannot trade quality for cost), this predicts every candidate's
quality, so the shared cost policy applies; ``prior_count`` shrinks each neighbour mean toward
the candidate's overall mean, and ``fill_unknown: mf`` fills unknown scores from a matrix
factorisation, both for sparse routing data. The neighbours are found through
`langchain_llmrouter.routers.vector_index` (``index: exact`` by default; ``flat``, ``hnsw`` or
``ivf`` through FAISS for large stores), and labelled queries can be appended to a fitted
router with `KNNRouter.add_examples` (no refit).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
from pydantic import Field

from langchain_llmrouter.routers.base import BaseRouter, RouterParams
from langchain_llmrouter.routers.vector_index import (
    IndexedStoreMixin,
    VectorIndex,
    VectorIndexParams,
    smallest_k,
)

if TYPE_CHECKING:
    from langchain_core.embeddings import Embeddings

    from langchain_llmrouter.data import RoutingDataset

__all__ = ["KNNParams", "KNNRouter", "smallest_k"]


class KNNParams(RouterParams, VectorIndexParams):
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
    prior_count: float = Field(default=0.0, ge=0.0)
    """Shrinkage: each candidate's neighbour mean is pulled toward the candidate's mean over
    all training queries, as if this many more neighbours (each of the query's median
    neighbour weight) had scored that mean. 0: the plain neighbour mean. It matters when
    scores are sparse (routing data collected with ``calls.strategy: active``), where a few
    lucky scores of a weak candidate would otherwise make it look best."""
    fill_unknown: Literal["none", "mf"] = "none"
    """What an unknown (NaN) training score counts as. ``none``: nothing (a neighbourhood's
    mean is over its known scores). ``mf``: the prediction of a matrix factorisation fitted on
    the known scores at fit time (`fill_unknown_scores`), so that sparse routing data (from
    ``calls.strategy: active``) gives every neighbour a score for every candidate. Scores
    appended with `KNNRouter.add_examples` are kept as given."""


class KNNRouter(IndexedStoreMixin, BaseRouter):
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
        prior_count: float = 0.0,
        fill_unknown: Literal["none", "mf"] = "none",
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
        self.k = k
        self.weights = weights
        self.metric = metric
        self.dims = dims
        self.prior_count = prior_count
        self.fill_unknown = fill_unknown
        self.index = index
        self.hnsw_m = hnsw_m
        self.hnsw_ef_construction = hnsw_ef_construction
        self.hnsw_ef_search = hnsw_ef_search
        self.ivf_nlist = ivf_nlist
        self.ivf_nprobe = ivf_nprobe
        self.index_code = index_code

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
        self.index_ = VectorIndex.from_params(self, self.metric).build(self._project(x))
        scores = np.asarray(dataset.performance, dtype=np.float32)
        if self.fill_unknown == "mf" and np.isnan(scores).any():
            from langchain_llmrouter.routers.mf import fill_unknown_scores

            scores = fill_unknown_scores(dataset, query_embeddings).astype(np.float32)
        self._set_scores(scores)

    def _project(self, x: np.ndarray) -> np.ndarray:
        if self.pca_components_ is None:
            return x
        if x.shape[1] != self.pca_components_.shape[0]:
            raise ValueError(
                f"query embeddings have dimension {x.shape[1]} but the router was trained on "
                f"{self.pca_components_.shape[0]}"
            )
        return (x - self.pca_mean_) @ self.pca_components_

    def _set_scores(self, train_y: np.ndarray) -> None:
        """Keep the training scores (also on load and after `add_examples`)."""
        self.train_y_ = train_y
        self.n_neighbors_ = min(self.k, len(train_y))
        # Missing scores as 0 with a 0/1 mask, so a query's weighted mean is two products.
        self._known_y = (~np.isnan(train_y)).astype(np.float32)
        self._filled_y = np.where(np.isnan(train_y), 0.0, train_y).astype(np.float32)
        # A candidate with no score at all (sparse routing data) has mean 0.
        counts = self._known_y.sum(axis=0)
        self._global_mean = self._filled_y.sum(axis=0) / np.maximum(counts, 1.0)

    def _neighbours(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(distances, indices) of the k nearest training queries, through the index."""
        return self.index_.search(x, self.n_neighbors_, ordered=False)

    def _predict_quality(
        self, queries: list[str], query_embeddings: np.ndarray | None
    ) -> np.ndarray:
        assert query_embeddings is not None
        x = self._project(np.asarray(query_embeddings, dtype=np.float32))
        if x.shape[1] != self.index_.dim_:
            raise ValueError(
                f"query embeddings have dimension {x.shape[1]} but the router was trained on "
                f"{self.index_.dim_}"
            )
        distance, index = self._neighbours(x)
        if self.weights == "distance":
            w = 1.0 / (np.maximum(distance, 0.0) + 1e-6)
        else:
            w = np.ones_like(distance)
        missing = index < 0  # an approximate index found fewer than k
        if missing.any():
            w, index = np.where(missing, 0.0, w), np.where(missing, 0, index)
        wk = w[:, None, :]  # (n, 1, k) @ (n, k, m): each query's weighted sums over its neighbours
        total = (wk @ self._known_y[index])[:, 0, :]
        weighted = (wk @ self._filled_y[index])[:, 0, :]
        if self.prior_count > 0:
            # The median weight, so that an exact duplicate (weight 1e6) still decides.
            typical = np.nanmedian(np.where(missing, np.nan, w), axis=1, keepdims=True)
            prior = self.prior_count * np.nan_to_num(typical, nan=1.0)
            total, weighted = total + prior, weighted + prior * self._global_mean
        predicted = weighted / np.maximum(total, 1e-12)
        # A candidate none of the neighbours has a score for gets the candidate's global mean.
        return np.where(total > 0, predicted, self._global_mean)

    def add_examples(
        self, queries: Sequence[str] | np.ndarray, scores: np.ndarray | Sequence[Sequence[float]]
    ) -> KNNRouter:
        """Append labelled queries to the fitted store, with no refit; returns self.

        The index takes them as it is (exact and flat append, HNSW inserts, IVF adds to its
        trained lists; the PCA of ``dims`` is kept). Save the router afterwards to keep them.

        Args:
            queries: Query texts (embedded with the router's featuriser) or their embeddings,
                (n, dim) in the space the router was fitted on.
            scores: (n, n_candidates) scores in the order of ``candidates_``; NaN: unknown.
        """
        self._check_fitted()
        x, y = _examples(self, queries, scores, self.train_y_.shape[1])
        self.index_.add(self._project(x))
        self._set_scores(np.concatenate([self.train_y_, y]))
        return self

    def _get_state(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        meta, arrays = self._store_state()
        if self.pca_components_ is not None and self.pca_mean_ is not None:
            arrays |= {"pca_mean": self.pca_mean_, "pca_components": self.pca_components_}
        return meta, arrays

    def _set_state(self, meta: dict[str, Any], arrays: dict[str, np.ndarray]) -> None:
        self.pca_mean_ = arrays.get("pca_mean")
        self.pca_components_ = arrays.get("pca_components")
        self._set_scores(arrays["train_y"])
        self._restore_index(meta, arrays, self.metric)


def _examples(
    router: BaseRouter, queries: Sequence[str] | np.ndarray, scores: Any, n_candidates: int
) -> tuple[np.ndarray, np.ndarray]:
    """(embeddings, scores) of labelled queries for `add_examples`, checked."""
    if isinstance(queries, np.ndarray):
        x = np.asarray(queries, dtype=np.float32)
    else:
        x = np.asarray(router.embed_queries(list(queries)), dtype=np.float32)
    y = np.asarray(scores, dtype=np.float32)
    if x.ndim != 2 or y.ndim != 2 or len(x) != len(y):
        raise ValueError(
            f"add_examples: queries give shape {x.shape} and scores {y.shape}; expected (n, dim) "
            "embeddings (or n texts) and (n, n_candidates) scores"
        )
    if y.shape[1] != n_candidates:
        raise ValueError(
            f"add_examples: scores have {y.shape[1]} columns; the router was fitted on "
            f"{n_candidates} candidates ({', '.join(router.candidates_[:n_candidates])})"
        )
    return x, y
