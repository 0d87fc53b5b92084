"""The matrix-factorisation router: contract, loss and pair construction, planted structure."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from langchain_llmrouter import RoutingDataset, create_router
from langchain_llmrouter.routers.mf import mf_losses, preference_mask
from langchain_llmrouter.testing import RouterContractTests


class TestMFRouterContract(RouterContractTests):
    router_name = "mfrouter"
    contract_data_fixture = "router_slice"
    fast_params = {"latent_dim": 32, "max_epochs": 40, "patience": 5, "lr": 3e-3}
    bad_params = [
        ({"latent_dim": 0}, "hparam.latent_dim"),
        ({"pair_weight": 1.0}, "hparam.pair_weight"),  # the pointwise head must stay
        ({"pair_weight": -0.1}, "hparam.pair_weight"),
        ({"lr": 0}, "hparam.lr"),
        ({"val_fraction": 1.0}, "hparam.val_fraction"),
        ({"patience": 0}, "hparam.patience"),
    ]


# --- pairs and losses -------------------------------------------------------------------------


def test_pairs_come_from_strict_score_differences_only() -> None:
    perf = np.array([[1.0, 0.5, 1.0, np.nan], [0.0, 0.0, 0.0, 0.0]])
    mask = preference_mask(perf)
    expected = np.zeros((4, 4), dtype=bool)
    expected[0, 1] = expected[2, 1] = True  # not 0 vs 2 (a tie), nothing with the NaN
    np.testing.assert_array_equal(mask[0], expected)
    assert not mask[1].any()  # all tied: no pair at all (the peer would make 3 "losers")


def test_losses_mask_missing_scores_and_ties() -> None:
    scores = torch.tensor([[2.0, 0.0, 5.0]])
    target = torch.tensor([[1.0, 0.0, 0.0]])
    known = torch.tensor([[1.0, 1.0, 0.0]])  # the third score is missing
    prefer = torch.from_numpy(preference_mask(np.array([[1.0, 0.0, np.nan]])).astype(np.float32))
    pointwise, pairwise = mf_losses(scores, target, known, prefer)
    softplus = torch.nn.functional.softplus
    # BCE of the two known entries only: -log sigmoid(2) and -log(1 - sigmoid(0)).
    assert float(pointwise) == pytest.approx(float((softplus(-scores[0, 0]) + np.log(2)) / 2))
    # One pair (0 beats 1): -log sigmoid(2 - 0).
    assert float(pairwise) == pytest.approx(float(softplus(torch.tensor(-2.0))))
    # No pairs at all: zero loss, not NaN.
    _, none = mf_losses(scores, target, known, torch.zeros(1, 3, 3))
    assert float(none) == 0.0


# --- planted structure ------------------------------------------------------------------------


def _planted(n: int = 600, seed: int = 0) -> tuple[RoutingDataset, np.ndarray, np.ndarray]:
    """Queries in three embedding clusters; each candidate's success rate depends on the
    cluster through a rank-1 interaction plus a candidate effect."""
    rng = np.random.default_rng(seed)
    cluster = rng.integers(0, 3, n)
    centres = rng.standard_normal((3, 16))
    emb = centres[cluster] + 0.3 * rng.standard_normal((n, 16))
    emb /= np.linalg.norm(emb, axis=1, keepdims=True)
    rate = np.array(
        [
            [0.9, 0.2, 0.5, 0.3],  # cluster 0: candidate 0 is best
            [0.1, 0.8, 0.5, 0.3],  # cluster 1: candidate 1
            [0.3, 0.3, 0.4, 0.7],  # cluster 2: candidate 3
        ]
    )
    perf = (rng.random((n, 4)) < rate[cluster]).astype(float)
    perf[rng.random(perf.shape) < 0.05] = np.nan  # some missing scores
    data = RoutingDataset(
        queries=[f"q{i}" for i in range(n)],
        candidates=["c0", "c1", "c2", "c3"],
        performance=perf,
        cost=np.full((n, 4), 1e-4),
    )
    probe = centres / np.linalg.norm(centres, axis=1, keepdims=True)
    return data, emb, probe


@pytest.fixture(scope="module")
def planted_fit() -> tuple[object, np.ndarray]:
    data, emb, probe = _planted()
    router = create_router("mfrouter", latent_dim=16, lr=3e-3, max_epochs=150, patience=15)
    return router.fit(data, query_embeddings=emb), probe


def test_recovers_the_planted_best_candidate_and_its_quality(planted_fit: tuple) -> None:
    router, probe = planted_fit
    predicted = router.predict_quality(["a", "b", "c"], query_embeddings=probe)
    assert list(predicted.argmax(axis=1)) == [0, 1, 3]
    # Expected quality on the 0..1 scale, near the planted success rates.
    planted = np.array([[0.9, 0.2, 0.5, 0.3], [0.1, 0.8, 0.5, 0.3], [0.3, 0.3, 0.4, 0.7]])
    assert np.abs(predicted - planted).mean() < 0.1
    assert router.best_epoch_ <= router.epochs_run_ <= 150


def test_training_is_deterministic_per_random_state() -> None:
    data, emb, probe = _planted(n=200)
    params = {"latent_dim": 8, "max_epochs": 5, "patience": 5}

    def predict(seed: int) -> np.ndarray:
        router = create_router("mfrouter", random_state=seed, **params)
        return router.fit(data, query_embeddings=emb).predict_quality(
            ["a", "b", "c"], query_embeddings=probe
        )

    np.testing.assert_array_equal(predict(0), predict(0))
    assert not np.array_equal(predict(0), predict(1))


def test_early_stopping_keeps_the_best_epoch() -> None:
    data, emb, _ = _planted(n=200)
    # A large learning rate overfits fast; training must stop well before max_epochs.
    router = create_router("mfrouter", latent_dim=64, lr=0.05, max_epochs=500, patience=3)
    router.fit(data, query_embeddings=emb)
    assert router.epochs_run_ == router.best_epoch_ + 3
    assert router.epochs_run_ < 500


def test_single_candidate_and_tiny_data() -> None:
    data = RoutingDataset(
        queries=["a", "b"],
        candidates=["only"],
        performance=np.array([[1.0], [np.nan]]),
        cost=np.full((2, 1), 1e-4),
    )
    emb = np.eye(2, 4)
    router = create_router("mfrouter", latent_dim=4, max_epochs=3).fit(data, query_embeddings=emb)
    predicted = router.predict_quality(["x"], query_embeddings=emb[:1])
    assert predicted.shape == (1, 1) and 0 < predicted[0, 0] < 1
    assert router.route("x", query_embeddings=emb[:1]).model == "only"
    with pytest.raises(ValueError, match="dimension 4"):
        router.predict_quality(["x"], query_embeddings=np.ones((1, 3)))
