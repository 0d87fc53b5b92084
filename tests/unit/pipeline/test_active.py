"""Stage 3's active mode (`langchain_llmrouter.pipeline.active`): config validation, the
chooser's preference for informative pairs, exact budgets, resumption after a kill, and an
end-to-end run against the local OpenAI-compatible server."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from pipeline_call_helpers import read_jsonl, scripted, write_config
from pydantic import ValidationError

from langchain_llmrouter.candidates import CandidatePool
from langchain_llmrouter.data import RoutingDataset
from langchain_llmrouter.pipeline.active import ActivePlan, choose_pairs, plan_path, seed_pairs
from langchain_llmrouter.pipeline.call_candidates import call_candidates, main
from langchain_llmrouter.pipeline.config import CallsConfig, load_pipeline_config
from langchain_llmrouter.pipeline.pair_value import knn_values, pair_values
from langchain_llmrouter.pipeline.store import SplitStore, query_key
from langchain_llmrouter.routers.knn import KNNRouter
from langchain_llmrouter.testing import FakeOpenAIServer, ModelBehavior

TRAIN = [
    {
        "task_name": "natural_qa",
        "query": f"what is the capital city of france, asked the {i}th time",
        "ground_truth": "Paris",
        "metric": "f1_score",
        "choices": None,
        "task_id": None,
    }
    for i in range(12)
]
TEST = [{**TRAIN[0], "query": "which city is the capital of france"}]


@pytest.fixture(autouse=True)
def _no_api_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("API_KEYS", raising=False)


# --- config -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"strategy": "active"}, "needs a budget"),
        ({"budget_pairs": 10}, "apply to strategy 'active' only"),
        ({"budget_dollars": 1.0}, "apply to strategy 'active' only"),
        ({"strategy": "active", "budget_pairs": 1.5}, "must be in (0, 1]"),
        ({"strategy": "active", "budget_pairs": 0}, "at least 1"),
        ({"strategy": "active", "budget_pairs": 5, "splits": ["test"]}, "add 'train'"),
        ({"strategy": "some"}, "'all' or 'active'"),
        (
            {"strategy": "active", "budget_pairs": 5, "active_model": "mlp"},
            "'design', 'ridge' or 'knn'",
        ),
        ({"strategy": "active", "budget_pairs": 5, "active_batch": 5}, "Extra inputs"),
    ],
)
def test_bad_active_settings_are_clear_errors(fields: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message.replace("(", r"\(").replace(")", r"\)")):
        CallsConfig(**fields)


def test_default_is_all_and_budgets_parse() -> None:
    assert CallsConfig().strategy == "all"
    assert CallsConfig(strategy="active", budget_pairs=0.3).budget_pairs == 0.3
    assert CallsConfig(strategy="active", budget_pairs=30).budget_pairs == 30
    assert CallsConfig(strategy="active", budget_dollars=2.5).budget_pairs is None


def test_config_errors_name_the_file_and_key(tmp_path: Path) -> None:
    path = write_config(tmp_path, base_url=None, calls={"strategy": "active"})
    with pytest.raises(Exception, match="calls") as info:
        load_pipeline_config(path)
    assert "pipeline.yaml" in str(info.value) and "budget" in str(info.value)


# --- the chooser --------------------------------------------------------------------------------


def _planted() -> tuple[np.ndarray, np.ndarray]:
    """Two clusters of 20 queries: in A two candidates are equally good (half the answers
    right), in B candidate 0 is always right and 1 always wrong. Each cluster's first query
    is unknown for both candidates."""
    rng = np.random.default_rng(0)
    x = np.zeros((40, 4))
    x[:20, 0], x[20:, 1] = 1.0, 1.0
    x += rng.normal(scale=0.01, size=x.shape)
    known = np.empty((40, 2))
    known[:20] = rng.integers(0, 2, size=(20, 2))
    known[20:] = [1.0, 0.0]
    known[0] = known[20] = np.nan
    return x, known


def test_the_chooser_calls_a_close_query_before_a_settled_one() -> None:
    x, known = _planted()
    cost = np.ones_like(known)
    first = choose_pairs(x, known, cost, size=1, pairs_left=10, dollars_left=None)
    assert first[0][0] == 0  # the query whose candidates are close
    both = choose_pairs(x, known, cost, size=4, pairs_left=10, dollars_left=None)
    assert [p[0] for p in both[:2]] == [0, 20]  # one per query first, the close query first


def test_the_knn_chooser_repairs_a_lone_lucky_score() -> None:
    rng = np.random.default_rng(0)
    x = np.zeros((60, 3))
    x[:30, 0], x[30:, 1] = 1.0, 1.0
    x += rng.normal(scale=0.01, size=x.shape)
    known = np.full((60, 2), np.nan)
    known[:, 0] = (rng.random(60) < 0.7) * 1.0  # candidate 0: right 70% of the time
    known[30:45, 1] = 0.0  # candidate 1 is weak where it was tried...
    known[[30, 31], 1] = 1.0
    known[0, 1] = 1.0  # ...but one lucky answer makes a kNN router pick it in cluster A
    value = knn_values(x, known, k=10)
    best = np.unravel_index(np.argmax(np.where(np.isfinite(value), value, -1.0)), value.shape)
    assert best[0] < 30 and best[1] == 1
    assert value[1:30, 1].max() > 0.1 > value[45:, 1].max()


def test_a_known_perfect_score_leaves_nothing_to_learn() -> None:
    known = np.array([[1.0, np.nan], [0.6, np.nan], [0.0, np.nan]])
    mean = np.array([[1.0, 0.6], [0.6, 0.6], [0.0, 0.6]])
    value = pair_values(known, mean, np.full((3, 2), 0.05))
    assert value[0, 1] == pytest.approx(0.0, abs=1e-9)  # another candidate scored 1
    assert value[2, 1] == pytest.approx(0.0, abs=1e-9)  # it is chosen whatever it scores
    assert value[1, 1] > 0.05 and np.isneginf(value[0, 0])  # a tie: worth knowing


def test_cost_awareness_prefers_the_cheaper_of_two_equal_pairs() -> None:
    x, known = _planted()
    known[1] = np.nan  # two close queries
    cost = np.ones_like(known)
    cost[0] = 10.0
    chosen = choose_pairs(x, known, cost, size=1, pairs_left=5, dollars_left=100.0)
    assert chosen[0][0] == 1


def test_budgets_are_respected_exactly() -> None:
    x, known = _planted()
    known[:10] = np.nan
    cost = np.linspace(0.1, 1.0, known.size).reshape(known.shape)
    assert len(choose_pairs(x, known, cost, size=50, pairs_left=7, dollars_left=None)) == 7
    chosen = choose_pairs(x, known, cost, size=50, pairs_left=50, dollars_left=2.0)
    spent = sum(cost[p] for p in chosen)
    assert spent <= 2.0
    unknown = [p for p in zip(*np.nonzero(np.isnan(known)), strict=True) if p not in chosen]
    assert all(spent + cost[p] > 2.0 for p in unknown)  # nothing else would have fitted
    taken = np.zeros(known.shape, dtype=bool)
    seeded = seed_pairs(40, 2, 100, seed=1, exclude=taken, cost=cost, dollars_left=3.0)
    assert sum(cost[p] for p in seeded) <= 3.0 and len(set(seeded)) == len(seeded)


# --- the plan against a store: budgets and resumption ---------------------------------------------


def _rows(n: int) -> list[dict[str, Any]]:
    return [{**TRAIN[0], "query": f"question {i}"} for i in range(n)]


def _score(row: dict[str, Any], model: str) -> float:
    i = int(row["query"].split()[-1])
    return float((i % 3 == 0) == (model == "a") or (i % 5 == 0))


def _plan(tmp_path: Path, rows: list[dict[str, Any]], **calls: Any) -> ActivePlan:
    config = load_pipeline_config(
        write_config(
            tmp_path,
            base_url="http://127.0.0.1:9",
            models={"a": {}, "b": {}, "c": {}},
            calls={"strategy": "active", "active_batch_size": 5, **calls},
        )
    )
    pool = CandidatePool.from_json(tmp_path / "llm.json")
    store = SplitStore(tmp_path / "out" / "routing_train.jsonl").open()
    x = np.random.default_rng(0).normal(size=(len(rows), 8))
    x[:, 0] += [i % 3 for i in range(len(rows))]
    return ActivePlan(config, rows, ["a", "b", "c"], store, pool, features=x)


def _drive(plan: ActivePlan, *, stop_after: int | None = None) -> None:
    """Call the plan's pairs (writing rows to its store); ``stop_after`` rows: a kill."""
    written = 0
    while batch := plan.next_pairs():
        for row, model in batch:
            if stop_after is not None and written >= stop_after:
                return
            plan.store.add({**row, "model_name": model, "performance": _score(row, model)})
            written += 1


def _pairs(folder: Path) -> list[tuple[str, str]]:
    return [
        (query_key(r), r["model_name"]) for r in read_jsonl(folder / "out" / "routing_train.jsonl")
    ]


@pytest.mark.parametrize("chooser", ["ridge", "design"])
def test_resume_after_a_kill_gives_the_same_pairs_without_duplicates(
    tmp_path: Path, chooser: str
) -> None:
    rows = _rows(30)
    whole = _plan(tmp_path / "whole", rows, budget_pairs=40, active_model=chooser)
    _drive(whole)
    whole.store.close()
    whole.close()
    expected = _pairs(tmp_path / "whole")
    assert len(expected) == 40 == len(set(expected))

    for kill in (3, 17):  # inside the seed round, then inside a later round
        plan = _plan(tmp_path / f"killed{kill}", rows, budget_pairs=40, active_model=chooser)
        _drive(plan, stop_after=kill)
        plan.store.close()  # the log and store stay as a kill leaves them
        resumed = _plan(tmp_path / f"killed{kill}", rows, budget_pairs=40, active_model=chooser)
        _drive(resumed)
        resumed.store.close()
        resumed.close()
        got = _pairs(tmp_path / f"killed{kill}")
        assert len(got) == len(set(got)) == 40
        assert set(got) == set(expected)


def test_the_pair_budget_counts_pairs_already_in_the_store(tmp_path: Path) -> None:
    rows = _rows(10)
    plan = _plan(tmp_path, rows, budget_pairs=0.5)  # 15 of 30
    for row in rows[:4]:  # an earlier run left 8 pairs
        for model in ("a", "b"):
            plan.store.add({**row, "model_name": model, "performance": _score(row, model)})
    _drive(plan)
    assert len(plan.store.done) == 15 and plan.next_pairs() == []
    assert "15/30 training pairs" in plan.describe()
    plan.store.close()
    plan.close()


@pytest.mark.parametrize("chooser", ["ridge", "design"])
def test_the_dollar_budget_is_never_passed(tmp_path: Path, chooser: str) -> None:
    rows = _rows(20)
    plan = _plan(tmp_path, rows, budget_dollars=0.01, active_model=chooser)
    worst = float(plan.cost.max())
    while batch := plan.next_pairs():
        for row, model in batch:
            j = plan.models.index(model)
            i = plan.keys.index(query_key(row))
            paid = float(plan.cost[i, j]) * 0.8  # the call cost less than its worst case
            plan.store.add({**row, "model_name": model, "performance": 1.0, "cost": paid})
    assert 0.01 - worst < plan.store.spent <= 0.01
    assert 0 < len(plan.store.done) < 60
    plan.store.close()
    plan.close()


# --- stage 3 end to end -------------------------------------------------------------------------


def test_stage_three_in_active_mode(served: FakeOpenAIServer, tmp_path: Path) -> None:
    served.set_behavior("good", ModelBehavior(reply=scripted([*TRAIN, *TEST], right=True)))
    served.set_behavior("bad", ModelBehavior(reply=scripted([*TRAIN, *TEST], right=False)))
    calls = {
        "strategy": "active",
        "budget_pairs": 9,
        "active_seed_share": 0.34,
        "active_batch_size": 2,
    }
    path = write_config(
        tmp_path,
        base_url=served.base_url,
        train=TRAIN,
        test=TEST,
        calls=calls,
    )
    summary = call_candidates(load_pipeline_config(path), progress=False)
    train = read_jsonl(tmp_path / "out" / "routing_train.jsonl")
    test = read_jsonl(tmp_path / "out" / "routing_test.jsonl")
    assert len(train) == 9 == len({(r["query"], r["model_name"]) for r in train})
    assert len(test) == 2  # the test split is called in full
    assert summary.complete and summary.total == 11 and summary.calls == 11
    assert "9/24 training pairs" in summary.active
    rounds = read_jsonl(plan_path(tmp_path / "out" / "routing_train.jsonl"))
    assert [len(r["pairs"]) for r in rounds] == [3, 2, 2, 2]  # the seed round, then rounds
    assert {r["performance"] for r in train} <= {0.0, 1.0}

    # Run again: nothing to do; a larger budget continues where the first stopped.
    before = len(served.calls)
    assert main(["--config", str(path), "--no-progress"]) == 0
    assert len(served.calls) == before
    write_config(
        tmp_path,
        base_url=served.base_url,
        train=TRAIN,
        test=TEST,
        calls={**calls, "budget_pairs": 13},
    )
    again = call_candidates(load_pipeline_config(path), progress=False)
    assert again.calls == 4 and again.done_before == 11 and again.complete
    pairs = Counter(
        (r["query"], r["model_name"]) for r in read_jsonl(tmp_path / "out" / "routing_train.jsonl")
    )
    assert len(pairs) == 13 and max(pairs.values()) == 1

    # A kNN router trained on the sparse routing file fills its unknown scores.
    data = RoutingDataset.from_file(tmp_path / "out" / "routing_train.jsonl")
    unknown = np.isnan(data.performance)
    assert unknown.sum() == 2 * len(TRAIN) - 13
    x = np.random.default_rng(0).normal(size=(len(data), 8))
    router = KNNRouter(k=3, fill_unknown="mf").fit(data, query_embeddings=x)
    assert not np.isnan(router.train_y_).any()
    assert np.array_equal(router.train_y_[~unknown], data.performance[~unknown])
