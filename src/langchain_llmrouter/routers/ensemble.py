"""Ensemble router: stacks other routers of the package with a per-candidate meta-model.

The members (registry names with their hyperparameters) are trained K times on grouped
folds of the training data (duplicate query texts never straddle a fold), and their
out-of-fold predicted qualities, with cheap query features (log length and a few embedding
principal components), fit one ridge regression per candidate (or non-negative weights);
then every member is refitted on all the data. Members share the ensemble's embedder and
are saved inside its files (no pickle, no subdirectories). The method and its benchmark
figures: ``docs/routers/ensemble.md``.
"""

from __future__ import annotations

from functools import partial
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
from pydantic import Field, field_validator

from langchain_llmrouter.routers.base import BaseRouter, RouterParams
from langchain_llmrouter.routers.crossval import cross_val_predict, grouped_folds

if TYPE_CHECKING:
    from langchain_core.embeddings import Embeddings

    from langchain_llmrouter.data import RoutingDataset

DEFAULT_MEMBERS: list[dict[str, Any]] = [
    {"router": "knnrouter", "k": 50, "dims": 64},
    {"router": "mlprouter"},
    {"router": "mfrouter"},
]
"""The default members, each with its own defaults (chosen by grouped 5-fold CV on the train
file among subsets of kNN, MLP, MF, Elo and SVM: ``docs/routers/ensemble.md``)."""


def _default_members() -> list[dict[str, Any]]:
    return [dict(m) for m in DEFAULT_MEMBERS]


def member_class(spec: Any) -> type[BaseRouter]:
    """The router class a member spec names; ValueError (listing valid names) if unusable."""
    from langchain_llmrouter.errors import UnknownRouterError
    from langchain_llmrouter.personal.router import PersonalRouter
    from langchain_llmrouter.routers.registry import available_routers, get_router_class

    if not isinstance(spec, dict) or not isinstance(spec.get("router"), str):
        raise ValueError(f"a member is a mapping with a 'router' name, got {spec!r}")
    name = spec["router"]
    try:
        cls = get_router_class(name)
    except UnknownRouterError:
        raise ValueError(
            f"unknown member router {name!r}; valid: {', '.join(available_routers())}"
        ) from None
    if not isinstance(cls, type) or not issubclass(cls, BaseRouter):
        raise ValueError(f"member {name!r} is a graph router: only single-round routers stack")
    if issubclass(cls, PersonalRouter):
        raise ValueError(f"member {name!r} is a personalised router: its scores depend on a user")
    if issubclass(cls, EnsembleRouter):
        raise ValueError(f"member {name!r} is an ensemble: ensembles do not nest")
    return cls


class EnsembleParams(RouterParams):
    members: list[dict[str, Any]] = Field(default_factory=_default_members, min_length=1)
    """Member routers: each a mapping with a ``router`` registry name and its hyperparameters."""
    meta: Literal["ridge", "nnls"] = "nnls"
    """Meta-model per candidate: ridge on member predictions + query features, or non-negative weights."""
    alpha: float = Field(default=10.0, ge=0, allow_inf_nan=False)
    """Ridge penalty on the standardised meta-features (``ridge`` only)."""
    n_components: int = Field(default=8, ge=0)
    """Embedding principal components among the query features (``ridge`` only)."""
    n_folds: int = Field(default=5, ge=2)
    """Folds of the out-of-fold member predictions."""
    random_state: int = 0
    """Seed of the fold assignment."""

    @field_validator("members")
    @classmethod
    def _known_members(cls, value: list[dict[str, Any]]) -> list[dict[str, Any]]:
        for i, spec in enumerate(value):
            member = member_class(spec)
            params = {k: v for k, v in spec.items() if k != "router"}
            try:
                member.validate_params(params)
            except Exception as exc:
                raise ValueError(f"member {i} ({spec['router']}): {exc}") from None
        return value


class EnsembleRouter(BaseRouter):
    """Stacks member routers' predicted qualities with a meta-model fitted out of fold."""

    name = "ensemble"
    Params = EnsembleParams
    uses_embeddings = True

    def __init__(
        self,
        *,
        members: list[dict[str, Any]] | None = None,
        meta: Literal["ridge", "nnls"] = "nnls",
        alpha: float = 10.0,
        n_components: int = 8,
        n_folds: int = 5,
        random_state: int = 0,
        cost_weight: float = 0.0,
        budget: float | None = None,
        embeddings: Embeddings | None = None,
    ) -> None:
        super().__init__(cost_weight=cost_weight, budget=budget, embeddings=embeddings)
        self.members = _default_members() if members is None else members
        self.meta = meta
        self.alpha = alpha
        self.n_components = n_components
        self.n_folds = n_folds
        self.random_state = random_state

    # --- members --------------------------------------------------------------------------

    def new_member(self, spec: dict[str, Any]) -> BaseRouter:
        """An unfitted member router from its spec (``router`` name plus its hyperparameters)."""
        params = {k: v for k, v in spec.items() if k != "router"}
        return member_class(spec).from_params(params, embeddings=self.embeddings)

    def _member_predictions(
        self, members: list[BaseRouter], queries: list[str], x: np.ndarray | None
    ) -> np.ndarray:
        """(n, n_members, n_candidates) predicted qualities."""
        return np.stack([m.predict_quality(queries, query_embeddings=x) for m in members], axis=1)

    def out_of_fold(self, dataset: RoutingDataset, query_embeddings: np.ndarray) -> np.ndarray:
        """Each member's predictions for each training query from a fit on the other folds."""
        folds = grouped_folds(dataset.queries, self.n_folds, self.random_state)
        return np.stack(
            [
                cross_val_predict(partial(self.new_member, spec), dataset, query_embeddings, folds)
                for spec in self.members
            ],
            axis=1,
        )

    # --- query features -------------------------------------------------------------------

    def _fit_features(self, x: np.ndarray) -> None:
        dims = min(self.n_components, x.shape[0] - 1, x.shape[1]) if self.meta == "ridge" else 0
        self.pca_mean_ = x.mean(axis=0)
        if dims > 0:
            _, _, vt = np.linalg.svd(x - self.pca_mean_, full_matrices=False)
            vt = vt[:dims]
            vt *= np.where(vt[np.arange(dims), np.abs(vt).argmax(axis=1)] < 0, -1.0, 1.0)[:, None]
            self.pca_components_ = np.ascontiguousarray(vt.T)
        else:
            self.pca_components_ = np.zeros((x.shape[1], 0))

    def _query_features(self, queries: list[str], x: np.ndarray) -> np.ndarray:
        """(n, n_features): log length, then the principal components (``ridge`` only)."""
        if self.meta != "ridge":
            return np.zeros((len(queries), 0))
        length = np.log1p([len(q) for q in queries])[:, None]
        pcs = (np.asarray(x, dtype=np.float64) - self.pca_mean_) @ self.pca_components_
        return np.hstack([length, pcs])

    # --- fitting --------------------------------------------------------------------------

    def _fit(self, dataset: RoutingDataset | None, query_embeddings: np.ndarray | None) -> None:
        assert dataset is not None and query_embeddings is not None
        if len(set(dataset.queries)) < self.n_folds:
            raise ValueError(f"ensemble needs at least n_folds={self.n_folds} distinct queries")
        x = np.asarray(query_embeddings, dtype=np.float64)
        self._fit_features(x)
        oof = self.out_of_fold(dataset, query_embeddings)
        features = self._query_features(dataset.queries, x)
        self.coef_, self.intercept_ = self._fit_meta(oof, features, dataset.performance)
        self.members_ = [
            self.new_member(spec).fit(dataset, query_embeddings=query_embeddings)
            for spec in self.members
        ]

    def _fit_meta(
        self, oof: np.ndarray, features: np.ndarray, performance: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """(coef (n_candidates, n_members + n_features), intercept (n_candidates,)),
        on the raw scale of the member predictions and features."""
        y_all = np.asarray(performance, dtype=np.float64)
        n_members, n_cand = oof.shape[1], oof.shape[2]
        coef = np.zeros((n_cand, n_members + features.shape[1]))
        intercept = np.zeros(n_cand)
        for c in range(n_cand):
            z = np.hstack([oof[:, :, c], features])
            rows = ~np.isnan(y_all[:, c]) & np.isfinite(z).all(axis=1)
            if not rows.any():
                continue
            z, y = z[rows], y_all[rows, c]
            mean, y_mean = z.mean(axis=0), y.mean()
            if self.meta == "nnls":
                from scipy.optimize import nnls

                w, _ = nnls(z - mean, y - y_mean)
            else:
                scale = np.maximum(z.std(axis=0), 1e-9)
                s = (z - mean) / scale
                gram = s.T @ s + self.alpha * np.eye(s.shape[1])
                w = np.linalg.solve(gram, s.T @ (y - y_mean)) / scale
            coef[c], intercept[c] = w, y_mean - w @ mean
        return coef, intercept

    def member_weights(self) -> np.ndarray:
        """The meta-model's weight on each member's prediction, (n_candidates, n_members)."""
        self._check_fitted()
        return self.coef_[:, : len(self.members)].copy()

    # --- prediction -----------------------------------------------------------------------

    def _predict_quality(
        self, queries: list[str], query_embeddings: np.ndarray | None
    ) -> np.ndarray:
        assert query_embeddings is not None
        x = np.asarray(query_embeddings, dtype=np.float64)
        if x.shape[1] != self.pca_mean_.shape[0]:
            raise ValueError(
                f"query embeddings have dimension {x.shape[1]} but the router was trained on "
                f"{self.pca_mean_.shape[0]}"
            )
        preds = self._member_predictions(self.members_, queries, query_embeddings)
        features = self._query_features(queries, x)
        m = len(self.members_)
        out = np.einsum("nmc,cm->nc", preds, self.coef_[:, :m]) + self.intercept_
        return out + features @ self.coef_[:, m:].T

    # --- persistence ----------------------------------------------------------------------

    def _get_state(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        arrays = {
            "meta.coef": self.coef_,
            "meta.intercept": self.intercept_,
            "meta.pca_mean": self.pca_mean_,
            "meta.pca_components": self.pca_components_,
        }
        states = []
        for i, member in enumerate(self.members_):
            meta, member_arrays = member._get_state()
            states.append({"router": member.name, "params": member.get_params(), "state": meta})
            arrays.update({f"member{i}.{k}": v for k, v in member_arrays.items()})
        return {"members": states}, arrays

    def _set_state(self, meta: dict[str, Any], arrays: dict[str, np.ndarray]) -> None:
        self.coef_, self.intercept_ = arrays["meta.coef"], arrays["meta.intercept"]
        self.pca_mean_ = arrays["meta.pca_mean"]
        self.pca_components_ = arrays["meta.pca_components"]
        saved = meta["members"]
        if len(saved) != len(self.members) or self.coef_.shape[0] != len(self.candidates_):
            raise ValueError("saved members or meta-model do not match the parameters")
        self.members_ = []
        for i, (spec, doc) in enumerate(zip(self.members, saved, strict=True)):
            member = self.new_member(spec)
            if doc["router"] != member.name:
                raise ValueError(f"member {i} was saved as {doc['router']}, not {member.name}")
            prefix = f"member{i}."
            member.candidates_ = list(self.candidates_)
            member.input_price_, member.output_price_ = self.input_price_, self.output_price_
            member.sizes_, member.output_tokens_ = self.sizes_, self.output_tokens_
            member._set_state(
                doc["state"],
                {k.removeprefix(prefix): v for k, v in arrays.items() if k.startswith(prefix)},
            )
            member.fitted_ = True
            self.members_.append(member)
