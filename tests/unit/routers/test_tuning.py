"""Unit tests of fit-time tuning (`langchain_llmrouter.routers.tuning`, ``fit(tune=True)``)."""

from __future__ import annotations

import itertools
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from langchain_llmrouter import RoutingDataset, create_router
from langchain_llmrouter.errors import ConfigError
from langchain_llmrouter.evaluation import apgr_cpt
from langchain_llmrouter.routers.crossval import (
    apgr_per_query,
    grouped_folds,
    normalise_query,
    q0_per_query,
)
from langchain_llmrouter.routers.ensemble import EnsembleRouter
from langchain_llmrouter.routers.knn import KNNRouter
from langchain_llmrouter.routers.tuning import (
    check_search_space,
    fit_with_tuning,
    keep_start_se,
    tune_router,
    tune_skip_reason,
)

N_PER_CLUSTER = 60


def planted() -> tuple[RoutingDataset, np.ndarray]:
    """Three clusters of queries, each with its own best candidate (0.9 against 0.5), and
    candidate 0 a little better overall: routing by neighbours (small k) beats the global
    mean (k = everything), by about 0.27 in Q0."""
    rng = np.random.default_rng(0)
    centres = np.eye(3, 8) * 5.0
    queries, rows, x = [], [], []
    for c in range(3):
        for i in range(N_PER_CLUSTER):
            queries.append(f"cluster {c} query {i}")
            score = np.full(3, 0.5)
            score[c] = 0.9
            score[0] += 0.05
            rows.append(score)
            x.append(centres[c] + rng.normal(size=8))
    performance = np.array(rows)
    data = RoutingDataset(
        queries=queries,
        candidates=["a", "b", "c"],
        performance=performance,
        cost=np.full_like(performance, 1e-4),
    )
    return data, np.array(x)


def noise(data: RoutingDataset, seed: int) -> RoutingDataset:
    """``data`` with uniform random scores: nothing to learn, every setting's CV score is
    noise."""
    return RoutingDataset(
        queries=data.queries,
        candidates=data.candidates,
        performance=np.random.default_rng(seed).uniform(size=data.performance.shape),
        cost=data.cost,
    )


def test_normalised_duplicates_share_a_fold() -> None:
    base = [f"question {i}" for i in range(40)]
    variants = [q.upper() for q in base] + [f"  {q.replace(' ', '   ')} " for q in base]
    queries = base + variants
    for seed, n_folds in itertools.product(range(5), (2, 3, 5)):
        folds = grouped_folds(queries, n_folds, seed)
        by_text: dict[str, set[int]] = {}
        for q, f in zip(queries, folds, strict=True):
            by_text.setdefault(normalise_query(q), set()).add(int(f))
        assert all(len(f) == 1 for f in by_text.values())
        assert sorted(set(folds.tolist())) == list(range(n_folds))
        assert np.bincount(folds).min() >= 3 * (40 // n_folds)  # groups dealt evenly


def test_too_few_groups_for_the_folds_is_an_error() -> None:
    with pytest.raises(ValueError, match="2 distinct queries cannot fill 3 folds"):
        grouped_folds(["a", "A", "b"], 3)


def test_q0_per_query_never_picks_a_missing_score() -> None:
    perf = np.array([[np.nan, 0.2], [0.7, 0.1], [np.nan, np.nan]])
    pred = np.array([[0.9, 0.1], [0.1, 0.9], [0.5, 0.4]])
    assert q0_per_query(pred, perf).tolist() == [0.2, 0.1, 0.0]


@pytest.mark.parametrize("n", [1, 7, 20, 333])
def test_apgr_per_query_adds_up_to_routellm_apgr(n: int) -> None:
    rng = np.random.default_rng(n)
    strong, weak = rng.uniform(size=n) + 0.3, rng.uniform(size=n)
    advantage = np.round(rng.normal(size=n), 1)  # ties too
    expected = apgr_cpt(advantage, strong, weak)["apgr"]
    parts = apgr_per_query(advantage, strong - weak)
    assert parts.mean() / (strong - weak).mean() == pytest.approx(expected)


def test_two_candidates_are_tuned_on_apgr() -> None:
    data, x = planted()
    pair = data.select_candidates(["a", "b"])
    result = tune_router(
        KNNRouter(k=1000, weights="uniform", metric="l2"),
        pair,
        x,
        space={"k": [1000, 10]},
        n_folds=3,
    )
    assert result.metric == "apgr" and result.chosen == {"k": 10}
    # k = everything ranks every query alike (APGR of an arbitrary order); k = 10 ranks
    # cluster b's queries, where b wins, last.
    assert result.cv_score > result.start_cv_score + 0.2


def test_tuning_finds_the_planted_best_setting() -> None:
    data, x = planted()
    router = KNNRouter(k=1000, weights="uniform", metric="l2")
    result = tune_router(router, data, x, space={"k": [1000, 10]}, budget_s=60, n_folds=3)
    assert result.chosen == {"k": 10}
    assert result.metric == "q0"
    assert result.start_cv_score == pytest.approx(0.6833, abs=0.01)  # always candidate a
    assert result.cv_score > 0.9
    assert router.k == 1000  # tune_router leaves the router as it was
    assert [t["params"] for t in result.trials] == [{"k": 1000}, {"k": 10}]


def test_fit_tune_applies_the_choice_and_it_survives_save_and_load(tmp_path: Path) -> None:
    data, x = planted()
    router = KNNRouter(k=1000, weights="uniform", metric="l2")
    router.fit(data, query_embeddings=x, tune=True, tune_space={"k": [1000, 10]}, tune_folds=3)
    assert router.k == 10 and router.tuning_["chosen"] == {"k": 10}
    router.save(tmp_path / "r")
    saved = json.loads((tmp_path / "r" / "router.json").read_text())
    assert saved["params"]["k"] == 10
    assert saved["tuning"]["space"] == {"k": [1000, 10]}
    loaded = KNNRouter.load(tmp_path / "r")
    assert loaded.tuning_ == router.tuning_
    assert loaded.k == 10
    assert set(loaded.tuning_) >= {"space", "chosen", "cv_score", "trials", "seconds"}
    np.testing.assert_allclose(
        loaded.predict_quality(data.queries[:5], query_embeddings=x[:5]),
        router.predict_quality(data.queries[:5], query_embeddings=x[:5]),
    )
    router.fit(data, query_embeddings=x)  # a later fit without tuning drops the record
    assert not hasattr(router, "tuning_")
    router.save(tmp_path / "plain")
    assert "tuning" not in json.loads((tmp_path / "plain" / "router.json").read_text())


def test_noise_alone_seldom_moves_the_router_off_its_settings() -> None:
    data, x = planted()
    kept = 0
    for seed in range(5):
        result = tune_router(
            KNNRouter(k=20, weights="uniform", metric="l2"),
            noise(data, seed),
            x,
            space={"k": [20, 5, 10, 40, 80]},
            n_folds=3,
        )
        kept += result.chosen == {"k": 20}
    assert kept >= 4


def test_the_bar_to_leave_the_start_rises_with_the_settings_compared() -> None:
    assert keep_start_se(0) == keep_start_se(1) == keep_start_se(2) == 2.0
    assert keep_start_se(7) == pytest.approx(2.45, abs=0.01)  # Bonferroni, one-sided 5%
    assert keep_start_se(39) == pytest.approx(3.02, abs=0.01)
    bars = [keep_start_se(n) for n in range(1, 60)]
    assert bars == sorted(bars)


def test_a_wide_search_on_noise_keeps_the_start() -> None:
    """35 alternatives on data with nothing to learn: the best of them beats the start by
    2 standard errors by chance alone now and then (the flat 2-SE bar moved off the start in
    2 of these 20 searches); the Bonferroni bar moves at most once."""
    data, x = planted()
    space = {
        "k": [20, 5, 10, 40, 80, 120],
        "weights": ["uniform", "distance"],
        "prior_count": [0.0, 2.0, 10.0],
    }
    moved = 0
    for seed in range(20):
        result = tune_router(
            KNNRouter(k=20, weights="uniform", metric="l2"),
            noise(data, seed),
            x,
            space=space,
            n_folds=3,
        )
        moved += result.chosen != {"k": 20, "weights": "uniform", "prior_count": 0.0}
    assert moved <= 1


def test_the_budget_stops_the_search() -> None:
    data, x = planted()
    ticks = iter(range(10_000))
    result = tune_router(
        KNNRouter(k=50, weights="uniform", metric="l2"),
        data,
        x,
        space={"k": [1, 2, 3, 5, 10, 20, 50, 100]},
        budget_s=1e-9,
        n_folds=3,
        clock=lambda: float(next(ticks)),
    )
    assert len(result.trials) == 1 and result.trials[0]["folds"] == 3  # the start is complete
    assert result.chosen == {"k": 50}
    # A real clock: no trial starts after the budget; the overshoot is at most one trial.
    result = tune_router(
        KNNRouter(k=50, weights="uniform", metric="l2"),
        data,
        x,
        space={"k": list(range(1, 120))},
        budget_s=0.3,
        n_folds=3,
    )
    longest = max(t["seconds"] for t in result.trials)
    assert 1 < len(result.trials) < 119
    assert result.seconds <= 0.3 + longest + 0.05


class _PickyKNN(KNNRouter):
    """A kNN router that refuses k=7 (as a router may refuse a setting on some data)."""

    def _fit(self, dataset: RoutingDataset | None, query_embeddings: np.ndarray | None) -> None:
        if self.k == 7:
            raise ValueError("k=7 does not fit here")
        super()._fit(dataset, query_embeddings)


def test_a_setting_that_fails_is_recorded_and_skipped() -> None:
    data, x = planted()
    result = tune_router(
        _PickyKNN(k=1000, weights="uniform", metric="l2"),
        data,
        x,
        space={"k": [1000, 7, 10]},
        n_folds=3,
    )
    assert result.chosen == {"k": 10}
    (failed,) = [t for t in result.trials if t["params"] == {"k": 7}]
    assert failed["error"] == "ValueError: k=7 does not fit here" and failed["cv_score"] is None
    json.dumps(result.to_record(), allow_nan=False)  # valid JSON for router.json
    with pytest.raises(ValueError, match="k=7"):  # the starting settings must fit
        tune_router(_PickyKNN(k=7, metric="l2"), data, x, space={"k": [7, 10]}, n_folds=3)


class _TwoModelKNN(KNNRouter):
    """A plugin-style router: its own ``fit`` (no ``tune`` argument) keeps two candidates."""

    def fit(  # type: ignore[override]
        self, dataset: RoutingDataset, *, query_embeddings: np.ndarray | None = None
    ) -> _TwoModelKNN:
        return super().fit(dataset.select_candidates(["a", "b"]), query_embeddings=x_of(dataset))


def x_of(dataset: RoutingDataset) -> np.ndarray:
    data, x = planted()
    return x[[data.queries.index(q) for q in dataset.queries]]


def test_a_router_whose_fit_takes_no_tune_argument_is_tuned_first() -> None:
    data, x = planted()
    router = _TwoModelKNN(k=1000, weights="uniform", metric="l2")
    fit_with_tuning(router, data, x, n_folds=3)
    assert router.candidates_ == ["a", "b"]  # scored on the candidates it keeps
    assert router.tuning_["metric"] == "q0" and router.k != 1000
    assert router.tuning_["cv_score"] > router.tuning_["start_cv_score"] + 0.1


def test_the_search_is_seeded() -> None:
    data, x = planted()
    space: dict[str, list[Any]] = {
        "k": [1, 2, 3, 5, 10, 20, 50],
        "weights": ["uniform", "distance"],
    }
    runs = [
        tune_router(KNNRouter(k=50, metric="l2"), data, x, space=space, n_folds=3, max_trials=6)
        for _ in range(2)
    ]
    assert [t["params"] for t in runs[0].trials] == [t["params"] for t in runs[1].trials]


@pytest.mark.parametrize(
    ("space", "fragments"),
    [
        ({"neighbours": [5]}, ["tune_space.neighbours", "valid: k, weights, metric, dims"]),
        ({"k": [5, 0]}, ["tune_space.k", "value 0 is invalid", "greater than or equal to 1"]),
        ({"weights": ["uniform", "gaussian"]}, ["tune_space.weights", "'gaussian'"]),
        ({"k": []}, ["tune_space.k", "non-empty list"]),
        ({"k": 5}, ["tune_space.k", "non-empty list"]),
        ({}, ["non-empty mapping"]),
    ],
)
def test_bad_search_spaces_are_located_errors(space: dict, fragments: list[str]) -> None:
    with pytest.raises(ConfigError) as info:
        check_search_space(KNNRouter, space)
    for fragment in fragments:
        assert fragment in str(info.value)


def test_bad_tuning_requests() -> None:
    data, x = planted()
    with pytest.raises(ConfigError, match="tune_budget_s"):
        KNNRouter().fit(data, query_embeddings=x, tune=True, tune_budget_s=-1)
    with pytest.raises(
        ConfigError, match=r"oracle has no search space; tunable routers: .*knnrouter"
    ):
        create_router("oracle").fit(data, tune=True)
    with pytest.raises(ConfigError, match=r"tune_space\.k"):
        KNNRouter().fit(data, query_embeddings=x, tune=True, tune_space={"k": ["many"]})
    assert tune_skip_reason("oracle", data) is not None
    assert "180 distinct training queries (tuning needs 200)" in str(
        tune_skip_reason("knnrouter", data)
    )


def test_graph_routers_refuse_tuning() -> None:
    data, x = planted()
    router = create_router("knnmultiroundrouter")
    with pytest.raises(TypeError, match="single-round routers"):
        router.fit(data, query_embeddings=x, tune=True)


def test_ensemble_tunes_its_members() -> None:
    data, x = planted()
    router = EnsembleRouter(
        members=[{"router": "knnrouter", "k": 1000, "weights": "uniform", "metric": "l2"}],
        n_folds=3,
    )
    router.fit(data, query_embeddings=x, tune=True, tune_folds=3, tune_budget_s=30)
    (member,) = router.tuning_["members"]
    assert member["router"] == "knnrouter" and member["cv_score"] > 0.9
    assert router.members[0]["k"] != 1000 and router.members[0]["router"] == "knnrouter"
    assert (
        q0_per_query(
            router.predict_quality(data.queries, query_embeddings=x), data.performance
        ).mean()
        > 0.9
    )
