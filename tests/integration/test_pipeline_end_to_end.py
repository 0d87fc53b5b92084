"""The data pipeline end to end, as the issue's "done when" describes it.

On a slice of ``default_query_test.jsonl`` (7 tasks × 3 queries), against the local
OpenAI-compatible server with two scripted candidates — ``strong`` answers every question
right, ``weak`` (cheaper) only the multiple-choice and open questions — the test runs:

1. stage 1 from the slice (as a query file) into train/test query files;
2. stage 2, the candidate description embeddings;
3. stage 3 as a child process, killed with SIGKILL while the server holds its requests,
   then resumed in-process; at the server, every (query, candidate) pair is answered exactly
   once over both runs;

then trains ``knnrouter`` on the routing data with ``llmrouter train`` and routes with it.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from langchain_llmrouter import load_router
from langchain_llmrouter.cli.main import main as llmrouter
from langchain_llmrouter.pipeline.call_candidates import call_candidates
from langchain_llmrouter.pipeline.config import load_pipeline_config
from langchain_llmrouter.pipeline.embed_candidates import embed_candidates
from langchain_llmrouter.pipeline.queries import generate_queries
from langchain_llmrouter.testing import FakeOpenAIServer, ModelBehavior

REPO = Path(__file__).resolve().parents[2]
TASKS = ["natural_qa", "mmlu", "arc_challenge", "gsm8k", "math", "mbpp", "human_eval"]
WEAK_RIGHT = {"natural_qa", "mmlu", "arc_challenge"}

# Right answers to the code questions of the slice, written for this test.
SOLUTIONS = {
    "779": "def unique_sublists(list1):\n    counts = {}\n    for sub in list1:\n        counts[tuple(sub)] = counts.get(tuple(sub), 0) + 1\n    return counts\n",
    "546": "def last_occurence_char(string, char):\n    index = string.rfind(char)\n    return None if index == -1 else index + 1\n",
    "785": "def tuple_str_int(test_str):\n    return tuple(int(x) for x in test_str.strip('()').split(', '))\n",
    "HumanEval/8": "    total, product = 0, 1\n    for n in numbers:\n        total += n\n        product *= n\n    return total, product\n",
    "HumanEval/84": "    return bin(sum(int(d) for d in str(N)))[2:]\n",
    "HumanEval/18": "    n = len(substring)\n    return sum(1 for i in range(len(string) - n + 1) if string[i:i + n] == substring)\n",
}


def _answer(row: dict[str, Any], *, right: bool) -> str:
    task, gold = row["task_name"], row["ground_truth"]
    if task == "natural_qa":
        return gold if right else "I am not sure."
    if task in ("mmlu", "arc_challenge"):
        wrong = "A" if gold != "A" else "B"
        return f"The answer is ({gold if right else wrong})."
    if task == "gsm8k":
        number = gold.split("####")[-1].strip().replace(",", "")
        return f"So the total is {number if right else int(number) + 7}."
    if task == "math":
        return gold if right else "The answer is \\boxed{-98765}."
    code = SOLUTIONS[str(row["task_id"])] if right else "    return None\n"
    return f"[BEGIN]\n{code}[DONE]"


class HoldAfter:
    """Answers the first ``n`` requests (over all models that share it), then holds every
    later one until `drop` (the held requests then fail without an answer) or `open_up`."""

    def __init__(self, n: int) -> None:
        self.n, self.count = n, 0
        self.reached, self._release = threading.Event(), threading.Event()
        self._open, self._dropped = False, False
        self._lock = threading.Lock()

    def wrap(self, reply: Callable[[list[dict]], str]) -> Callable[[list[dict]], str]:
        def held(messages: list[dict]) -> str:
            with self._lock:
                self.count += 1
                hold = self.count > self.n and not self._open
            if hold:
                self.reached.set()
                self._release.wait(60)
                if self._dropped:
                    raise ConnectionAbortedError("the client was killed")
            return reply(messages)

        return held

    def drop(self) -> None:
        self._dropped = True
        self._release.set()

    def open_up(self) -> None:
        with self._lock:
            self._open = True


def _rows_of(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(x) for x in path.read_text(encoding="utf-8").splitlines() if x.strip()]


@pytest.fixture
def pipeline(
    tmp_path: Path, shared_data: Path, served: FakeOpenAIServer, monkeypatch: pytest.MonkeyPatch
) -> Iterator[dict[str, Any]]:
    """The slice, the candidates and the config, in a temporary folder."""
    monkeypatch.delenv("API_KEYS", raising=False)
    rows = [
        json.loads(x) for x in (shared_data / "default_query_test.jsonl").read_text().splitlines()
    ]
    sliced = [r for task in TASKS for r in [r for r in rows if r["task_name"] == task][:3]]
    (tmp_path / "slice.jsonl").write_text("".join(json.dumps(r) + "\n" for r in sliced))
    candidates = {
        "weak": {
            "size": "7B",
            "feature": "A small, cheap model for simple questions.",
            "input_price": 0.2,
            "output_price": 0.2,
            "model": "weak",
        },
        "strong": {
            "size": "70B",
            "feature": "A large model strong at maths and code.",
            "input_price": 0.9,
            "output_price": 0.9,
            "model": "strong",
        },
    }
    (tmp_path / "llm.json").write_text(json.dumps(candidates))
    out = tmp_path / "out"
    config = {
        "data_path": {
            "llm_data": str(tmp_path / "llm.json"),
            "query_data_train": str(out / "query_train.jsonl"),
            "query_data_test": str(out / "query_test.jsonl"),
            "llm_embedding_data": str(out / "llm_embeddings.json"),
            "routing_data_train": str(out / "routing_train.jsonl"),
            "routing_data_test": str(out / "routing_test.jsonl"),
            "query_embedding_data": str(out / "query_embeddings.safetensors"),
        },
        "api_endpoint": served.base_url,
        "queries": {
            "tasks": TASKS,
            "sample_size": 3,
            "train_ratio": 0.67,
            "query_files": [str(tmp_path / "slice.jsonl")],
            "hub": False,
        },
        "calls": {"max_concurrency": 3, "code_timeout_s": 20},
    }
    path = tmp_path / "pipeline.yaml"
    path.write_text(yaml.safe_dump(config))
    yield {"config": path, "slice": sliced, "out": out, "tmp": tmp_path}


def _book(rows: list[dict[str, Any]], model: str) -> Callable[[list[dict]], str]:
    def reply(messages: list[dict]) -> str:
        text = next(str(m["content"]) for m in reversed(messages) if m["role"] == "user")
        row = next(r for r in rows if r["query"].strip() in text)
        return _answer(row, right=model == "strong" or row["task_name"] in WEAK_RIGHT)

    return reply


def _pair_of(call: Any, rows: list[dict[str, Any]]) -> tuple[str, str]:
    text = next(str(m["content"]) for m in reversed(call.messages) if m["role"] == "user")
    return next(r["query"] for r in rows if r["query"].strip() in text), call.model


def test_three_stages_kill_resume_train_and_route(
    pipeline: dict[str, Any], served: FakeOpenAIServer, capsys: pytest.CaptureFixture[str]
) -> None:
    config = load_pipeline_config(pipeline["config"])
    rows, out = pipeline["slice"], pipeline["out"]

    # Stage 1: 3 queries per task -> 2 train + 1 test each, with the task's prompt rendered.
    files = generate_queries(config)
    train, test = _rows_of(files["train"]), _rows_of(files["test"])
    assert Counter(r["task_name"] for r in train) == dict.fromkeys(TASKS, 2)
    assert Counter(r["task_name"] for r in test) == dict.fromkeys(TASKS, 1)
    assert all(r["formatted_query"]["user"] for r in train + test)

    # Stage 2.
    embedded = json.loads(embed_candidates(config).read_text())
    assert {n: len(e["embedding"]) for n, e in embedded.items()} == {"weak": 384, "strong": 384}

    # Stage 3, killed while the server holds its requests after 16 answers.
    gate = HoldAfter(16)
    for model in ("weak", "strong"):
        served.set_behavior(model, ModelBehavior(reply=gate.wrap(_book(rows, model))))
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "data_pipeline.call_candidates",
            "--config",
            str(pipeline["config"]),
            "--no-progress",
        ],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
        env={k: v for k, v in os.environ.items() if k != "API_KEYS"},
    )
    try:
        assert gate.reached.wait(120), (
            proc.communicate(timeout=5)[0] if proc.poll() is not None else "no gate"
        )
        # Every answered pair is written before the kill (the others are held at the server).
        deadline = time.monotonic() + 60
        while (
            len(_rows_of(out / "routing_train.jsonl")) + len(_rows_of(out / "routing_test.jsonl"))
            < 16
        ):
            assert time.monotonic() < deadline, "the child did not write its answered rows"
            time.sleep(0.05)
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(10)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)
        gate.drop()
    assert proc.returncode == -signal.SIGKILL
    before = len(_rows_of(out / "routing_train.jsonl")) + len(_rows_of(out / "routing_test.jsonl"))
    assert before == 16

    gate.open_up()
    summary = call_candidates(config, progress=False)
    assert summary.complete and (summary.done_before, summary.calls, summary.total) == (16, 26, 42)

    answered = Counter(_pair_of(c, rows) for c in served.calls if c.status == 200)
    assert len(answered) == 42 and set(answered.values()) == {1}, "a pair was answered twice"

    routing_train = _rows_of(out / "routing_train.jsonl")
    routing_test = _rows_of(out / "routing_test.jsonl")
    assert len(routing_train) == 28 and len(routing_test) == 14
    for row in routing_train + routing_test:
        expected = 1.0 if row["model_name"] == "strong" or row["task_name"] in WEAK_RIGHT else 0.0
        assert row["performance"] == expected, (
            row["task_name"],
            row["model_name"],
            row["response"],
        )

    # Train knnrouter on it with the CLI, then route.
    router_config = {
        "router": "knnrouter",
        "data_path": {
            "routing_data_train": str(out / "routing_train.jsonl"),
            "routing_data_test": str(out / "routing_test.jsonl"),
            "llm_data": str(pipeline["tmp"] / "llm.json"),
        },
        "hparam": {"k": 3, "weights": "distance", "metric": "cosine"},
        "model_path": {"save_model_path": str(pipeline["tmp"] / "models" / "knn")},
    }
    router_path = pipeline["tmp"] / "knn.yaml"
    router_path.write_text(yaml.safe_dump(router_config))
    assert llmrouter(["train", "--router", "knnrouter", "--config", str(router_path)]) == 0
    capsys.readouterr()

    gsm8k = next(r["query"] for r in routing_test if r["task_name"] == "gsm8k")
    assert (
        llmrouter(
            [
                "infer",
                "--router",
                "knnrouter",
                "--config",
                str(router_path),
                "--route-only",
                "--query",
                gsm8k,
            ]
        )
        == 0
    )
    decision = json.loads(capsys.readouterr().out)
    assert decision["model_name"] == "strong"
    assert decision["scores"]["strong"] > decision["scores"]["weak"]

    # Over the held-out maths and code queries, the router expects more from the strong model.
    router = load_router("knnrouter", pipeline["tmp"] / "models" / "knn")
    hard = [
        r["query"]
        for r in routing_test
        if r["model_name"] == "strong" and r["task_name"] not in WEAK_RIGHT
    ]
    decisions = router.route_batch(hard)
    assert sum(d.scores["strong"] - d.scores["weak"] for d in decisions) > 0
