"""The Elo (Bradley–Terry) router: contract for both variants, battles, known-answer fits."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from langchain_llmrouter import RoutingDataset, create_router, load_router
from langchain_llmrouter.routers.elo import (
    ELO_BASE,
    ELO_SCALE,
    comparison_matrices,
    fit_bradley_terry,
    fit_calibration,
    to_elo,
)
from langchain_llmrouter.testing import RouterContractTests


class TestEloSimilarityContract(RouterContractTests):
    router_name = "elorouter"
    contract_data_fixture = "router_slice"
    fast_params = {"variant": "similarity", "k": 30, "temperature": 0.2}
    bad_params = [
        ({"variant": "local"}, "hparam.variant"),
        ({"ties": "loss"}, "hparam.ties"),
        ({"prior": 0}, "hparam.prior"),
        ({"k": 0}, "hparam.k"),
        ({"temperature": -1.0}, "hparam.temperature"),
    ]


class TestEloGlobalContract(RouterContractTests):
    router_name = "elorouter"
    contract_data_fixture = "router_slice"
    fast_params = {"variant": "global"}
    bad_params = [({"prior": -1.0}, "hparam.prior")]


# --- battles --------------------------------------------------------------------------------


def test_battles_skip_ties_and_missing_scores() -> None:
    perf = np.array([[1.0, 0.0, 1.0, np.nan]])
    wins = comparison_matrices(perf, "skip")[0]
    expected = np.zeros((4, 4))
    expected[0, 1] = expected[2, 1] = 1.0  # the two 1.0s beat the 0.0; they tie with each other
    np.testing.assert_array_equal(wins, expected)


def test_battles_count_ties_as_half_wins() -> None:
    perf = np.array([[1.0, 0.0, 1.0, np.nan]])
    wins = comparison_matrices(perf, "half")[0]
    assert wins[0, 2] == wins[2, 0] == 0.5
    assert wins[0, 1] == 1.0 and wins[1, 0] == 0.0
    assert wins[:, 3].sum() == wins[3].sum() == 0.0  # a missing score never battles
    assert np.trace(wins) == 0.0


# --- the Bradley–Terry fit: known answers ----------------------------------------------------


def _planted_battles(strength: np.ndarray, n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    m = len(strength)
    wins = np.zeros((m, m))
    i = rng.integers(0, m, n)
    j = (i + rng.integers(1, m, n)) % m  # j != i
    i_wins = rng.random(n) < 1 / (1 + np.exp(-(strength[i] - strength[j])))
    np.add.at(wins, (np.where(i_wins, i, j), np.where(i_wins, j, i)), 1.0)
    return wins


def test_bradley_terry_recovers_planted_strengths() -> None:
    planted = np.array([-1.2, 0.9, -0.3, 0.2, 1.6, -1.2 + 0.05])
    planted -= planted.mean()
    fitted = fit_bradley_terry(_planted_battles(planted, 20_000, seed=1), prior=0.01)
    assert abs(fitted.sum()) < 1e-6  # a zero-centred prior gives centred ratings
    np.testing.assert_allclose(fitted, planted, atol=0.08)
    # The ranking is recovered except where the planted gap is below the noise (0 vs 5).
    assert list(np.argsort(fitted)[2:]) == list(np.argsort(planted)[2:])


def test_bradley_terry_is_batched_and_exact_on_a_two_player_case() -> None:
    # Two players, 3 wins to 1, no prior to speak of: theta_0 - theta_1 = log 3.
    wins = np.array([[0.0, 3.0], [1.0, 0.0]])
    theta = fit_bradley_terry(wins, prior=1e-9)
    assert theta[0] - theta[1] == pytest.approx(np.log(3.0), abs=1e-5)
    # A batch gives the same answers as separate fits.
    other = _planted_battles(np.array([0.5, -0.5, 0.0]), 300, seed=2)
    first = _planted_battles(np.array([1.0, 0.0, -1.0]), 300, seed=3)
    batch = fit_bradley_terry(np.stack([first, other]), prior=0.5)
    np.testing.assert_allclose(batch[0], fit_bradley_terry(first, prior=0.5), atol=1e-9)
    np.testing.assert_allclose(batch[1], fit_bradley_terry(other, prior=0.5), atol=1e-9)


def test_a_candidate_that_never_wins_gets_a_finite_lowest_rating() -> None:
    wins = _planted_battles(np.array([0.0, 0.5, 1.0]), 2_000, seed=4)
    wins[0, :] = 0.0  # candidate 0 never wins
    theta = fit_bradley_terry(wins, prior=1.0)
    assert np.isfinite(theta).all()
    assert theta.argmin() == 0
    # A stronger prior pulls the ratings towards its centre.
    assert np.abs(fit_bradley_terry(wins, prior=100.0)).max() < np.abs(theta).max()


def test_no_battles_leave_the_prior_centre() -> None:
    centre = np.array([0.3, -0.1, -0.2])
    np.testing.assert_allclose(fit_bradley_terry(np.zeros((3, 3)), centre=centre), centre)


def test_elo_units() -> None:
    elo = to_elo(np.array([np.log(10.0), 0.0]))
    assert elo[0] - elo[1] == pytest.approx(400.0)  # 10:1 odds are 400 Elo points
    assert elo.mean() == pytest.approx(ELO_BASE)
    assert pytest.approx(400.0 / np.log(10.0)) == ELO_SCALE


def test_calibration_is_monotone_and_never_inverts_the_ranking() -> None:
    rating = np.repeat([[-1.0, 0.0, 1.0]], 200, axis=0)
    rng = np.random.default_rng(0)
    target = (rng.random(rating.shape) < np.array([0.2, 0.5, 0.8])).astype(float)
    a, b = fit_calibration(rating, target)
    assert b > 0
    quality = 1 / (1 + np.exp(-(a + b * np.array([-1.0, 0.0, 1.0]))))
    np.testing.assert_allclose(quality, target.mean(axis=0), atol=0.05)
    # Ratings that anti-correlate with the scores: flat quality at the mean, not inverted.
    a, b = fit_calibration(rating, target[:, ::-1])
    assert b == 0.0
    assert 1 / (1 + np.exp(-a)) == pytest.approx(target.mean(), abs=1e-6)


# --- the router on synthetic data -------------------------------------------------------------


def _two_cluster_data(n: int = 200, seed: int = 0) -> tuple[RoutingDataset, np.ndarray]:
    """Queries in two embedding clusters; candidate a is good on the first, b on the second,
    c is mediocre everywhere."""
    rng = np.random.default_rng(seed)
    cluster = np.arange(n) % 2
    emb = np.zeros((n, 8))
    emb[np.arange(n), cluster] = 1.0
    emb += 0.05 * rng.standard_normal(emb.shape)
    p_good = np.where(cluster[:, None] == np.array([[0, 1, 2]]), 0.9, 0.2)
    p_good[:, 2] = 0.5
    perf = (rng.random((n, 3)) < p_good).astype(float)
    data = RoutingDataset(
        queries=[f"q{i}" for i in range(n)],
        candidates=["a", "b", "c"],
        performance=perf,
        cost=np.full((n, 3), 1e-4),
    )
    return data, emb


def test_similarity_variant_learns_which_candidate_wins_where() -> None:
    data, emb = _two_cluster_data()
    local = create_router("elorouter", variant="similarity", k=20, prior=1.0)
    local.fit(data, query_embeddings=emb)
    probe = np.eye(8)[:2]  # the two cluster centres
    chosen = [d.model for d in local.route_batch(["x", "y"], query_embeddings=probe)]
    assert chosen == ["a", "b"]
    ratings = local.ratings(["x", "y"], probe)
    assert ratings[0, 0] > ratings[0, 1] + 1.0 and ratings[1, 1] > ratings[1, 0] + 1.0
    # A strong prior pulls the local ratings back towards the global ones.
    shrunk = create_router("elorouter", variant="similarity", k=20, prior=1000.0)
    shrunk.fit(data, query_embeddings=emb)
    spread = np.abs(shrunk.ratings(["x", "y"], probe) - shrunk.theta_).max()
    assert spread < 0.2 * np.abs(ratings - local.theta_).max()
    # The global variant cannot tell the clusters apart: one answer for both queries.
    flat = create_router("elorouter", variant="global").fit(data, query_embeddings=emb)
    predicted = flat.predict_quality(["x", "y"], query_embeddings=probe)
    np.testing.assert_array_equal(predicted[0], predicted[1])


def test_global_variant_ranks_by_strength_and_saves_elo(tmp_path: Path) -> None:
    data, emb = _two_cluster_data()
    data.performance[:, 2] = 1.0  # c now always succeeds: the strongest candidate
    data.performance[:5, 0] = np.nan  # missing scores are simply not battles
    router = create_router("elorouter", variant="global").fit(data, query_embeddings=emb)
    predicted = router.predict_quality(["x"], query_embeddings=emb[:1])[0]
    assert predicted.argmax() == 2
    assert ((predicted > 0) & (predicted < 1)).all()
    # Calibrated towards each candidate's mean score.
    means = np.nanmean(data.performance, axis=0)
    np.testing.assert_allclose(predicted, means, atol=0.15)
    saved = json.loads((router.save(tmp_path / "elo") / "router.json").read_text())
    elo = saved["state"]["elo"]
    assert max(elo, key=elo.get) == "c"
    assert np.mean(list(elo.values())) == pytest.approx(ELO_BASE, abs=0.01)
    loaded = load_router(tmp_path / "elo")
    np.testing.assert_array_equal(
        loaded.predict_quality(["x"], query_embeddings=emb[:1])[0], predicted
    )


def test_single_candidate_and_all_ties() -> None:
    n = 30
    data = RoutingDataset(
        queries=[f"q{i}" for i in range(n)],
        candidates=["only"],
        performance=np.full((n, 1), 0.7),
        cost=np.full((n, 1), 1e-4),
    )
    emb = np.random.default_rng(0).standard_normal((n, 4))
    for variant in ("global", "similarity"):
        router = create_router("elorouter", variant=variant, k=5).fit(data, query_embeddings=emb)
        predicted = router.predict_quality(["x"], query_embeddings=emb[:1])
        assert predicted.shape == (1, 1)
        assert predicted[0, 0] == pytest.approx(0.7, abs=1e-3)
        assert router.route("x", query_embeddings=emb[:1]).model == "only"


def test_wrong_embedding_dimension_is_a_clear_error() -> None:
    data, emb = _two_cluster_data(n=40)
    router = create_router("elorouter", k=5).fit(data, query_embeddings=emb)
    with pytest.raises(ValueError, match="dimension 8"):
        router.predict_quality(["x"], query_embeddings=np.ones((1, 3)))
