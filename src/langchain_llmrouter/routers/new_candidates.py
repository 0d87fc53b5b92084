"""Add a candidate to a fitted single-round router from its scores on a few queries.

`add_candidate` (also ``router.add_candidate``) fits, on at most about 50 answered queries, a
ridge regression from what the router already predicts for its other candidates on a query
(plus, optionally, the query embedding's first principal components) to the new candidate's
score, shrunk toward its mean score (the penalty is chosen by leave-one-out error). The
router's `predict_quality` then gains one column, its costs come from the candidate's prices,
and the cost policy applies as usual. Nothing is refitted; the maps are saved with the router
(arrays in ``arrays.safetensors``, no pickle). Graph and personalised routers are refused (the
personalised ones have ``add_candidates`` of their own); attach a quality calibration after
adding, not before. See benchmarks/new_candidate.py for how close this comes to a full refit.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from langchain_llmrouter.candidates import DEFAULT_OUTPUT_TOKENS, LLMCandidate

if TYPE_CHECKING:
    from langchain_llmrouter.data import RoutingDataset
    from langchain_llmrouter.routers.base import BaseRouter
    from langchain_llmrouter.routers.estimator import RouterEstimator

__all__ = ["FEW_ANSWERS", "AddedCandidates", "CandidateMap", "add_candidate"]

FEW_ANSWERS = 50
"""The method is meant for at most this many answers (more are accepted: refit instead)."""
ARRAY_PREFIX = "_new_candidates"
"""Names of the added candidates' arrays in ``arrays.safetensors`` start with this."""
ALPHAS = (0.1, 0.3, 1.0, 3.0, 10.0, 30.0, 100.0, 300.0, 1000.0, 1e4)
"""Ridge penalties tried (on standardised features; the largest is nearly the mean score)."""
EASY_PENALTY = 1.0
"""Ridge penalty on the first feature, the mean of the base predictions: one well-determined
weight that carries how easy a query is (it also corrects a mean score read off few queries)."""
_REFUSED = ("GraphRouter", "PersonalRouter")


@dataclass(frozen=True, eq=False)
class CandidateMap:
    """One added candidate's map from the base candidates' predictions to its quality.

    Attributes:
        intercept: The mean score on the answered queries (where the ridge shrinks to),
            less ``caution`` standard errors.
        mean: Feature means on the answered queries, shape (d,).
        scale: Feature standard deviations (1 where constant), shape (d,).
        coef: Ridge weights on the standardised features, shape (d,).
        low: Lowest prediction (the lowest observed score).
        high: Highest prediction (the highest observed score).
        alpha: The ridge penalty chosen.
        n_answers: Answered queries it was fitted on.
        pca_mean: Embedding mean for the principal components (empty when none).
        pca_components: (p, embedding dims) components (p may be 0).
    """

    intercept: float
    mean: np.ndarray
    scale: np.ndarray
    coef: np.ndarray
    low: float
    high: float
    alpha: float
    n_answers: int
    pca_mean: np.ndarray = field(default_factory=lambda: np.zeros(0))
    pca_components: np.ndarray = field(default_factory=lambda: np.zeros((0, 0)))

    def features(self, base: np.ndarray, embeddings: np.ndarray | None) -> np.ndarray:
        """The raw features: the mean base prediction (how easy the query is), the base
        predictions, then the principal components if any."""
        easy = np.nanmean(base, axis=1, keepdims=True) if base.shape[1] else base[:, :0]
        if len(self.pca_components) == 0:
            return np.hstack([easy, base])
        assert embeddings is not None
        pcs = (np.asarray(embeddings, dtype=np.float64) - self.pca_mean) @ self.pca_components.T
        return np.hstack([easy, base, pcs])

    def predict(self, base: np.ndarray, embeddings: np.ndarray | None) -> np.ndarray:
        """Predicted quality, shape (n,), from the base predictions (n, n_base)."""
        x = (self.features(base, embeddings) - self.mean) / self.scale
        known = np.isfinite(x).all(axis=1)
        out = np.full(len(x), self.intercept)
        out[known] = self.intercept + x[known] @ self.coef
        return np.clip(out, self.low, self.high)


@dataclass(eq=False)
class AddedCandidates:
    """The candidates added after fitting, after the router's ``n_base`` own ones."""

    n_base: int
    names: list[str]
    maps: list[CandidateMap]

    def predict(
        self, router: BaseRouter, queries: list[str], query_embeddings: np.ndarray | None
    ) -> np.ndarray:
        """The router's predictions with one column more per added candidate."""
        if list(router.candidates_[self.n_base :]) != self.names:  # refitted since
            return np.asarray(router._predict_quality(queries, query_embeddings), dtype=float)
        base = _base_predictions(router, self.n_base, queries, query_embeddings)
        extra = [m.predict(base, query_embeddings) for m in self.maps]
        return np.column_stack([base, *extra]) if extra else base

    def to_state(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        """(JSON-able settings, named float64 arrays) for ``router.json`` and safetensors."""
        arrays: dict[str, np.ndarray] = {}
        models = []
        for i, m in enumerate(self.maps):
            for key in ("mean", "scale", "coef", "pca_mean", "pca_components"):
                arrays[f"{ARRAY_PREFIX}.{i}.{key}"] = np.asarray(getattr(m, key), np.float64)
            models.append(
                {
                    "intercept": m.intercept,
                    "low": m.low,
                    "high": m.high,
                    "alpha": m.alpha,
                    "n_answers": m.n_answers,
                }
            )
        return {"method": "ridge", "n_base": self.n_base, "names": self.names, "models": models}, (
            arrays
        )

    @classmethod
    def from_state(
        cls, meta: dict[str, Any], arrays: dict[str, np.ndarray], n_candidates: int
    ) -> AddedCandidates:
        """Rebuild from `to_state`'s output, popping its arrays from ``arrays``.

        Raises:
            ValueError: another method, or maps that do not fit the candidates.
        """
        if meta.get("method") != "ridge":
            raise ValueError(f"unknown added-candidate method {meta.get('method')!r}")
        n_base, names = int(meta["n_base"]), [str(n) for n in meta["names"]]
        models = list(meta["models"])
        if n_base + len(names) != n_candidates or len(models) != len(names):
            raise ValueError("the added candidates do not match the saved candidates")
        maps = []
        for i, settings in enumerate(models):
            got = {
                key: np.asarray(arrays.pop(f"{ARRAY_PREFIX}.{i}.{key}"), np.float64)
                for key in ("mean", "scale", "coef", "pca_mean", "pca_components")
            }
            d = 1 + n_base + len(got["pca_components"])
            if any(got[k].shape != (d,) for k in ("mean", "scale", "coef")):
                raise ValueError(f"added candidate {names[i]!r}: maps of the wrong shape")
            maps.append(
                CandidateMap(
                    intercept=float(settings["intercept"]),
                    low=float(settings["low"]),
                    high=float(settings["high"]),
                    alpha=float(settings["alpha"]),
                    n_answers=int(settings["n_answers"]),
                    **got,
                )
            )
        return cls(n_base=n_base, names=names, maps=maps)


def restore_added_candidates(
    router: RouterEstimator,
    state: dict[str, Any],
    meta: dict[str, Any],
    arrays: dict[str, np.ndarray],
) -> None:
    """Load hook: restore the added candidates, and the router's own state on its base
    candidates (its ``_set_state`` sees only those, as at fit time)."""
    added = AddedCandidates.from_state(meta, arrays, len(router.candidates_))
    full, names = _candidate_arrays(router), list(router.candidates_)
    _set_candidate_arrays(router, {k: v[: added.n_base] for k, v in full.items()})
    router.candidates_ = names[: added.n_base]
    try:
        router._set_state(state, arrays)
    finally:
        _set_candidate_arrays(router, full)
        router.candidates_ = names
    router.new_candidates_ = added


def add_candidate(
    router: BaseRouter,
    candidate: LLMCandidate,
    answers: RoutingDataset | tuple[Sequence[str], Sequence[float] | np.ndarray],
    *,
    query_embeddings: np.ndarray | None = None,
    n_components: int = 0,
    caution: float = 1.0,
) -> BaseRouter:
    """Add ``candidate`` to a fitted single-round router from its scores on a few queries.

    Args:
        router: A fitted `BaseRouter` (not a graph or personalised router).
        candidate: The new candidate (its prices and size give its costs).
        answers: Its scores: a `RoutingDataset` with a column named ``candidate.name`` (or
            a single column), or ``(queries, scores)``. Meant for at most `FEW_ANSWERS`
            (about 50) queries; more are accepted, but refitting is then the better tool.
            NaN scores are skipped.
        query_embeddings: Embeddings of the answered queries (computed when needed).
        n_components: Principal components of the answered queries' embeddings added as
            features (0: the other candidates' predictions only; needs an embedding router).
        caution: Standard errors of its mean score taken off every prediction, so that a
            candidate known from few answers wins only where it is clearly better (in
            benchmarks/new_candidate.py, 1 came closer to a full refit than 0).

    Returns:
        The router, changed in place.

    Raises:
        TypeError: a graph or personalised router.
        ValueError: a name already a candidate, no finite score, a quality calibration
            already attached, or shapes that do not match.
    """
    router._check_fitted()
    kinds = {c.__name__ for c in type(router).__mro__}
    if kinds & set(_REFUSED) or getattr(router, "graph_router", False):
        hint = " (it has add_candidates of its own)" if hasattr(router, "add_candidates") else ""
        raise TypeError(f"add_candidate does not apply to {router.name}{hint}")
    if candidate.name in router.candidates_:
        raise ValueError(f"{candidate.name!r} is already a candidate of this router")
    if getattr(router, "quality_calibration_", None) is not None:
        raise ValueError(
            "this router has a quality calibration attached: add candidates first, then calibrate"
        )
    queries, scores = _answers(candidate.name, answers)
    if query_embeddings is not None and len(query_embeddings) != len(queries):
        raise ValueError(
            f"query_embeddings has {len(query_embeddings)} rows for {len(queries)} queries"
        )
    keep = np.flatnonzero(np.isfinite(scores))
    if len(keep) == 0:
        raise ValueError(f"no finite score for {candidate.name!r} among the answers")
    queries, scores = [queries[i] for i in keep], scores[keep]
    if query_embeddings is not None:
        query_embeddings = np.asarray(query_embeddings, dtype=np.float64)[keep]
    elif router.uses_embeddings:
        query_embeddings = router.embed_queries(queries)
    if n_components and query_embeddings is None:
        raise ValueError(f"n_components needs query embeddings, which {router.name} does not use")
    added = getattr(router, "new_candidates_", None)
    if added is None or list(router.candidates_[added.n_base :]) != added.names:
        added = AddedCandidates(n_base=len(router.candidates_), names=[], maps=[])
    base = _base_predictions(router, added.n_base, queries, query_embeddings)
    fitted = fit_map(base, scores, query_embeddings, n_components=n_components, caution=caution)
    arrays = _candidate_arrays(router)
    size = candidate.size_billions
    new = {
        "input_price_": candidate.input_price,
        "output_price_": candidate.output_price,
        "sizes_": np.nan if size is None else size,
        "output_tokens_": float(DEFAULT_OUTPUT_TOKENS),
    }
    _set_candidate_arrays(router, {k: np.append(v, new[k]) for k, v in arrays.items()})
    router.candidates_ = [*router.candidates_, candidate.name]
    router.new_candidates_ = AddedCandidates(
        added.n_base, [*added.names, candidate.name], [*added.maps, fitted]
    )
    return router


def fit_map(
    base: np.ndarray,
    scores: np.ndarray,
    embeddings: np.ndarray | None = None,
    *,
    n_components: int = 0,
    caution: float = 1.0,
) -> CandidateMap:
    """Ridge from base predictions (and principal components) to scores, penalty by LOO,
    lowered by ``caution`` standard errors of the mean score."""
    y = np.asarray(scores, dtype=np.float64)
    pca_mean, components = np.zeros(0), np.zeros((0, 0))
    if n_components and embeddings is not None:
        emb = np.asarray(embeddings, dtype=np.float64)
        pca_mean = emb.mean(axis=0)
        _, _, vt = np.linalg.svd(emb - pca_mean, full_matrices=False)
        components = vt[: min(n_components, len(vt))]
    shell = CandidateMap(0.0, np.zeros(0), np.zeros(0), np.zeros(0), 0.0, 0.0, 0.0, len(y))
    raw = CandidateMap(**{**shell.__dict__, "pca_mean": pca_mean, "pca_components": components})
    x = np.nan_to_num(raw.features(np.asarray(base, dtype=np.float64), embeddings))
    mean, scale = x.mean(axis=0), x.std(axis=0)
    scale = np.where(scale > 1e-12, scale, 1.0)
    xs, yc = (x - mean) / scale, y - y.mean()
    best: tuple[float, float, np.ndarray] | None = None
    gram = xs.T @ xs
    for alpha in ALPHAS:
        penalty = np.full(len(gram), alpha)
        penalty[0] = min(alpha, EASY_PENALTY)  # the mean prediction: barely shrunk
        inverse = np.linalg.inv(gram + np.diag(penalty))
        coef = inverse @ xs.T @ yc
        hat = np.einsum("ij,jk,ik->i", xs, inverse, xs) + 1.0 / len(y)
        loo = float(np.mean(((yc - xs @ coef) / np.maximum(1.0 - hat, 1e-6)) ** 2))
        if best is None or loo < best[0] - 1e-12:
            best = (loo, alpha, coef)
    assert best is not None
    return CandidateMap(
        intercept=float(y.mean() - caution * y.std() / np.sqrt(len(y))),
        mean=mean,
        scale=scale,
        coef=best[2],
        low=float(y.min()),
        high=float(y.max()),
        alpha=best[1],
        n_answers=len(y),
        pca_mean=pca_mean,
        pca_components=components,
    )


def _answers(
    name: str, answers: RoutingDataset | tuple[Sequence[str], Sequence[float] | np.ndarray]
) -> tuple[list[str], np.ndarray]:
    if isinstance(answers, tuple):
        queries, scores = list(answers[0]), np.asarray(answers[1], dtype=np.float64)
    else:
        if name in answers.candidates:
            column = answers.candidates.index(name)
        elif len(answers.candidates) == 1:
            column = 0
        else:
            raise ValueError(f"the answers have no column {name!r} (and more than one column)")
        queries, scores = list(answers.queries), answers.performance[:, column]
    if scores.ndim != 1 or len(scores) != len(queries):
        raise ValueError(f"{len(queries)} queries but scores of shape {scores.shape}")
    return queries, scores


def _base_predictions(
    router: BaseRouter, n_base: int, queries: list[str], query_embeddings: np.ndarray | None
) -> np.ndarray:
    """The router's own predictions, from a shallow copy that sees only its base candidates."""
    view = copy.copy(router)
    view.candidates_ = list(router.candidates_[:n_base])
    _set_candidate_arrays(view, {k: v[:n_base] for k, v in _candidate_arrays(router).items()})
    view.__dict__.pop("new_candidates_", None)
    return np.asarray(view._predict_quality(queries, query_embeddings), dtype=np.float64)


def _candidate_arrays(router: RouterEstimator) -> dict[str, np.ndarray]:
    keys = ("input_price_", "output_price_", "sizes_", "output_tokens_")
    return {k: np.asarray(getattr(router, k), dtype=np.float64) for k in keys}


def _set_candidate_arrays(router: RouterEstimator, arrays: dict[str, np.ndarray]) -> None:
    for key, value in arrays.items():
        setattr(router, key, value)
