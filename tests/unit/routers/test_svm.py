"""The SVM router: the shared contract plus its own labelling, calibration and numpy replay."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from langchain_llmrouter import RoutingDataset, create_router, load_router
from langchain_llmrouter.routers.svm import SVMRouter, _rbf
from langchain_llmrouter.testing import RouterContractTests


class TestSVMRouterContract(RouterContractTests):
    router_name = "svmrouter"
    contract_data_fixture = "router_slice"
    fast_params = {"C": 1.0}
    bad_params = [
        ({"C": 0}, "hparam.C"),
        ({"kernel": "poly"}, "hparam.kernel"),
        ({"gamma": -1.0}, "hparam.gamma"),
        ({"threshold": 0}, "hparam.threshold"),
        ({"calibration": "beta"}, "hparam.calibration"),
        ({"calibration_folds": 1}, "hparam.calibration_folds"),
    ]


def _planted(n: int = 240, seed: int = 0) -> tuple[RoutingDataset, np.ndarray]:
    """Two clusters: candidate "a" answers cluster 0 well, "b" cluster 1; "c" never does."""
    rng = np.random.default_rng(seed)
    side = np.arange(n) % 2
    centres = np.eye(8)[[0, 1]]
    x = centres[side] + 0.15 * rng.standard_normal((n, 8))
    flip = rng.random(n) < 0.1  # label noise
    a = np.where(side == 0, 1.0, 0.0)
    a = np.where(flip, 1.0 - a, a)
    performance = np.stack([a, 1.0 - a, np.zeros(n)], axis=1)
    data = RoutingDataset(
        queries=[f"query {i}" for i in range(n)],
        candidates=["a", "b", "c"],
        performance=performance,
        cost=np.full((n, 3), 1e-4),
    )
    return data, x.astype(np.float32)


def _sklearn_proba(router: SVMRouter, x_train: np.ndarray, x_new: np.ndarray) -> np.ndarray:
    """Each fitted candidate's scikit-learn ``predict_proba`` (NaN where the model is constant)."""
    out = np.full((len(x_new), len(router.candidates_)), np.nan)
    for j, model in enumerate(router.estimators_):
        if model is None:
            continue
        if router.kernel == "rbf":
            inputs = _rbf(x_new, x_train[router.rows_[j]], router.gamma_)
        else:
            inputs = np.asarray(x_new, dtype=np.float64)
        out[:, j] = model.predict_proba(inputs)[:, 1]
    return out


@pytest.mark.parametrize(
    "params",
    [{}, {"calibration": "isotonic"}, {"kernel": "linear"}, {"gamma": 0.5}],
    ids=["rbf-sigmoid", "rbf-isotonic", "linear", "rbf-gamma"],
)
def test_numpy_replay_equals_sklearn_predict_proba(params: dict[str, Any], tmp_path: Path) -> None:
    data, x = _planted()
    data.performance[::7, 1] = np.nan  # candidate b's model sees fewer rows than a's
    router = SVMRouter(**params).fit(data, query_embeddings=x)
    new = x[:50] + 0.05
    ours = router.predict_quality(data.queries[:50], query_embeddings=new)
    expected = _sklearn_proba(router, x, new)
    fitted = ~np.isnan(expected[0])
    assert fitted.tolist() == [True, True, False]
    np.testing.assert_allclose(ours[:, fitted], expected[:, fitted], rtol=0, atol=1e-10)
    loaded = load_router(router.save(tmp_path / "svm"))
    np.testing.assert_array_equal(
        loaded.predict_quality(data.queries[:50], query_embeddings=new), ours
    )


def test_recovers_planted_structure_with_calibrated_probabilities() -> None:
    data, x = _planted()
    router = SVMRouter().fit(data, query_embeddings=x)
    test, x_test = _planted(seed=1)
    quality = router.predict_quality(test.queries, query_embeddings=x_test)
    side = np.arange(len(test)) % 2
    chosen = quality.argmax(axis=1)
    assert (chosen == side).mean() > 0.95  # a on cluster 0, b on cluster 1
    # Calibrated: about 90% success where a is favoured (10% label noise), not 0/1 scores.
    assert 0.75 < quality[side == 0, 0].mean() < 0.99
    assert quality[side == 0, 1].mean() < 0.25


def test_single_class_candidate_predicts_its_constant_rate() -> None:
    data, x = _planted()
    data.performance[:, 2] = 1.0  # c always succeeds
    router = SVMRouter().fit(data, query_embeddings=x)
    assert router.estimators_[2] is None
    quality = router.predict_quality(data.queries[:5], query_embeddings=x[:5])
    np.testing.assert_array_equal(quality[:, 2], 1.0)
    assert router.constant_[0] != router.constant_[0]  # fitted candidates have no constant (NaN)


def test_threshold_defines_the_labels() -> None:
    data, x = _planted()
    # Partial credit 0.4 where a used to fail: a success only if the threshold is <= 0.4.
    data.performance[:, 0] = np.where(data.performance[:, 0] == 1.0, 1.0, 0.4)
    strict = SVMRouter(threshold=0.5).fit(data, query_embeddings=x)
    lenient = SVMRouter(threshold=0.4).fit(data, query_embeddings=x)
    assert strict.estimators_[0] is not None
    assert lenient.estimators_[0] is None and lenient.constant_[0] == 1.0


def test_nan_scores_are_skipped_per_candidate() -> None:
    data, x = _planted()
    data.performance[: len(data) // 2, 1] = np.nan
    data.performance[:, 2] = np.nan  # never scored at all
    router = SVMRouter().fit(data, query_embeddings=x)
    assert len(router.rows_[0]) == len(data)
    assert len(router.rows_[1]) == len(data) - len(data) // 2
    quality = router.predict_quality(data.queries, query_embeddings=x)
    assert np.isfinite(quality).all()
    side = np.arange(len(data)) % 2
    assert quality[side == 1, 1].mean() > quality[side == 0, 1].mean() + 0.4


def test_single_candidate() -> None:
    data, x = _planted()
    only_a = data.select_candidates(["a"])
    router = SVMRouter().fit(only_a, query_embeddings=x)
    assert [d.model for d in router.route_batch(only_a.queries[:3], query_embeddings=x[:3])] == [
        "a"
    ] * 3


def test_tfidf_features_round_trip(router_slice: Any, tmp_path: Path) -> None:
    fit = router_slice.fit.head(200)
    router = create_router("svmrouter", features="embedding+tfidf")
    router.fit(fit, query_embeddings=router_slice.fit_emb[:200])
    queries, emb = router_slice.held.queries[:30], router_slice.held_emb[:30]
    loaded = load_router(router.save(tmp_path / "svm"))
    np.testing.assert_array_equal(
        loaded.predict_quality(queries, query_embeddings=emb),
        router.predict_quality(queries, query_embeddings=emb),
    )
