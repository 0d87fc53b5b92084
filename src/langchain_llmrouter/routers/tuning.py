"""Fit-time model selection: each router's hyperparameters chosen by grouped CV on its data.

``router.fit(dataset, tune=True)`` (and ``tune: true`` in a train config, the default of
``llmrouter train``) calls `tune_router`: a seeded random search over the router's search
space (`SEARCH_SPACES`, or one given), within a time budget, each setting scored by grouped
K-fold cross-validation on the training data alone. The score is Q0
(``../shared/BENCHMARK.md``): the mean true quality, on the held-out folds, of the candidate
each query's predictions rank first at cost weight 0. On two-candidate (strong vs weak) data,
where Q0 sees only the sign of the predicted advantage, it is RouteLLM's APGR on the held-out
folds, which scores the whole ranking a call-share threshold is set on. Folds are grouped by
normalised query text (`grouped_folds`), so a query and its duplicates never sit on both
sides of a split.

The first trial is always the router's own settings (the configs' values, from RouterDC's
CV); random settings from the space follow. A trial is scored fold by fold and dropped early
(successive-halving style) once it trails the best complete trial on the same folds by more
than `PRUNE_SE` standard errors of the paired per-query difference; a setting the router
refuses on this data is recorded with its error and skipped. The best trial replaces the
starting settings only if it beats them by at least `keep_start_se` such standard errors (2,
or a Bonferroni bound over the settings compared: 2.45 for 7, 3.02 for 39), so noise alone
seldom moves a router off its defaults. No new trial starts once ``budget_s``
seconds have passed (the trial running then finishes its fold, so a run can overshoot by one
fit). The record (`TuningResult.to_record`) is saved in ``router.json`` under ``tuning``. How
to use it and what it bought on RouterDC: ``docs/howto/tuning.md``.

Tunable: the single-round routers that name a space in `SEARCH_SPACES`; ``ensemble`` tunes
each member with that member's space (the meta-model keeps its settings). Graph, multi-round
and personalised routers refuse ``tune=True``.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from langchain_llmrouter.errors import ConfigError
from langchain_llmrouter.routers.crossval import (
    apgr_per_query,
    cross_val_predict,
    grouped_folds,
    normalise_query,
    q0_per_query,
)

if TYPE_CHECKING:
    from langchain_llmrouter.data import RoutingDataset
    from langchain_llmrouter.routers.base import BaseRouter
    from langchain_llmrouter.routers.estimator import RouterEstimator

__all__ = [
    "DEFAULT_BUDGET_S",
    "DEFAULT_FOLDS",
    "SEARCH_SPACES",
    "TuningResult",
    "check_search_space",
    "fit_with_tuning",
    "keep_start_se",
    "search_space",
    "tune_router",
    "tune_skip_reason",
]

DEFAULT_BUDGET_S = 300.0
"""Seconds of search (``tune_budget_s``) when none is given."""
DEFAULT_FOLDS = 5
"""Folds of the grouped cross-validation."""
MAX_TRIALS = 40
"""Settings tried at most (the starting one included), whatever the budget."""
PRUNE_SE = 2.0
"""A trial stops early once it trails the best complete one, on the folds it has run, by
more than this many standard errors of the paired per-query difference."""
KEEP_START_SE = 2.0
"""The best trial replaces the starting settings only if its CV score is higher by at least
this many standard errors of the paired per-query difference, or by the Bonferroni bound
of `keep_start_se` when more settings were compared (the best of many noisy differences is
large by chance alone)."""
KEEP_START_ALPHA = 0.05
"""Family-wise chance of leaving the starting settings for noise alone (`keep_start_se`)."""
MIN_TUNE_QUERIES = 200
"""``llmrouter train`` tunes only on at least this many distinct training queries (on fewer,
the CV scores are mostly noise; ``fit(tune=True)`` itself has no such floor)."""

_KNN_SPACE: dict[str, list[Any]] = {
    "k": [10, 20, 50, 100, 200],
    "weights": ["distance", "uniform"],
    "metric": ["cosine", "l2"],
    "dims": [32, 64, 128, None],
    "prior_count": [0.0, 2.0, 5.0, 10.0, 25.0],
}
SEARCH_SPACES: dict[str, dict[str, list[Any]]] = {
    "knnrouter": _KNN_SPACE,
    "elorouter": {
        "variant": ["similarity", "global"],
        "ties": ["skip", "half"],
        "prior": [1.0, 3.0, 10.0, 30.0],
        "k": [20, 50, 100, 200, 400],
        "temperature": [0.05, 0.1, 0.2, 0.5, 1.0],
    },
    "mlprouter": {
        "hidden_sizes": [[128], [256], [512], [256, 128]],
        "dropout": [0.2, 0.35, 0.5, 0.65],
        "lr": [1e-4, 3e-4, 1e-3],
        "weight_decay": [1e-3, 1e-2, 3e-2],
        "features": ["embedding", "embedding+tfidf"],
    },
    "mfrouter": {
        "latent_dim": [32, 64, 128, 256],
        "pair_weight": [0.0, 0.1, 0.2, 0.4],
        "lr": [3e-4, 1e-3, 3e-3],
        "weight_decay": [0.0, 1e-5, 1e-4, 1e-3],
        "noise_alpha": [0.0, 0.01, 0.1],
    },
    "svmrouter": {
        "kernel": ["rbf", "linear"],
        "C": [0.1, 0.3, 1.0, 3.0, 10.0],
        "features": ["embedding", "embedding+tfidf"],
    },
    "routerdc": {
        "temperature": [0.1, 0.2, 0.5],
        "top_k": [1, 2, 3, 4],
        "last_k": [2, 3, 5],
        "hidden_dim": [0, 128, 256, 512],
        "embedding_dim": [64, 128, 256],
        "lr": [3e-4, 1e-3, 3e-3],
        "sample_loss_weight": [0.0, 0.5, 1.0],
    },
    "hybrid_llm": {
        "tau": [0.03, 0.1, 0.3],
        "hidden_sizes": [[64], [128], [256]],
        "learning_rate": [3e-4, 1e-3, 3e-3],
        "weight_decay": [1e-3, 1e-2, 1e-1],
    },
    "thresholdrouter": {
        "hidden_dim": [64, 128, 256],
        "dropout": [0.0, 0.2, 0.5],
        "lr": [3e-4, 1e-3, 3e-3],
    },
    "causallm_router": {
        "n_layers": [1, 2, 3],
        "lr": [5e-4, 1e-3, 2e-3],
        "weight_decay": [0.0, 0.01, 0.1],
    },
}
"""Router name -> hyperparameter -> values tried. Each router's own settings (the configs'
values, chosen by CV on RouterDC's train file) are always the first trial, so these spaces
are where the search may go from there, not a replacement. ``random_state``, epochs and
patience are not searched (early stopping handles training length)."""


def tune_skip_reason(name: str, dataset: RoutingDataset) -> str | None:
    """Why ``llmrouter train`` would not tune router ``name`` on ``dataset`` (None: it would)."""
    if name.lower() != "ensemble" and name.lower() not in SEARCH_SPACES:
        return "it has no search space (graph, personalised and untrained routers have none)"
    distinct = len({normalise_query(q) for q in dataset.queries})
    if distinct < MIN_TUNE_QUERIES:
        return f"{distinct} distinct training queries (tuning needs {MIN_TUNE_QUERIES})"
    return None


# --- search spaces ----------------------------------------------------------------------


def search_space(name: str) -> dict[str, list[Any]]:
    """A copy of the search space of router ``name``.

    Raises:
        ConfigError: the router has no search space (the message lists those that have).
    """
    space = SEARCH_SPACES.get(name.lower())
    if space is None:
        raise ConfigError(
            f"{name} has no search space; tunable routers: "
            f"{', '.join(sorted([*SEARCH_SPACES, 'ensemble']))}",
            field="tune",
        )
    return {k: list(v) for k, v in space.items()}


def check_search_space(cls: type[RouterEstimator], space: Mapping[str, Any]) -> None:
    """Check that every name is a hyperparameter of ``cls`` and every value is valid.

    Raises:
        ConfigError: naming the field (``tune_space.<name>``) and, for unknown names,
            the valid ones.
    """
    if not isinstance(space, Mapping) or not space:
        raise ConfigError("a search space is a non-empty mapping of name -> list of values")
    valid = [p for p in cls._param_names() if p not in ("cost_weight", "budget")]
    for key, values in space.items():
        if key not in valid:
            raise ConfigError(
                f"not a hyperparameter of {cls.name}; valid: {', '.join(valid)}",
                field=f"tune_space.{key}",
            )
        if not isinstance(values, list) or not values:
            raise ConfigError("values must be a non-empty list", field=f"tune_space.{key}")
        for value in values:
            try:
                cls.validate_params({key: value})
            except ConfigError as exc:
                reason = str(exc).split(": ", 1)[-1]
                raise ConfigError(
                    f"value {value!r} is invalid: {reason}", field=f"tune_space.{key}"
                ) from None


# --- the search -------------------------------------------------------------------------


@dataclass
class _Trial:
    params: dict[str, Any]
    quality: np.ndarray  # per query, NaN where its fold was not run
    folds_done: list[int] = field(default_factory=list)
    seconds: float = 0.0
    error: str | None = None

    def score(self) -> float:
        return float(np.nanmean(self.quality))


@dataclass
class TuningResult:
    """What `tune_router` chose and why (saved in ``router.json`` as ``tuning``).

    Attributes:
        space: The search space.
        chosen: The chosen value of every searched hyperparameter.
        metric: ``q0`` or ``apgr`` (see `tune_router`).
        cv_score: Grouped-CV score of the chosen setting.
        start_cv_score: Grouped-CV score of the starting setting (the router's own).
        trials: Each trial's settings, CV score over the folds it ran, and those folds' count.
        seconds: Wall time of the search.
        n_folds: Folds of the grouped CV.
        budget_s: The time budget.
        seed: Seed of the folds and of the random search.
    """

    space: dict[str, list[Any]]
    chosen: dict[str, Any]
    metric: str
    cv_score: float
    start_cv_score: float
    trials: list[dict[str, Any]]
    seconds: float
    n_folds: int
    budget_s: float
    seed: int

    def to_record(self) -> dict[str, Any]:
        """A JSON-able dict."""
        return {
            "space": self.space,
            "chosen": self.chosen,
            "metric": self.metric,
            "cv_score": round(self.cv_score, 6),
            "start_cv_score": round(self.start_cv_score, 6),
            "trials": self.trials,
            "seconds": round(self.seconds, 3),
            "n_folds": self.n_folds,
            "budget_s": self.budget_s,
            "seed": self.seed,
        }


def _paired_se(a: np.ndarray, b: np.ndarray) -> float:
    both = ~np.isnan(a) & ~np.isnan(b)
    n = int(both.sum())
    if n < 2:
        return math.inf
    return float(np.std(a[both] - b[both], ddof=1) / math.sqrt(n))


def _sample(space: dict[str, list[Any]], rng: np.random.Generator) -> dict[str, Any]:
    return {k: v[int(rng.integers(len(v)))] for k, v in space.items()}


def keep_start_se(compared: int) -> float:
    """Standard errors by which the best of ``compared`` complete alternatives must beat the
    starting settings: `KEEP_START_SE`, or the one-sided Bonferroni bound at
    `KEEP_START_ALPHA` over the alternatives when it is larger (2.45 for 7, 3.02 for 39)."""
    from statistics import NormalDist

    bound = NormalDist().inv_cdf(1.0 - KEEP_START_ALPHA / max(compared, 1))
    return max(KEEP_START_SE, bound)


def tune_router(
    router: BaseRouter,
    dataset: RoutingDataset,
    query_embeddings: np.ndarray | None = None,
    *,
    space: Mapping[str, list[Any]] | None = None,
    budget_s: float = DEFAULT_BUDGET_S,
    n_folds: int = DEFAULT_FOLDS,
    seed: int = 0,
    metric: str = "auto",
    max_trials: int = MAX_TRIALS,
    clock: Callable[[], float] = time.perf_counter,
) -> TuningResult:
    """Choose ``router``'s hyperparameters by grouped CV on ``dataset`` (see the module doc).

    The router is not changed: apply ``result.chosen`` with ``set_params`` and fit.

    Args:
        router: An unfitted single-round router; its current settings are the first trial.
        dataset: The training data (never the test file).
        query_embeddings: Embeddings of ``dataset.queries`` (needed by embedding routers).
        space: Hyperparameter -> values (default: ``SEARCH_SPACES[router.name]``).
        budget_s: No trial starts after this many seconds.
        n_folds: Folds of the grouped CV.
        seed: Seed of the folds and of the settings drawn.
        metric: ``q0`` (Q0 on the held-out folds), ``apgr`` (RouteLLM's APGR of the
            predicted advantage of the stronger of two candidates, `apgr_per_query`), or
            ``auto``: ``apgr`` for two-candidate data, else ``q0``.
        max_trials: Trials at most (the starting one included).
        clock: Seconds (for tests).

    Raises:
        ConfigError: no or an invalid search space, or a bad budget.
    """
    if not (isinstance(budget_s, int | float) and math.isfinite(budget_s) and budget_s > 0):
        raise ConfigError(
            f"must be a positive number of seconds, got {budget_s!r}", field="tune_budget_s"
        )
    cls = type(router)
    space = search_space(router.name) if space is None else {k: list(v) for k, v in space.items()}
    check_search_space(cls, space)
    start = clock()
    folds = grouped_folds(dataset.queries, n_folds, seed)
    perf = dataset.performance
    if metric == "auto":
        metric = "apgr" if len(dataset.candidates) == 2 else "q0"
    if metric == "q0":

        def score(pred: np.ndarray, held: np.ndarray) -> np.ndarray:
            return q0_per_query(pred, perf[held])

    elif metric == "apgr":
        means = np.nan_to_num(np.nanmean(perf, axis=0), nan=-np.inf)
        strong, weak = int(np.argmax(means)), int(np.argmin(means))
        true_gap = np.nan_to_num(perf[:, strong] - perf[:, weak])
        scale = float(true_gap.mean()) if abs(true_gap.mean()) > 1e-9 else 1.0

        def score(pred: np.ndarray, held: np.ndarray) -> np.ndarray:
            return apgr_per_query(pred[:, strong] - pred[:, weak], true_gap[held]) / scale

    else:
        raise ConfigError(f"unknown metric {metric!r}; valid: auto, q0, apgr", field="metric")
    base = router.get_params()
    first = {k: base[k] for k in space}

    def make(params: dict[str, Any]) -> Callable[[], BaseRouter]:
        return lambda: cls.from_params({**base, **params}, embeddings=router.embeddings)

    rng = np.random.default_rng(seed)
    seen: list[dict[str, Any]] = []
    trials: list[_Trial] = []
    best: _Trial | None = None
    combos = math.prod(len(v) for v in space.values())
    while len(trials) < min(max_trials, combos + 1) and (not trials or clock() - start < budget_s):
        params = first if not trials else _sample(space, rng)
        if params in seen:
            if len(seen) >= combos:
                break
            continue
        seen.append(params)
        trial = _Trial(params, np.full(len(dataset), np.nan))
        trials.append(trial)
        began = clock()
        for fold in range(n_folds):
            try:
                pred = cross_val_predict(
                    make(params), dataset, query_embeddings, folds, only=[fold]
                )
            except (ValueError, RuntimeError) as exc:
                if best is None:
                    raise  # the starting settings themselves do not fit
                trial.error = f"{type(exc).__name__}: {exc}"  # a setting this data rejects
                break
            held = folds == fold
            trial.quality[held] = score(pred[held], held)
            trial.folds_done.append(fold)
            if best is not None and fold < n_folds - 1:
                on = ~np.isnan(trial.quality)
                gap = np.mean(best.quality[on]) - np.mean(trial.quality[on])
                if gap > PRUNE_SE * _paired_se(best.quality, trial.quality):
                    break  # pruned: clearly worse on the folds so far
            if best is not None and fold < n_folds - 1 and clock() - start >= budget_s:
                break  # out of time: this trial stays partial
        trial.seconds = clock() - began
        if len(trial.folds_done) == n_folds and (best is None or trial.score() > best.score()):
            best = trial
    starting = trials[0]
    assert best is not None
    compared = sum(len(t.folds_done) == n_folds for t in trials[1:])
    if best is not starting and best.score() - starting.score() < keep_start_se(
        compared
    ) * _paired_se(best.quality, starting.quality):
        best = starting  # not clearly better than where it started
    return TuningResult(
        space={k: list(v) for k, v in space.items()},
        chosen=dict(best.params),
        metric=metric,
        cv_score=best.score(),
        start_cv_score=starting.score(),
        trials=[
            {
                "params": t.params,
                "cv_score": round(t.score(), 6) if t.folds_done else None,
                "folds": len(t.folds_done),
                "seconds": round(t.seconds, 3),
                **({"error": t.error} if t.error else {}),
            }
            for t in trials
        ],
        seconds=clock() - start,
        n_folds=n_folds,
        budget_s=float(budget_s),
        seed=seed,
    )


def tune_in_fit(
    router: RouterEstimator,
    dataset: RoutingDataset,
    query_embeddings: np.ndarray | None,
    *,
    space: Mapping[str, list[Any]] | None,
    budget_s: float | None,
    n_folds: int,
    seed: int,
) -> dict[str, Any]:
    """What ``fit(tune=True)`` runs before fitting: tunes, applies the choice to ``router``
    and returns the record to save (for ``ensemble``: each member tuned in turn).

    Raises:
        TypeError: a graph, multi-round or personalised router.
    """
    from langchain_llmrouter.graphs.base import BaseGraphRouter
    from langchain_llmrouter.personal.router import PersonalRouter
    from langchain_llmrouter.routers.base import BaseRouter
    from langchain_llmrouter.routers.ensemble import EnsembleRouter

    if not isinstance(router, BaseRouter) or isinstance(router, PersonalRouter | BaseGraphRouter):
        raise TypeError(
            f"tune=True applies to single-round routers; {router.name} is a graph, "
            "multi-round or personalised router (set its hyperparameters in the config)"
        )
    budget = DEFAULT_BUDGET_S if budget_s is None else budget_s
    if not isinstance(router, EnsembleRouter):
        result = tune_router(
            router,
            dataset,
            query_embeddings,
            space=space,
            budget_s=budget,
            n_folds=n_folds,
            seed=seed,
        )
        router.set_params(**result.chosen)
        return result.to_record()
    if space is not None:
        raise ConfigError("ensemble tunes each member with its own space; give no tune_space")
    start = time.perf_counter()
    members, records = [], []
    for i, spec in enumerate(router.members):
        member = router.new_member(spec)
        if member.name not in SEARCH_SPACES:
            members.append(dict(spec))
            records.append({"router": member.name, "tuned": False})
            continue
        left = max(budget - (time.perf_counter() - start), 1e-3)
        share = left / (len(router.members) - i)
        result = tune_router(
            member, dataset, query_embeddings, budget_s=share, n_folds=n_folds, seed=seed
        )
        members.append({**spec, **result.chosen})
        records.append({"router": member.name, **result.to_record()})
    router.set_params(members=members)
    return {
        "members": records,
        "seconds": round(time.perf_counter() - start, 3),
        "budget_s": float(budget),
    }


def fit_with_tuning(
    router: RouterEstimator,
    dataset: RoutingDataset,
    query_embeddings: np.ndarray | None = None,
    *,
    budget_s: float | None = None,
    n_folds: int = DEFAULT_FOLDS,
    seed: int = 0,
) -> RouterEstimator:
    """``router.fit(dataset, tune=True, ...)``, also for a router (a plugin, say) whose own
    ``fit`` takes no ``tune`` argument: tuned first, then fitted, the record kept."""
    import inspect

    if "tune" in inspect.signature(router.fit).parameters:
        return router.fit(
            dataset,
            query_embeddings=query_embeddings,
            tune=True,
            tune_budget_s=budget_s,
            tune_folds=n_folds,
            tune_seed=seed,
        )
    if router.uses_embeddings and query_embeddings is None:
        from langchain_llmrouter.embeddings import embed_texts

        query_embeddings = embed_texts(dataset.queries, router.embeddings)
    record = tune_in_fit(
        router, dataset, query_embeddings, space=None, budget_s=budget_s, n_folds=n_folds, seed=seed
    )
    router.fit(dataset, query_embeddings=query_embeddings)
    router.tuning_ = record
    return router
