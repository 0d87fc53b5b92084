"""The custom-router example ``thresholdrouter`` (custom_routers/thresholdrouter.py), found as a plugin."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from langchain_llmrouter import RoutingDataset, UnknownCandidateError, create_router
from langchain_llmrouter.routers import registry
from langchain_llmrouter.testing import RouterContractTests, fit_router

FAST = {"epochs": 15, "hidden_dim": 32, "threshold": 0.2}  # the slice has few hard queries
STRONG = "llama-3.1-nemotron-51b-instruct"  # the best single candidate of the RouterDC data
CHEAP = "gemma-2-9b-it"  # the cheapest


def test_it_is_a_plugin_found_in_custom_routers() -> None:
    assert "thresholdrouter" in registry.plugin_routers()
    assert "thresholdrouter" not in registry.builtin_routers()
    source = registry.plugin_source("thresholdrouter")
    assert source is not None and source.endswith("custom_routers/thresholdrouter.py")


class TestThresholdRouterContract(RouterContractTests):
    router_name = "thresholdrouter"
    contract_data_fixture = "router_slice"
    fast_params = FAST
    bad_params = [
        ({"threshold": 1.5}, "hparam.threshold"),
        ({"dropout": 1.0}, "hparam.dropout"),
        ({"hidden_dim": 1}, "hparam.hidden_dim"),
    ]

    def test_predictions_cover_every_candidate(self, fitted: Any, router_slice: Any) -> None:
        # A two-candidate router: it knows only the cheap and the strong candidate.
        predicted = fitted.predict_quality(
            router_slice.held.queries[:20], query_embeddings=router_slice.held_emb[:20]
        )
        assert fitted.candidates_ == [CHEAP, STRONG]
        assert predicted.shape == (20, 2) and np.isfinite(predicted).all()


class TestThresholdRouterOnContractData(RouterContractTests):
    """The same contract on the shipped synthetic data, as a plugin author runs it."""

    router_name = "thresholdrouter"
    fast_params = FAST
    bad_params = TestThresholdRouterContract.bad_params

    def test_predictions_cover_every_candidate(self, fitted: Any, contract_data: Any) -> None:
        # The cheapest candidate and the best single one of the synthetic data.
        predicted = fitted.predict_quality(
            contract_data.held.queries[:20], query_embeddings=contract_data.held_emb[:20]
        )
        assert fitted.candidates_ == ["swift-1b", "sage-70b"]
        assert predicted.shape == (20, 2) and np.isfinite(predicted).all()


@pytest.fixture(scope="module")
def fitted(router_slice: Any) -> Any:
    return fit_router("thresholdrouter", FAST, router_slice)


def _strong_share(router: Any, router_slice: Any, **kwargs: Any) -> float:
    decisions = router.route_batch(
        router_slice.held.queries, query_embeddings=router_slice.held_emb, **kwargs
    )
    return float(np.mean([d.model == STRONG for d in decisions]))


def test_threshold_sets_the_share_sent_to_the_strong_candidate(
    fitted: Any, router_slice: Any
) -> None:
    shares = []
    for threshold in (0.0, 0.25, 0.5, 0.75, 1.0):
        fitted.set_params(threshold=threshold)
        try:
            shares.append(_strong_share(fitted, router_slice))
        finally:
            fitted.set_params(threshold=FAST.get("threshold", 0.5))
    assert shares[0] == 1.0 and shares[-1] == 0.0
    assert shares == sorted(shares, reverse=True) and len(set(shares)) > 2, shares


def test_decision_is_difficulty_above_threshold(fitted: Any, router_slice: Any) -> None:
    queries, emb = router_slice.held.queries, router_slice.held_emb
    difficulty = fitted.difficulty(queries, query_embeddings=emb)
    decisions = fitted.route_batch(queries, query_embeddings=emb)
    expected = np.where(difficulty > fitted.threshold, STRONG, CHEAP)
    assert [d.model for d in decisions] == expected.tolist()
    assert "threshold 0.2" in decisions[0].reason


def test_cost_weight_raises_the_effective_threshold(fitted: Any, router_slice: Any) -> None:
    assert _strong_share(fitted, router_slice, cost_weight=1.0) < _strong_share(
        fitted, router_slice
    )


def test_learns_a_planted_difficulty(router_slice: Any) -> None:
    # The strong candidate wins exactly on one side of the embeddings' main direction of variance.
    fit = router_slice.fit
    x = router_slice.fit_emb
    centre = x.mean(axis=0)
    direction = np.linalg.svd(x - centre, full_matrices=False)[2][0]
    hard = (x - centre) @ direction > 0
    perf = np.full((len(fit), 2), 0.5)
    perf[hard, 1] = 1.0
    perf[hard, 0] = 0.0
    data = RoutingDataset(
        queries=fit.queries,
        candidates=[CHEAP, STRONG],
        performance=perf,
        cost=fit.select_candidates([CHEAP, STRONG]).cost,
        candidate_specs={n: fit.candidate_specs[n] for n in (CHEAP, STRONG)},
    )
    router = create_router("thresholdrouter", epochs=60, hidden_dim=32, lr=3e-3)
    router.fit(data, query_embeddings=x)
    held = router_slice.held_emb
    predicted_hard = router.difficulty(router_slice.held.queries, query_embeddings=held) > 0.5
    accuracy = np.mean(predicted_hard == ((held - centre) @ direction > 0))
    assert accuracy > 0.85, accuracy


def test_named_candidates_are_checked(router_slice: Any) -> None:
    with pytest.raises(UnknownCandidateError, match="valid") as info:
        create_router("thresholdrouter", small_model="gpt-9", **FAST).fit(
            router_slice.fit, query_embeddings=router_slice.fit_emb
        )
    assert "gemma-2-9b-it" in str(info.value)
    with pytest.raises(ValueError, match="both"):
        create_router("thresholdrouter", small_model=STRONG, **FAST).fit(
            router_slice.fit, query_embeddings=router_slice.fit_emb
        )


def test_explicit_pair(router_slice: Any) -> None:
    router = create_router(
        "thresholdrouter", small_model="llama-3.1-8b-instruct", large_model=STRONG, **FAST
    ).fit(router_slice.fit, query_embeddings=router_slice.fit_emb)
    assert router.candidates_ == ["llama-3.1-8b-instruct", STRONG]
