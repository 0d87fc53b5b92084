"""The ensemble router (routers/ensemble.py): the router contract, out-of-fold stacking that a
memorising member cannot fool, grouped folds, saving members inside the ensemble's files,
and clear errors for members that cannot stack."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from langchain_llmrouter import ConfigError, RoutingDataset, create_router, load_router
from langchain_llmrouter.routers import registry
from langchain_llmrouter.routers.base import BaseRouter
from langchain_llmrouter.routers.crossval import grouped_folds
from langchain_llmrouter.routers.ensemble import EnsembleRouter
from langchain_llmrouter.testing import ContractData, RouterContractTests

FAST_MEMBERS = [{"router": "knnrouter", "k": 20}, {"router": "elorouter", "k": 20}]


class TestEnsembleRouterContract(RouterContractTests):
    router_name = "ensemble"
    contract_data_fixture = "router_slice"
    fast_params = {"members": FAST_MEMBERS, "n_folds": 3}
    bad_params = [
        ({"n_folds": 1}, "hparam.n_folds"),
        ({"meta": "stack"}, "hparam.meta"),
        ({"members": []}, "hparam.members"),
        ({"members": [{"router": "knnrouter", "k": 0}]}, "hparam.members"),
    ]


class Memoriser(BaseRouter):
    """Recites the training scores of a query it has seen; the mean scores otherwise."""

    name = "memoriser"

    def _fit(self, dataset: RoutingDataset | None, query_embeddings: np.ndarray | None) -> None:
        assert dataset is not None
        self.rows_ = {q: dataset.performance[i] for i, q in enumerate(dataset.queries)}
        self.mean_ = np.nanmean(dataset.performance, axis=0)

    def _predict_quality(
        self, queries: list[str], query_embeddings: np.ndarray | None
    ) -> np.ndarray:
        return np.array([self.rows_.get(q, self.mean_) for q in queries])


@pytest.fixture
def memoriser(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(registry._PLUGINS, "memoriser", Memoriser)


def _with_duplicates(data: ContractData) -> tuple[RoutingDataset, np.ndarray]:
    """The slice's training part with its first 100 queries repeated (same scores)."""
    rows = np.concatenate([np.arange(len(data.fit)), np.arange(100)])
    return data.fit.subset(rows), data.fit_emb[rows]


@pytest.mark.usefixtures("memoriser")
def test_out_of_fold_stacking_ignores_a_memorising_member(router_slice: ContractData) -> None:
    fit, emb = _with_duplicates(router_slice)
    members = [{"router": "memoriser"}, {"router": "knnrouter", "k": 20}]
    router = create_router("ensemble", members=members, n_folds=3).fit(fit, query_embeddings=emb)
    assert isinstance(router, EnsembleRouter)
    # In sample the memoriser is perfect, so a stack fitted on in-sample predictions would
    # trust it alone; out of fold (duplicates kept together) it only knows the mean scores.
    np.testing.assert_allclose(
        router.members_[0].predict_quality(fit.queries[:50]), fit.performance[:50]
    )
    # (Its out-of-fold predictions differ only by fold, so it may keep a sliver of weight.)
    weights = router.member_weights()
    assert (weights[:, 0] == 0).mean() >= 0.75
    assert weights[:, 0].mean() < 0.5 * weights[:, 1].mean()


def test_grouped_folds_keep_duplicates_together() -> None:
    queries = [f"q{i % 37}" for i in range(300)]  # every text eight or nine times
    folds = grouped_folds(queries, 5, seed=3)
    by_text: dict[str, set[int]] = {}
    for q, f in zip(queries, folds, strict=True):
        by_text.setdefault(q, set()).add(int(f))
    assert all(len(f) == 1 for f in by_text.values())
    assert set(folds.tolist()) == set(range(5))
    assert np.array_equal(folds, grouped_folds(queries, 5, seed=3))


@pytest.mark.usefixtures("memoriser")
def test_out_of_fold_predictions_come_from_other_folds(router_slice: ContractData) -> None:
    fit, emb = _with_duplicates(router_slice)
    router = EnsembleRouter(members=[{"router": "memoriser"}], n_folds=4)
    router._set_candidates(fit.candidate_info(), fit)
    oof = router.out_of_fold(fit, emb)[:, 0]
    # No training query (nor its duplicate) was seen by the fit that predicted it.
    folds = grouped_folds(fit.queries, 4)
    for fold in range(4):
        expected = np.nanmean(fit.performance[folds != fold], axis=0)
        np.testing.assert_allclose(
            oof[folds == fold], np.broadcast_to(expected, oof[folds == fold].shape)
        )


def test_save_load_round_trip(tmp_path: Path, router_slice: ContractData) -> None:
    router = create_router("ensemble", members=FAST_MEMBERS, meta="ridge", n_folds=3).fit(
        router_slice.fit, query_embeddings=router_slice.fit_emb
    )
    directory = router.save(tmp_path / "ensemble")
    assert sorted(p.name for p in directory.iterdir()) == ["arrays.safetensors", "router.json"]
    loaded = load_router(directory)
    assert isinstance(loaded, EnsembleRouter)
    assert [m.name for m in loaded.members_] == ["knnrouter", "elorouter"]
    held, emb = router_slice.held.queries, router_slice.held_emb
    np.testing.assert_array_equal(
        loaded.predict_quality(held, query_embeddings=emb),
        router.predict_quality(held, query_embeddings=emb),
    )
    for cost_weight in (0.0, 1.0):
        before = router.route_batch(held, query_embeddings=emb, cost_weight=cost_weight)
        after = loaded.route_batch(held, query_embeddings=emb, cost_weight=cost_weight)
        assert [d.model for d in before] == [d.model for d in after]


def test_unknown_member_lists_the_valid_routers() -> None:
    with pytest.raises(ConfigError) as info:
        create_router("ensemble", members=[{"router": "knn_router"}])
    message = str(info.value)
    assert "knn_router" in message and "hparam.members" in message
    assert all(name in message for name in ("knnrouter", "mlprouter", "elorouter"))


@pytest.mark.parametrize(
    ("member", "says"),
    [
        ({"router": "automix"}, "graph router"),
        ({"router": "personalizedrouter"}, "personalised"),
        ({"router": "gmtrouter"}, "personalised"),
        ({"router": "ensemble"}, "do not nest"),
        ({"k": 5}, "'router' name"),
    ],
)
def test_members_that_cannot_stack_are_refused(member: dict[str, Any], says: str) -> None:
    with pytest.raises(ConfigError, match=says):
        create_router("ensemble", members=[member])
