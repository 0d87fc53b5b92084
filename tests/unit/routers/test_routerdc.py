"""RouterDC: the router contract plus its losses, pair selection, clusters, calibration and modes."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from langchain_llmrouter import RoutingDataset, load_router
from langchain_llmrouter.routers.routerdc import (
    RouterDC,
    cluster_queries,
    sample_llm_loss,
    sample_sample_loss,
    select_pairs,
)
from langchain_llmrouter.testing import RouterContractTests

FAST = {"max_epochs": 8, "patience": 3, "hidden_dim": 64}


class TestRouterDCContract(RouterContractTests):
    router_name = "routerdc"
    contract_data_fixture = "router_slice"
    fast_params = FAST
    bad_params = [
        ({"temperature": 0}, "hparam.temperature"),
        ({"encoder": "bert"}, "hparam.encoder"),
        ({"top_k": 0}, "hparam.top_k"),
        ({"calibration": "logistic"}, "hparam.calibration"),
        ({"finetune_layers": 7}, "hparam.finetune_layers"),
    ]

    def test_quality_is_calibrated_to_the_score_scale(
        self, fitted: RouterDC, router_slice: Any
    ) -> None:
        held = router_slice.held
        predicted = fitted.predict_quality(held.queries, query_embeddings=router_slice.held_emb)
        assert predicted.min() >= 0.0 and predicted.max() <= 1.0
        # Isotonic per candidate: averaged over queries it tracks each candidate's mean score.
        truth = np.nanmean(held.performance, axis=0)
        assert np.abs(predicted.mean(axis=0) - truth).max() < 0.2
        assert np.corrcoef(predicted.mean(axis=0), truth)[0, 1] > 0.8


# --- pair selection and losses --------------------------------------------------------------


def test_positives_include_ties_and_skip_non_positive_scores() -> None:
    scores = np.array(
        [
            [1.0, 1.0, 1.0, 0.0, 0.5, 0.0],  # three tied at the top, two tied at the bottom
            [0.0, 0.0, 0.0, 0.0, 0.0, 0.0],  # nothing scores > 0: no positives
            [np.nan, 1.0, 0.0, 0.2, 0.9, 0.8],  # NaN is neither positive nor negative
        ]
    )
    pos, neg = select_pairs(scores, top_k=2, last_k=2, negative_threshold=0.5)
    assert pos.tolist() == [
        [True, True, True, False, False, False],
        [False] * 6,
        [False, True, False, False, True, False],
    ]
    assert neg[0, 0].tolist() == [False, False, False, True, False, True]
    assert not neg[1].any()
    # Row 2: the two worst known scores are 0.0 and 0.2; NaN never counts.
    assert neg[2, 1].tolist() == [False, False, True, True, False, False]
    assert neg[2, 4].tolist() == [False, False, True, True, False, False]
    assert not neg[2, :, 0].any() and not neg[2, 0].any()


def test_negatives_above_threshold_or_not_below_the_positive_are_masked() -> None:
    scores = np.array([[1.0, 0.6, 0.4, 0.2], [0.4, 0.4, 0.4, 0.4]])
    pos, neg = select_pairs(scores, top_k=1, last_k=3, negative_threshold=0.3)
    assert pos[0].tolist() == [True, False, False, False]
    assert neg[0, 0].tolist() == [False, False, False, True]  # 0.6 and 0.4 are above 0.3
    # All tied: all are positives, none is a negative of another.
    assert pos[1].all() and not neg[1].any()


def test_sample_llm_loss_matches_a_hand_computed_value() -> None:
    logits = torch.tensor([[1.0, 0.0, 2.0, -1.0], [0.5, 0.5, 0.5, 0.5]])
    pos = torch.tensor([[True, False, True, False], [False, False, False, False]])
    neg = torch.zeros(2, 4, 4, dtype=torch.bool)
    neg[0, 0, [1, 3]] = True  # positive 0 vs candidates 1 and 3
    neg[0, 2, [1]] = True  # positive 2 vs candidate 1
    first = math.log(math.e**1 + math.e**0 + math.e**-1) - 1.0
    second = math.log(math.e**2 + math.e**0) - 2.0
    expected = (first + second + 0.0) / 2  # the second query has no positive
    assert sample_llm_loss(logits, pos, neg).item() == pytest.approx(expected, rel=1e-6)
    # A positive with no negative contributes nothing.
    assert sample_llm_loss(logits, pos, torch.zeros_like(neg)).item() == pytest.approx(0.0)


def test_sample_sample_loss_matches_a_hand_computed_value() -> None:
    h = torch.tensor([[1.0, 0.0], [0.6, 0.8], [0.0, 1.0]])
    clusters = torch.tensor([0, 0, 1])
    loss = sample_sample_loss(h, clusters, 2, "inner", 0.5, torch.Generator().manual_seed(0))
    # Query 0: positive 1 (0.6/0.5), negative 2 (0); query 1: positive 0 (1.2), negative 2
    # (1.6); query 2 has no same-cluster partner and is skipped.
    q0 = math.log(math.exp(1.2) + math.exp(0.0)) - 1.2
    q1 = math.log(math.exp(1.2) + math.exp(1.6)) - 1.2
    assert loss.item() == pytest.approx((q0 + q1) / 2, rel=1e-6)
    single = sample_sample_loss(h, torch.zeros(3), 2, "inner", 0.5, torch.Generator())
    assert single.item() == 0.0


def test_clusters_recover_planted_groups() -> None:
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(3, 16)) * 5
    labels = np.repeat(np.arange(3), 20)
    x = centres[labels] + rng.normal(scale=0.1, size=(60, 16))
    found = cluster_queries(x, 3, random_state=0)
    for group in range(3):
        assert len(set(found[labels == group])) == 1
    assert len(set(found)) == 3
    assert cluster_queries(x[:2], 5, random_state=0).max() <= 1  # at most one per query


# --- behaviour ------------------------------------------------------------------------------


def _planted(n: int = 300) -> tuple[RoutingDataset, np.ndarray]:
    """Two query groups; candidate a is right on the first, b on the second, c never."""
    rng = np.random.default_rng(1)
    group = rng.integers(0, 2, size=n)
    x = rng.normal(size=(n, 16)).astype(np.float32)
    x[:, 0] += np.where(group == 0, 3.0, -3.0)
    perf = np.stack([group == 0, group == 1, np.zeros(n, dtype=bool)], axis=1).astype(float)
    perf[5, 1] = np.nan  # a missing score
    data = RoutingDataset(
        queries=[f"q{i}" for i in range(n)],
        candidates=["a", "b", "c"],
        performance=perf,
        cost=np.full((n, 3), 1e-4),
    )
    return data, x


def test_recovers_a_planted_best_candidate_and_is_deterministic() -> None:
    data, x = _planted()
    params: dict[str, Any] = {"max_epochs": 15, "patience": 5, "hidden_dim": 32, "n_clusters": 2}
    router = RouterDC(**params).fit(data.subset(np.arange(200)), query_embeddings=x[:200])
    chosen = router.predict_quality(data.queries[200:], query_embeddings=x[200:]).argmax(axis=1)
    truth = np.nan_to_num(data.performance[200:]).argmax(axis=1)
    assert (chosen == truth).mean() > 0.95
    again = RouterDC(**params).fit(data.subset(np.arange(200)), query_embeddings=x[:200])
    other = RouterDC(**params, random_state=1).fit(
        data.subset(np.arange(200)), query_embeddings=x[:200]
    )
    first = router.predict_quality(data.queries[200:], query_embeddings=x[200:])
    np.testing.assert_array_equal(
        again.predict_quality(data.queries[200:], query_embeddings=x[200:]), first
    )
    assert not np.array_equal(
        other.predict_quality(data.queries[200:], query_embeddings=x[200:]), first
    )


@pytest.mark.parametrize("calibration", ["readout", "isotonic", "none"])
def test_other_calibrations_save_and_load(calibration: str, tmp_path: Path) -> None:
    data, x = _planted(120)
    router = RouterDC(max_epochs=3, hidden_dim=16, calibration=calibration)  # type: ignore[arg-type]
    router.fit(data, query_embeddings=x)
    predicted = router.predict_quality(data.queries[:30], query_embeddings=x[:30])
    assert ((predicted >= 0) & (predicted <= 1)).all()
    if calibration == "none":  # the paper's softmax: a distribution over candidates
        np.testing.assert_allclose(predicted.sum(axis=1), 1.0)
    loaded = load_router(router.save(tmp_path / calibration))
    np.testing.assert_array_equal(
        loaded.predict_quality(data.queries[:30], query_embeddings=x[:30]), predicted
    )


def test_single_candidate_fits_and_routes() -> None:
    data, x = _planted(60)
    one = data.select_candidates(["a"])
    router = RouterDC(max_epochs=2, hidden_dim=8).fit(one, query_embeddings=x)
    decisions = router.route_batch(one.queries[:5], query_embeddings=x[:5])
    assert {d.model for d in decisions} == {"a"}


def test_finetune_mode_saves_and_loads_to_identical_decisions(
    router_slice: Any, tmp_path: Path
) -> None:
    data = router_slice.fit.subset(np.arange(12))
    params: dict[str, Any] = {
        "encoder": "finetune",
        "max_length": 16,
        "finetune_layers": 1,
        "max_epochs": 1,
        "batch_size": 8,
        "hidden_dim": 16,
        "n_clusters": 2,
    }
    router = RouterDC(**params).fit(data, query_embeddings=router_slice.fit_emb[:12])
    queries = router_slice.held.queries[:10]
    # This mode embeds queries itself: the given embeddings are ignored.
    predicted = router.predict_quality(queries, query_embeddings=np.zeros((10, 384)))
    np.testing.assert_array_equal(router.predict_quality(queries), predicted)
    directory = router.save(tmp_path / "ft")
    # Only the trained top layer (plus head and calibration) is saved, not all of MiniLM.
    assert (directory / "arrays.safetensors").stat().st_size < 12_000_000
    loaded = load_router(directory)
    np.testing.assert_array_equal(loaded.predict_quality(queries), predicted)
    assert [d.model for d in loaded.route_batch(queries, cost_weight=1.0)] == [
        d.model for d in router.route_batch(queries, cost_weight=1.0)
    ]
