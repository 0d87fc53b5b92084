"""The data pipeline on Ray (`langchain_llmrouter.pipeline.ray_engine`) in Ray local mode,
against the local OpenAI-compatible server: the same routing file and query embeddings as the
local engine; a killed calling actor and a killed driver lose and duplicate no pair, and
``--max-cost`` holds across the kill; one rate limit and one key rotation for all actors."""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
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
    wait_for,
    write_config,
)
from safetensors.numpy import load_file

from langchain_llmrouter.pipeline.call_candidates import call_candidates, write_query_embeddings
from langchain_llmrouter.pipeline.calling import build_pool, worst_case_cost
from langchain_llmrouter.pipeline.config import load_pipeline_config
from langchain_llmrouter.pipeline.run import main as run_main
from langchain_llmrouter.pipeline.store import query_key
from langchain_llmrouter.pipeline.tasks import render_messages
from langchain_llmrouter.testing import FakeOpenAIServer, ModelBehavior

ray = pytest.importorskip("ray", reason="the ray extra is not installed")

ALL_ROWS = [*ROWS_TRAIN, ROWS_TEST[0]]
REPO = Path(__file__).resolve().parents[3]
SPLITS = ("train", "test")
VOLATILE = {"latency"}  # wall time of the call: the only field that may differ


@pytest.fixture(scope="module", autouse=True)
def _ray() -> Iterator[None]:
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        yield
    finally:
        ray.shutdown()


@pytest.fixture(autouse=True)
def _no_api_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("API_KEYS", raising=False)


def _script(server: FakeOpenAIServer, delay_s: float = 0.0) -> None:
    for name, right in (("good", True), ("bad", False)):
        reply = scripted(ALL_ROWS, right=right)
        server.set_behavior(name, ModelBehavior(reply=reply, delay_s=delay_s))


def _config(folder: Path, server: FakeOpenAIServer, actors: int = 2, **calls: Any) -> Path:
    return write_config(
        folder, base_url=server.base_url, calls=calls or None, engine="ray", ray_actors=actors
    )


def _pairs(config_path: Path) -> list[tuple[str, str, str]]:
    return [
        (split, r["query"], r["model_name"])
        for split in SPLITS
        if routing_path(config_path, split).exists()
        for r in read_jsonl(routing_path(config_path, split))
    ]


def _rows(config_path: Path) -> dict[tuple[str, str, str], dict[str, Any]]:
    return {
        (split, r["query"], r["model_name"]): {k: v for k, v in r.items() if k not in VOLATILE}
        for split in SPLITS
        for r in read_jsonl(routing_path(config_path, split))
    }


def _assert_complete_once(config_path: Path) -> None:
    pairs = _pairs(config_path)
    assert len(pairs) == 10 and len(set(pairs)) == 10  # every pair, none twice
    for (_, query, model), row in _rows(config_path).items():
        assert row["performance"] == (1.0 if model == "good" else 0.0), query


def test_ray_writes_the_same_routing_file_and_embeddings_as_the_local_engine(
    served: FakeOpenAIServer, tmp_path: Path
) -> None:
    _script(served)
    local_path = write_config(tmp_path / "local", base_url=served.base_url)
    local = load_pipeline_config(local_path)
    assert local.engine == "local" and call_candidates(local, progress=False).complete
    write_query_embeddings(local)

    ray_path = write_config(tmp_path / "ray", base_url=served.base_url, ray_actors=1)
    argv = ["--config", str(ray_path), "--stages", "calls", "--engine", "ray", "--no-progress"]
    assert run_main(argv) == 0

    ours, theirs = _rows(ray_path), _rows(local_path)
    assert len(ours) == 10 and ours == theirs  # same pairs, scores, responses, tokens, cost
    vectors = {
        p: load_file(str(p.parent / "out" / "query_embeddings.safetensors"))["embeddings"]
        for p in (local_path, ray_path)
    }
    assert vectors[ray_path].shape == vectors[local_path].shape == (4, vectors[ray_path].shape[1])
    np.testing.assert_allclose(vectors[ray_path], vectors[local_path], atol=1e-6)


def test_a_killed_calling_actor_loses_and_duplicates_no_pair(
    served: FakeOpenAIServer, tmp_path: Path
) -> None:
    _script(served, delay_s=0.25)  # calls in flight long enough to be killed with them
    path = _config(tmp_path, served, max_concurrency=4)
    killed: list[str] = []

    def kill_one_caller() -> None:
        wait_for(lambda: rows_written(path) >= 1, timeout_s=120)  # Ray starts slowly when loaded
        name = next(n for n in ray.util.list_named_actors() if "caller" in n)
        ray.kill(ray.get_actor(name))
        killed.append(name)

    killer = threading.Thread(target=kill_one_caller, daemon=True)
    killer.start()
    summary = call_candidates(load_pipeline_config(path), progress=False)
    killer.join(5)

    assert killed and summary.complete and summary.calls == 10
    assert summary.errors.get("worker died", 0) >= 1 and summary.lost_calls >= 1
    _assert_complete_once(path)
    # The killed actor's calls were dispatched again; their first dispatch stays counted lost.
    journal_files = journals(path)
    tallies = [
        read_jsonl(j) for j in journal_files if j.exists()
    ]  # a split that lost none has none
    lost = [r for t in tallies for r in t if r["event"] == "lost"]
    assert sum(r["calls"] for r in lost) == summary.lost_calls
    assert sum(r["worst_case_cost"] for r in lost) == pytest.approx(summary.lost_cost)


def test_a_killed_driver_resumes_losing_nothing_and_max_cost_counts_its_calls(
    served: FakeOpenAIServer, tmp_path: Path
) -> None:
    # The server answers 3 requests, then holds the rest, so the driver is SIGKILLed with
    # exactly max_concurrency (4) calls dispatched and unanswered.
    gate, lock = threading.Event(), threading.Lock()
    answered, held = [0], []

    def gated(model: str, right: bool) -> Callable[[list[dict]], str]:
        reply = scripted(ALL_ROWS, right=right)

        def answer(messages: list[dict]) -> str:
            with lock:
                first = answered[0] < 3
                answered[0] += first
                if not first:
                    held.append((model, messages))
            if not first:
                gate.wait(60)
            return reply(messages)

        return answer

    served.set_behavior("good", ModelBehavior(reply=gated("good", True)))
    served.set_behavior("bad", ModelBehavior(reply=gated("bad", False)))
    path = _config(tmp_path, served, actors=1, max_concurrency=4)  # one actor: a quicker start
    address = ray.get_runtime_context().gcs_address
    command = [sys.executable, "-m", "data_pipeline.run", "--config", str(path)]
    command += ["--stages", "calls", "--no-progress", "--ray-address", address]
    kill_when(command, REPO, lambda: len(held) == 4 and rows_written(path) == 3, gate, 60)

    # The journal holds the 4 held calls (journalled when dispatched), each with its worst
    # case; the routing files hold the 3 answered ones.
    config = load_pipeline_config(path)
    pool = build_pool(config)
    by_key = {query_key(r): r for r in ALL_ROWS}
    held_pairs = sorted(
        (next(r["query"] for r in ALL_ROWS if r["query"] in user_text(m)), model)
        for model, m in held
    )
    starts = open_starts(path)
    assert sorted((by_key[r["query_key"]]["query"], r["model_name"]) for r in starts) == held_pairs
    in_flight = 0.0
    for start in starts:
        row = by_key[start["query_key"]]
        cost = worst_case_cost(
            pool[start["model_name"]], render_messages(row), config.calls.max_tokens
        )
        assert start["worst_case_cost"] == pytest.approx(cost)
        in_flight += cost
    spent = sum(
        r["cost"]
        for s in SPLITS
        if routing_path(path, s).exists()
        for r in read_jsonl(routing_path(path, s))
    )
    served.reset()
    _script(served)

    # Room for the recorded spend but not for the lost calls' worst case: nothing is called.
    first = call_candidates(config, progress=False, max_cost=spent + in_flight - 1e-9)
    assert (first.in_flight_found, first.lost_calls) == (4, 4)
    assert first.lost_cost == pytest.approx(in_flight)
    assert first.stopped_at_max_cost and first.calls == 0 and served.calls == []

    second = call_candidates(config, progress=False, max_cost=spent + in_flight + 1.0)
    assert second.complete and second.calls == 7 and second.lost_calls == 4
    _assert_complete_once(path)


def test_one_rate_limit_and_one_key_rotation_hold_across_the_actors(
    served: FakeOpenAIServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _script(served)
    monkeypatch.setenv("API_KEYS", '["key-one", "key-two"]')
    rate = 5.0  # slots 0.2 s apart: wider than a loaded machine's jitter between slot and send
    calls_config = {"models": ["good"], "requests_per_second": {"LOCAL": rate}}
    path = _config(tmp_path, served, max_concurrency=8, **calls_config)
    summary = call_candidates(load_pipeline_config(path), progress=False)
    assert summary.complete
    calls = sorted(served.calls, key=lambda c: c.time)
    times = [c.time for c in calls]
    assert len(times) == 5  # dispatched to the two actors in turn
    # Two actors each limiting itself to 5/s would send the 5 calls in ~0.4 s; one bucket for
    # the cluster spaces all of them ~0.2 s apart.
    assert times[-1] - times[0] >= 4 / rate * 0.8
    # One rotation for the cluster: in arrival order the keys alternate (two actors rotating
    # on their own would both start with key-one).
    keys = [c.api_key for c in calls]
    assert keys == ["key-one", "key-two", "key-one", "key-two", "key-one"]
