"""Calibration to a target share or cost: the exact sweep, `llmrouter calibrate`, and
``RouterChatModel(target_share=...)``.

Synthetic cases use a router that reads its predictions and costs from tables (query ``"i"``
is row ``i``), so every share, tie and breakpoint is known in advance; the CLI and chat-model
cases use the session's small kNN router and the local test server.
"""

from __future__ import annotations

import contextlib
import io
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from pydantic import ValidationError
from safetensors.numpy import load_file

from langchain_llmrouter import (
    BaseRouter,
    CandidatePool,
    LLMCandidate,
    RouterChatModel,
    RoutingDataset,
    UnknownCandidateError,
    create_router,
    load_router,
)
from langchain_llmrouter.calibration import (
    CalibrationError,
    calibrate,
    calibrated_cost_weight,
)
from langchain_llmrouter.cli.main import main
from langchain_llmrouter.routers.policy import choose
from langchain_llmrouter.testing import FakeOpenAIServer

PoolFactory = Callable[..., CandidatePool]
STRONG = "llama-3.1-nemotron-51b-instruct"
UNIT = 1000 / 1024  # a weight times UNIT is exact in binary, so the crossings below are exact


class TableRouter(BaseRouter):
    """Predicted quality and cost per query from fixed tables (query ``"i"`` is row ``i``)."""

    name = "tablerouter"
    trainable = False

    def __init__(self, *, cost_weight: float = 0.0, budget: float | None = None) -> None:
        super().__init__(cost_weight=cost_weight, budget=budget)

    def _fit(self, dataset: RoutingDataset | None, query_embeddings: np.ndarray | None) -> None:
        """Nothing to learn."""

    def _predict_quality(
        self, queries: list[str], query_embeddings: np.ndarray | None
    ) -> np.ndarray:
        return np.asarray(self.table_[[int(q) for q in queries]])

    def _estimate_costs(self, queries: Any) -> np.ndarray:
        return np.asarray(self.costs_[[int(q) for q in queries]])


def table_router(
    quality: Any, dollars: Any, names: list[str] | None = None, **params: Any
) -> tuple[TableRouter, list[str]]:
    """A router over the tables and its queries ``"0"``, ``"1"``, ... (dollars per call)."""
    table = np.asarray(quality, dtype=np.float64)
    names = names or [f"m{j}" for j in range(table.shape[1])]
    router = TableRouter(**params)
    router.fit_candidates([LLMCandidate(name=n, model=n) for n in names])
    router.table_ = table
    router.costs_ = np.array(np.broadcast_to(np.asarray(dollars, dtype=np.float64), table.shape))
    return router, [str(i) for i in range(len(table))]


def three_lines() -> tuple[TableRouter, list[str]]:
    """Two queries, candidates a < b < c in price; b's share goes 0, ½, 1, ½, 0 with the weight.

    Query 0 moves c→b at weight 1 and b→a at 3; query 1 moves c→b at 2 and b→a at 4.
    """
    quality = [[0, 3 * UNIT, 4 * UNIT], [0, 4 * UNIT, 6 * UNIT]]
    return table_router(quality, np.array([1, 2, 3]) / 1024, names=["a", "b", "c"])


# --- the exact sweep ---------------------------------------------------------------------------


def test_curve_has_every_breakpoint_and_its_share() -> None:
    router, queries = three_lines()
    result = calibrate(router, queries, target_share=1.0, candidate="b")
    assert [(p.cost_weight, p.share) for p in result.curve] == [
        (0.0, 0.0),
        (1.0, 0.5),
        (2.0, 1.0),
        (3.0, 0.5),
        (4.0, 0.0),
    ]
    assert result.cost_weight == 2.5 and result.share == 1.0  # the middle of [2, 3)
    # At a breakpoint the tie goes to the cheaper candidate, as in the policy.
    assert result.at(1.0).share == 0.5
    assert np.mean(choose(router.table_, router.costs_, 1.0) == 1) == 0.5


def test_equally_close_shares_go_to_the_smaller_weight() -> None:
    router, queries = three_lines()
    # ½ is reached on [1, 2) and again on [3, 4): the smaller weight wins.
    assert calibrate(router, queries, target_share=0.5, candidate="b").cost_weight == 1.5
    # 0 is reached at weight 0 already.
    assert calibrate(router, queries, target_share=0.0, candidate="b").cost_weight == 0.0
    # 0.25 is as close to 0 as to ½: the smaller weight again.
    assert calibrate(router, queries, target_share=0.25, candidate="b").cost_weight == 0.0
    # The last interval is unbounded: twice its start.
    assert calibrate(router, queries, target_share=1.0, candidate="a").cost_weight == 8.0


def test_ties_in_quality_go_to_the_cheaper_candidate() -> None:
    # Equal predictions: the cheaper candidate wins at every weight, 0 included.
    router, queries = table_router([[0.5, 0.5], [0.7, 0.7]], [2e-3, 1e-3])
    result = calibrate(router, queries, target_share=1.0, candidate="m0")
    assert [(p.cost_weight, p.share) for p in result.curve] == [(0.0, 0.0)]
    assert result.share == 0.0


def test_two_candidates_share_falls_with_the_weight_and_hits_the_target() -> None:
    rng = np.random.default_rng(1)
    router, queries = table_router(rng.random((200, 2)), [2e-3, 1e-3])
    result = calibrate(router, queries, target_share=0.3)
    assert result.candidate == "m0"  # the dearer one, by default
    shares = [p.share for p in result.curve]
    assert shares == sorted(shares, reverse=True)
    assert result.share == pytest.approx(0.3)  # continuous predictions: one query per step


@pytest.mark.parametrize("budget", [None, 0.6e-3])
def test_curve_matches_the_policy_between_breakpoints(budget: float | None) -> None:
    rng = np.random.default_rng(0)
    quality = rng.random((300, 5))
    quality[rng.random(quality.shape) < 0.02] = np.nan  # a router may not score everything
    router, queries = table_router(quality, rng.random((300, 5)) * 1e-3, budget=budget)
    result = calibrate(router, queries, target_share=0.3, candidate="m2")
    assert len(result.curve) > 100
    starts = [p.cost_weight for p in result.curve]
    for point, end in zip(result.curve, [*starts[1:], 2 * starts[-1]], strict=True):
        chosen = choose(quality, router.costs_, (point.cost_weight + end) / 2, budget=budget)
        assert point.share == pytest.approx(np.mean(chosen == 2), abs=1e-12)
        spent = router.costs_[np.arange(300), chosen].mean() * 1000
        assert point.cost_per_1k == pytest.approx(spent, rel=1e-9)
    # Nothing on the curve is closer to the target than the chosen weight's share.
    assert abs(result.share - 0.3) == min(abs(p.share - 0.3) for p in result.curve)
    # And the router routes the sample as reported.
    decisions = router.route_batch(queries, cost_weight=result.cost_weight)
    assert np.mean([d.model == "m2" for d in decisions]) == result.share


def test_target_cost_is_the_smallest_weight_that_meets_it() -> None:
    rng = np.random.default_rng(2)
    router, queries = table_router(rng.random((100, 4)), np.array([4, 3, 2, 1]) * 1e-3)
    assert calibrate(router, queries, target_share=0.5).at(0).cost_per_1k > 1.5
    result = calibrate(router, queries, target_cost_per_1k=1.5)
    assert result.cost_per_1k <= 1.5 + 1e-9  # met exactly here, up to rounding
    costs = [p.cost_per_1k for p in result.curve]
    assert costs == sorted(costs, reverse=True)  # the cost never rises with the weight
    index = max(i for i, p in enumerate(result.curve) if p.cost_weight <= result.cost_weight)
    assert index > 0 and costs[index] <= 1.5 + 1e-9 < costs[index - 1]
    with pytest.raises(CalibrationError, match=r"cheapest routing of this sample costs \$1 per"):
        calibrate(router, queries, target_cost_per_1k=0.5)


def test_true_quality_from_routing_data() -> None:
    router, queries = three_lines()
    data = RoutingDataset(
        queries=queries,
        candidates=["c", "a", "b"],  # another column order than the router's
        performance=np.array([[1.0, 0.0, 0.5], [0.0, np.nan, 1.0]]),
        cost=np.zeros((2, 3)),
    )
    result = calibrate(router, data, target_share=1.0, candidate="b")
    assert result.quality == 0.75  # both on b
    assert result.at(0.0).quality == 0.5  # both on c
    assert result.at(10.0).quality == 0.0  # both on a; query 1's a is unknown
    assert calibrate(router, queries, target_share=1.0, candidate="b").quality is None


def test_default_candidate_is_the_dearest_then_the_best_predicted() -> None:
    router, queries = table_router([[0.9, 0.2, 0.8], [0.9, 0.3, 0.7]], [1e-3, 3e-3, 3e-3])
    assert calibrate(router, queries, target_share=0.5).candidate == "m2"


# --- errors ------------------------------------------------------------------------------------


def test_unknown_candidate_lists_the_valid_ones() -> None:
    router, queries = three_lines()
    with pytest.raises(UnknownCandidateError, match=r"unknown candidate 'gpt-5'; .*: a, b, c"):
        calibrate(router, queries, target_share=0.2, candidate="gpt-5")


@pytest.mark.parametrize("share", [-0.1, 1.5, float("nan")])
def test_target_share_outside_0_1_is_refused(share: float) -> None:
    router, queries = three_lines()
    with pytest.raises(CalibrationError, match=r"target_share must be in \[0, 1\]"):
        calibrate(router, queries, target_share=share)


@pytest.mark.parametrize(
    "targets",
    [{}, {"target_share": 0.2, "target_cost_per_1k": 1.0}],
    ids=["none", "both"],
)
def test_exactly_one_target(targets: dict[str, float]) -> None:
    router, queries = three_lines()
    with pytest.raises(CalibrationError, match="exactly one target"):
        calibrate(router, queries, **targets)


def test_routers_that_ignore_cost_and_empty_samples_are_refused() -> None:
    baseline = create_router("smallest_llm").fit_candidates(
        [LLMCandidate(name="a", model="a"), LLMCandidate(name="b", model="b")]
    )
    with pytest.raises(CalibrationError, match="no cost_weight to calibrate"):
        calibrate(baseline, ["hi"], target_share=0.2)
    router, _ = three_lines()
    with pytest.raises(CalibrationError, match="at least one query"):
        calibrate(router, [], target_share=0.2)


# --- saving, the CLI, RouterChatModel ----------------------------------------------------------


@pytest.fixture(scope="module")
def sample(shared_data: Path) -> list[dict[str, Any]]:
    """60 short routerdc_test records (question + scores)."""
    records = json.loads((shared_data / "routerdc_test.json").read_text(encoding="utf-8"))
    return [r for r in records if len(r["question"]) <= 200][:60]


@pytest.fixture
def saved(knn_router: BaseRouter, tmp_path: Path) -> Path:
    """A copy of the session's kNN router on disk (the session's own is never changed)."""
    return knn_router.save(tmp_path / "knnrouter")


def test_apply_and_save_keep_the_weight_and_the_calibration(
    saved: Path, sample: list[dict[str, Any]]
) -> None:
    router = load_router(saved)
    queries = [r["question"] for r in sample]
    result = calibrate(router, queries, target_share=0.25, candidate=STRONG)
    result.apply(router)
    calibrate(router, queries, target_share=0.5, candidate=STRONG).apply(router)
    result.apply(router)  # the same target again replaces, and moves to the end
    router.save(saved)
    loaded = load_router(saved)
    assert loaded.cost_weight == result.cost_weight
    assert [r["target_share"] for r in loaded.calibrations_] == [0.5, 0.25]
    assert loaded.calibrations_[-1] == result.record()
    assert calibrated_cost_weight(loaded, 0.25) == result.cost_weight
    with pytest.raises(CalibrationError, match="llmrouter calibrate --router knnrouter"):
        calibrated_cost_weight(loaded, 0.1)


def run_cli(*argv: str | Path) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main([str(a) for a in argv])
    return code, out.getvalue(), err.getvalue()


def test_cli_calibrates_and_writes_into_the_saved_router(
    saved: Path, sample: list[dict[str, Any]], shared_data: Path, tmp_path: Path
) -> None:
    config = tmp_path / "knn.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "router": "knnrouter",
                "data_path": {"llm_data": str(shared_data / "default_llm.json")},
                "model_path": {"load_model_path": str(saved)},
            }
        ),
        encoding="utf-8",
    )
    data = tmp_path / "sample.json"  # routing data: the curve has the true quality
    data.write_text(json.dumps(sample), encoding="utf-8")
    before = json.loads((saved / "router.json").read_text(encoding="utf-8"))
    arrays = load_file(saved / "arrays.safetensors")

    base = ["calibrate", "--router", "knnrouter", "--config", config, "--queries", data]
    code, out, err = run_cli(*base, "--target-share", "0.2", "--candidate", STRONG, "--json")
    assert code == 0, err
    result = json.loads(out)
    assert result["candidate"] == STRONG and result["n_queries"] == len(sample)
    assert result["quality"] is not None and len(result["curve"]) > 1
    after = json.loads((saved / "router.json").read_text(encoding="utf-8"))
    assert after["params"]["cost_weight"] == result["cost_weight"]
    assert after["calibrations"][-1]["target_share"] == 0.2
    assert after["calibrations"][-1]["share"] == result["share"]
    untouched = {k: v for k, v in after.items() if k not in ("params", "calibrations")}
    assert untouched == {k: v for k, v in before.items() if k != "params"}
    new_arrays = load_file(saved / "arrays.safetensors")
    assert all(np.array_equal(arrays[k], new_arrays[k]) for k in arrays)
    # The saved router routes the sample as the calibration said.
    router = load_router(saved)
    decisions = router.route_batch([r["question"] for r in sample])
    assert np.mean([d.model == STRONG for d in decisions]) == result["share"]

    # A text file of bare queries, the table, and a dry run that writes nothing.
    text = tmp_path / "sample.txt"
    text.write_text("\n".join(r["question"].replace("\n", " ") for r in sample), encoding="utf-8")
    code, out, err = run_cli(*base[:-1], text, "--target-share", "0.5", "--dry-run")
    assert code == 0, err
    assert "| cost_weight | share to " in out and "Q (true)" not in out
    assert "cost_weight " in out.splitlines()[-1] and "dry run" in err
    assert json.loads((saved / "router.json").read_text(encoding="utf-8")) == after

    code, out, err = run_cli(*base, "--target-share", "0.2", "--candidate", "gpt-5")
    assert code == 2 and "Traceback" not in err
    assert "unknown candidate 'gpt-5'" in err and STRONG in err
    code, out, err = run_cli(*base, "--target-share", "1.2")
    assert code == 2 and "target_share must be in [0, 1]" in err


def test_chat_model_uses_the_calibrated_weight(
    saved: Path,
    sample: list[dict[str, Any]],
    candidate_pool: PoolFactory,
    served: FakeOpenAIServer,
) -> None:
    router = load_router(saved)
    queries = [r["question"] for r in sample]
    result = calibrate(router, queries, target_share=0.2, candidate=STRONG)
    result.apply(router).set_params(cost_weight=0.0)  # only the saved calibration says 0.2
    pool = candidate_pool()
    llm = RouterChatModel(router=router, candidates=pool, target_share=0.2)
    assert llm.cost_weight == result.cost_weight > 0
    message = llm.invoke(queries[0])
    decision = message.response_metadata["routing"]
    assert decision["cost_weight"] == result.cost_weight
    assert decision["model"] == router.route(queries[0], cost_weight=result.cost_weight).model
    assert served.calls[-1].model == pool[decision["model"]].model

    # Calibrated now, on queries given to the model.
    fresh = RouterChatModel(
        router=load_router(saved), candidates=pool, target_share=0.5, calibration_queries=queries
    )
    expected = calibrate(router, queries, target_share=0.5).cost_weight
    assert fresh.cost_weight == expected


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"target_share": 0.3}, "llmrouter calibrate"),
        ({"target_share": 0.2, "cost_weight": 1.0}, "not both"),
        ({"calibration_queries": ["hi"]}, "only used with target_share"),
        ({"target_share": 1.5}, "less than or equal to 1"),
    ],
)
def test_chat_model_target_share_errors(
    saved: Path, candidate_pool: PoolFactory, kwargs: dict[str, Any], message: str
) -> None:
    with pytest.raises(ValidationError, match=message):
        RouterChatModel(router=load_router(saved), candidates=candidate_pool(), **kwargs)
