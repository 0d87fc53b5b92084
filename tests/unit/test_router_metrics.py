"""Unit tests of the router quality-cost metrics (hand-computed tiny examples)."""

from __future__ import annotations

import json
import math
from dataclasses import replace

import numpy as np
import pytest

from langchain_llmrouter.evaluation import (
    COST_WEIGHT_GRID,
    CurvePoint,
    RouterReport,
    apgr_cpt,
    choose,
    evaluate_choices,
    evaluate_router,
    format_table,
    quality_cost_curve,
    reference_points,
)

# 3 queries x 3 candidates; every candidate costs the same on every query:
# $1, $2 and $4 per 1,000 queries. Candidate 2 is the (train) best single.
PERF = np.array(
    [
        [0.2, 0.6, 0.9],
        [0.5, 0.9, 0.8],
        [0.1, 0.7, 0.7],
    ]
)
COST = np.tile(np.array([0.001, 0.002, 0.004]), (3, 1))
BEST = 2
ORACLE_Q = 2.5 / 3  # rows pick 0.9 (cand 2), 0.9 (cand 1), 0.7 (cand 1 beats 2 on cost)
ORACLE_C = (4 + 2 + 2) / 3


# --- choose -------------------------------------------------------------------------------


def test_choose_ties_go_to_cheapest_then_lowest_index() -> None:
    predicted = np.array([[0.5, 0.5, 0.5], [0.5, 0.5, 0.5]])
    cost = np.array([[0.003, 0.001, 0.001], [0.002, 0.002, 0.002]])
    assert choose(predicted, cost, 0.0).tolist() == [1, 0]


def test_choose_trades_quality_for_cost() -> None:
    predicted = np.array([[0.9, 0.8]])
    cost = np.array([[0.002, 0.001]])  # $2 and $1 per 1k queries
    assert choose(predicted, cost, 0.0).tolist() == [0]
    assert choose(predicted, cost, 0.05).tolist() == [0]  # 0.8 vs 0.75
    assert choose(predicted, cost, 0.2).tolist() == [1]  # 0.5 vs 0.6


def test_choose_budget_excludes_and_falls_back_to_cheapest() -> None:
    predicted = np.array([[0.9, 0.5, 0.1]])
    cost = np.array([[0.003, 0.002, 0.001]])
    assert choose(predicted, cost, 0.0, budget=0.0025).tolist() == [1]
    assert choose(predicted, cost, 0.0, budget=0.003).tolist() == [0]  # at budget fits
    assert choose(predicted, cost, 0.0, budget=0.0005).tolist() == [2]  # none fits


def test_choose_respects_availability_and_nan_predictions() -> None:
    predicted = np.array([[0.9, 0.5, 0.1], [np.nan, 0.2, np.nan]])
    cost = np.full((2, 3), 0.001)
    available = np.array([[False, True, True], [True, True, True]])
    assert choose(predicted, cost, 0.0, available=available).tolist() == [1, 1]
    only_nan = np.array([[np.nan, np.nan]])
    assert choose(only_nan, np.array([[0.002, 0.001]]), 0.0).tolist() == [1]


def test_choose_agrees_with_router_policy() -> None:
    policy = pytest.importorskip("langchain_llmrouter.routers.policy")
    rng = np.random.default_rng(3)
    predicted = rng.integers(0, 4, size=(300, 5)) / 4.0  # many ties
    cost = rng.integers(1, 4, size=(300, 5)) / 1000.0
    available = rng.random((300, 5)) > 0.3
    available[:, 0] = True
    for weight in (0.0, 0.1, 1.0):
        for kwargs in ({"available": available}, {"budget": 0.002}):
            ours = choose(predicted, cost, weight, **kwargs)
            theirs = policy.choose(predicted, cost, weight, **kwargs)
            np.testing.assert_array_equal(ours, theirs)


def test_choose_errors_name_arrays_and_shapes() -> None:
    with pytest.raises(ValueError, match=r"predicted \(2, 3\).*cost \(2, 2\)"):
        choose(np.zeros((2, 3)), np.zeros((2, 2)), 0.0)
    with pytest.raises(ValueError, match="cost_weight must be"):
        choose(np.zeros((2, 2)), np.zeros((2, 2)), -0.1)
    with pytest.raises(ValueError, match="boolean"):
        choose(np.zeros((1, 2)), np.zeros((1, 2)), 0.0, available=np.ones((1, 2)))
    with pytest.raises(ValueError, match="query 1 has no available"):
        choose(np.zeros((2, 2)), np.zeros((2, 2)), 0.0, available=np.array([[1, 0], [0, 0]], bool))
    with pytest.raises(ValueError, match="2-D"):
        choose(np.zeros(3), np.zeros(3), 0.0)
    with pytest.raises(ValueError, match="finite"):
        choose(np.zeros((1, 2)), np.array([[np.nan, 0.1]]), 0.0)


# --- curve and references -------------------------------------------------------------------


def test_cost_weight_grid() -> None:
    assert COST_WEIGHT_GRID.shape == (61,)
    assert COST_WEIGHT_GRID[0] == 0.0
    assert COST_WEIGHT_GRID[1] == pytest.approx(1e-3)
    assert COST_WEIGHT_GRID[-1] == pytest.approx(1e2)
    np.testing.assert_allclose(np.diff(np.log10(COST_WEIGHT_GRID[1:])), 5 / 59)


def test_quality_cost_curve_hand_computed() -> None:
    curve = quality_cost_curve(PERF, PERF, COST, [0.0, 0.2, 0.5, 1.0])
    # w=0.2: row 0 moves to cand 1; w=0.5: rows 0, 1 move to cand 0; w=1: all cand 0.
    expected = [
        (0.0, ORACLE_Q, ORACLE_C),
        (0.2, 2.2 / 3, 2.0),
        (0.5, 1.4 / 3, 4 / 3),
        (1.0, 0.8 / 3, 1.0),
    ]
    assert [p.cost_weight for p in curve] == [e[0] for e in expected]
    for point, (_, quality, cost) in zip(curve, expected, strict=True):
        assert point.quality == pytest.approx(quality)
        assert point.cost_per_1k == pytest.approx(cost)
    with pytest.raises(ValueError, match="cost_weight must be"):
        quality_cost_curve(PERF, PERF, COST, [0.0, -1.0])


def test_reference_points_hand_computed() -> None:
    refs = reference_points(PERF, COST, BEST)
    np.testing.assert_allclose(refs.candidate_quality, [0.8 / 3, 2.2 / 3, 2.4 / 3])
    np.testing.assert_allclose(refs.candidate_cost, [1.0, 2.0, 4.0])
    assert (refs.best_single, refs.cheapest) == (2, 0)
    assert refs.best_single_quality == pytest.approx(0.8)
    assert refs.best_single_cost == pytest.approx(4.0)
    assert refs.cheapest_quality == pytest.approx(0.8 / 3)
    assert refs.cheapest_cost == pytest.approx(1.0)
    assert refs.oracle_quality == pytest.approx(ORACLE_Q)
    assert refs.oracle_cost == pytest.approx(ORACLE_C)
    json.dumps(refs.to_dict(), allow_nan=False)
    with pytest.raises(ValueError, match=r"train_best_single must be in \[0, 3\)"):
        reference_points(PERF, COST, 3)


def test_nan_performance_is_never_chosen_and_uses_nanmean() -> None:
    perf = np.array([[np.nan, 0.5], [0.4, 0.6]])
    cost = np.full((2, 2), 0.001)
    predicted = np.array([[1.0, 0.0], [1.0, 0.0]])
    report = evaluate_router("r", predicted, perf, cost, 1, n_boot=50)
    assert report.q0 == pytest.approx((0.5 + 0.4) / 2)
    refs = reference_points(perf, cost, 1)
    np.testing.assert_allclose(refs.candidate_quality, [0.4, 0.55])
    assert refs.oracle_quality == pytest.approx(0.55)
    with pytest.raises(ValueError, match="no score"):
        evaluate_choices("c", np.array([0, 0]), perf, cost, 1)
    with pytest.raises(ValueError, match="query 0"):
        reference_points(np.array([[np.nan, np.nan]]), np.zeros((1, 2)), 0)


# --- evaluate_router / evaluate_choices ---------------------------------------------------------


def test_oracle_router_figures() -> None:
    report = evaluate_router("oracle", PERF, PERF, COST, BEST, n_boot=200)
    assert report.q0 == pytest.approx(ORACLE_Q)
    assert report.c0 == pytest.approx(ORACLE_C)
    assert report.gap_closed == pytest.approx(1.0)
    assert report.cost_to_match == pytest.approx(ORACLE_C / 4.0)
    assert report.n_queries == 3
    assert len(report.curve) == len(COST_WEIGHT_GRID)
    # Curve steps (cost, quality): (1, .8/3) (4/3, 1.4/3) (2, 2.2/3) (8/3, 2.5/3) over x in [1, 4].
    xs = np.linspace(1.0, 4.0, 200)
    f = np.select([xs < 4 / 3, xs < 2.0, xs < 8 / 3], [0.8 / 3, 1.4 / 3, 2.2 / 3], ORACLE_Q)
    expected = np.mean((f - 0.8 / 3) / (ORACLE_Q - 0.8 / 3))
    assert report.nauc == pytest.approx(expected, abs=1e-9)
    assert report.nauc == pytest.approx(0.706, abs=0.02)  # continuous value 12/17


def test_best_single_router_figures() -> None:
    report = evaluate_choices("single", np.array([2, 2, 2]), PERF, COST, BEST, n_boot=100)
    assert report.gap_closed == pytest.approx(0.0)
    assert report.cost_to_match == pytest.approx(1.0)
    assert report.q0_diff_ci == (0.0, 0.0)
    assert {(p.quality, p.cost_per_1k) for p in report.curve} == {(report.q0, report.c0)}


def test_cost_to_match_never_and_always_cheapest_nauc() -> None:
    never = evaluate_choices("mid", np.array([1, 1, 1]), PERF, COST, BEST, n_boot=10)
    assert never.cost_to_match is None
    cheapest = evaluate_choices("cheap", np.array([0, 0, 0]), PERF, COST, BEST, n_boot=10)
    assert cheapest.nauc == pytest.approx(0.0)
    assert cheapest.gap_closed == pytest.approx((0.8 / 3 - 0.8) / (ORACLE_Q - 0.8))


def test_nauc_is_one_when_oracle_is_cheaper_than_cheapest() -> None:
    # Per-query costs differ: the oracle ($1/1k) undercuts the cheapest candidate ($2/1k).
    perf = np.array([[1.0, 0.0, 0.5], [0.0, 1.0, 0.5]])
    cost = np.array([[0.001, 0.005, 0.009], [0.003, 0.001, 0.009]])
    report = evaluate_router("oracle", perf, perf, cost, 2, n_boot=10)
    assert report.nauc == pytest.approx(1.0)
    assert report.gap_closed == pytest.approx(1.0)
    assert report.cost_to_match == pytest.approx(1.0 / 9.0)


def test_bootstrap_ci_contains_true_difference_and_is_seeded() -> None:
    rng = np.random.default_rng(0)
    n = 500
    base = rng.random(n)
    perf = np.column_stack([base, base + 0.05 + rng.normal(0.0, 0.1, n)])
    cost = np.full((n, 2), 0.001)
    choices = np.ones(n, dtype=int)
    report = evaluate_choices("better", choices, perf, cost, 0, seed=7)
    low, high = report.q0_diff_ci
    sample_diff = float(np.mean(perf[:, 1] - perf[:, 0]))
    assert low < 0.05 < high
    assert low < sample_diff < high
    assert 0.01 < high - low < 0.03  # about 4 x 0.1 / sqrt(500)
    again = evaluate_choices("better", choices, perf, cost, 0, seed=7)
    other = evaluate_choices("better", choices, perf, cost, 0, seed=8)
    assert again.q0_diff_ci == report.q0_diff_ci
    assert other.q0_diff_ci != report.q0_diff_ci


def test_evaluate_errors() -> None:
    with pytest.raises(ValueError, match=r"predicted \(3, 2\).*performance \(3, 3\)"):
        evaluate_router("r", PERF[:, :2], PERF, COST, BEST)
    with pytest.raises(ValueError, match=r"shape \(3,\)"):
        evaluate_choices("c", np.array([0, 1]), PERF, COST, BEST)
    with pytest.raises(ValueError, match=r"\[0, 3\)"):
        evaluate_choices("c", np.array([0, 1, 3]), PERF, COST, BEST)
    with pytest.raises(ValueError, match="cost_weight must be"):
        evaluate_router("r", PERF, PERF, COST, BEST, cost_weights=[-1.0])


def test_to_dict_json_round_trip() -> None:
    flat = np.full((2, 2), 0.5)  # oracle == best single: gap closed undefined (NaN)
    report = evaluate_router("r", flat, flat, np.full((2, 2), 0.001), 0, fit_s=1.5, n_boot=10)
    assert math.isnan(report.gap_closed)
    data = report.to_dict()
    text = json.dumps(data, allow_nan=False)
    assert json.loads(text) == data
    assert data["gap_closed"] is None
    assert data["fit_s"] == 1.5 and data["route_ms_per_1k"] is None
    assert data["curve"][0] == {"cost_weight": 0.0, "quality": 0.5, "cost_per_1k": 1.0}
    assert isinstance(report.curve[0], CurvePoint)


# --- APGR / CPT --------------------------------------------------------------------------------


def test_apgr_cpt_hand_computed() -> None:
    strong = np.array([1.0, 1.0, 1.0, 0.0])
    weak = np.array([0.0, 0.0, 1.0, 1.0])
    # Perfect order: PGR is 0 (3 shares), 1 (5), 2 (10), 1 (3) -> 28 / 21.
    best = apgr_cpt(np.array([4.0, 3.0, 2.0, 1.0]), strong, weak)
    assert best["apgr"] == pytest.approx(28 / 21)
    assert best["cpt50"] == pytest.approx(0.15)
    assert best["cpt80"] == pytest.approx(0.15)
    assert len(best["pgr_curve"]) == 21
    assert best["pgr_curve"][0] == (0.0, 0.0)
    assert best["pgr_curve"][-1] == (1.0, 1.0)
    # Reversed order: PGR is 0 (3), -1 (10), 0 (5), 1 (3) -> -7 / 21.
    worst = apgr_cpt(np.array([1.0, 2.0, 3.0, 4.0]), strong, weak)
    assert worst["apgr"] == pytest.approx(-7 / 21)
    assert worst["cpt50"] == pytest.approx(0.9)
    assert worst["cpt80"] == pytest.approx(0.9)


def test_apgr_perfect_vs_random_ranking() -> None:
    rng = np.random.default_rng(1)
    n = 2000
    strong = (rng.random(n) < 0.7).astype(float)
    weak = (rng.random(n) < 0.5).astype(float)
    perfect = apgr_cpt(strong - weak, strong, weak)
    random = apgr_cpt(rng.random(n), strong, weak)
    assert perfect["apgr"] > 0.5 + 0.2
    assert random["apgr"] == pytest.approx(0.5, abs=0.05)
    assert perfect["cpt80"] < random["cpt80"]


def test_apgr_errors() -> None:
    with pytest.raises(ValueError, match=r"strong_advantage \(3,\).*performance_weak \(2,\)"):
        apgr_cpt(np.zeros(3), np.zeros(3), np.zeros(2))
    with pytest.raises(ValueError, match="same mean quality"):
        apgr_cpt(np.zeros(2), np.array([1.0, 0.0]), np.array([0.0, 1.0]))
    with pytest.raises(ValueError, match="finite"):
        apgr_cpt(np.array([np.nan, 1.0]), np.ones(2), np.zeros(2))


# --- format_table ------------------------------------------------------------------------------


def test_format_table() -> None:
    refs = reference_points(PERF, COST, BEST)
    oracle = evaluate_router("oracle-router", PERF, PERF, COST, BEST, route_ms_per_1k=12.34)
    single = evaluate_choices("single-2", np.array([2, 2, 2]), PERF, COST, BEST, fit_s=0.5)
    mid = evaluate_choices("single-1", np.array([1, 1, 1]), PERF, COST, BEST)
    table = format_table([oracle, single, mid], refs, title="toy", candidate_names=["a", "b", "c"])
    lines = table.splitlines()
    assert lines[0] == "### toy"
    header = [c.strip() for c in lines[2].strip("|").split("|")]
    assert header == [
        "router", "Q0", "95% CI vs best", "C0 $/1k", "gap closed",
        "cost to match", "nAUC", "ECE", "fit s", "route ms/1k",
    ]  # fmt: skip
    rows = {
        cells[0]: cells
        for line in lines[4:7]
        for cells in [[c.strip() for c in line.strip("|").split("|")]]
    }
    assert rows["oracle-router"][1:4] == ["0.833", rows["oracle-router"][2], "2.667"]
    # nAUC on a 200-point grid; predicting the true scores is perfectly calibrated (ECE 0).
    assert rows["oracle-router"][4:] == ["1.00", "67%", "0.704", "0.000", "-", "12.3"]
    assert rows["single-2"][2] == "[+0.000, +0.000]"
    assert rows["single-2"][5] == "100%"
    assert rows["single-2"][7:] == ["-", "0.50", "-"]  # a fixed choice has no ECE
    assert rows["single-1"][5] == "never"
    low, high = oracle.q0_diff_ci
    assert rows["oracle-router"][2] == f"[{low:+.3f}, {high:+.3f}]"
    assert "best single c Q 0.800" in table and "cheapest a" in table
    assert "oracle Q 0.833" in table
    assert isinstance(oracle, RouterReport)


def test_format_table_prints_no_negative_zero() -> None:
    refs = reference_points(PERF, COST, BEST)
    single = evaluate_choices("single-2", np.array([2, 2, 2]), PERF, COST, BEST, n_boot=10)
    tiny = replace(single, gap_closed=-1e-17, q0_diff_ci=(-1e-17, 1e-17))
    row = format_table([tiny], refs).splitlines()[2]
    assert "-0.00" not in row
    assert "| 0.00 " in row and "[+0.000, +0.000]" in row
