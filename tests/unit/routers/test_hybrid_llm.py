"""Hybrid LLM router: the contract, the paper's labels, threshold semantics and the routing rule."""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np
import pytest

from langchain_llmrouter import ConfigError, LLMCandidate, RoutingDataset, create_router
from langchain_llmrouter.routers.hybrid_llm import (
    HybridLLMRouter,
    balanced_tolerance,
    cheapest_good_enough,
    hybrid_quality,
    make_labels,
)
from langchain_llmrouter.routers.policy import choose
from langchain_llmrouter.testing import RouterContractTests

FAST = {"epochs": 3, "hidden_sizes": [32]}
STRONG, WEAK = "llama-3.1-nemotron-51b-instruct", "gemma-2-9b-it"


class TestHybridLLMContract(RouterContractTests):
    router_name = "hybrid_llm"
    contract_data_fixture = "router_slice"
    fast_params = FAST
    bad_params = [
        ({"threshold": -0.1}, "hparam.threshold"),
        ({"label_mode": "soft"}, "hparam.label_mode"),
        ({"tau": 0}, "hparam.tau"),
        ({"large_share": 1.5}, "hparam.large_share"),
        ({"hidden_sizes": "wide"}, "hparam.hidden_sizes"),
        ({"hidden_sizes": [0]}, "hparam.hidden_sizes"),
    ]


def fit(data: RoutingDataset, emb: np.ndarray, **params: Any) -> HybridLLMRouter:
    router = create_router("hybrid_llm", **{**FAST, **params})
    assert isinstance(router, HybridLLMRouter)
    return router.fit(data, query_embeddings=emb)


def synthetic(
    perf: np.ndarray, prices: list[float], sizes: list[str] | None = None
) -> RoutingDataset:
    """A dataset with candidates c0, c1, ... at the given prices (dollars per million tokens)."""
    n, m = perf.shape
    specs = {
        f"c{j}": LLMCandidate(
            name=f"c{j}",
            input_price=prices[j],
            output_price=prices[j],
            size=sizes[j] if sizes else None,
        )
        for j in range(m)
    }
    return RoutingDataset(
        queries=[f"query {i}" for i in range(n)],
        candidates=list(specs),
        performance=perf,
        cost=np.zeros((n, m)),
        candidate_specs=specs,
    )


# --- labels --------------------------------------------------------------------------------


def test_deterministic_labels_follow_the_tolerance() -> None:
    gap = np.array([-1.0, -0.3, -0.1, 0.0, 0.5, np.nan])
    labels, t = make_labels(gap, "deterministic")
    np.testing.assert_array_equal(labels, [0, 0, 0, 1, 1, np.nan])
    assert t == 0.0
    labels, t = make_labels(gap, "deterministic", tolerance=0.3)
    np.testing.assert_array_equal(labels, [0, 1, 1, 1, 1, np.nan])
    assert t == 0.3


def test_probabilistic_labels_are_a_sigmoid_of_the_gap() -> None:
    gap = np.array([-1.0, 0.0, 0.2, np.nan])
    labels, _ = make_labels(gap, "probabilistic", tau=0.1)
    np.testing.assert_allclose(labels[:3], 1 / (1 + np.exp(-gap[:3] / 0.1)))
    assert labels[1] == 0.5 and np.isnan(labels[3])
    shifted, _ = make_labels(gap, "probabilistic", tolerance=0.2, tau=0.1)
    assert shifted[1] == pytest.approx(1 / (1 + np.exp(-2.0)))


def test_transformed_labels_pick_the_most_balanced_tolerance() -> None:
    # At t=0 only 2 of 8 are positive; t=0.5 gives 4 of 8 (the best balance); t=1 gives 8.
    gap = np.array([-1.0, -1.0, -1.0, -1.0, -0.5, -0.5, 0.0, 0.3])
    assert balanced_tolerance(gap) == 0.5
    labels, t = make_labels(gap, "transformed", tolerance=0.9)  # tolerance is not used
    assert t == 0.5
    np.testing.assert_array_equal(labels, [0, 0, 0, 0, 1, 1, 1, 1])
    assert balanced_tolerance(np.array([np.nan])) == 0.0


# --- the rule and the scores -------------------------------------------------------------


def test_scores_at_cost_weight_zero_pick_the_cheapest_good_enough_candidate() -> None:
    rng = np.random.default_rng(1)
    n, m, ref = 400, 6, 4
    proba = rng.choice([0.2, 0.5, 0.7, 0.9], size=(n, m))  # ties on purpose
    prices = np.array([0.2, 0.1, 0.2, 0.5, 0.9, 0.2])  # equal-cost groups on purpose
    cost = (rng.integers(10, 200, size=(n, 1)) * prices + 200 * prices) / 1e6
    shortfall = rng.uniform(0.2, 1.0, size=m)
    for threshold in (0.0, 0.3, 0.5, 0.7, 0.9, 1.0, 1.5):
        scores = hybrid_quality(proba, cost, threshold, ref, 0.6, shortfall)
        expected = cheapest_good_enough(proba, cost, threshold, ref)
        np.testing.assert_array_equal(choose(scores, cost, 0.0), expected)
        assert scores.max() <= 0.6 and scores.min() >= 0.6 - 1.5 * shortfall.max()
    # Among equally cheap qualifying candidates the likeliest wins, not the first listed.
    one = np.array([[0.6, 0.3, 0.8, 0.2, 1.0, 0.9]])
    one_cost = (prices * 300 / 1e6)[None, :]
    assert cheapest_good_enough(one, one_cost, 0.5, ref)[0] == 5
    assert choose(hybrid_quality(one, one_cost, 0.5, ref, 0.6, shortfall), one_cost)[0] == 5


def test_fitted_router_follows_the_rule(router_slice: Any) -> None:
    router = fit(router_slice.fit, router_slice.fit_emb)
    held, emb = router_slice.held, router_slice.held_emb
    threshold = router.threshold_for_share(0.5, held.queries, query_embeddings=emb)
    router.set_params(threshold=threshold)
    proba = router.predict_proba(held.queries, query_embeddings=emb)
    expected = cheapest_good_enough(
        proba, router.estimate_costs(held.queries), threshold, router.reference_
    )
    got = [d.model for d in router.route_batch(held.queries, query_embeddings=emb)]
    assert got == [held.candidates[j] for j in expected]
    assert len(set(got)) > 1  # the rule is not trivially "always one model" here


def test_threshold_semantics(router_slice: Any) -> None:
    router = fit(router_slice.fit, router_slice.fit_emb)
    held, emb = router_slice.held, router_slice.held_emb
    ref = held.candidates[router.reference_]
    assert ref == router_slice.fit.best_single()
    cheapest = held.candidates[int(np.argmin(router.input_price_ + router.output_price_))]

    def shares() -> tuple[float, set[str]]:
        models = [d.model for d in router.route_batch(held.queries, query_embeddings=emb)]
        return float(np.mean([m == ref for m in models])), set(models)

    router.set_params(threshold=0.0)
    assert shares() == (0.0, {cheapest})
    router.set_params(threshold=1.01)
    assert shares() == (1.0, {ref})
    curve = []
    for threshold in np.linspace(0.3, 0.8, 11):
        router.set_params(threshold=float(threshold))
        curve.append(shares()[0])
    assert all(b >= a for a, b in itertools.pairwise(curve)), curve
    assert curve[0] < 0.5 < curve[-1], curve


def test_large_share_calibrates_the_threshold(router_slice: Any, tmp_path: Any) -> None:
    data, emb = router_slice.fit, router_slice.fit_emb
    router = fit(data, emb, large_share=0.6)
    ref = data.candidates[router.reference_]
    models = [d.model for d in router.route_batch(data.queries, query_embeddings=emb)]
    assert np.mean([m == ref for m in models]) == pytest.approx(0.6, abs=0.01)
    # The calibrated threshold is learned state: it survives save/load.
    loaded = HybridLLMRouter.load(router.save(tmp_path / "h"))
    assert isinstance(loaded, HybridLLMRouter)
    assert loaded.effective_threshold == router.effective_threshold != router.threshold
    held = router_slice.held
    share = 0.25
    threshold = router.threshold_for_share(
        share, held.queries, query_embeddings=router_slice.held_emb
    )
    router.set_params(large_share=None, threshold=threshold)
    models = [
        d.model for d in router.route_batch(held.queries, query_embeddings=router_slice.held_emb)
    ]
    assert np.mean([m == ref for m in models]) == pytest.approx(share, abs=0.01)


def test_two_candidates_behave_like_the_paper(router_slice: Any) -> None:
    data = router_slice.fit.select_candidates([WEAK, STRONG])
    held = router_slice.held.select_candidates([WEAK, STRONG])
    router = fit(data, router_slice.fit_emb, reference=STRONG)
    p_small = router.predict_proba(held.queries, query_embeddings=router_slice.held_emb)[:, 0]
    for threshold in (0.3, 0.5, 0.55, 0.7):
        router.set_params(threshold=threshold)
        got = [
            d.model
            for d in router.route_batch(held.queries, query_embeddings=router_slice.held_emb)
        ]
        assert got == [WEAK if p >= threshold else STRONG for p in p_small]
    # With a positive cost weight the decision only ever moves to the cheap model.
    router.set_params(threshold=0.55)
    base = [
        d.model for d in router.route_batch(held.queries, query_embeddings=router_slice.held_emb)
    ]
    cheap = router.route_batch(
        held.queries, cost_weight=0.5, query_embeddings=router_slice.held_emb
    )
    assert all(
        a == WEAK or b.model == a or b.model == WEAK for a, b in zip(base, cheap, strict=True)
    )


@pytest.mark.parametrize(
    ("label_mode", "threshold"),
    # Probabilistic labels of a tie are sigmoid(0) = 0.5, hence the lower threshold.
    [("deterministic", 0.5), ("transformed", 0.5), ("probabilistic", 0.25)],
)
def test_recovers_a_planted_structure(label_mode: str, threshold: float) -> None:
    # Cluster A (first coordinate > 0): the cheap c0 is as good as the dear reference c1;
    # cluster B: c0 always fails. c2 is mid-priced and always fails.
    rng = np.random.default_rng(0)
    n = 400
    emb = rng.normal(size=(n, 8)).astype(np.float32)
    a = emb[:, 0] > 0
    perf = np.column_stack([a.astype(float), np.ones(n), np.zeros(n)])
    data = synthetic(perf, [0.1, 0.9, 0.5])
    router = fit(
        data,
        emb,
        reference="c1",
        label_mode=label_mode,
        threshold=threshold,
        hidden_sizes=[],
        epochs=100,
        learning_rate=0.05,
        weight_decay=0.0,
    )
    test = rng.normal(size=(200, 8)).astype(np.float32)
    models = [
        d.model for d in router.route_batch([f"q{i}" for i in range(200)], query_embeddings=test)
    ]
    expected = np.where(test[:, 0] > 0, "c0", "c1")
    assert np.mean(np.array(models) == expected) > 0.9
    assert "c2" not in models


@pytest.mark.filterwarnings("ignore:Mean of empty slice")
def test_reference_choices_and_edge_cases() -> None:
    rng = np.random.default_rng(0)
    emb = rng.normal(size=(60, 4)).astype(np.float32)
    perf = rng.integers(0, 2, size=(60, 3)).astype(float)
    perf[:, 1] = 1.0  # c1 is the best single candidate
    perf[:, 2] = np.nan  # c2 has no scores at all
    data = synthetic(perf, [0.1, 0.5, 0.9], sizes=["7B", "13B", "70B"])
    assert fit(data, emb).reference_ == 1
    assert fit(data, emb, reference="largest").reference_ == 2
    assert fit(data, emb, reference="c0").reference_ == 0
    with pytest.raises(ConfigError, match=r"hparam\.reference.*valid: best, largest, c0"):
        fit(data, emb, reference="c9")
    # A candidate without scores has a near-zero probability: never chosen at threshold 0.5.
    router = fit(data, emb, threshold=0.5)
    assert router.predict_proba(data.queries, query_embeddings=emb)[:, 2].max() < 0.1
    assert "c2" not in {d.model for d in router.route_batch(data.queries, query_embeddings=emb)}
    # A single candidate: nothing to learn, always that candidate.
    single = fit(data.select_candidates(["c1"]), emb)
    assert {d.model for d in single.route_batch(data.queries, query_embeddings=emb)} == {"c1"}


def test_fit_is_deterministic(router_slice: Any) -> None:
    held, emb = router_slice.held.queries[:50], router_slice.held_emb[:50]
    a = fit(router_slice.fit, router_slice.fit_emb).predict_quality(held, query_embeddings=emb)
    b = fit(router_slice.fit, router_slice.fit_emb).predict_quality(held, query_embeddings=emb)
    np.testing.assert_array_equal(a, b)
