"""The MLP router: the shared contract plus its masked multi-output training."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from langchain_llmrouter import RoutingDataset, create_router, load_router
from langchain_llmrouter.routers.mlp import MLPRouter
from langchain_llmrouter.testing import RouterContractTests

FAST = {
    "hidden_sizes": [32],
    "max_epochs": 40,
    "patience": 5,
    "lr": 1e-2,
    "dropout": 0.1,
    "weight_decay": 1e-4,
    "features": "embedding",
}


class TestMLPRouterContract(RouterContractTests):
    router_name = "mlprouter"
    contract_data_fixture = "router_slice"
    fast_params = {"hidden_sizes": [64], "max_epochs": 30, "patience": 5, "lr": 1e-3}
    bad_params = [
        ({"hidden_sizes": [0]}, "hparam.hidden_sizes"),
        ({"dropout": 1.0}, "hparam.dropout"),
        ({"lr": 0}, "hparam.lr"),
        ({"validation_fraction": 0}, "hparam.validation_fraction"),
        ({"n_ensemble": 0}, "hparam.n_ensemble"),
        ({"features": "bag-of-words"}, "hparam.features"),
    ]


def _planted(n: int = 300, seed: int = 0) -> tuple[RoutingDataset, np.ndarray]:
    """Two clusters: candidate "a" succeeds on cluster 0, "b" on cluster 1, "c" never."""
    rng = np.random.default_rng(seed)
    side = np.arange(n) % 2
    x = np.eye(8)[side] + 0.15 * rng.standard_normal((n, 8))
    a = (side == 0).astype(float)
    performance = np.stack([a, 1.0 - a, np.zeros(n)], axis=1)
    data = RoutingDataset(
        queries=[f"query {i}" for i in range(n)],
        candidates=["a", "b", "c"],
        performance=performance,
        cost=np.full((n, 3), 1e-4),
    )
    return data, x.astype(np.float32)


def test_recovers_planted_structure() -> None:
    data, x = _planted()
    router = MLPRouter(**FAST).fit(data, query_embeddings=x)
    test, x_test = _planted(seed=1)
    quality = router.predict_quality(test.queries, query_embeddings=x_test)
    side = np.arange(len(test)) % 2
    assert (quality.argmax(axis=1) == side).mean() > 0.97
    assert quality[:, 2].max() < 0.2  # the never-successful candidate stays low


def test_missing_scores_are_masked_out_of_the_loss() -> None:
    data, x = _planted()
    # Hide b's scores on cluster 1 and fill them with a misleading 0 in a second copy:
    # masked (NaN) training must ignore them, so b keeps its learned success elsewhere.
    side = np.arange(len(data)) % 2
    hidden = (side == 1) & (np.arange(len(data)) % 4 != 1)
    nan_data = data.subset(np.arange(len(data)))
    nan_data.performance[hidden, 1] = np.nan
    zero_data = data.subset(np.arange(len(data)))
    zero_data.performance[hidden, 1] = 0.0
    masked = MLPRouter(**FAST).fit(nan_data, query_embeddings=x)
    poisoned = MLPRouter(**FAST).fit(zero_data, query_embeddings=x)
    q_masked = masked.predict_quality(data.queries, query_embeddings=x)[side == 1, 1].mean()
    q_poisoned = poisoned.predict_quality(data.queries, query_embeddings=x)[side == 1, 1].mean()
    assert q_masked > 0.7
    assert q_poisoned < q_masked - 0.25


def test_same_seed_same_router_and_different_seed_differs() -> None:
    data, x = _planted(n=120)
    first = MLPRouter(**FAST).fit(data, query_embeddings=x)
    again = MLPRouter(**FAST).fit(data, query_embeddings=x)
    other = MLPRouter(**FAST, random_state=1).fit(data, query_embeddings=x)
    p = [r.predict_quality(data.queries, query_embeddings=x) for r in (first, again, other)]
    np.testing.assert_array_equal(p[0], p[1])
    assert not np.array_equal(p[0], p[2])


def test_ensemble_averages_its_members(tmp_path: Path) -> None:
    data, x = _planted(n=120)
    router = MLPRouter(**FAST, n_ensemble=3).fit(data, query_embeddings=x)
    assert len(router.members_) == 3
    loaded = load_router(router.save(tmp_path / "mlp"))
    np.testing.assert_array_equal(
        loaded.predict_quality(data.queries, query_embeddings=x),
        router.predict_quality(data.queries, query_embeddings=x),
    )
    singles = []
    for i in range(3):
        single = MLPRouter(**FAST, random_state=1000 * i).fit(data, query_embeddings=x)
        singles.append(single.predict_quality(data.queries, query_embeddings=x))
    np.testing.assert_allclose(
        router.predict_quality(data.queries, query_embeddings=x),
        np.mean(singles, axis=0),
        rtol=1e-6,
    )


def test_numpy_forward_matches_torch() -> None:
    torch = pytest.importorskip("torch")
    data, x = _planted(n=120)
    router = MLPRouter(**{**FAST, "hidden_sizes": [16, 8]}).fit(data, query_embeddings=x)
    net = torch.nn.Sequential(
        torch.nn.Linear(8, 16),
        torch.nn.ReLU(),
        torch.nn.Dropout(0.2),
        torch.nn.Linear(16, 8),
        torch.nn.ReLU(),
        torch.nn.Dropout(0.2),
        torch.nn.Linear(8, 3),
    )
    net.load_state_dict({k: torch.from_numpy(v) for k, v in router.members_[0].items()})
    net.eval()
    z = torch.from_numpy((x - router.mean_) / router.scale_)
    expected = torch.sigmoid(net(z)).detach().numpy()
    got = router.predict_quality(data.queries, query_embeddings=x)
    np.testing.assert_allclose(got, expected, atol=1e-5)


def test_single_candidate() -> None:
    data, x = _planted(n=120)
    only_b = data.select_candidates(["b"])
    router = MLPRouter(**FAST).fit(only_b, query_embeddings=x)
    assert router.predict_quality(only_b.queries[:4], query_embeddings=x[:4]).shape == (4, 1)


def test_tfidf_features_round_trip(router_slice: Any, tmp_path: Path) -> None:
    router = create_router("mlprouter", **{**FAST, "features": "embedding+tfidf"})
    router.fit(router_slice.fit.head(200), query_embeddings=router_slice.fit_emb[:200])
    queries, emb = router_slice.held.queries[:30], router_slice.held_emb[:30]
    loaded = load_router(router.save(tmp_path / "mlp"))
    np.testing.assert_array_equal(
        loaded.predict_quality(queries, query_embeddings=emb),
        router.predict_quality(queries, query_embeddings=emb),
    )
