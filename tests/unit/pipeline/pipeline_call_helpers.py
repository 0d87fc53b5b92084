"""Helpers for the stage-2/3 tests (imported as ``pipeline_call_helpers``; a module named
``conftest`` would clash with other folders'): config and data files in a temporary folder,
and scripted candidates for the local OpenAI-compatible server that answer each question
right or wrong on purpose."""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from langchain_llmrouter.pipeline.journal import journal_path
from langchain_llmrouter.testing import FakeOpenAIServer, ServedCall

ROWS_TRAIN: list[dict[str, Any]] = [
    {
        "task_name": "gsm8k",
        "query": "Tom has 2 apples and buys 3 more. How many apples does he have?",
        "ground_truth": "2 + 3 = 5\n#### 5",
        "metric": "GSM8K",
        "choices": None,
        "task_id": None,
    },
    {
        "task_name": "mmlu",
        "query": "Which of these is a fruit?",
        "ground_truth": "B",
        "metric": "em_mc",
        "choices": json.dumps(["stone", "apple", "car", "cloud"]),
        "task_id": None,
    },
    {
        "task_name": "natural_qa",
        "query": "what is the capital city of france",
        "ground_truth": "Paris",
        "metric": "f1_score",
        "choices": None,
        "task_id": None,
    },
]
ROWS_TEST: list[dict[str, Any]] = [
    {
        "task_name": "gsm8k",
        "query": "A box holds 10 pens. How many pens are in 3 boxes?",
        "ground_truth": "10 * 3 = 30\n#### 30",
        "metric": "GSM8K",
        "choices": None,
        "task_id": None,
    },
    ROWS_TRAIN[1],  # the same query in both splits shares one embedding id
]

RIGHT = {"gsm8k": "{n}", "mmlu": "The answer is ({letter}).", "natural_qa": "Paris"}


def write_jsonl(path: Path, rows: list[dict[str, Any]]) -> Path:
    """Write rows as JSONL (parents created)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    """Read JSONL rows."""
    text = path.read_text(encoding="utf-8")
    return [json.loads(line) for line in text.split("\n") if line]  # not splitlines: U+2028


def write_candidates(path: Path, specs: dict[str, dict[str, Any]]) -> Path:
    """A candidates JSON (LLMRouter's format) with the given entries."""
    entries = {
        name: {
            "size": "7B",
            "feature": f"{name} is a test model.",
            "input_price": 1.0,
            "output_price": 2.0,
            "model": name,
            "service": "local",
            **spec,
        }
        for name, spec in specs.items()
    }
    path.write_text(json.dumps(entries, indent=2), encoding="utf-8")
    return path


def write_config(
    folder: Path,
    *,
    base_url: str | None,
    models: dict[str, dict[str, Any]] | None = None,
    train: list[dict[str, Any]] | None = None,
    test: list[dict[str, Any]] | None = None,
    calls: dict[str, Any] | None = None,
    **extra: Any,
) -> Path:
    """A pipeline config in ``folder`` with its candidates and query files."""
    folder.mkdir(parents=True, exist_ok=True)
    models = models or {"good": {"input_price": 3.0, "output_price": 6.0}, "bad": {}}
    write_candidates(folder / "llm.json", models)
    write_jsonl(folder / "q_train.jsonl", ROWS_TRAIN if train is None else train)
    write_jsonl(folder / "q_test.jsonl", ROWS_TEST if test is None else test)
    config = {
        "data_path": {
            "llm_data": str(folder / "llm.json"),
            "query_data_train": str(folder / "q_train.jsonl"),
            "query_data_test": str(folder / "q_test.jsonl"),
            "llm_embedding_data": str(folder / "out" / "llm_embeddings.json"),
            "routing_data_train": str(folder / "out" / "routing_train.jsonl"),
            "routing_data_test": str(folder / "out" / "routing_test.jsonl"),
            "query_embedding_data": str(folder / "out" / "query_embeddings.safetensors"),
        },
        "api_endpoint": base_url,
        "calls": {"max_concurrency": 4, "retry_backoff_s": 0.01, **(calls or {})},
        **extra,
    }
    path = folder / "pipeline.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    return path


def user_text(messages: list[dict]) -> str:
    """The last user message of an OpenAI-format request."""
    return next(str(m.get("content")) for m in reversed(messages) if m.get("role") == "user")


def answer(row: dict[str, Any], *, right: bool) -> str:
    """A reply to a row that its metric scores 1 (right) or 0 (wrong)."""
    task = row["task_name"]
    if task == "gsm8k":
        gold = row["ground_truth"].split("####")[-1].strip()
        return f"Let me think. The answer is {gold if right else int(gold) + 1}"
    if task == "mmlu":
        return f"The answer is ({row['ground_truth'] if right else 'D'})."
    return "Paris" if right else "London"


def scripted(rows: list[dict[str, Any]], *, right: bool) -> Callable[[list[dict]], str]:
    """A reply function that finds the asked row and answers it right or wrong."""

    def reply(messages: list[dict]) -> str:
        text = user_text(messages)
        row = next(r for r in rows if r["query"] in text)
        return answer(row, right=right)

    return reply


def served_usage(call: ServedCall, reply: str) -> tuple[int, int]:
    """The token usage the local server reports for a request and its reply."""
    prompt = sum(math.ceil(len(str(m.get("content") or "")) / 4) for m in call.messages)
    return max(1, prompt), max(1, len(reply.split()))


def ok_calls(server: FakeOpenAIServer, model: str | None = None) -> list[ServedCall]:
    """The requests the server answered successfully (optionally for one model)."""
    calls = server.calls if model is None else server.calls_for(model)
    return [c for c in calls if c.status == 200]


# --- the routing files and journals a test's stage-3 run writes (see `write_config`) --------


def routing_path(config_path: Path, split: str) -> Path:
    """The routing file of ``split`` for the config `write_config` wrote at ``config_path``."""
    return config_path.parent / "out" / f"routing_{split}.jsonl"


def journals(config_path: Path) -> list[Path]:
    """The in-flight journals of both splits (they may not exist)."""
    return [journal_path(routing_path(config_path, s)) for s in ("train", "test")]


def rows_written(config_path: Path) -> int:
    """Whole rows in the routing files (counted by newline: a child run may be mid-write)."""
    paths = [routing_path(config_path, s) for s in ("train", "test")]
    return sum(p.read_bytes().count(b"\n") for p in paths if p.exists())


def open_starts(config_path: Path) -> list[dict[str, Any]]:
    """The ``start`` lines of both splits' journals that have no ``end`` line."""
    starts = []
    for journal in journals(config_path):
        records = read_jsonl(journal) if journal.exists() else []
        ended = {r["id"] for r in records if r["event"] == "end"}
        starts += [r for r in records if r["event"] == "start" and r["id"] not in ended]
    return starts


def wait_for(condition: Callable[[], bool], timeout_s: float) -> None:
    """Poll ``condition`` every 20 ms; fail after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "timed out waiting for the run"
        time.sleep(0.02)


def kill_when(
    args: list[str],
    cwd: Path,
    condition: Callable[[], bool],
    gate: threading.Event,
    timeout_s: float,
) -> None:
    """Run a stage-3 command line in a child process (without ``API_KEYS``, quiet), SIGKILL it
    once ``condition`` holds, then open ``gate`` (which releases the calls the server held)."""
    env = {k: v for k, v in os.environ.items() if k != "API_KEYS"}
    child = subprocess.Popen(
        args, cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        wait_for(condition, timeout_s=timeout_s)
        child.send_signal(signal.SIGKILL)
        child.wait(10)
    finally:
        if child.poll() is None:
            child.kill()
        gate.set()
