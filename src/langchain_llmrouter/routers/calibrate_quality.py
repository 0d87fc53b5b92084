"""Post-hoc calibration of a router's predicted qualities (isotonic regression).

`calibrate_qualities` refits copies of a router on K folds of its training data, predicts
each held-out fold (out-of-fold predictions: never the test file, never a query the copy
trained on), and fits scikit-learn's ``IsotonicRegression`` from those predictions to the
observed scores, one map per candidate (or one ``pooled`` map). The map is kept as its
thresholds and applied with ``np.interp`` (what the isotonic model's ``predict`` does,
clipping outside the fitted range) plus `TIE_BREAK` times the raw prediction, so a flat step
keeps the raw order. The router stores it as ``quality_calibration_``:
`BaseRouter.predict_quality` applies it, and ``save`` writes the thresholds to
``arrays.safetensors`` (no pickle). See ``docs/concepts/calibrated-qualities.md``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np

if TYPE_CHECKING:
    from langchain_llmrouter.data import RoutingDataset
    from langchain_llmrouter.routers.base import BaseRouter

__all__ = [
    "QualityCalibration",
    "calibrate_qualities",
    "fit_quality_calibration",
    "out_of_fold_predictions",
]

R = TypeVar("R", bound="BaseRouter")
ARRAY_PREFIX = "_quality_calibration"
"""Names of the maps' arrays in ``arrays.safetensors`` start with this."""
TIE_BREAK = 1e-6
"""Weight of the raw prediction added to the calibrated one: candidates that an isotonic
step maps to the same quality keep their raw order (a pooled map then never changes the
choice at ``cost_weight`` 0), at a cost of at most 1e-6 in calibration."""


@dataclass(frozen=True, eq=False)
class QualityCalibration:
    """Monotone maps from predicted to calibrated quality.

    Attributes:
        x: Per map, the increasing predicted-quality thresholds.
        y: Per map, the calibrated quality at each threshold (non-decreasing).
        pooled: One map for every candidate (else map j is candidate j's).
        n_splits: Folds of the out-of-fold predictions it was fitted on.
    """

    x: list[np.ndarray]
    y: list[np.ndarray]
    pooled: bool
    n_splits: int

    def apply(self, predicted: np.ndarray) -> np.ndarray:
        """Calibrated qualities (plus `TIE_BREAK` x raw), same shape; NaN stays NaN."""
        pred = np.asarray(predicted, dtype=np.float64)
        out = np.array(pred, copy=True)
        for j in range(pred.shape[1]):
            k = 0 if self.pooled else j
            col = pred[:, j]
            known = ~np.isnan(col)
            out[known, j] = np.interp(col[known], self.x[k], self.y[k]) + TIE_BREAK * col[known]
        return out

    def to_state(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        """(JSON-able settings, named float64 arrays) for ``router.json`` and safetensors."""
        arrays: dict[str, np.ndarray] = {}
        for k, (x, y) in enumerate(zip(self.x, self.y, strict=True)):
            arrays[f"{ARRAY_PREFIX}.x.{k}"] = np.asarray(x, dtype=np.float64)
            arrays[f"{ARRAY_PREFIX}.y.{k}"] = np.asarray(y, dtype=np.float64)
        meta = {"method": "isotonic", "pooled": self.pooled, "n_splits": self.n_splits}
        return meta, arrays

    @classmethod
    def from_state(
        cls, meta: dict[str, Any], arrays: dict[str, np.ndarray], n_candidates: int
    ) -> QualityCalibration:
        """Rebuild from `to_state`'s output, popping its arrays from ``arrays``.

        Raises:
            ValueError: another method, missing maps, or thresholds that are not monotone.
        """
        if meta.get("method") != "isotonic":
            raise ValueError(f"unknown quality calibration method {meta.get('method')!r}")
        pooled = bool(meta.get("pooled", False))
        xs, ys = [], []
        for k in range(1 if pooled else n_candidates):
            x = np.asarray(arrays.pop(f"{ARRAY_PREFIX}.x.{k}"), dtype=np.float64)
            y = np.asarray(arrays.pop(f"{ARRAY_PREFIX}.y.{k}"), dtype=np.float64)
            if x.ndim != 1 or x.shape != y.shape or x.size == 0:
                raise ValueError(f"quality calibration map {k} has shapes {x.shape}, {y.shape}")
            if (np.diff(x) < 0).any() or (np.diff(y) < 0).any() or not np.isfinite(y).all():
                raise ValueError(f"quality calibration map {k} is not monotone")
            xs.append(x)
            ys.append(y)
        return cls(x=xs, y=ys, pooled=pooled, n_splits=int(meta.get("n_splits", 0)))


def out_of_fold_predictions(
    router: BaseRouter,
    dataset: RoutingDataset,
    *,
    query_embeddings: np.ndarray | None = None,
    n_splits: int = 5,
    random_state: int = 0,
) -> np.ndarray:
    """Each training query's predicted qualities from a copy of ``router`` that did not see it.

    A copy with the same hyperparameters and embedder is fitted on the other folds (K-fold,
    shuffled with ``random_state``). An untrained router (a baseline) learns nothing from
    the data, so its own predictions are used.

    Returns:
        (len(dataset), n_candidates) predicted qualities, uncalibrated.
    """
    from sklearn.model_selection import KFold

    if router.uses_embeddings and query_embeddings is None:
        from langchain_llmrouter.embeddings import embed_texts

        query_embeddings = embed_texts(dataset.queries, router.embeddings)
    if not router.trainable:
        clone = type(router).from_params(router.get_params(), embeddings=router.embeddings)
        clone.fit_candidates(dataset.candidate_info())
        return clone.predict_quality(dataset.queries, query_embeddings=query_embeddings)
    if n_splits < 2 or n_splits > len(dataset):
        raise ValueError(f"n_splits must be in [2, {len(dataset)}], got {n_splits}")
    oof = np.full((len(dataset), len(dataset.candidates)), np.nan)
    folds = KFold(n_splits=n_splits, shuffle=True, random_state=random_state)
    for train_idx, held_idx in folds.split(np.arange(len(dataset))):
        clone = type(router).from_params(router.get_params(), embeddings=router.embeddings)
        x_train = None if query_embeddings is None else query_embeddings[train_idx]
        x_held = None if query_embeddings is None else query_embeddings[held_idx]
        clone.fit(dataset.subset(train_idx), query_embeddings=x_train)
        held = dataset.subset(held_idx)
        oof[held_idx] = clone.predict_quality(held.queries, query_embeddings=x_held)
    return oof


def fit_quality_calibration(
    predicted: np.ndarray, performance: np.ndarray, *, pooled: bool = False, n_splits: int = 0
) -> QualityCalibration:
    """Isotonic maps from (out-of-fold) predictions to observed scores.

    Args:
        predicted: (n, m) predicted qualities; pairs with a NaN on either side are left out.
        performance: (n, m) observed scores.
        pooled: One map for all candidates instead of one per candidate.
        n_splits: Recorded with the maps (the folds the predictions came from).
    """
    from sklearn.isotonic import IsotonicRegression

    pred = np.asarray(predicted, dtype=np.float64)
    perf = np.asarray(performance, dtype=np.float64)
    if pred.shape != perf.shape or pred.ndim != 2:
        raise ValueError(f"predicted {pred.shape} and performance {perf.shape} must match (n, m)")
    known = np.isfinite(pred) & ~np.isnan(perf)
    groups = [np.ones(pred.shape[1], dtype=bool)] if pooled else list(np.eye(pred.shape[1]) > 0)
    xs, ys = [], []
    for columns in groups:
        mask = known & columns[None, :]
        if not mask.any():  # a candidate with no scored pair: leave it as predicted
            xs.append(np.array([0.0, 1.0]))
            ys.append(np.array([0.0, 1.0]))
            continue
        iso = IsotonicRegression(out_of_bounds="clip").fit(pred[mask], perf[mask])
        xs.append(np.asarray(iso.X_thresholds_, dtype=np.float64))
        ys.append(np.asarray(iso.y_thresholds_, dtype=np.float64))
    return QualityCalibration(x=xs, y=ys, pooled=pooled, n_splits=n_splits)


def calibrate_qualities(
    router: R,
    dataset: RoutingDataset,
    *,
    query_embeddings: np.ndarray | None = None,
    n_splits: int = 5,
    pooled: bool = True,
    random_state: int = 0,
) -> R:
    """Fit ``router``'s quality calibration on out-of-fold predictions and attach it.

    ``router`` must already be fitted on ``dataset`` (its own fit is left as is); the
    calibration it gets is saved with it and applied by every later prediction.

    Args:
        router: A fitted single-round router.
        dataset: Its training data (never the test file).
        query_embeddings: Precomputed embeddings of ``dataset.queries``.
        n_splits: Folds for the out-of-fold predictions.
        pooled: One map for all candidates (the default: it keeps each query's ranking of
            the candidates, so only the trade against cost changes), or one per candidate
            (also corrects each candidate's own bias, which may reorder them).
        random_state: Seed of the fold shuffle.

    Returns:
        ``router``, with ``quality_calibration_`` set.
    """
    router._check_fitted()
    if list(router.candidates_) != list(dataset.candidates):
        raise ValueError("calibrate on the data the router was fitted on (same candidates)")
    oof = out_of_fold_predictions(
        router,
        dataset,
        query_embeddings=query_embeddings,
        n_splits=n_splits,
        random_state=random_state,
    )
    router.quality_calibration_ = fit_quality_calibration(
        oof, dataset.performance, pooled=pooled, n_splits=n_splits
    )
    return router
