"""The kNN router (routers/knn.py): quality on held-out queries, shapes, neighbours,
hyperparameters, and the shipped router contract."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from pydantic import ValidationError

from langchain_llmrouter import (
    BaseRouter,
    ConfigError,
    RoutingDataset,
    RoutingDecision,
    create_router,
)
from langchain_llmrouter.routers.knn import KNNRouter
from langchain_llmrouter.routers.mf import fill_unknown_scores
from langchain_llmrouter.testing import RouterContractTests

N_HELD = 200
"""Held-out queries in conftest's `short_held`."""


class TestKNNRouterContract(RouterContractTests):
    router_name = "knnrouter"
    contract_data_fixture = "router_slice"
    fast_params = {"k": 20}
    bad_params = [({"k": 0}, "hparam.k"), ({"metric": "manhattan"}, "hparam.metric")]


def _chosen_quality(data: RoutingDataset, decisions: list[RoutingDecision]) -> np.ndarray:
    cols = [data.candidates.index(d.model) for d in decisions]
    return data.performance[np.arange(len(data)), cols]


def test_knn_beats_random(
    short_knn: BaseRouter,
    short_fit: RoutingDataset,
    short_held: RoutingDataset,
    short_held_emb: np.ndarray,
) -> None:
    knn_quality = _chosen_quality(
        short_held, short_knn.route_batch(short_held.queries, query_embeddings=short_held_emb)
    )
    random = create_router("randomrouter", seed=1).fit(short_fit)
    random_quality = _chosen_quality(short_held, random.route_batch(short_held.queries))
    assert knn_quality.mean() > random_quality.mean() + 0.05
    # Sanity: random sits near the mean of the candidates, the oracle far above both.
    assert random_quality.mean() == pytest.approx(short_held.performance.mean(), abs=0.06)
    assert knn_quality.mean() < short_held.performance.max(axis=1).mean()


def test_knn_prediction_shapes(
    short_knn: BaseRouter, short_held: RoutingDataset, short_held_emb: np.ndarray
) -> None:
    predicted = short_knn.predict_quality(short_held.queries, query_embeddings=short_held_emb)
    assert predicted.shape == (N_HELD, 9)
    assert ((predicted >= 0) & (predicted <= 1)).all()
    assert short_knn.candidates_ == short_held.candidates
    costs = short_knn.estimate_costs(short_held.queries)
    assert costs.shape == (N_HELD, 9)
    np.testing.assert_allclose(costs, short_held.cost, rtol=1e-12)


def test_knn_k1_reproduces_a_training_row(
    short_fit: RoutingDataset, short_fit_emb: np.ndarray
) -> None:
    router = create_router("knnrouter", k=1, weights="uniform").fit(
        short_fit, query_embeddings=short_fit_emb
    )
    predicted = router.predict_quality(short_fit.queries[:5], query_embeddings=short_fit_emb[:5])
    np.testing.assert_allclose(predicted, short_fit.performance[:5], atol=1e-6)


def test_knn_decision_fields(
    short_knn: BaseRouter, short_held: RoutingDataset, short_held_emb: np.ndarray
) -> None:
    decision = short_knn.route(short_held.queries[0], query_embeddings=short_held_emb[:1])
    assert decision.router == "knnrouter"
    assert set(decision.scores) == set(decision.costs) == set(short_held.candidates)
    assert sorted(decision.ranking) == sorted(short_held.candidates)
    assert decision.ranking[0] == decision.model
    assert decision.scores[decision.model] == max(decision.scores.values())
    assert decision.est_cost == decision.costs[decision.model]
    assert decision.model in decision.reason
    assert decision.to_metadata()["model"] == decision.model
    with pytest.raises(ValidationError):
        decision.model = "other"  # type: ignore[misc]


def test_route_batch_equals_route(
    short_knn: BaseRouter, short_held: RoutingDataset, short_held_emb: np.ndarray
) -> None:
    queries, emb = short_held.queries[:25], short_held_emb[:25]
    batch = short_knn.route_batch(queries, query_embeddings=emb, cost_weight=0.3)
    single = [
        short_knn.route(q, query_embeddings=emb[i : i + 1], cost_weight=0.3)
        for i, q in enumerate(queries)
    ]
    for together, alone in zip(batch, single, strict=True):
        # The neighbour search's float32 arithmetic depends on the batch: scores agree to ~1e-7.
        assert together.scores == pytest.approx(alone.scores, abs=1e-5)
        assert together.model_dump(exclude={"scores"}) == alone.model_dump(exclude={"scores"})
    assert short_knn.route_batch([]) == []


BAD_KNN_PARAMS = [
    ({"k": 0}, "hparam.k"),
    ({"k": "many"}, "hparam.k"),
    ({"metric": "manhattan"}, "hparam.metric"),
    ({"weights": "gaussian"}, "hparam.weights"),
    ({"cost_weight": -1.0}, "hparam.cost_weight"),
    ({"budget": 0.0}, "hparam.budget"),
]


@pytest.mark.parametrize(("params", "field"), [*BAD_KNN_PARAMS, ({"foo": 1}, "hparam.foo")])
def test_create_router_rejects_bad_params(params: dict[str, Any], field: str) -> None:
    with pytest.raises(ConfigError) as info:
        create_router("knnrouter", **params)
    assert info.value.field == field
    assert field in str(info.value)


@pytest.mark.parametrize(("params", "field"), BAD_KNN_PARAMS)
def test_fit_rejects_bad_params(
    params: dict[str, Any], field: str, short_fit: RoutingDataset, short_fit_emb: np.ndarray
) -> None:
    router = KNNRouter(**params)  # scikit-learn style: __init__ only stores
    with pytest.raises(ConfigError) as info:
        router.fit(short_fit, query_embeddings=short_fit_emb)
    assert info.value.field == field
    assert not router.is_fitted


def test_set_params(short_fit: RoutingDataset) -> None:
    router = KNNRouter()
    assert router.set_params(k=3, metric="l2") is router
    assert router.get_params() == {
        "k": 3,
        "weights": "distance",
        "metric": "l2",
        "dims": None,
        "prior_count": 0.0,
        "fill_unknown": "none",
        "index": "exact",
        "hnsw_m": 32,
        "hnsw_ef_construction": 80,
        "hnsw_ef_search": 128,
        "ivf_nlist": None,
        "ivf_nprobe": 32,
        "index_code": None,
        "cost_weight": 0.0,
        "budget": None,
    }
    with pytest.raises(ConfigError) as info:
        router.set_params(foo=1)
    assert info.value.field == "foo"
    assert "k, weights, metric" in str(info.value)


def test_query_embedding_dimension_mismatch(short_knn: BaseRouter) -> None:
    with pytest.raises(ValueError, match="dimension 8"):
        short_knn.route("q", query_embeddings=np.zeros((1, 8), dtype=np.float32))


def test_prior_count_keeps_a_few_lucky_scores_from_deciding() -> None:
    """Sparse scores (as ``calls.strategy: active`` collects): a weak candidate scored on one
    neighbour, where it happened to do well, looks best to the plain neighbour mean; with
    ``prior_count`` its estimate is pulled toward its low overall mean, and the strong
    candidate, scored everywhere, stays first. Candidates scored on every neighbour keep
    (nearly) their plain means."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, 8)).astype(np.float32)
    strong = np.full(200, 0.7)
    weak = np.full(200, np.nan)
    weak[rng.choice(200, size=150, replace=False)] = 0.0  # scored on most queries: poor
    weak[0] = 1.0  # near the test query: one lucky score; the rest of its neighbours unknown
    weak[np.argsort(np.linalg.norm(x - x[0], axis=1))[1:10]] = np.nan
    data = RoutingDataset(
        queries=[f"q{i}" for i in range(200)],
        candidates=["strong", "weak"],
        performance=np.stack([strong, weak], axis=1),
        cost=np.ones((200, 2)),
    )
    plain = KNNRouter(k=10, weights="uniform", metric="l2").fit(data, query_embeddings=x)
    shrunk = KNNRouter(k=10, weights="uniform", metric="l2", prior_count=5.0).fit(
        data, query_embeddings=x
    )
    query = x[:1]
    assert plain.predict_quality(["q"], query_embeddings=query)[0, 1] == pytest.approx(1.0)
    assert plain.route("q", query_embeddings=query).model == "weak"
    predicted = shrunk.predict_quality(["q"], query_embeddings=query)[0]
    assert predicted[0] == pytest.approx(0.7)
    assert predicted[1] == pytest.approx((1.0 + 5.0 * np.nanmean(weak)) / 6.0)
    assert shrunk.route("q", query_embeddings=query).model == "strong"


def _lucky_weak_candidate() -> tuple[RoutingDataset, np.ndarray]:
    """200 queries: ``strong`` scores 0.7 everywhere; ``weak`` scores 0 on most queries it was
    tried on, 1 on query 0, and is unknown on query 0's 9 nearest neighbours."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, 8)).astype(np.float32)
    weak = np.full(200, np.nan)
    weak[rng.choice(200, size=150, replace=False)] = 0.0
    weak[0] = 1.0
    weak[np.argsort(np.linalg.norm(x - x[0], axis=1))[1:10]] = np.nan
    data = RoutingDataset(
        queries=[f"q{i}" for i in range(200)],
        candidates=["strong", "weak"],
        performance=np.stack([np.full(200, 0.7), weak], axis=1),
        cost=np.ones((200, 2)),
    )
    return data, x


def test_fill_unknown_mf_gives_every_neighbour_a_score(tmp_path: Path) -> None:
    """The lone lucky score again: ``fill_unknown: mf`` fills the weak candidate's unknown
    neighbours from a matrix factorisation (near its low scores elsewhere), so its lucky
    score is one of ten rather than the only one; known scores are kept, and the saved router
    routes the same."""
    data, x = _lucky_weak_candidate()
    plain = KNNRouter(k=10, weights="uniform", metric="l2").fit(data, query_embeddings=x)
    filled = KNNRouter(k=10, weights="uniform", metric="l2", fill_unknown="mf").fit(
        data, query_embeddings=x
    )
    assert plain.route("q", query_embeddings=x[:1]).model == "weak"
    assert filled.route("q", query_embeddings=x[:1]).model == "strong"
    known = ~np.isnan(data.performance)
    assert np.array_equal(filled.train_y_[known], data.performance[known].astype(np.float32))
    guessed = filled.train_y_[~known]
    assert not np.isnan(guessed).any() and guessed.max() < 0.5  # near the weak one's zeros
    filled.save(tmp_path / "knn")
    loaded = KNNRouter.load(tmp_path / "knn")
    assert loaded.fill_unknown == "mf"
    np.testing.assert_allclose(
        loaded.predict_quality(["q"], query_embeddings=x[:5]),
        filled.predict_quality(["q"], query_embeddings=x[:5]),
    )


def test_fill_unknown_leaves_a_full_matrix_and_a_never_scored_candidate_alone() -> None:
    data, x = _lucky_weak_candidate()
    full = dataclasses.replace(data, performance=np.nan_to_num(data.performance))
    assert np.array_equal(fill_unknown_scores(full, x), full.performance)
    never = dataclasses.replace(
        data, performance=np.stack([data.performance[:, 0], np.full(200, np.nan)], axis=1)
    )
    assert np.isnan(fill_unknown_scores(never, x)[:, 1]).all()
