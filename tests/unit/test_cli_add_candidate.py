"""``llmrouter train --add-candidate NAME --data FILE`` and the ``tune`` keys of ``train``, end
to end through the CLI on a small slice of RouterDC's data."""

from __future__ import annotations

import contextlib
import io
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from langchain_llmrouter.cli.main import main

SHARED = Path(__file__).resolve().parents[3] / "shared" / "data" / "llmrouter_example"
NEW = "mistral-7b-instruct-v0.3"
"""The candidate left out of the training file and added afterwards."""
MAX_CHARS = 200
"""Longest question used (the default MiniLM embeds short texts fast on a CPU)."""


@dataclass
class Result:
    code: int
    out: str
    err: str


def cli(*argv: str | Path) -> Result:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main([str(a) for a in argv])
    return Result(code, out.getvalue(), err.getvalue())


def add(config: Path, name: str, data: Path, *extra: str | Path) -> Result:
    """``llmrouter train --router knnrouter --config CONFIG --add-candidate NAME --data DATA``."""
    argv: list[str | Path] = ["train", "--router", "knnrouter", "--config", config]
    argv += ["--add-candidate", name]
    return cli(*argv, "--data", data, *extra)


def user_error(result: Result) -> str:
    """The one ``error:`` line of a user error (exit status 2, no traceback)."""
    assert result.code == 2, result
    assert "Traceback" not in result.err
    lines = [line for line in result.err.splitlines() if line.startswith("error: ")]
    assert len(lines) == 1, result.err
    return lines[0]


def short_records() -> list[dict[str, Any]]:
    """RouterDC training records with short questions (MiniLM embeds them in seconds)."""
    records = json.loads((SHARED / "routerdc_train.json").read_text(encoding="utf-8"))
    return [r for r in records if len(r["question"]) <= MAX_CHARS]


def write_jsonl(path: Path, records: list[dict[str, Any]], models: list[str]) -> Path:
    with path.open("w", encoding="utf-8") as handle:
        for r in records:
            for model in models:
                row = {"task_name": "routerdc", "query": r["question"], "model_name": model}
                handle.write(json.dumps({**row, "performance": r["scores"][model]}) + "\n")
    return path


@dataclass
class Setup:
    root: Path
    config: Path
    answers: Path
    model_dir: Path


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> Setup:
    """A kNN router trained through the CLI without ``NEW``, and ``NEW``'s answers on 30
    other training queries."""
    if not (SHARED / "routerdc_train.json").is_file():
        pytest.skip("the shared RouterDC data is not here")
    root = tmp_path_factory.mktemp("add_candidate")
    records = short_records()[:150]
    models = sorted(records[0]["scores"])
    assert NEW in models
    train = write_jsonl(root / "train.jsonl", records[:120], [m for m in models if m != NEW])
    answers = write_jsonl(root / "answers.jsonl", records[120:150], models)
    model_dir = root / "models" / "knn"
    config = root / "knn.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "router": "knnrouter",
                "data_path": {
                    "routing_data_train": str(train),
                    "llm_data": str(SHARED / "default_llm.json"),
                },
                "hparam": {"k": 5},
                "model_path": {"save_model_path": str(model_dir)},
                "tune": True,
            }
        ),
        encoding="utf-8",
    )
    result = cli("train", "--router", "knnrouter", "--config", config)
    assert result.code == 0, result
    # 120 queries: too few to tune, and said so, since the config asks for tuning.
    assert "not tuning knnrouter: 120 distinct training queries (tuning needs 200)" in result.out
    return Setup(root, config, answers, model_dir)


def test_add_candidate_through_the_cli(setup: Setup, tmp_path: Path) -> None:
    target = tmp_path / "with_new"
    result = add(setup.config, NEW, setup.answers, "--save", target)
    assert result.code == 0, result
    summary = json.loads(result.out.splitlines()[-1])
    assert summary["added_candidate"] == NEW and summary["answers"] == 30
    assert f"added {NEW} to knnrouter from 30 answered queries" in result.out
    saved = json.loads((target / "router.json").read_text(encoding="utf-8"))
    assert saved["candidates"][-1] == NEW and saved["new_candidates"]["names"] == [NEW]
    # The saved router routes to the new candidate through infer.
    infer = cli(
        "infer", "--router", "knnrouter", "--config", setup.config,
        "--load-model-path", target, "--query", "What is 2 + 2?", "--route-only",
    )  # fmt: skip
    assert infer.code == 0, infer
    original = json.loads((setup.model_dir / "router.json").read_text(encoding="utf-8"))
    assert NEW not in original["candidates"]  # --save left the trained router as it was


def test_adding_twice_is_a_located_error(setup: Setup, tmp_path: Path) -> None:
    target = tmp_path / "twice"
    assert add(setup.config, NEW, setup.answers, "--save", target).code == 0
    config = yaml.safe_load(setup.config.read_text(encoding="utf-8"))
    config["model_path"]["load_model_path"] = str(target)
    again = tmp_path / "again.yaml"
    again.write_text(yaml.safe_dump(config), encoding="utf-8")
    line = user_error(add(again, NEW, setup.answers))
    assert f"{NEW!r} is already a candidate" in line


def test_unknown_candidate_lists_the_valid_names(setup: Setup) -> None:
    line = user_error(add(setup.config, "gpt-9", setup.answers))
    assert "unknown candidate 'gpt-9'" in line and NEW in line


def test_answers_without_the_candidate_name_the_file(setup: Setup) -> None:
    records = short_records()[120:130]
    kept = next(m for m in sorted(records[0]["scores"]) if m != NEW)
    other = write_jsonl(setup.root / "other.jsonl", records, [kept])
    line = user_error(add(setup.config, NEW, other))
    assert str(other) in line and f"no scores for {NEW!r}" in line and kept in line


def test_bad_answer_files_and_missing_flags(setup: Setup) -> None:
    bad = setup.root / "bad.jsonl"
    bad.write_text('{"query": "q", "model_name": "x", "performance": 1}\nnot json\n')
    line = user_error(add(setup.config, NEW, bad))
    assert str(bad) in line and "line 2" in line
    line = user_error(
        cli("train", "--router", "knnrouter", "--config", setup.config, "--add-candidate", NEW)
    )
    assert "--data FILE" in line
    missing = setup.root / "nope.jsonl"
    line = user_error(add(setup.config, NEW, missing))
    assert str(missing) in line and "not found" in line


def test_no_trained_router_to_add_to(setup: Setup, tmp_path: Path) -> None:
    config = yaml.safe_load(setup.config.read_text(encoding="utf-8"))
    config["model_path"]["save_model_path"] = str(tmp_path / "none")
    path = tmp_path / "none.yaml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    line = user_error(add(path, NEW, setup.answers))
    assert "no trained knnrouter" in line and "model_path.load_model_path" in line


def test_tune_keys_are_validated(setup: Setup, tmp_path: Path) -> None:
    config = yaml.safe_load(setup.config.read_text(encoding="utf-8"))
    config["tune_budget_s"] = -5
    path = tmp_path / "bad_budget.yaml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    line = user_error(cli("train", "--router", "knnrouter", "--config", path))
    assert "tune_budget_s" in line and "greater than 0" in line
