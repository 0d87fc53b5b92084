"""Tests of calibrated qualities: ECE and reliability curves, and isotonic calibration.

ECE is checked on synthetic predictors (calibrated: about 0; over-confident: large); the
isotonic map on synthetic data (monotone, the same as scikit-learn's predictions); the fit on
out-of-fold predictions with a router that memorises its training queries; saving with a
kNN router on a small RouterDC slice (no pickle, identical decisions after loading); and the
bench's ECE column and calibrated rows on the same slice with a fake embedder.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from langchain_core.embeddings import DeterministicFakeEmbedding

from langchain_llmrouter import CandidatePool, RoutingDataset
from langchain_llmrouter.cli.bench import _with_calibrated_rows
from langchain_llmrouter.errors import RouterLoadError
from langchain_llmrouter.evaluation.bench import run_benchmark
from langchain_llmrouter.evaluation.reliability import (
    expected_calibration_error,
    reliability_curve,
)
from langchain_llmrouter.evaluation.router_metrics import evaluate_choices, evaluate_router
from langchain_llmrouter.routers.base import BaseRouter
from langchain_llmrouter.routers.calibrate_quality import (
    TIE_BREAK,
    calibrate_qualities,
    fit_quality_calibration,
    out_of_fold_predictions,
)
from langchain_llmrouter.routers.knn import KNNRouter

N_TRAIN, N_TEST, MAX_CHARS = 150, 40, 160


def _synthetic(n: int = 4000, m: int = 3, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """True success probabilities and 0/1 outcomes drawn from them."""
    rng = np.random.default_rng(seed)
    p = rng.uniform(0.0, 1.0, size=(n, m))
    return p, (rng.uniform(size=(n, m)) < p).astype(float)


# --- ECE and the reliability curve ------------------------------------------------------------


def test_ece_of_a_calibrated_predictor_is_about_zero() -> None:
    p, y = _synthetic()
    assert expected_calibration_error(p, y) < 0.02


def test_ece_of_an_over_confident_predictor_is_large() -> None:
    p, y = _synthetic()
    confident = np.clip(0.5 + 3.0 * (p - 0.5), 0.0, 1.0)  # pushes every prediction to 0 or 1
    assert expected_calibration_error(confident, y) > 0.15
    shifted = np.clip(p + 0.3, 0.0, 1.0)  # over-estimates every candidate
    assert expected_calibration_error(shifted, y) > 0.2


def test_reliability_bins_are_equal_mass_and_skip_unknown_pairs() -> None:
    pred = np.array([[0.1, 0.9], [0.2, np.nan], [0.8, 0.4], [0.3, 0.6]])
    perf = np.array([[0.0, 1.0], [1.0, 1.0], [np.nan, 0.0], [1.0, 1.0]])
    curve = reliability_curve(pred, perf, n_bins=3)
    assert curve.n_pairs == 6  # one NaN prediction, one NaN score left out
    assert [b.count for b in curve.bins] == [2, 2, 2]
    means = [b.mean_predicted for b in curve.bins]
    assert means == sorted(means)
    expected = sum(b.count * abs(b.mean_predicted - b.mean_observed) for b in curve.bins) / 6
    assert curve.ece == pytest.approx(expected)
    assert np.isnan(reliability_curve(np.full((1, 1), np.nan), np.ones((1, 1))).ece)
    with pytest.raises(ValueError, match="shape mismatch"):
        reliability_curve(pred, perf[:, :1])


def test_evaluate_router_reports_ece_and_choices_do_not() -> None:
    perf = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    cost = np.full((3, 2), 0.001)
    report = evaluate_router("oracle", perf, perf, cost, 0, n_boot=10)
    assert report.ece == pytest.approx(0.0)
    assert report.reliability and sum(b.count for b in report.reliability) == 6
    assert report.to_dict()["reliability"][0].keys() == {"mean_predicted", "mean_observed", "count"}
    assert evaluate_choices("a", np.zeros(3, dtype=int), perf, cost, 0, n_boot=10).ece is None


# --- the isotonic map -------------------------------------------------------------------------


@pytest.mark.parametrize("pooled", [False, True])
def test_calibration_map_is_monotone_and_matches_sklearn(pooled: bool) -> None:
    from sklearn.isotonic import IsotonicRegression

    p, y = _synthetic(2000, 3)
    confident = np.clip(0.5 + 3.0 * (p - 0.5), 0.0, 1.0)
    calibration = fit_quality_calibration(confident, y, pooled=pooled)
    assert len(calibration.x) == (1 if pooled else 3)
    for x, fitted in zip(calibration.x, calibration.y, strict=True):
        assert (np.diff(x) >= 0).all() and (np.diff(fitted) >= 0).all()
    grid = np.tile(np.linspace(-0.2, 1.2, 141)[:, None], (1, 3))
    mapped = calibration.apply(grid)
    assert (np.diff(mapped, axis=0) >= -1e-12).all()  # monotone in the prediction
    column = confident[:, 1] if not pooled else confident.ravel()
    target = y[:, 1] if not pooled else y.ravel()
    iso = IsotonicRegression(out_of_bounds="clip").fit(column, target)
    assert mapped[:, 1] == pytest.approx(iso.predict(grid[:, 1]) + TIE_BREAK * grid[:, 1])
    assert expected_calibration_error(calibration.apply(confident), y) < 0.02
    assert np.isnan(calibration.apply(np.array([[np.nan, 0.5, 0.5]]))[0, 0])


class MemoRouter(BaseRouter):
    """Knows each training query's true scores; 0.5 for any other query."""

    name = "memorouter"

    def __init__(self, *, cost_weight: float = 0.0, budget: float | None = None) -> None:
        super().__init__(cost_weight=cost_weight, budget=budget)

    def _fit(self, dataset: RoutingDataset | None, query_embeddings: np.ndarray | None) -> None:
        assert dataset is not None
        self.memory_ = dict(zip(dataset.queries, np.nan_to_num(dataset.performance), strict=True))

    def _predict_quality(self, queries: list[str], query_embeddings: Any) -> np.ndarray:
        default = np.full(len(self.candidates_), 0.5)
        return np.array([self.memory_.get(q, default) for q in queries])


def test_calibration_is_fitted_out_of_fold(train: RoutingDataset) -> None:
    router = MemoRouter().fit(train)
    in_sample = router.predict_quality(train.queries)
    assert in_sample == pytest.approx(np.nan_to_num(train.performance))  # memorised
    oof = out_of_fold_predictions(router, train, n_splits=5)
    assert (oof == 0.5).all()  # no copy saw the query it predicted
    calibrate_qualities(router, train, n_splits=5, pooled=False)
    mapped = router.predict_quality(train.queries)
    # Fitted in sample, the map would send 1 to 1 and 0 to 0; out of fold, every
    # prediction was 0.5, so each candidate maps to its mean training score.
    means = np.nanmean(train.performance, axis=0)
    assert mapped == pytest.approx(means[None, :] + TIE_BREAK * in_sample)


# --- saving and loading -----------------------------------------------------------------------


def test_calibrated_router_saves_without_pickle_and_decides_alike(
    train: RoutingDataset, test: RoutingDataset, tmp_path: Path
) -> None:
    embedder = DeterministicFakeEmbedding(size=16)
    x_train, x_test = _embed(embedder, train), _embed(embedder, test)
    router = KNNRouter(k=10, embeddings=embedder).fit(train, query_embeddings=x_train)
    raw = router.predict_quality(test.queries, query_embeddings=x_test)
    calibrate_qualities(router, train, query_embeddings=x_train, n_splits=3)
    calibrated = router.predict_quality(test.queries, query_embeddings=x_test)
    assert not np.allclose(raw, calibrated)
    router.save(tmp_path / "r")
    assert {p.name for p in (tmp_path / "r").iterdir()} == {"router.json", "arrays.safetensors"}
    document = json.loads((tmp_path / "r" / "router.json").read_text(encoding="utf-8"))
    assert document["quality_calibration"] == {"method": "isotonic", "pooled": True, "n_splits": 3}
    assert "_quality_calibration.x.0" in document["arrays"]
    loaded = KNNRouter.load(tmp_path / "r", embeddings=embedder)
    again = loaded.predict_quality(test.queries, query_embeddings=x_test)
    np.testing.assert_array_equal(again, calibrated)
    for weight in (0.0, 0.3, 1.0):
        before = router.route_batch(test.queries, query_embeddings=x_test, cost_weight=weight)
        after = loaded.route_batch(test.queries, query_embeddings=x_test, cost_weight=weight)
        assert [d.model for d in before] == [d.model for d in after]
    # A damaged map is refused when loading.
    from safetensors.numpy import load_file, save_file

    arrays = load_file(str(tmp_path / "r" / "arrays.safetensors"))
    arrays["_quality_calibration.y.0"] = arrays["_quality_calibration.y.0"][::-1].copy()
    save_file(arrays, str(tmp_path / "r" / "arrays.safetensors"))
    with pytest.raises(RouterLoadError, match="not monotone"):
        KNNRouter.load(tmp_path / "r", embeddings=embedder)


# --- the bench --------------------------------------------------------------------------------


def test_bench_has_an_ece_column_and_calibrated_rows(
    train: RoutingDataset, test: RoutingDataset
) -> None:
    methods = ["isotonic", "isotonic-pooled"]
    rows = _with_calibrated_rows({"knnrouter": {"k": 10}, "smallest_llm": {}}, methods)
    assert rows == {
        "knnrouter": {"k": 10},
        "knnrouter+isotonic": {"k": 10, "router": "knnrouter", "calibrate": "isotonic"},
        "knnrouter+isotonic-pooled": {"k": 10, "router": "knnrouter", "calibrate": methods[1]},
        "smallest_llm": {},
    }
    result = run_benchmark(train, test, rows, embeddings=DeterministicFakeEmbedding(size=16))
    header = next(line for line in result.format().splitlines() if line.startswith("| router"))
    assert [c.strip() for c in header.strip("|").split("|")][7] == "ECE"
    reports = {r["name"]: r for r in result.to_dict()["splits"][0]["reports"]}
    assert all(reports[name]["ece"] > 0 for name in rows if name.startswith("knnrouter"))
    # A pooled map keeps every query's ranking: the same choices at cost_weight 0.
    assert reports["knnrouter+isotonic-pooled"]["q0"] == reports["knnrouter"]["q0"]
    assert reports["oracle"]["ece"] == pytest.approx(0.0)
    assert reports["smallest_llm"]["ece"] is None
    assert reports[f"always {test.candidates[0]}"]["ece"] is None
    with pytest.raises(ValueError, match="calibrate must be one of"):
        run_benchmark(train, test, {"knnrouter": {"calibrate": "platt"}})
    with pytest.raises(ValueError, match="fixed choice"):
        run_benchmark(train, test, {"smallest_llm": {"calibrate": "isotonic"}})


# --- fixtures ---------------------------------------------------------------------------------


def _embed(embedder: DeterministicFakeEmbedding, data: RoutingDataset) -> np.ndarray:
    return np.asarray(embedder.embed_documents(data.queries), dtype=np.float64)


def _slice(shared_data: Path, tmp: Path, name: str, n: int) -> RoutingDataset:
    rows = json.loads((shared_data / name).read_text(encoding="utf-8"))
    rows = [r for r in rows if len(r["question"]) <= MAX_CHARS][:n]
    path = tmp / name
    path.write_text(json.dumps(rows), encoding="utf-8")
    pool = CandidatePool.from_json(shared_data / "default_llm.json")
    return RoutingDataset.from_file(path, candidates=pool)


@pytest.fixture(scope="module")
def train(shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> RoutingDataset:
    return _slice(shared_data, tmp_path_factory.mktemp("qcal"), "routerdc_train.json", N_TRAIN)


@pytest.fixture(scope="module")
def test(shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> RoutingDataset:
    return _slice(shared_data, tmp_path_factory.mktemp("qcal"), "routerdc_test.json", N_TEST)
