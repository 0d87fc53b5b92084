"""SVM router: one calibrated support-vector classifier per candidate over query features.

For each candidate an SVM (RBF `SVC` or `LinearSVC`) learns whether it answers a query well,
and Platt or isotonic calibration on out-of-fold decision values turns its decision value into
the expected quality. The router is saved as arrays and predicts in numpy, so loading never
unpickles anything. The method, where it departs from LLMRouter's ``svmrouter``, and its
benchmark figures: ``docs/routers/svm.md``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

import numpy as np
from pydantic import Field, field_validator

from langchain_llmrouter.routers.base import BaseRouter, RouterParams
from langchain_llmrouter.routers.features import QueryFeaturizer

if TYPE_CHECKING:
    from langchain_core.embeddings import Embeddings

    from langchain_llmrouter.data import RoutingDataset


class SVMParams(RouterParams):
    kernel: Literal["rbf", "linear"] = "rbf"
    """``rbf``: `SVC` with an RBF kernel; ``linear``: `LinearSVC`."""
    C: float = Field(default=1.0, gt=0.0)
    """Inverse regularisation strength."""
    gamma: float | Literal["scale"] = "scale"
    """RBF width; ``scale`` is 1 / (n_features × feature variance), as in scikit-learn."""
    threshold: float = Field(default=0.5, gt=0.0, le=1.0)
    """A query counts as answered well by a candidate when its score is >= this."""
    calibration: Literal["sigmoid", "isotonic"] = "sigmoid"
    """Platt scaling or isotonic regression of out-of-fold decision values."""
    calibration_folds: int = Field(default=3, ge=2, le=20)
    """Folds of the shuffled stratified split that produces the out-of-fold decision values."""
    features: Literal["embedding", "embedding+tfidf"] = "embedding"
    """Query features: the MiniLM embedding, or the embedding plus TF-IDF word 1-2-grams."""
    random_state: int = 0
    """Seed of the calibration split (and of `LinearSVC`)."""

    @field_validator("gamma")
    @classmethod
    def _positive_gamma(cls, value: float | str) -> float | str:
        if not isinstance(value, str) and value <= 0:
            raise ValueError(f"gamma must be > 0 or 'scale', got {value}")
        return value


class SVMRouter(BaseRouter):
    """Calibrated per-candidate SVMs: P(candidate scores >= threshold | query features)."""

    name = "svmrouter"
    Params = SVMParams
    uses_embeddings = True

    def __init__(
        self,
        *,
        kernel: Literal["rbf", "linear"] = "rbf",
        C: float = 1.0,
        gamma: float | Literal["scale"] = "scale",
        threshold: float = 0.5,
        calibration: Literal["sigmoid", "isotonic"] = "sigmoid",
        calibration_folds: int = 3,
        features: Literal["embedding", "embedding+tfidf"] = "embedding",
        random_state: int = 0,
        cost_weight: float = 0.0,
        budget: float | None = None,
        embeddings: Embeddings | None = None,
    ) -> None:
        super().__init__(cost_weight=cost_weight, budget=budget, embeddings=embeddings)
        self.kernel = kernel
        self.C = C
        self.gamma = gamma
        self.threshold = threshold
        self.calibration = calibration
        self.calibration_folds = calibration_folds
        self.features = features
        self.random_state = random_state

    # --- fitting --------------------------------------------------------------------------

    def _fit(self, dataset: RoutingDataset | None, query_embeddings: np.ndarray | None) -> None:
        assert dataset is not None and query_embeddings is not None
        self.featurizer_ = QueryFeaturizer(tfidf=self.features == "embedding+tfidf")
        x = self.featurizer_.fit_transform(dataset.queries, query_embeddings).astype(np.float64)
        performance = np.asarray(dataset.performance, dtype=np.float64)
        n_candidates = performance.shape[1]
        gram = None
        if self.kernel == "rbf":
            variance = float(x.var())
            self.gamma_ = (
                1.0 / (x.shape[1] * variance if variance > 0 else 1.0)
                if self.gamma == "scale"
                else float(self.gamma)
            )
            gram = _rbf(x, x, self.gamma_)
        # Per candidate: its scored rows, and the fitted model or a constant probability.
        self.estimators_: list[Any] = []
        self.rows_: list[np.ndarray] = []
        constant = np.full(n_candidates, np.nan)
        for j in range(n_candidates):
            rows = np.flatnonzero(~np.isnan(performance[:, j]))
            labels = (performance[rows, j] >= self.threshold).astype(np.int64)
            self.rows_.append(rows)
            if len(rows) == 0:
                self.estimators_.append(None)
            elif np.bincount(labels, minlength=2).min() < self.calibration_folds:
                # One class only (or too few of the other to calibrate): predict its rate.
                constant[j] = labels.mean()
                self.estimators_.append(None)
            elif gram is not None:
                k = gram if len(rows) == len(x) else gram[np.ix_(rows, rows)]
                self.estimators_.append(self._calibrated(k, labels))
            else:
                self.estimators_.append(self._calibrated(x[rows], labels))
        # A candidate without any score gets the mean success rate over all known scores.
        known = performance[~np.isnan(performance)]
        overall = float((known >= self.threshold).mean()) if known.size else 0.5
        unscored = np.array([len(r) == 0 for r in self.rows_])
        self.constant_ = np.where(unscored, overall, constant)
        self._export(x)

    def _calibrated(self, x_or_gram: np.ndarray, labels: np.ndarray) -> Any:
        """Fit one candidate's SVM and its calibration on out-of-fold decision values."""
        from sklearn import calibration as sk_cal
        from sklearn import model_selection as sk_ms
        from sklearn import svm as sk_svm

        base: Any
        if self.kernel == "rbf":
            base = sk_svm.SVC(C=self.C, kernel="precomputed", cache_size=500)
        else:
            base = sk_svm.LinearSVC(C=self.C, random_state=self.random_state, max_iter=5000)
        split = sk_ms.StratifiedKFold(
            self.calibration_folds, shuffle=True, random_state=self.random_state
        )
        model = sk_cal.CalibratedClassifierCV(
            base, method=self.calibration, cv=split, ensemble=False
        )
        return model.fit(x_or_gram, labels)

    def _export(self, x: np.ndarray) -> None:
        """Turn the fitted scikit-learn models into arrays (what `save` writes)."""
        n_candidates = len(self.estimators_)
        fitted = [j for j, e in enumerate(self.estimators_) if e is not None]
        svms = {j: self.estimators_[j].calibrated_classifiers_[0].estimator for j in fitted}
        self.intercept_ = np.zeros(n_candidates)
        for j, svc in svms.items():
            self.intercept_[j] = float(svc.intercept_[0])
        if self.kernel == "rbf":
            # The SVC of candidate j saw only its scored rows: map support back to training rows.
            support = {j: self.rows_[j][svc.support_] for j, svc in svms.items()}
            union = np.unique(np.concatenate([np.zeros(0, dtype=np.int64), *support.values()]))
            self.support_vectors_ = x[union]
            self._sv_sq_norms = _sq_norms(self.support_vectors_)
            self.dual_coef_ = np.zeros((len(union), n_candidates))
            for j, svc in svms.items():
                self.dual_coef_[np.searchsorted(union, support[j]), j] = svc.dual_coef_[0]
        else:
            self.coef_ = np.zeros((x.shape[1], n_candidates))
            for j, svc in svms.items():
                self.coef_[:, j] = svc.coef_[0]
        self.calibration_ = np.full((n_candidates, 2), np.nan)
        self.isotonic_: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        for j in fitted:
            calibrator = self.estimators_[j].calibrated_classifiers_[0].calibrators[0]
            if self.calibration == "sigmoid":
                self.calibration_[j] = (float(calibrator.a_), float(calibrator.b_))
            else:
                self.isotonic_[j] = (
                    np.asarray(calibrator.X_thresholds_, dtype=np.float64),
                    np.asarray(calibrator.y_thresholds_, dtype=np.float64),
                )

    # --- prediction -----------------------------------------------------------------------

    def decision_function(self, features: np.ndarray) -> np.ndarray:
        """Each candidate's SVM decision value, shape (n, n_candidates), from featurised queries."""
        x = np.asarray(features, dtype=np.float64)
        if self.kernel == "rbf":
            # The support vectors' squared norms are computed once: per query they cost more
            # than the kernel row itself.
            kernel = _rbf(x, self.support_vectors_, self.gamma_, b_sq_norms=self._sv_sq_norms)
            return kernel @ self.dual_coef_ + self.intercept_
        return x @ self.coef_ + self.intercept_

    def _predict_quality(
        self, queries: list[str], query_embeddings: np.ndarray | None
    ) -> np.ndarray:
        assert query_embeddings is not None
        x = self.featurizer_.transform(queries, query_embeddings)
        width = self.support_vectors_.shape[1] if self.kernel == "rbf" else self.coef_.shape[0]
        if x.shape[1] != width:
            raise ValueError(
                f"query features have dimension {x.shape[1]} but the router was trained on {width}"
            )
        decision = self.decision_function(x)
        quality = np.tile(self.constant_, (len(x), 1))
        for j in range(len(self.candidates_)):
            if j in self.isotonic_:
                thresholds, values = self.isotonic_[j]
                quality[:, j] = np.interp(decision[:, j], thresholds, values)
            elif not np.isnan(self.calibration_[j, 0]):
                a, b = self.calibration_[j]
                quality[:, j] = 1.0 / (1.0 + np.exp(a * decision[:, j] + b))
        return quality

    # --- persistence ----------------------------------------------------------------------

    def _get_state(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        meta, arrays = self.featurizer_.get_state()
        arrays = {f"features.{k}": v for k, v in arrays.items()}
        arrays.update(
            intercept=self.intercept_, constant=self.constant_, calibration=self.calibration_
        )
        if self.kernel == "rbf":
            arrays["support_vectors"] = self.support_vectors_
            arrays["dual_coef"] = self.dual_coef_
            arrays["gamma"] = np.array([self.gamma_])
        else:
            arrays["coef"] = self.coef_
        for j, (thresholds, values) in self.isotonic_.items():
            arrays[f"isotonic{j}.x"], arrays[f"isotonic{j}.y"] = thresholds, values
        return {"features": meta, "isotonic": sorted(self.isotonic_)}, arrays

    def _set_state(self, meta: dict[str, Any], arrays: dict[str, np.ndarray]) -> None:
        self.featurizer_ = QueryFeaturizer.from_state(
            meta["features"],
            {
                k.removeprefix("features."): v
                for k, v in arrays.items()
                if k.startswith("features.")
            },
        )
        self.intercept_ = arrays["intercept"]
        self.constant_ = arrays["constant"]
        self.calibration_ = arrays["calibration"]
        if self.kernel == "rbf":
            self.support_vectors_ = arrays["support_vectors"]
            self._sv_sq_norms = _sq_norms(self.support_vectors_)
            self.dual_coef_ = arrays["dual_coef"]
            self.gamma_ = float(arrays["gamma"][0])
        else:
            self.coef_ = arrays["coef"]
        self.isotonic_ = {
            int(j): (arrays[f"isotonic{j}.x"], arrays[f"isotonic{j}.y"]) for j in meta["isotonic"]
        }


def _sq_norms(x: np.ndarray) -> np.ndarray:
    """Squared l2 norm of every row, in float64."""
    x = np.asarray(x, dtype=np.float64)
    return (x**2).sum(axis=1)


def _rbf(
    a: np.ndarray, b: np.ndarray, gamma: float, *, b_sq_norms: np.ndarray | None = None
) -> np.ndarray:
    """``exp(-gamma * ||a_i - b_k||^2)`` for every pair of rows, in float64.

    ``b_sq_norms``: `_sq_norms` of ``b``, if already known.
    """
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    b_sq = _sq_norms(b) if b_sq_norms is None else b_sq_norms
    sq = _sq_norms(a)[:, None] - 2.0 * (a @ b.T) + b_sq[None, :]
    return np.exp(-gamma * np.maximum(sq, 0.0))
