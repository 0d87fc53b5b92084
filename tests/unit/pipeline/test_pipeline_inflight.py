"""Stage 3's in-flight journal (`langchain_llmrouter.pipeline.journal`): a run SIGKILLed with
calls in flight leaves them journalled; the next run reports their count and worst-case
cost, counts it against ``--max-cost``, duplicates no row and compacts the journal."""

from __future__ import annotations

import json
import logging
import sys
import threading
from collections.abc import Callable
from pathlib import Path

import pytest
from pipeline_call_helpers import (
    ROWS_TEST,
    ROWS_TRAIN,
    journals,
    kill_when,
    open_starts,
    read_jsonl,
    routing_path,
    rows_written,
    scripted,
    user_text,
    write_config,
)

from langchain_llmrouter.pipeline.call_candidates import call_candidates, format_report
from langchain_llmrouter.pipeline.calling import build_pool, worst_case_cost
from langchain_llmrouter.pipeline.config import load_pipeline_config
from langchain_llmrouter.pipeline.journal import journal_path
from langchain_llmrouter.pipeline.store import SplitStore, query_key
from langchain_llmrouter.pipeline.tasks import render_messages
from langchain_llmrouter.testing import FakeOpenAIServer, ModelBehavior

ALL_ROWS = [*ROWS_TRAIN, ROWS_TEST[0]]
REPO = Path(__file__).resolve().parents[3]
STAGE_3 = "langchain_llmrouter.pipeline.call_candidates"


@pytest.fixture(autouse=True)
def _no_api_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("API_KEYS", raising=False)


def test_a_killed_run_journals_its_in_flight_calls_and_the_resume_counts_them(
    served: FakeOpenAIServer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # The server answers the first 3 requests, then holds every later one until released,
    # so the run is SIGKILLed with exactly max_concurrency (4) calls in flight.
    gate, lock = threading.Event(), threading.Lock()
    answered: list[int] = [0]
    held: list[list[dict]] = []

    def gated(right: bool) -> Callable[[list[dict]], str]:
        reply = scripted(ALL_ROWS, right=right)

        def answer(messages: list[dict]) -> str:
            with lock:
                first = answered[0] < 3
                answered[0] += first
                if not first:
                    held.append(messages)
            if not first:
                gate.wait(30)
            return reply(messages)

        return answer

    served.set_behavior("good", ModelBehavior(reply=gated(True)))
    served.set_behavior("bad", ModelBehavior(reply=gated(False)))
    path = write_config(tmp_path, base_url=served.base_url)
    kill_when(
        [sys.executable, "-m", STAGE_3, "--config", str(path), "--no-progress"],
        REPO,
        lambda: len(held) == 4 and rows_written(path) == 3,
        gate,
        timeout_s=20,
    )

    # The journal holds the 4 calls the server was answering, each with its worst case.
    config = load_pipeline_config(path)
    pool = build_pool(config)
    starts = open_starts(path)
    assert len(starts) == 4
    by_key = {query_key(r): r for r in ALL_ROWS}
    expected = 0.0
    for start in starts:
        row = by_key[start["query_key"]]
        cost = worst_case_cost(
            pool[start["model_name"]], render_messages(row), config.calls.max_tokens
        )
        assert start["worst_case_cost"] == pytest.approx(cost) and start["started"] > 0
        expected += cost
    held_queries = sorted(
        next(r["query"] for r in ALL_ROWS if r["query"] in user_text(m)) for m in held
    )
    assert sorted(by_key[s["query_key"]]["query"] for s in starts) == held_queries
    spent_before = sum(
        r["cost"]
        for p in (routing_path(path, "train"), routing_path(path, "test"))
        if p.exists()
        for r in read_jsonl(p)
    )

    # Resumed with a bound that the recorded spend alone leaves room under, but not once
    # the lost calls' worst case counts: it reports them and calls nothing.
    served.reset()
    _script_plain(served)
    with caplog.at_level(logging.WARNING, logger="langchain_llmrouter.pipeline.call_candidates"):
        first = call_candidates(config, progress=False, max_cost=spent_before + expected - 1e-9)
    assert (first.in_flight_found, first.lost_calls) == (4, 4)
    assert first.in_flight_found_cost == pytest.approx(expected)
    assert first.lost_cost == pytest.approx(expected)
    assert first.stopped_at_max_cost and first.calls == 0 and served.calls == []
    assert "killed with 4 calls in flight" in caplog.text
    report = format_report(first)
    assert f"lost in flight: 4 calls at the last kill (worst case ${expected:.4f})" in report

    # The journal is compacted to the tally, which the next run still counts.
    tallies = [read_jsonl(j) for j in journals(path) if j.exists()]
    assert all(len(t) == 1 and t[0]["event"] == "lost" for t in tallies)
    assert sum(t[0]["calls"] for t in tallies) == 4

    second = call_candidates(config, progress=False, max_cost=spent_before + expected + 1.0)
    assert second.complete and second.calls == 7
    assert (second.in_flight_found, second.lost_calls) == (0, 4)
    assert second.lost_cost == pytest.approx(expected)
    pairs = [
        (split, r["query"], r["model_name"])
        for split in ("train", "test")
        for r in read_jsonl(routing_path(path, split))
    ]
    assert len(pairs) == 10 and len(set(pairs)) == 10  # nothing twice
    tallies = [read_jsonl(j) for j in journals(path) if j.exists()]
    assert sum(len(t) for t in tallies) == len(tallies)  # still one tally line per file


def _script_plain(server: FakeOpenAIServer) -> None:
    server.set_behavior("good", ModelBehavior(reply=scripted(ALL_ROWS, right=True)))
    server.set_behavior("bad", ModelBehavior(reply=scripted(ALL_ROWS, right=False)))


def test_a_clean_run_with_failures_leaves_no_journal(
    served: FakeOpenAIServer, tmp_path: Path
) -> None:
    _script_plain(served)
    served.set_behavior("bad", ModelBehavior(fail_status=400))
    path = write_config(tmp_path, base_url=served.base_url)
    summary = call_candidates(load_pipeline_config(path), progress=False)
    assert summary.failed == 5 and summary.lost_calls == 0
    assert not any(j.exists() for j in journals(path))  # every start was ended
    failures = read_jsonl(path.parent / "out" / "routing_train.failures.jsonl")
    assert all(f.get("request_id") for f in failures)


def test_a_torn_last_line_is_dropped_with_a_warning_and_written_results_are_not_lost(
    tmp_path: Path,
) -> None:
    routing = tmp_path / "routing.jsonl"
    row = {**ROWS_TRAIN[2], "model_name": "good", "response": "Paris", "cost": 0.5}
    routing.write_text(json.dumps(row) + "\n", encoding="utf-8")
    start = {"event": "start", "started": 1.0}
    journal = journal_path(routing)
    journal.write_text(
        json.dumps({"event": "lost", "calls": 2, "worst_case_cost": 0.25, "runs": 1})
        + "\n"
        # written, then killed before its end line: not lost
        + json.dumps({**start, "id": "a", "query_key": query_key(row), "model_name": "good"})
        + "\n"
        + json.dumps(
            {**start, "id": "b", "query_key": "q", "model_name": "bad", "worst_case_cost": 0.125}
        )
        + "\n"
        + '{"event": "start", "id": "c", "query_k',  # torn by the kill
        encoding="utf-8",
    )
    with pytest.warns(UserWarning, match=r"inflight\.jsonl: dropped a torn last line"):
        store = SplitStore(routing).open()
    assert [r["id"] for r in store.inflight.found] == ["b"]
    assert (store.inflight.lost_calls, store.inflight.lost_runs) == (3, 2)
    assert store.inflight.lost_cost == pytest.approx(0.375)
    assert read_jsonl(journal) == [
        {"event": "lost", "calls": 3, "worst_case_cost": 0.375, "runs": 2}
    ]
    store.close()
    assert len(read_jsonl(journal)) == 1
