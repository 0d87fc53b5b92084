"""Unit tests of `RoutingDataset`: the three file formats, costs, errors and views."""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from langchain_llmrouter import (
    APIKeys,
    CandidateMismatchError,
    CandidatePool,
    DataFormatError,
    LLMCandidate,
    RoutingDataset,
)

DATA_DIR = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "llmrouter_example"

ROUTERDC_CANDIDATES = [
    "qwen2.5-7b-instruct",
    "codegemma-7b",
    "gemma-2-9b-it",
    "llama-3.1-8b-instruct",
    "llama3-chatqa-1.5-8b",
    "mistral-7b-instruct-v0.3",
    "llama-3.3-nemotron-super-49b-v1",
    "llama-3.1-nemotron-51b-instruct",
    "llama3-chatqa-1.5-70b",
]
NOT_IN_ROUTERDC = [
    "llama3-70b-instruct",
    "mixtral-8x7b-instruct-v0.1",
    "mixtral-8x22b-instruct-v0.1",
    "palmyra-creative-122b",
    "mistral-nemo-12b-instruct",
]


@pytest.fixture(scope="module")
def _shared_pool() -> CandidatePool:
    return CandidatePool.from_json(DATA_DIR / "default_llm.json", api_keys=APIKeys())


@pytest.fixture(scope="module")
def _routerdc(_shared_pool: CandidatePool) -> tuple[RoutingDataset, RoutingDataset]:
    train = RoutingDataset.from_file(DATA_DIR / "routerdc_train.json", candidates=_shared_pool)
    test = RoutingDataset.from_file(DATA_DIR / "routerdc_test.json", candidates=_shared_pool)
    return train, test


@pytest.fixture
def _tiny_pool() -> CandidatePool:
    """Two candidates whose pool order (b, a) differs from their order in the test files."""
    return CandidatePool(
        [
            LLMCandidate(name="b", model="org/b", input_price=3.0, output_price=4.0),
            LLMCandidate(name="a", model="org/a", input_price=1.0, output_price=2.0),
        ],
        api_keys=APIKeys(),
    )


def _write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def _jsonl(path: Path, records: list[dict[str, Any] | str]) -> Path:
    lines = [r if isinstance(r, str) else json.dumps(r) for r in records]
    return _write(path, "\n".join(lines) + "\n")


def _row(query: str, model: str, performance: Any = 1.0, **extra: Any) -> dict[str, Any]:
    return {"query": query, "model_name": model, "performance": performance, **extra}


# --- the shared RouterDC data --------------------------------------------------------------


def test_routerdc_shapes_and_pool_order(
    _routerdc: tuple[RoutingDataset, RoutingDataset],
) -> None:
    train, test = _routerdc
    assert (len(train), len(test)) == (5608, 500)
    for data in (train, test):
        assert data.candidates == ROUTERDC_CANDIDATES
        assert data.missing_candidates == NOT_IN_ROUTERDC
        assert data.performance.shape == (len(data), 9)
        assert data.cost.shape == (len(data), 9)
        assert not np.isnan(data.performance).any()
        assert ((data.performance >= 0) & (data.performance <= 1)).all()
        assert [c.name for c in data.candidate_info()] == ROUTERDC_CANDIDATES
    assert train.source == str(DATA_DIR / "routerdc_train.json")


def test_routerdc_reference_figures(_routerdc: tuple[RoutingDataset, RoutingDataset]) -> None:
    train, test = _routerdc
    novel = test.novel_mask(train)
    assert novel.dtype == bool
    assert int(novel.sum()) == 381
    assert train.best_single() == "llama-3.1-nemotron-51b-instruct"
    assert test.mean_performance()["llama-3.1-nemotron-51b-instruct"] == pytest.approx(
        0.563, abs=5e-4
    )
    assert test.subset(novel).mean_performance()[train.best_single()] == pytest.approx(
        0.597, abs=5e-4
    )
    assert float(test.performance.max(axis=1).mean()) == pytest.approx(0.743, abs=5e-4)


@pytest.mark.parametrize("row", [0, 17, 2500, 5607])
@pytest.mark.parametrize("name", ["gemma-2-9b-it", "llama-3.1-nemotron-51b-instruct"])
def test_routerdc_costs_follow_the_benchmark_rule(
    _routerdc: tuple[RoutingDataset, RoutingDataset],
    _shared_pool: CandidatePool,
    row: int,
    name: str,
) -> None:
    train, _ = _routerdc
    query = train.queries[row]
    cand = _shared_pool[name]
    expected = (math.ceil(len(query) / 4) * cand.input_price + 200 * cand.output_price) / 1e6
    assert train.cost[row, train.candidates.index(name)] == pytest.approx(expected, rel=1e-12)


def test_routerdc_without_pool_has_no_costs() -> None:
    data = RoutingDataset.from_file(DATA_DIR / "routerdc_test.json")
    assert sorted(data.candidates) == sorted(ROUTERDC_CANDIDATES)
    assert np.isnan(data.cost).all()
    assert data.missing_candidates == []
    assert data.candidate_info()[0].input_price == 0.0


def test_output_tokens_override(_shared_pool: CandidatePool) -> None:
    data = RoutingDataset.from_file(
        DATA_DIR / "routerdc_test.json", candidates=_shared_pool, output_tokens=0
    )
    j = data.candidates.index("gemma-2-9b-it")
    assert data.cost[3, j] == pytest.approx(math.ceil(len(data.queries[3]) / 4) * 0.1 / 1e6)


# --- LLMRouter JSONL -----------------------------------------------------------------------


def test_jsonl_aligns_averages_and_costs(tmp_path: Path, _tiny_pool: CandidatePool) -> None:
    q1, q2 = "What is 2+2?", "Capital of France?"
    path = _jsonl(
        tmp_path / "routing.jsonl",
        [
            _row(q1, "a", 1.0, task_name="math", input_tokens=10, output_tokens=20),
            _row(q1, "b", 0.0, task_name="math", input_tokens=10, output_tokens=50),
            _row(q1, "a", 0.5, task_name="math", input_tokens=10, output_tokens=20),
            "",
            _row(q2, "b", 1, task_name="qa", token_num=100, ground_truth="Paris"),
        ],
    )
    data = RoutingDataset.from_file(path, candidates=_tiny_pool)
    assert data.queries == [q1, q2]
    assert data.candidates == ["b", "a"]
    assert data.task_names == ["math", "qa"]
    assert data.ground_truths == [None, "Paris"]
    np.testing.assert_allclose(data.performance, [[0.0, 0.75], [1.0, np.nan]])
    # b: input 3, output 4; a: input 1, output 2 ($ per million tokens).
    # Only a total token count: input = ceil(len(q2) / 4) = 5, output = the rest (95).
    expected_cost = [
        [(10 * 3 + 50 * 4) / 1e6, (10 * 1 + 20 * 2) / 1e6],
        [(5 * 3 + 95 * 4) / 1e6, np.nan],
    ]
    np.testing.assert_allclose(data.cost, expected_cost, rtol=1e-12)
    assert data.missing_candidates == []


def test_jsonl_estimates_tokens_and_keeps_given_costs(
    tmp_path: Path, _tiny_pool: CandidatePool
) -> None:
    query = "x" * 41  # ceil(41 / 4) = 11 input tokens
    path = _jsonl(
        tmp_path / "routing.jsonl",
        [_row(query, "a", 0.5), _row(query, "b", 0.5, cost=0.25)],
    )
    data = RoutingDataset.from_file(path, candidates=_tiny_pool)
    np.testing.assert_allclose(data.cost, [[0.25, (11 * 1 + 200 * 2) / 1e6]])


def test_jsonl_without_pool(tmp_path: Path) -> None:
    path = _jsonl(
        tmp_path / "routing.jsonl",
        [_row("q", "z", 0.5, cost=0.1), _row("q", "y", 1.0), _row("r", "y", 0.0)],
    )
    data = RoutingDataset.from_file(path)
    assert data.candidates == ["z", "y"]
    np.testing.assert_allclose(data.performance, [[0.5, 1.0], [np.nan, 0.0]])
    np.testing.assert_allclose(data.cost, [[0.1, np.nan], [np.nan, np.nan]])


def test_same_query_in_two_tasks_is_two_rows(tmp_path: Path) -> None:
    path = _jsonl(
        tmp_path / "routing.jsonl",
        [_row("q", "a", 1.0, task_name="t1"), _row("q", "a", 0.0, task_name="t2")],
    )
    data = RoutingDataset.from_file(path)
    assert data.queries == ["q", "q"]
    assert data.task_names == ["t1", "t2"]
    np.testing.assert_allclose(data.performance, [[1.0], [0.0]])


def test_jsonl_bad_json_names_path_and_line(tmp_path: Path) -> None:
    path = _jsonl(
        tmp_path / "routing.jsonl",
        [_row("q", "a"), "", '{"query": "r", "model_name": "a", "performance": }'],
    )
    with pytest.raises(DataFormatError) as info:
        RoutingDataset.from_file(path)
    assert info.value.line == 3
    assert info.value.path == str(path)
    assert str(path) in str(info.value) and "line 3" in str(info.value)


@pytest.mark.parametrize(
    ("record", "field", "message"),
    [
        ({"query": "q", "model_name": "a"}, "performance", "missing"),
        (_row("q", "a", "high"), "performance", "expected a number"),
        (_row("q", "a", True), "performance", "expected a number"),
        (_row("q", "a", None), "performance", "missing"),
        (_row("q", "a", float("nan")), "performance", "finite"),
        ({"model_name": "a", "performance": 1}, "query", "non-empty string"),
        (_row("   ", "a"), "query", "non-empty string"),
        ({"query": "q", "performance": 1}, "model_name", "non-empty string"),
        (_row("q", "a", input_tokens="many"), "input_tokens", "expected a number"),
        (_row("q", "a", token_num="x"), "token_num", "expected a number"),
        (_row("q", "a", cost="free"), "cost", "expected a number"),
    ],
)
def test_jsonl_bad_field_names_line_and_field(
    tmp_path: Path, record: dict[str, Any], field: str, message: str
) -> None:
    path = _jsonl(tmp_path / "routing.jsonl", [_row("ok", "a"), _row("ok", "b"), record])
    with pytest.raises(DataFormatError, match=message) as info:
        RoutingDataset.from_file(path)
    assert (info.value.path, info.value.line, info.value.field) == (str(path), 3, field)
    assert f"line 3, field '{field}'" in str(info.value)


def test_jsonl_line_must_be_an_object(tmp_path: Path) -> None:
    path = _jsonl(tmp_path / "routing.jsonl", [_row("q", "a"), "[1, 2]"])
    with pytest.raises(DataFormatError, match="JSON object") as info:
        RoutingDataset.from_file(path)
    assert info.value.line == 2


# --- RouterDC JSON -------------------------------------------------------------------------

ROUTERDC_TEXT = """[
  {
    "question": "first",
    "scores": {"a": 1.0, "b": 0.5}
  },
  {
    "question": "second",
    "scores": {"a": 0, "b": %s}
  }
]
"""


def test_routerdc_small_file(tmp_path: Path, _tiny_pool: CandidatePool) -> None:
    path = _write(tmp_path / "dc.json", ROUTERDC_TEXT % "1")
    data = RoutingDataset.from_file(path, candidates=_tiny_pool)
    assert data.queries == ["first", "second"]
    assert data.candidates == ["b", "a"]
    np.testing.assert_allclose(data.performance, [[0.5, 1.0], [1.0, 0.0]])


def test_routerdc_query_key_and_task(tmp_path: Path) -> None:
    records = [{"query": "q", "task": "gsm8k", "scores": {"a": 1}}]
    data = RoutingDataset.from_file(_write(tmp_path / "dc.json", json.dumps(records)))
    assert (data.queries, data.task_names) == (["q"], ["gsm8k"])


@pytest.mark.parametrize(
    ("score", "message"),
    [('"abc"', "expected a number"), ("null", "missing"), ("true", "expected a number")],
)
def test_routerdc_bad_score_names_record_line_and_field(
    tmp_path: Path, score: str, message: str
) -> None:
    path = _write(tmp_path / "dc.json", ROUTERDC_TEXT % score)
    with pytest.raises(DataFormatError, match=message) as info:
        RoutingDataset.from_file(path)
    assert (info.value.path, info.value.line, info.value.field) == (str(path), 6, "[1].scores.b")


@pytest.mark.parametrize(
    ("record", "field"),
    [
        ('{"scores": {"a": 1}}', "[1].question"),
        ('{"question": "q", "scores": {}}', "[1].scores"),
        ('{"question": "q", "scores": [1]}', "[1].scores"),
    ],
)
def test_routerdc_bad_record(tmp_path: Path, record: str, field: str) -> None:
    text = '[\n  {"question": "ok", "scores": {"a": 1}},\n  ' + record + "\n]\n"
    with pytest.raises(DataFormatError) as info:
        RoutingDataset.from_file(_write(tmp_path / "dc.json", text))
    assert (info.value.line, info.value.field) == (3, field)


def test_routerdc_non_object_record_line(tmp_path: Path) -> None:
    good = '{"question": "a", "scores": {"m": 1}}'
    text = f'[\n  {good},\n  "oops",\n  {good}\n]\n'
    with pytest.raises(DataFormatError, match="expected an object") as info:
        RoutingDataset.from_file(_write(tmp_path / "dc.json", text))
    assert (info.value.line, info.value.field) == (3, "[1]")


def test_routerdc_numeric_string_score(tmp_path: Path) -> None:
    data = RoutingDataset.from_file(_write(tmp_path / "dc.json", ROUTERDC_TEXT % '"0.5"'))
    np.testing.assert_allclose(data.performance, [[1.0, 0.5], [0.0, 0.5]])


@pytest.mark.parametrize(
    ("text", "line"),
    [('[{"question": "q", "scores": {"a": 1}},\n  oops]', 2), ('{"question": "q"}', 1)],
)
def test_routerdc_invalid_document(tmp_path: Path, text: str, line: int) -> None:
    with pytest.raises(DataFormatError) as info:
        RoutingDataset.from_file(_write(tmp_path / "dc.json", text))
    assert info.value.line == line


# --- wide CSV ------------------------------------------------------------------------------


def test_csv_wide_format(tmp_path: Path, _tiny_pool: CandidatePool) -> None:
    path = _write(
        tmp_path / "wide.csv",
        'id,prompt,task,a,b\n1,hello there,greet,0.5,1\n2,"x, y",list,,0.25\n',
    )
    data = RoutingDataset.from_file(path, candidates=_tiny_pool)
    assert data.queries == ["hello there", "x, y"]
    assert data.task_names == ["greet", "list"]
    assert data.candidates == ["b", "a"]
    np.testing.assert_allclose(data.performance, [[1.0, 0.5], [0.25, np.nan]])
    tokens = math.ceil(len("hello there") / 4)
    assert data.cost[0, 1] == pytest.approx((tokens * 1 + 200 * 2) / 1e6)
    assert np.isnan(data.cost[1, 1])


def test_csv_without_pool_keeps_column_order(tmp_path: Path) -> None:
    path = _write(tmp_path / "wide.csv", "Query,zeta,alpha\nq1,1,0\nq2,0,1\n")
    data = RoutingDataset.from_file(path)
    assert data.candidates == ["zeta", "alpha"]
    assert data.task_names == [None, None]
    np.testing.assert_allclose(data.performance, [[1, 0], [0, 1]])


@pytest.mark.parametrize(
    ("text", "line", "field", "message"),
    [
        ("prompt,a\nq1,0.5\nq2,bad\n", 3, "a", "expected a number"),
        ("prompt,a\nq1,0.5\n,1\n", 3, "prompt", "non-empty string"),
        ("text,a\nq1,0.5\n", 1, None, "no prompt column"),
        ("prompt,id\nq1,1\n", 1, None, "no score columns"),
    ],
)
def test_csv_errors(tmp_path: Path, text: str, line: int, field: str | None, message: str) -> None:
    with pytest.raises(DataFormatError, match=message) as info:
        RoutingDataset.from_file(_write(tmp_path / "wide.csv", text))
    assert (info.value.line, info.value.field) == (line, field)


def test_csv_error_line_after_multiline_prompt(tmp_path: Path) -> None:
    path = _write(tmp_path / "wide.csv", 'prompt,a\n"line one\nline two",0.5\nq2,bad\n')
    with pytest.raises(DataFormatError) as info:
        RoutingDataset.from_file(path)
    assert info.value.line == 4


# --- candidates in the data vs the pool ----------------------------------------------------


def test_unknown_candidate_raises_mismatch(tmp_path: Path, _tiny_pool: CandidatePool) -> None:
    path = _jsonl(
        tmp_path / "routing.jsonl",
        [_row("q", "a"), _row("q", "ghost-1"), _row("q", "ghost-2"), _row("r", "b")],
    )
    with pytest.raises(CandidateMismatchError) as info:
        RoutingDataset.from_file(path, candidates=_tiny_pool)
    assert info.value.unknown == ["ghost-1", "ghost-2"]
    assert info.value.path == str(path)
    message = str(info.value)
    assert "ghost-1, ghost-2" in message and "unknown_candidates='drop'" in message


def test_unknown_candidate_dropped_on_request(
    tmp_path: Path, _tiny_pool: CandidatePool, caplog: pytest.LogCaptureFixture
) -> None:
    path = _jsonl(
        tmp_path / "routing.jsonl",
        [_row("q", "a", 0.5), _row("q", "ghost", 1.0), _row("only-ghost", "ghost", 1.0)],
    )
    with caplog.at_level(logging.WARNING, logger="langchain_llmrouter.data"):
        data = RoutingDataset.from_file(path, candidates=_tiny_pool, unknown_candidates="drop")
    assert "ghost" in caplog.text
    assert data.candidates == ["a"]
    assert data.queries == ["q"]
    assert data.missing_candidates == ["b"]
    np.testing.assert_allclose(data.performance, [[0.5]])


def test_missing_candidates_reported(tmp_path: Path, _tiny_pool: CandidatePool) -> None:
    path = _jsonl(tmp_path / "routing.jsonl", [_row("q", "b", 0.5)])
    data = RoutingDataset.from_file(path, candidates=_tiny_pool)
    assert data.candidates == ["b"]
    assert data.missing_candidates == ["a"]
    assert [c.model for c in data.candidate_info()] == ["org/b"]


# --- file-level errors ---------------------------------------------------------------------


def test_unknown_suffix(tmp_path: Path) -> None:
    path = _write(tmp_path / "routing.txt", json.dumps(_row("q", "a")) + "\n")
    with pytest.raises(DataFormatError) as info:
        RoutingDataset.from_file(path)
    message = str(info.value)
    assert "'.txt'" in message
    assert all(s in message for s in (".jsonl", ".json", ".csv", "format="))
    assert RoutingDataset.from_file(path, format="jsonl").queries == ["q"]


def test_missing_and_empty_files(tmp_path: Path) -> None:
    with pytest.raises(DataFormatError, match="not found"):
        RoutingDataset.from_file(tmp_path / "nope.jsonl")
    with pytest.raises(DataFormatError, match="no routing records"):
        RoutingDataset.from_file(_write(tmp_path / "empty.jsonl", "\n\n"))


def test_constructor_checks_shapes() -> None:
    with pytest.raises(ValueError, match="performance has shape"):
        RoutingDataset(["q"], ["a", "b"], np.zeros((1, 3)), np.zeros((1, 2)))
    with pytest.raises(ValueError, match="one entry per query"):
        RoutingDataset(["q"], ["a"], np.zeros((1, 1)), np.zeros((1, 1)), task_names=["t", "u"])


# --- views ---------------------------------------------------------------------------------


@pytest.fixture
def _ten() -> RoutingDataset:
    rng = np.random.default_rng(0)
    return RoutingDataset(
        queries=[f"q{i}" for i in range(10)],
        candidates=["a", "b", "c"],
        performance=rng.random((10, 3)),
        cost=rng.random((10, 3)),
        task_names=[f"t{i % 2}" for i in range(10)],
        source="mem",
        missing_candidates=["d"],
    )


def test_split(_ten: RoutingDataset) -> None:
    train, test = _ten.split(0.2, random_state=3)
    assert (len(train), len(test)) == (8, 2)
    assert sorted(train.queries + test.queries) == sorted(_ten.queries)
    assert not set(train.queries) & set(test.queries)
    for part in (train, test):
        rows = [_ten.queries.index(q) for q in part.queries]
        assert rows == sorted(rows)
        np.testing.assert_array_equal(part.performance, _ten.performance[rows])
        np.testing.assert_array_equal(part.cost, _ten.cost[rows])
        assert part.task_names == [_ten.task_names[i] for i in rows]
    again = _ten.split(0.2, random_state=3)
    assert again[1].queries == test.queries
    assert _ten.split(0.5, random_state=4)[1].queries != _ten.split(0.5, random_state=5)[1].queries


@pytest.mark.parametrize("test_size", [0, 1, 1.5, -0.1])
def test_split_rejects_bad_size(_ten: RoutingDataset, test_size: float) -> None:
    with pytest.raises(ValueError, match="test_size"):
        _ten.split(test_size)


@pytest.mark.parametrize(
    "index", [[1, 4, 7], np.array([1, 4, 7]), np.isin(np.arange(10), [1, 4, 7])]
)
def test_subset(_ten: RoutingDataset, index: Any) -> None:
    sub = _ten.subset(index)
    assert sub.queries == ["q1", "q4", "q7"]
    assert sub.task_names == ["t1", "t0", "t1"]
    np.testing.assert_array_equal(sub.performance, _ten.performance[[1, 4, 7]])
    np.testing.assert_array_equal(sub.cost, _ten.cost[[1, 4, 7]])
    assert (sub.candidates, sub.source, sub.missing_candidates) == (["a", "b", "c"], "mem", ["d"])


def test_select_candidates(_ten: RoutingDataset) -> None:
    sel = _ten.select_candidates(["c", "a"])
    assert sel.candidates == ["c", "a"]
    assert sel.queries == _ten.queries
    np.testing.assert_array_equal(sel.performance, _ten.performance[:, [2, 0]])
    np.testing.assert_array_equal(sel.cost, _ten.cost[:, [2, 0]])
    with pytest.raises(ValueError):
        _ten.select_candidates(["zzz"])


@pytest.mark.parametrize(("n", "expected"), [(3, 3), (0, 0), (10, 10), (50, 10)])
def test_head(_ten: RoutingDataset, n: int, expected: int) -> None:
    head = _ten.head(n)
    assert head.queries == _ten.queries[:expected]
    np.testing.assert_array_equal(head.performance, _ten.performance[:expected])


def test_best_single_ignores_missing_and_breaks_ties_by_order() -> None:
    data = RoutingDataset(
        queries=["q1", "q2"],
        candidates=["a", "b", "c"],
        performance=np.array([[0.5, np.nan, 0.5], [0.5, 1.0, 0.5]]),
        cost=np.zeros((2, 3)),
    )
    assert data.mean_performance() == {"a": 0.5, "b": 1.0, "c": 0.5}
    assert data.best_single() == "b"
    assert data.select_candidates(["c", "a"]).best_single() == "c"


def test_novel_mask() -> None:
    def make(queries: list[str]) -> RoutingDataset:
        n = len(queries)
        return RoutingDataset(queries, ["a"], np.zeros((n, 1)), np.zeros((n, 1)))

    mask = make(["x", "y", "z"]).novel_mask(make(["y", "w"]))
    assert mask.tolist() == [True, False, True]


def test_data_package_keeps_its_names_and_its_readers_point_one_way() -> None:
    """`langchain_llmrouter.data` is a package: the dataset, and readers that know nothing of it."""
    import ast

    import langchain_llmrouter
    from langchain_llmrouter import data
    from langchain_llmrouter.data import dataset, readers

    assert data.RoutingDataset is dataset.RoutingDataset is langchain_llmrouter.RoutingDataset
    assert (data.DataFormat, data.VERIFICATION_FIELD) == (
        readers.DataFormat,
        "verification_score",
    )
    tree = ast.parse(Path(readers.__file__).read_text())
    imported = {
        node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.module
    }
    assert not {m for m in imported if m.startswith("langchain_llmrouter.data")}, imported
