"""Unit tests of `AutoMixRouter` (fitting AutoMix's escalation policy) and of the
verification results in `RoutingDataset`, on planted data where the right policy is known."""

from __future__ import annotations

import itertools
import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from langchain_llmrouter import DataFormatError, LLMCandidate, RoutingDataset
from langchain_llmrouter.errors import ConfigError, GraphRouterError
from langchain_llmrouter.graphs.automix_router import AutoMixRouter
from langchain_llmrouter.graphs.base import BaseGraphRouter
from langchain_llmrouter.routers.automix import (
    AutoMixFitter,
    CascadeData,
    POMDPPolicy,
    ThresholdPolicy,
    ibc_lift,
    simulate,
)

PRICES = {"small": 0.1, "mid": 0.3, "large": 3.0}
"""Dollars per million tokens (input and output) of the planted candidates."""
K = 4


def dataset(
    perf: np.ndarray, conf: np.ndarray, names: list[str], source: str = "planted.jsonl"
) -> RoutingDataset:
    """A dataset whose cost per call is 1e-4 × the candidate's price."""
    n = len(perf)
    specs = {m: LLMCandidate(name=m, input_price=PRICES[m], output_price=PRICES[m]) for m in names}
    cost = np.tile([PRICES[m] * 1e-4 for m in names], (n, 1))
    return RoutingDataset(
        queries=[f"q{i}" for i in range(n)],
        candidates=list(names),
        performance=perf,
        cost=cost,
        source=source,
        candidate_specs=specs,
        verification=conf,
    )


def two_model(n: int, seed: int, *, informative: bool = True) -> RoutingDataset:
    """Small right 60% of the time, large 90%; the small model's confidence is high
    (0.75 or 1) when it is right and low (0 .. 0.5) when it is wrong, except for 5% noise;
    or, uninformative, drawn independently of its correctness."""
    rng = np.random.default_rng(seed)
    small = (rng.random(n) < 0.6).astype(float)
    large = (rng.random(n) < 0.9).astype(float)
    high, low = rng.choice([0.75, 1.0], n), rng.choice([0.0, 0.25, 0.5], n)
    right = (small == 1) ^ (rng.random(n) < 0.05)
    conf = np.where(right, high, low) if informative else rng.choice(np.arange(5) / 4, n)
    perf = np.stack([small, large], axis=1)
    return dataset(perf, np.stack([conf, np.full(n, np.nan)], axis=1), ["small", "large"])


def test_informative_confidence_escalates_the_unconfident() -> None:
    train, test = two_model(3000, 0), two_model(3000, 1)
    router = AutoMixRouter(cascade=["small", "large"], verify_samples=K).fit(train)

    assert router.objective_ == "ibc_lift"
    assert isinstance(router.policy_, ThresholdPolicy)
    grid = np.arange(5) / 4
    assert router.policy_.escalate_mask(0, grid).tolist() == [True, True, True, False, False]
    held = router.evaluate(test)
    # Both baselines lie on the IBC line (lift 0); AutoMix is well above it, on new data too.
    assert router.train_metrics_["objective"] > 0.15
    assert held["objective"] > 0.15
    assert held["performance"] > held["last_model"]["performance"]  # small right, large wrong
    assert held["stage_shares"][1] == pytest.approx(0.4, abs=0.05)


def test_utility_objective_beats_both_models_alone() -> None:
    train, test = two_model(3000, 0), two_model(3000, 1)
    # At this weight always-small and always-large have about the same utility.
    router = AutoMixRouter(
        cascade=["small", "large"], objective="utility", cost_weight=1.0, verify_samples=K
    ).fit(train)
    held = router.evaluate(test)

    def util(p: float, c: float) -> float:
        return p - 1.0 * c * 1000

    small, large = held["first_model"], held["last_model"]
    assert router.objective_ == "utility"
    assert held["objective"] > util(small["performance"], small["cost"]) + 0.03
    assert held["objective"] > util(large["performance"], large["cost"]) + 0.03


def test_uninformative_confidence_gains_nothing() -> None:
    router = AutoMixRouter(cascade=["small", "large"], verify_samples=K)
    router.fit(two_model(3000, 0, informative=False))
    held = router.evaluate(two_model(3000, 1, informative=False))

    # Verifying is pure cost here: no threshold lifts the cascade above the base line.
    assert router.train_metrics_["objective"] <= 0.02
    assert held["objective"] <= 0.02
    informed = AutoMixRouter(cascade=["small", "large"], verify_samples=K).fit(two_model(3000, 0))
    assert informed.train_metrics_["objective"] > router.train_metrics_["objective"] + 0.2


def middle_bins(n: int, seed: int) -> RoutingDataset:
    """Low confidence: both models fail (hopeless); middle: only the large one is right;
    high: both are right. Escalating helps only in the middle bins (8 bins, k = 8)."""
    rng = np.random.default_rng(seed)
    conf = rng.integers(0, 9, n) / 8
    band = np.digitize(conf, [0.3, 0.7])  # 0 low, 1 middle, 2 high
    small = (band == 2).astype(float)
    large = (band >= 1).astype(float)
    noise = rng.random(n) < 0.05
    small = np.where(noise, 1 - small, small)
    perf = np.stack([small, large], axis=1)
    return dataset(perf, np.stack([conf, np.full(n, np.nan)], axis=1), ["small", "large"])


def test_pomdp_learns_a_pattern_no_threshold_can() -> None:
    train, test = middle_bins(3000, 0), middle_bins(3000, 1)
    pomdp = AutoMixRouter(cascade=["small", "large"], method="pomdp", verify_samples=2).fit(train)
    threshold = AutoMixRouter(cascade=["small", "large"], verify_samples=2).fit(train)

    assert isinstance(pomdp.policy_, POMDPPolicy)
    expected = [False] * 3 + [True] * 3 + [False] * 3
    assert list(pomdp.policy_.escalate_bins[0]) == expected
    assert pomdp.lambda_ is not None and pomdp.lambda_ > 0
    assert threshold.policy_.escalate_mask(0, np.arange(9) / 8).sum() >= 5  # low bins too
    assert pomdp.evaluate(test)["objective"] > threshold.evaluate(test)["objective"] + 0.3


def three_model(n: int, seed: int) -> RoutingDataset:
    """Quality rises along small → mid → large; each model's confidence says whether it
    is right (with 5% noise)."""
    rng = np.random.default_rng(seed)
    perf = (rng.random((n, 3)) < [0.4, 0.65, 0.9]).astype(float)
    right = (perf == 1) ^ (rng.random((n, 3)) < 0.05)
    conf = np.where(right, rng.choice([0.75, 1.0], (n, 3)), rng.choice([0.0, 0.25, 0.5], (n, 3)))
    conf[:, 2] = np.nan
    return dataset(perf, conf, ["small", "mid", "large"])


@pytest.mark.parametrize("method", ["threshold", "pomdp"])
def test_three_model_cascade(method: Any) -> None:
    train = three_model(3000, 0)
    router = AutoMixRouter(method=method, cascade=["small", "mid", "large"], verify_samples=K)
    router.fit(train)

    assert router.cascade_ == ["small", "mid", "large"]
    assert router.policy_.n_decisions == 2
    held = router.evaluate(three_model(3000, 1))
    assert held["objective"] > 0.4
    assert sum(held["stage_shares"]) == pytest.approx(1.0)
    assert min(held["stage_shares"][:2]) > 0.3  # the middle model is worth its place
    if method == "threshold":
        assert held["stage_shares"][2] > 0.03
        # Stage by stage reaches the best of all 5 x 5 threshold pairs here.
        data = router.cascade_data(train, router.cascade_)
        first = (data.performance[:, 0].mean(), data.cost[:, 0].mean())
        last = (data.performance[:, 2].mean(), data.cost[:, 2].mean())
        best = max(
            ibc_lift(o.performance, o.cost, first, last)
            for t in itertools.product(np.arange(5) / 4, repeat=2)
            for o in [simulate(ThresholdPolicy(t), data)]
        )
        assert router.train_metrics_["objective"] == pytest.approx(best)


def graph_semantics(policy: Any, data: CascadeData) -> tuple[float, float]:
    """The graph's loop written out per query (the reference for `simulate`)."""
    bound = math.inf if data.max_cost is None else data.max_cost
    perfs, costs = [], []
    for i in range(len(data.performance)):
        spent, accepted, s = 0.0, None, 0
        while True:
            if spent + data.cost[i, s] > bound + 1e-12:
                break
            spent += data.cost[i, s]
            accepted = s
            if s == data.n_stages - 1 or spent + K * data.cost[i, s] > bound + 1e-12:
                break
            spent += K * data.cost[i, s]
            if not policy.escalate(s, data.confidence[i, s]):
                break
            s += 1
        perfs.append(0.0 if accepted is None else data.performance[i, accepted])
        costs.append(spent)
    return float(np.mean(perfs)), float(np.mean(costs))


@pytest.mark.parametrize("max_cost", [None, 1e-4, 6e-4, 9e-4])
@pytest.mark.parametrize(
    "policy",
    [
        ThresholdPolicy((0.5, 0.25)),
        POMDPPolicy(((False, True, True, False, True), (True, False, True, True, False)), 4),
    ],
    ids=["threshold", "pomdp"],
)
def test_simulate_matches_the_graph_loop(policy: Any, max_cost: float | None) -> None:
    rng = np.random.default_rng(3)
    n = 300
    data = CascadeData(
        performance=rng.random((n, 3)),
        cost=rng.uniform(1e-5, 1e-4, (n, 3)),
        confidence=np.where(rng.random((n, 3)) < 0.1, np.nan, rng.integers(0, 5, (n, 3)) / 4),
        verify_samples=K,
        max_cost=max_cost,
    )
    outcome = simulate(policy, data)
    assert (outcome.performance, outcome.cost) == pytest.approx(graph_semantics(policy, data))


@pytest.mark.parametrize("method", ["threshold", "pomdp", "self_consistency"])
def test_save_and_load_round_trip(tmp_path: Path, method: Any) -> None:
    cascade = ["small", "mid", "large"]
    router = AutoMixRouter(method=method, cascade=cascade, verify_samples=K, max_cost=0.01)
    router.fit(three_model(500, 0))
    router.save(tmp_path / "automix")
    loaded = AutoMixRouter.load(tmp_path / "automix")

    assert sorted(p.name for p in (tmp_path / "automix").iterdir()) == [
        "arrays.safetensors",
        "router.json",
    ]
    assert isinstance(loaded, AutoMixRouter)
    assert loaded.policy_ == router.policy_
    assert loaded.cascade_ == router.cascade_
    assert loaded.get_params() == router.get_params()
    grid = np.linspace(0, 1, 101)
    for stage in range(2):
        assert (
            loaded.policy_.escalate_mask(stage, grid) == router.policy_.escalate_mask(stage, grid)
        ).all()
    document = json.loads((tmp_path / "automix" / "router.json").read_text())
    assert document["state"]["cascade"] == ["small", "mid", "large"]
    if method == "self_consistency":
        assert loaded.policy_ == ThresholdPolicy((0.5, 0.5))


def test_missing_verification_is_a_clear_error() -> None:
    data = two_model(50, 0)
    data.verification = None
    with pytest.raises(DataFormatError) as info:
        AutoMixRouter(cascade=["small", "large"]).fit(data)
    message = str(info.value)
    assert "planted.jsonl" in message
    assert "verification_score" in message
    assert "add_self_verification" in message

    data = two_model(50, 0)
    data.verification = np.full((50, 2), np.nan)
    data.verification[:, 1] = 0.5  # only the last stage, which is never verified
    with pytest.raises(DataFormatError, match=r"'small'.*add_self_verification"):
        AutoMixRouter(cascade=["small", "large"]).fit(data)


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"method": "bogus"}, "hparam.method"),
        ({"num_bins": 0}, "hparam.num_bins"),
        ({"verify_samples": 0}, "hparam.verify_samples"),
        ({"objective": "accuracy"}, "hparam.objective"),
        ({"cascade": ["small"]}, "hparam.cascade"),
        ({"cascade": ["small", "small"]}, "hparam.cascade"),
        ({"max_cost": -1.0}, "hparam.max_cost"),
        ({"budget": 1.0}, "hparam.budget"),
    ],
)
def test_bad_hyperparameters_name_the_field(params: dict[str, Any], field: str) -> None:
    with pytest.raises(ConfigError) as info:
        AutoMixRouter.from_params(params)
    assert info.value.field == field


def test_unknown_cascade_candidate_lists_the_valid_ones() -> None:
    with pytest.raises(ConfigError, match="valid: small, large") as info:
        AutoMixRouter(cascade=["small", "huge"]).fit(two_model(50, 0))
    assert info.value.field == "hparam.cascade"


def test_is_a_graph_router() -> None:
    router = AutoMixRouter(cascade=["small", "large"]).fit(two_model(100, 0))
    assert AutoMixRouter.graph_router and AutoMixRouter.trainable
    assert issubclass(AutoMixRouter, BaseGraphRouter) and issubclass(AutoMixRouter, AutoMixFitter)
    with pytest.raises(GraphRouterError, match="as_graph"):
        router.route("What is 2 + 2?")
    assert not hasattr(router, "route_batch") and not hasattr(router, "_predict_quality")


def test_undefined_lift_falls_back_to_utility() -> None:
    data = two_model(200, 0)
    data.performance[:, 1] = data.performance[:, 0]  # the large model is no better
    router = AutoMixRouter(cascade=["small", "large"]).fit(data)
    assert router.objective_ == "utility"


# --- verification results in RoutingDataset --------------------------------------------


def _jsonl(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def test_jsonl_verification_scores(tmp_path: Path) -> None:
    rows = [
        {"query": "a", "model_name": "small", "performance": 1, "verification_score": 0.75},
        {"query": "a", "model_name": "large", "performance": 1},
        {"query": "b", "model_name": "small", "performance": 0, "p_ver_slm": 0.25},
        {"query": "b", "model_name": "large", "performance": 1, "verification_score": None},
        {"query": "c", "model_name": "small", "performance": 0, "verification_score": "0.5"},
    ]
    data = RoutingDataset.from_file(_jsonl(tmp_path / "r.jsonl", rows))
    assert data.verification is not None
    np.testing.assert_array_equal(
        data.verification, [[0.75, np.nan], [0.25, np.nan], [0.5, np.nan]]
    )
    without = [
        {k: v for k, v in r.items() if k not in ("verification_score", "p_ver_slm")} for r in rows
    ]
    assert RoutingDataset.from_file(_jsonl(tmp_path / "w.jsonl", without)).verification is None


@pytest.mark.parametrize("value", [1.5, -0.1, "high", True])
def test_bad_verification_score_names_file_line_and_field(tmp_path: Path, value: Any) -> None:
    rows = [
        {"query": "a", "model_name": "small", "performance": 1, "verification_score": 0.5},
        {"query": "b", "model_name": "small", "performance": 1, "verification_score": value},
    ]
    path = _jsonl(tmp_path / "bad.jsonl", rows)
    with pytest.raises(DataFormatError) as info:
        RoutingDataset.from_file(path)
    assert (info.value.path, info.value.line, info.value.field) == (
        str(path),
        2,
        "verification_score",
    )


def test_csv_verification_columns(tmp_path: Path) -> None:
    path = tmp_path / "wide.csv"
    path.write_text(
        "prompt,small,large,verification_score:small\nq1,1,1,0.75\nq2,0,1,\nq3,0,1,2\n",
        encoding="utf-8",
    )
    with pytest.raises(DataFormatError) as info:
        RoutingDataset.from_file(path)
    assert (info.value.line, info.value.field) == (4, "verification_score:small")
    path.write_text(path.read_text().replace(",2\n", ",0.25\n"), encoding="utf-8")
    data = RoutingDataset.from_file(path)
    assert data.candidates == ["small", "large"]
    np.testing.assert_array_equal(
        data.verification, [[0.75, np.nan], [np.nan, np.nan], [0.25, np.nan]]
    )


def test_verification_stays_aligned_in_views() -> None:
    data = three_model(20, 0)
    assert data.verification is not None
    sub = data.subset([3, 1])
    np.testing.assert_array_equal(sub.verification, data.verification[[3, 1]])
    picked = data.select_candidates(["mid", "small"])
    np.testing.assert_array_equal(picked.verification, data.verification[:, [1, 0]])
    train, test = data.split(0.25, random_state=0)
    for part in (train, test):
        rows = [data.queries.index(q) for q in part.queries]
        np.testing.assert_array_equal(part.verification, data.verification[rows])
    with pytest.raises(ValueError, match="verification has shape"):
        RoutingDataset(["q"], ["a"], np.zeros((1, 1)), np.zeros((1, 1)), verification=np.zeros(2))


def test_default_cascade_is_the_cheapest_then_the_dearest() -> None:
    router = AutoMixRouter(verify_samples=K).fit(three_model(500, 0))
    assert router.cascade_ == ["small", "large"]  # the published two-model pair
    assert router.policy_.n_decisions == 1
