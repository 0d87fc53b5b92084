"""Tests of the ``llmrouter`` command line: train, infer, eval, bench, list-routers.

Most cases call `langchain_llmrouter.cli.main.main` in-process on small slices of the
RouterDC example data written to a temporary folder (120 short training queries, 50 test
queries of which 10 also appear in the training slice); a few run the real console script
and ``python -m langchain_llmrouter.<verb>`` in a subprocess.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from safetensors.numpy import load_file

from langchain_llmrouter import APIKeys, CandidatePool, load_router
from langchain_llmrouter.cli.main import main
from langchain_llmrouter.testing import FakeOpenAIServer

N_TRAIN = 120
N_TEST_NOVEL = 40
N_TEST_SEEN = 10  # test queries copied from the training slice (not "novel")
MAX_CHARS = 160  # short queries embed fast on a CPU
K = 5
ROUTERDC_CANDIDATES = [  # pool order (default_llm.json) of the 9 RouterDC candidates
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
CHEAPEST = "gemma-2-9b-it"  # $0.10 / $0.10, the cheapest of all candidates
SMALLEST = "qwen2.5-7b-instruct"  # 7B; ties on size and price go to the first in the pool
LARGEST_OF_ALL = "mixtral-8x22b-instruct-v0.1"  # 141B, the largest of the 14 candidates
BUILTIN = [
    "automix",
    "causallm_router",
    "elorouter",
    "ensemble",
    "gmtrouter",
    "graphrouter",
    "hybrid_llm",
    "knnmultiroundrouter",
    "knnrouter",
    "largest_llm",
    "llmmultiroundrouter",
    "mfrouter",
    "mlprouter",
    "oracle",
    "personalizedrouter",
    "randomrouter",
    "router_r1",
    "routerdc",
    "smallest_llm",
    "svmrouter",
]


@dataclass
class Result:
    """What one in-process CLI run returned and printed."""

    code: int
    out: str
    err: str

    def records(self) -> list[dict[str, Any]]:
        """stdout parsed as JSON lines."""
        return [json.loads(line) for line in self.out.splitlines() if line.strip()]


def cli(*argv: str | Path) -> Result:
    """Run ``llmrouter *argv`` in-process, capturing stdout and stderr."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main([str(a) for a in argv])
    return Result(code, out.getvalue(), err.getvalue())


def assert_user_error(result: Result, *fragments: str) -> str:
    """A user error: exit status 2, one ``error:`` line on stderr, no traceback."""
    assert result.code == 2, result
    assert "Traceback" not in result.err
    lines = [line for line in result.err.splitlines() if line.startswith("error: ")]
    assert len(lines) == 1, result.err
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])
    return lines[0]


def write_yaml(path: Path, data: dict[str, Any]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return path


# --- data slices and a trained router (built once for the module) ----------------------------


@dataclass
class Slices:
    """The small data files and the expected figures computed straight from the JSON."""

    root: Path
    llm: Path
    train_json: Path
    train_jsonl: Path
    test_json: Path
    train: list[dict[str, Any]]
    test: list[dict[str, Any]]
    pool: CandidatePool

    def perf(self, records: Sequence[dict[str, Any]]) -> np.ndarray:
        """(n, 9) scores in pool order."""
        return np.array([[r["scores"][c] for c in ROUTERDC_CANDIDATES] for r in records])


@pytest.fixture(scope="module")
def slices(shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Slices:
    root = tmp_path_factory.mktemp("cli_data")
    train_all = json.loads((shared_data / "routerdc_train.json").read_text(encoding="utf-8"))
    test_all = json.loads((shared_data / "routerdc_test.json").read_text(encoding="utf-8"))
    train = [
        {"question": r["question"], "scores": r["scores"]}
        for r in train_all
        if len(r["question"]) <= MAX_CHARS
    ][:N_TRAIN]
    seen = {r["question"] for r in train_all}
    novel = [
        {"question": r["question"], "scores": r["scores"]}
        for r in test_all
        if len(r["question"]) <= MAX_CHARS and r["question"] not in seen
    ][:N_TEST_NOVEL]
    test = novel + train[:N_TEST_SEEN]
    assert len(train) == N_TRAIN and len(test) == N_TEST_NOVEL + N_TEST_SEEN

    train_json = root / "train.json"
    train_json.write_text(json.dumps(train, indent=1), encoding="utf-8")
    test_json = root / "test.json"
    test_json.write_text(json.dumps(test, indent=1), encoding="utf-8")
    # The same training slice in LLMRouter's routing JSONL: one row per (query, model).
    train_jsonl = root / "train.jsonl"
    with train_jsonl.open("w", encoding="utf-8") as handle:
        for r in train:
            for model, score in r["scores"].items():
                row = {"task_name": "routerdc", "query": r["question"], "model_name": model}
                handle.write(json.dumps({**row, "performance": score}) + "\n")
    llm = shared_data / "default_llm.json"
    pool = CandidatePool.from_json(llm, api_keys=APIKeys())
    return Slices(root, llm, train_json, train_jsonl, test_json, train, test, pool)


def knn_config(
    slices: Slices, path: Path, save: Path, *, api_endpoint: str | None, **extra: Any
) -> Path:
    data: dict[str, Any] = {
        "router": "knnrouter",
        "data_path": {
            "routing_data_train": str(slices.train_jsonl),
            "routing_data_test": str(slices.test_json),
            "llm_data": str(slices.llm),
        },
        "hparam": {"k": K, "weights": "distance", "metric": "cosine"},
        "model_path": {"save_model_path": str(save)},
        "api_endpoint": api_endpoint,
        **extra,
    }
    return write_yaml(path, data)


@dataclass
class Trained:
    config: Path
    model_dir: Path
    result: Result


@pytest.fixture(scope="module")
def trained(
    slices: Slices, openai_server: FakeOpenAIServer, tmp_path_factory: pytest.TempPathFactory
) -> Trained:
    """`llmrouter train --router knnrouter` on the JSONL slice (k=5), run once."""
    root = tmp_path_factory.mktemp("cli_knn")
    model_dir = root / "models" / "knnrouter"
    config = knn_config(
        slices,
        root / "knn.yaml",
        model_dir,
        api_endpoint=openai_server.base_url,
        max_tokens=300,
        temperature=0.0,
    )
    result = cli("train", "--router", "knnrouter", "--config", config)
    assert result.code == 0, result
    return Trained(config, model_dir, result)


# --- list-routers, help, version --------------------------------------------------------------


def test_list_routers_lists_the_builtins_with_their_kind() -> None:
    result = cli("list-routers")
    assert result.code == 0
    lines = result.out.splitlines()
    assert lines[0] == "built-in routers:"
    rows = {line.split()[0]: line for line in lines[1 : 1 + len(BUILTIN)]}
    assert sorted(rows) == BUILTIN
    for name in ("knnrouter", "oracle"):
        assert "trainable" in rows[name]
    for name in ("smallest_llm", "largest_llm", "randomrouter"):
        assert "no training" in rows[name]
    for name in ("gmtrouter", "personalizedrouter"):
        assert "per user" in rows[name]
    assert "k nearest training queries" in rows["knnrouter"]
    assert lines[1 + len(BUILTIN)].startswith("plugin routers")


def test_list_routers_alias_with_an_underscore() -> None:
    """``llmrouter list_routers`` (the spelling of its ``python -m`` module) is the same verb."""
    alias, verb = cli("list_routers"), cli("list-routers")
    assert alias.code == 0, alias
    assert alias.out == verb.out and alias.out.startswith("built-in routers:")


def test_no_verb_exits_2_with_usage() -> None:
    result = cli()
    assert result.code == 2
    assert result.out == ""
    assert result.err.startswith("usage: llmrouter ")
    line = assert_user_error(result, "one of", "llmrouter --help")
    for verb in ("train", "infer", "eval", "bench", "chat", "list-routers"):
        assert verb in line


def test_help_still_lists_every_verb(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["--help"])
    assert info.value.code == 0
    out = capsys.readouterr().out
    for verb in ("train", "infer", "eval", "bench", "chat", "list-routers (list_routers)"):
        assert verb in out


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    from langchain_llmrouter import __version__

    with pytest.raises(SystemExit) as info:
        main(["--version"])
    assert info.value.code == 0
    assert capsys.readouterr().out.strip() == f"langchain-llmrouter {__version__}"


# --- train --------------------------------------------------------------------------------------


def test_train_saves_the_router_and_says_what_it_did(trained: Trained, slices: Slices) -> None:
    lines = trained.result.out.splitlines()
    assert lines[0] == (
        f"training knnrouter on {N_TRAIN} queries x {len(ROUTERDC_CANDIDATES)} candidates "
        f"from {slices.train_jsonl}"
    )
    summary = json.loads(lines[-1])
    assert summary["router"] == "knnrouter"
    assert summary["saved_to"] == str(trained.model_dir)
    assert summary["train_queries"] == N_TRAIN
    assert summary["fit_seconds"] >= 0

    document = json.loads((trained.model_dir / "router.json").read_text(encoding="utf-8"))
    assert document["router"] == "knnrouter"
    assert document["params"] == {
        "k": K,
        "weights": "distance",
        "metric": "cosine",
        "dims": None,
        "prior_count": 0.0,
        "fill_unknown": "none",
        "index": "exact",
        "hnsw_m": 32,
        "hnsw_ef_construction": 80,
        "hnsw_ef_search": 128,
        "ivf_nlist": None,
        "ivf_nprobe": 32,
        "index_code": None,
        "cost_weight": 0.0,
        "budget": None,
    }
    assert document["candidates"] == ROUTERDC_CANDIDATES
    assert document["embeddings"] == "all-MiniLM-L6-v2"

    arrays = load_file(str(trained.model_dir / "arrays.safetensors"))
    assert arrays["train_x"].shape == (N_TRAIN, 384)
    # The learned scores are the slice's, row for row, column for column.
    np.testing.assert_allclose(arrays["train_y"], slices.perf(slices.train), atol=1e-6)
    prices = [slices.pool[c].input_price for c in ROUTERDC_CANDIDATES]
    np.testing.assert_allclose(arrays["_input_price"], prices)


def test_train_quiet_prints_only_the_summary(slices: Slices, tmp_path: Path) -> None:
    config = write_yaml(
        tmp_path / "largest.yaml",
        {
            "router": "largest_llm",
            "data_path": {"llm_data": str(slices.llm)},
            "model_path": {"save_model_path": "unused"},
        },
    )
    result = cli(
        "train",
        "--router",
        "LARGEST_LLM",
        "--config",
        config,
        "--save",
        tmp_path / "out",
        "--quiet",
    )
    assert result.code == 0, result
    (line,) = result.out.splitlines()
    assert json.loads(line) == {
        "router": "largest_llm",
        "saved_to": str(tmp_path / "out"),
        "train_queries": 0,
        "fit_seconds": json.loads(line)["fit_seconds"],
    }
    router = load_router(tmp_path / "out")
    assert router.route("anything").model == LARGEST_OF_ALL
    assert not (tmp_path / "unused").exists()


def test_train_relative_paths_resolve_from_the_config_folder(
    slices: Slices, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Inputs and the output of a config are relative to its folder, from any working directory."""
    project = tmp_path / "project"
    (project / "data").mkdir(parents=True)
    shutil.copy(slices.llm, project / "data" / "llm.json")
    config = write_yaml(
        project / "configs" / "smallest.yaml",
        {
            "router": "smallest_llm",
            "data_path": {"llm_data": "../data/llm.json"},
            "model_path": {"save_model_path": "../models/smallest"},
        },
    )
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    with warnings.catch_warnings():
        warnings.simplefilter("error", FutureWarning)  # no fallback to the working directory
        result = cli("train", "--router", "smallest_llm", "--config", config)
    assert result.code == 0, result
    assert "setting it up from the 14 candidates" in result.out
    saved = project / "models" / "smallest"
    assert json.loads(result.out.splitlines()[-1])["saved_to"] == str(saved)
    assert load_router(saved).route("hi").model == SMALLEST
    assert not (work / "models").exists()

    # An inference config in another folder finds the saved router the same way.
    infer = write_yaml(
        project / "configs" / "infer" / "smallest.yaml",
        {
            "router": "smallest_llm",
            "data_path": {"llm_data": "../../data/llm.json"},
            "model_path": {"load_model_path": "../../models/smallest"},
        },
    )
    result = cli(
        "infer", "--router", "smallest_llm", "--config", infer, "--route-only", "--query", "hi"
    )
    assert result.code == 0, result
    assert json.loads(result.out)["model_name"] == SMALLEST


def test_config_written_for_the_working_directory_still_works_with_a_warning(
    slices: Slices, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The old rule (working directory first): still honoured, with a FutureWarning that says
    what to write instead; a new output goes next to the config."""
    project = tmp_path / "project"
    (project / "data").mkdir(parents=True)
    shutil.copy(slices.llm, project / "data" / "llm.json")
    config = write_yaml(
        project / "configs" / "old.yaml",
        {
            "router": "smallest_llm",
            "data_path": {"llm_data": "data/llm.json"},  # relative to the project root
            "model_path": {"save_model_path": "models/smallest"},
        },
    )
    monkeypatch.chdir(project)
    with pytest.warns(FutureWarning) as caught:
        result = cli("train", "--router", "smallest_llm", "--config", config)
    assert result.code == 0, result
    (warning,) = [str(w.message) for w in caught if issubclass(w.category, FutureWarning)]
    assert "data_path.llm_data 'data/llm.json' was found relative to the working directory" in (
        warning
    )
    assert "write '../data/llm.json' instead" in warning
    assert json.loads(result.out.splitlines()[-1])["saved_to"] == str(
        project / "configs" / "models" / "smallest"
    )


class _Terminal(io.StringIO):
    """A captured stderr that says it is a terminal."""

    def isatty(self) -> bool:
        return True


def test_train_shows_embedding_progress(
    slices: Slices, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On a terminal: a bar rewritten in place per chunk; in a log: lines a person can follow;
    a warm cache says so. Progress goes to stderr, so stdout stays the summary."""
    from langchain_llmrouter.cli import progress

    monkeypatch.setenv("LLMROUTER_CACHE_DIR", str(tmp_path / "empty_cache"))
    monkeypatch.setattr(progress, "CHUNK", 32)
    config = knn_config(slices, tmp_path / "c.yaml", tmp_path / "m", api_endpoint=None)

    out, err = io.StringIO(), _Terminal()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        assert main(["train", "--router", "knnrouter", "--config", str(config)]) == 0
    text = err.getvalue()
    assert text.startswith(f"embedding {N_TRAIN} queries with all-MiniLM-L6-v2\n")
    # (Loading the model may draw a bar of its own, from transformers.)
    updates = [u.split("]")[0] for u in text.split("\r") if u.startswith("  [")]
    assert len(updates) == 4  # 120 queries in chunks of 32
    assert updates[-1] == "  [" + "#" * 30
    for done in ("32/120 (26%)", "64/120 (53%)", "96/120 (80%)", "120/120 (100%)"):
        assert done in text
    assert re.search(rf"\nembedded {N_TRAIN} queries in [0-9.]+ s \([0-9,]+/s\)\n$", text)
    assert "queries with all-MiniLM" not in out.getvalue()
    assert json.loads(out.getvalue().splitlines()[-1])["train_queries"] == N_TRAIN

    # Not a terminal (a log file, CI): whole lines, no carriage returns; then a warm cache.
    monkeypatch.setenv("LLMROUTER_CACHE_DIR", str(tmp_path / "another_empty_cache"))
    monkeypatch.setattr(progress, "LOG_EVERY_S", 0.0)
    result = cli("train", "--router", "knnrouter", "--config", config)
    assert result.code == 0, result
    assert "\r" not in result.err
    lines = result.err.splitlines()
    assert lines[0] == f"embedding {N_TRAIN} queries with all-MiniLM-L6-v2"
    assert [line.split()[0] for line in lines[1:4]] == ["32/120", "64/120", "96/120"]
    assert lines[4].startswith(f"embedded {N_TRAIN} queries in ")
    result = cli("train", "--router", "knnrouter", "--config", config)
    assert result.err.splitlines() == [
        f"the {N_TRAIN} query embeddings came from the cache in {tmp_path / 'another_empty_cache'}"
    ]
    # --quiet: the summary alone.
    result = cli("train", "--router", "knnrouter", "--config", config, "--quiet")
    assert result.err == "" and len(result.out.splitlines()) == 1


def test_train_bad_hparam_names_hparam_k(slices: Slices, tmp_path: Path) -> None:
    config = knn_config(slices, tmp_path / "bad.yaml", tmp_path / "m", api_endpoint=None)
    data = yaml.safe_load(config.read_text(encoding="utf-8"))
    data["hparam"]["k"] = -1
    write_yaml(config, data)
    result = cli("train", "--router", "knnrouter", "--config", config)
    assert_user_error(result, str(config), "field 'hparam.k'", "greater than or equal to 1")
    assert not (tmp_path / "m").exists()


def test_train_on_malformed_jsonl_names_file_and_line(slices: Slices, tmp_path: Path) -> None:
    bad = tmp_path / "broken.jsonl"
    good_lines = slices.train_jsonl.read_text(encoding="utf-8").splitlines()[:4]
    bad.write_text("\n".join([*good_lines, '{"query": "unterminated', *good_lines]) + "\n")
    config = knn_config(slices, tmp_path / "c.yaml", tmp_path / "m", api_endpoint=None)
    data = yaml.safe_load(config.read_text(encoding="utf-8"))
    data["data_path"]["routing_data_train"] = str(bad)
    write_yaml(config, data)
    result = cli("train", "--router", "knnrouter", "--config", config)
    assert_user_error(result, f"{bad}, line 5: invalid JSON")


def test_train_on_jsonl_with_a_bad_field_names_line_and_field(
    slices: Slices, tmp_path: Path
) -> None:
    bad = tmp_path / "bad_field.jsonl"
    rows = slices.train_jsonl.read_text(encoding="utf-8").splitlines()[:3]
    row = json.loads(rows[1])
    row["performance"] = "high"
    bad.write_text("\n".join([rows[0], json.dumps(row), rows[2]]) + "\n")
    config = knn_config(slices, tmp_path / "c.yaml", tmp_path / "m", api_endpoint=None)
    data = yaml.safe_load(config.read_text(encoding="utf-8"))
    data["data_path"]["routing_data_train"] = str(bad)
    write_yaml(config, data)
    result = cli("train", "--router", "knnrouter", "--config", config)
    assert_user_error(result, f"{bad}, line 2, field 'performance'", "'high'")


def test_train_without_save_path_is_an_error(slices: Slices, tmp_path: Path) -> None:
    config = write_yaml(
        tmp_path / "c.yaml", {"router": "smallest_llm", "data_path": {"llm_data": str(slices.llm)}}
    )
    result = cli("train", "--router", "smallest_llm", "--config", config)
    assert_user_error(result, "model_path.save_model_path", "missing")


# --- errors common to the verbs ----------------------------------------------------------------


@pytest.mark.parametrize("verb", ["train", "infer", "eval"])
def test_unknown_router_lists_the_valid_names(verb: str, trained: Trained) -> None:
    extra = ["--query", "hi", "--route-only"] if verb == "infer" else []
    result = cli(verb, "--router", "knn_router", "--config", trained.config, *extra)
    line = assert_user_error(result, "unknown router 'knn_router'", "valid routers:")
    for name in BUILTIN:
        assert name in line


def test_unknown_router_in_bench(slices: Slices, tmp_path: Path) -> None:
    result = cli(
        "bench",
        "--routers",
        "knnrouter,nosuchrouter",
        "--train",
        slices.train_json,
        "--test",
        slices.test_json,
        "--llm-data",
        slices.llm,
    )
    assert_user_error(result, "unknown router 'nosuchrouter'", "knnrouter, largest_llm")


@pytest.mark.parametrize("verb", ["train", "infer", "eval"])
def test_missing_config_file(verb: str, tmp_path: Path) -> None:
    missing = tmp_path / "nowhere" / "config.yaml"
    extra = ["--query", "hi"] if verb == "infer" else []
    result = cli(verb, "--router", "knnrouter", "--config", missing, *extra)
    assert_user_error(result, str(missing), "config file not found")


def test_missing_bench_config_file(tmp_path: Path) -> None:
    missing = tmp_path / "bench.yaml"
    assert_user_error(cli("bench", "--config", missing), str(missing), "config file not found")


def test_config_router_must_agree_with_the_flag(trained: Trained) -> None:
    result = cli("infer", "--router", "smallest_llm", "--config", trained.config, "--query", "x")
    assert_user_error(
        result, str(trained.config), "field 'router'", "'knnrouter'", "'smallest_llm'"
    )


def test_unknown_config_key_through_the_cli(slices: Slices, tmp_path: Path) -> None:
    config = tmp_path / "c.yaml"
    config.write_text("router: knnrouter\ndata_path:\n  llm_dat: x.json\n", encoding="utf-8")
    result = cli("train", "--router", "knnrouter", "--config", config)
    assert_user_error(result, f"{config}, line 3, field 'data_path.llm_dat': unknown key")


def test_missing_data_file_names_the_field(slices: Slices, tmp_path: Path) -> None:
    config = write_yaml(
        tmp_path / "c.yaml",
        {
            "router": "knnrouter",
            "data_path": {"llm_data": str(slices.llm), "routing_data_train": "nope/train.jsonl"},
            "model_path": {"save_model_path": str(tmp_path / "m")},
        },
    )
    result = cli("train", "--router", "knnrouter", "--config", config)
    assert_user_error(result, "field 'data_path.routing_data_train'", "file not found")


def test_argparse_errors_exit_2(capsys: pytest.CaptureFixture[str], trained: Trained) -> None:
    with pytest.raises(SystemExit) as info:
        main(["infer", "--router", "knnrouter", "--config", str(trained.config)])
    assert info.value.code == 2
    assert "one of the arguments --query --input is required" in capsys.readouterr().err
    with pytest.raises(SystemExit) as info:
        main(["train", "--config", str(trained.config)])
    assert info.value.code == 2
    assert "--router" in capsys.readouterr().err


# --- infer --route-only ----------------------------------------------------------------------


def assert_record_is_a_decision(record: dict[str, Any], query: str) -> None:
    assert record["query"] == query
    scores = record["scores"]
    assert list(scores) == ROUTERDC_CANDIDATES  # every candidate the router knows
    assert all(0.0 <= v <= 1.0 for v in scores.values())
    # At cost_weight 0 the choice is the highest predicted quality.
    assert scores[record["model_name"]] == max(scores.values())
    assert record["cost_weight"] == 0.0
    assert record["est_cost"] > 0
    assert record["reason"].startswith(f"knnrouter: {record['model_name']} has predicted quality")
    assert "response" not in record


def test_infer_route_only_single_query(trained: Trained, slices: Slices) -> None:
    query = slices.test[0]["question"]
    result = cli(
        "infer",
        "--router",
        "knnrouter",
        "--config",
        trained.config,
        "--route-only",
        "--query",
        query,
    )
    assert result.code == 0, result
    record = json.loads(result.out)  # one pretty-printed JSON object
    assert_record_is_a_decision(record, query)
    # The same decision as the saved router makes in the library.
    decision = load_router(trained.model_dir).route(query)
    assert record["model_name"] == decision.model
    assert record["scores"] == decision.scores
    assert record["est_cost"] == pytest.approx(decision.est_cost)


@pytest.mark.parametrize("kind", ["txt", "json", "jsonl"])
@pytest.mark.parametrize("out_suffix", ["jsonl", "json"])
def test_infer_input_file_to_output_file(
    trained: Trained, slices: Slices, tmp_path: Path, kind: str, out_suffix: str
) -> None:
    queries = [r["question"] for r in slices.test[:6]]
    source = tmp_path / f"queries.{kind}"
    if kind == "txt":
        source.write_text("\n\n".join(queries) + "\n\n", encoding="utf-8")  # blank lines skipped
    elif kind == "json":  # strings and {"query": ...} objects may be mixed
        items: list[Any] = [q if i % 2 else {"query": q, "id": i} for i, q in enumerate(queries)]
        source.write_text(json.dumps(items), encoding="utf-8")
    else:
        lines = [json.dumps({"query": q, "id": i}) for i, q in enumerate(queries)]
        source.write_text("\n".join([*lines[:3], "", *lines[3:]]) + "\n", encoding="utf-8")
    output = tmp_path / "nested" / f"routes.{out_suffix}"

    result = cli(
        "infer",
        "--router",
        "knnrouter",
        "--config",
        trained.config,
        "--route-only",
        "--input",
        source,
        "--output",
        output,
    )
    assert result.code == 0, result
    assert result.out == ""
    assert f"wrote {len(queries)} records to {output}" in result.err
    text = output.read_text(encoding="utf-8")
    if out_suffix == "json":
        records = json.loads(text)
        assert isinstance(records, list)
    else:
        lines = text.splitlines()
        assert len(lines) == len(queries)
        records = [json.loads(line) for line in lines]
    assert [r["query"] for r in records] == queries
    for record, query in zip(records, queries, strict=True):
        assert_record_is_a_decision(record, query)
    expected = [d.model for d in load_router(trained.model_dir).route_batch(queries)]
    assert [r["model_name"] for r in records] == expected


def test_infer_input_without_output_prints_json_lines(trained: Trained, slices: Slices) -> None:
    queries = [r["question"] for r in slices.test[:3]]
    source = slices.root / "three.txt"
    source.write_text("\n".join(queries), encoding="utf-8")
    result = cli(
        "infer",
        "--router",
        "knnrouter",
        "--config",
        trained.config,
        "--route-only",
        "--input",
        source,
    )
    assert result.code == 0, result
    records = result.records()
    assert [r["query"] for r in records] == queries


@pytest.mark.parametrize(
    ("name", "content", "fragment"),
    [
        ("q.csv", "query\nhello\n", "unsupported input suffix '.csv'"),
        ("q.jsonl", '{"query": "a"}\n{"query": 5}\n', "line 2, field 'query'"),
        ("q.jsonl", '{"query": "a"}\n{oops\n', "line 2: invalid JSON"),
        ("q.json", '{"query": "a"}', "expected a JSON list of queries"),
        ("q.json", '["a", ""]', "field '[1].query'"),
    ],
)
def test_infer_bad_input_file(
    trained: Trained, tmp_path: Path, name: str, content: str, fragment: str
) -> None:
    source = tmp_path / name
    source.write_text(content, encoding="utf-8")
    result = cli(
        "infer",
        "--router",
        "knnrouter",
        "--config",
        trained.config,
        "--route-only",
        "--input",
        source,
    )
    assert_user_error(result, str(source), fragment)


def test_infer_missing_input_file(trained: Trained, tmp_path: Path) -> None:
    missing = tmp_path / "none.txt"
    result = cli(
        "infer",
        "--router",
        "knnrouter",
        "--config",
        trained.config,
        "--route-only",
        "--input",
        missing,
    )
    assert_user_error(result, str(missing), "input file not found")


def test_infer_large_cost_weight_moves_choices_to_the_cheapest(
    trained: Trained, slices: Slices, tmp_path: Path
) -> None:
    queries = [r["question"] for r in slices.test[:N_TEST_NOVEL]]
    source = tmp_path / "q.txt"
    source.write_text("\n".join(queries), encoding="utf-8")
    base = ["infer", "--router", "knnrouter", "--config", trained.config, "--route-only"]

    free = cli(*base, "--input", source).records()
    costly = cli(*base, "--input", source, "--cost-weight", "1000").records()

    assert {r["model_name"] for r in costly} == {CHEAPEST}
    assert all(r["cost_weight"] == 1000.0 for r in costly)
    assert "at cost_weight 1000" in costly[0]["reason"]
    # Quality-only routing picks other (dearer) candidates for most of these queries.
    moved = [a for a, b in zip(free, costly, strict=True) if a["model_name"] != b["model_name"]]
    assert len(moved) >= len(queries) // 2
    for a, b in zip(free, costly, strict=True):
        assert a["scores"] == b["scores"]  # the policy changes, not the prediction
        assert b["est_cost"] <= a["est_cost"]
    assert sum(b["est_cost"] for b in costly) < sum(a["est_cost"] for a in free)


def test_infer_budget_caps_the_estimated_cost(trained: Trained, slices: Slices) -> None:
    query = slices.test[1]["question"]
    base = ["infer", "--router", "knnrouter", "--config", trained.config, "--route-only"]
    free = json.loads(cli(*base, "--query", query).out)
    # Just above the cheapest candidate's estimated cost: only it fits.
    tokens = -(-len(query) // 4)
    cheapest_cost = slices.pool[CHEAPEST].estimate_cost(tokens, 200)
    capped = json.loads(cli(*base, "--query", query, "--budget", f"{cheapest_cost * 1.01}").out)
    assert capped["model_name"] == CHEAPEST
    assert capped["est_cost"] == pytest.approx(cheapest_cost)
    assert capped["est_cost"] <= free["est_cost"]


def test_infer_untrained_baseline_uses_every_pool_candidate(slices: Slices, tmp_path: Path) -> None:
    config = write_yaml(
        tmp_path / "smallest.yaml",
        {
            "router": "smallest_llm",
            "data_path": {"llm_data": str(slices.llm)},
            "model_path": {"load_model_path": str(tmp_path / "not_trained")},
        },
    )
    result = cli(
        "infer", "--router", "smallest_llm", "--config", config, "--route-only", "--query", "hi"
    )
    assert result.code == 0, result
    record = json.loads(result.out)
    assert record["model_name"] == SMALLEST
    assert list(record["scores"]) == slices.pool.names  # all 14 candidates
    assert record["reason"] == f"smallest_llm: always {SMALLEST}"


def test_infer_trainable_router_without_a_saved_model(slices: Slices, tmp_path: Path) -> None:
    config = knn_config(slices, tmp_path / "c.yaml", tmp_path / "never_trained", api_endpoint=None)
    result = cli("infer", "--router", "knnrouter", "--config", config, "--query", "q")
    assert_user_error(
        result,
        "no trained knnrouter at",
        str(tmp_path / "never_trained"),
        f"llmrouter train --router knnrouter --config {config}",
    )


def _project_with_shipped_layout(slices: Slices, root: Path) -> Path:
    """A project laid out like this repository: configs/{train,infer}/knnrouter.yaml, paths
    relative to each file, the router saved to and loaded from <project>/models/knnrouter."""
    (root / "data").mkdir(parents=True)
    for source, name in ((slices.llm, "llm.json"), (slices.train_jsonl, "train.jsonl")):
        shutil.copy(source, root / "data" / name)
    data = {"llm_data": "../../data/llm.json", "routing_data_train": "../../data/train.jsonl"}
    write_yaml(
        root / "configs" / "train" / "knnrouter.yaml",
        {
            "router": "knnrouter",
            "data_path": data,
            "hparam": {"k": K},
            "model_path": {"save_model_path": "../../models/knnrouter"},
        },
    )
    write_yaml(
        root / "configs" / "infer" / "knnrouter.yaml",
        {
            "router": "knnrouter",
            "data_path": data,  # has training data but no save path: not the one to train with
            "model_path": {"load_model_path": "../../models/knnrouter"},
        },
    )
    return root


def test_not_trained_hint_names_the_train_config_that_works(
    slices: Slices, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    project = _project_with_shipped_layout(slices, tmp_path / "project")
    monkeypatch.chdir(project)
    infer = ("--router", "knnrouter", "--config", "configs/infer/knnrouter.yaml")
    hint = "llmrouter train --router knnrouter --config configs/train/knnrouter.yaml"
    for verb, extra in (("eval", ()), ("infer", ("--route-only", "--query", "q"))):
        result = cli(verb, *infer, *extra)
        line = assert_user_error(result, f"no trained knnrouter at {project / 'models/knnrouter'}")
        assert line.endswith(f"run `{hint}` first"), line

    # The hint, typed as it is, trains the router the inference config loads.
    result = cli(*shlex.split(hint)[1:])
    assert result.code == 0, result
    result = cli("infer", *infer, "--route-only", "--query", slices.test[0]["question"])
    assert result.code == 0, result
    assert json.loads(result.out)["model_name"] in ROUTERDC_CANDIDATES


def test_not_trained_hint_from_elsewhere_and_with_load_model_path(
    slices: Slices, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    project = _project_with_shipped_layout(slices, tmp_path / "project")
    infer_config = project / "configs" / "infer" / "knnrouter.yaml"
    train_config = project / "configs" / "train" / "knnrouter.yaml"
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")
    base = f"llmrouter train --router knnrouter --config {train_config}"

    result = cli("infer", "--router", "knnrouter", "--config", infer_config, "--query", "q")
    assert assert_user_error(result).endswith(f"run `{base}` first")
    # Loading from somewhere else: the train config, told to save there.
    result = cli(
        "infer",
        "--router",
        "knnrouter",
        "--config",
        infer_config,
        "--load-model-path",
        "mine/knn",
        "--query",
        "q",
    )
    line = assert_user_error(result, "no trained knnrouter at mine/knn")
    assert line.endswith(f"run `{base} --save mine/knn` first"), line


def test_infer_load_model_path_overrides_the_config(
    trained: Trained, slices: Slices, tmp_path: Path
) -> None:
    config = knn_config(slices, tmp_path / "c.yaml", tmp_path / "empty", api_endpoint=None)
    query = slices.test[2]["question"]
    result = cli(
        "infer",
        "--router",
        "knnrouter",
        "--config",
        config,
        "--load-model-path",
        trained.model_dir,
        "--route-only",
        "--query",
        query,
    )
    assert result.code == 0, result
    assert json.loads(result.out)["model_name"] == load_router(trained.model_dir).route(query).model


# --- infer with answers from the local OpenAI-compatible server --------------------------------


def test_infer_answers_with_the_chosen_candidate(
    trained: Trained,
    slices: Slices,
    served: FakeOpenAIServer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("API_KEYS", raising=False)  # a local endpoint needs no key
    queries = [r["question"] for r in slices.test[:5]]
    source = tmp_path / "q.jsonl"
    source.write_text("".join(json.dumps({"query": q}) + "\n" for q in queries), encoding="utf-8")
    output = tmp_path / "answers.jsonl"
    result = cli(
        "infer",
        "--router",
        "knnrouter",
        "--config",
        trained.config,
        "--input",
        source,
        "--output",
        output,
        "--temperature",
        "0.25",
    )
    assert result.code == 0, result
    records = [json.loads(line) for line in output.read_text(encoding="utf-8").splitlines()]
    assert [r["query"] for r in records] == queries
    expected = [d.model for d in load_router(trained.model_dir).route_batch(queries)]
    for record, query, choice in zip(records, queries, expected, strict=True):
        assert "error" not in record
        assert record["model_name"] == choice
        model_id = slices.pool[choice].model
        # The fake server answers "[<model id>] You said: <text>": the chosen model answered.
        assert record["response"] == f"[{model_id}] You said: {query}"
        assert record["fallback"] is False
        usage = record["usage"]
        assert usage["input_tokens"] > 0 and usage["output_tokens"] > 0
        assert record["actual_cost"] == pytest.approx(
            slices.pool[choice].estimate_cost(usage["input_tokens"], usage["output_tokens"])
        )
        assert set(record["scores"]) == set(ROUTERDC_CANDIDATES)
    calls = served.calls
    assert sorted(c.model for c in calls) == sorted(slices.pool[m].model for m in expected)
    for call in calls:
        assert call.body["temperature"] == 0.25  # --temperature beats the config's 0.0
        assert 300 in (call.body.get("max_tokens"), call.body.get("max_completion_tokens"))
        assert call.api_key == "local"


def test_infer_single_query_answer_printed(
    trained: Trained, slices: Slices, served: FakeOpenAIServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("API_KEYS", raising=False)
    query = slices.test[3]["question"]
    result = cli(
        "infer",
        "--router",
        "knnrouter",
        "--config",
        trained.config,
        "--query",
        query,
        "--cost-weight",
        "1000",
    )
    assert result.code == 0, result
    record = json.loads(result.out)
    assert record["model_name"] == CHEAPEST
    assert record["response"] == f"[{slices.pool[CHEAPEST].model}] You said: {query}"
    assert [c.model for c in served.calls] == [slices.pool[CHEAPEST].model]


def test_infer_remote_endpoint_without_api_key(
    trained: Trained, slices: Slices, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("API_KEYS", raising=False)
    config = knn_config(
        slices, tmp_path / "remote.yaml", trained.model_dir, api_endpoint="https://llm.invalid/v1"
    )
    queries = [r["question"] for r in slices.test[:2]]
    source = tmp_path / "q.txt"
    source.write_text("\n".join(queries), encoding="utf-8")
    result = cli("infer", "--router", "knnrouter", "--config", config, "--input", source)

    # One configuration mistake: one line and exit status 2, before any call is made.
    assert_user_error(result, "candidate '", "set API_KEYS")
    assert result.out == ""

    # --route-only calls no LLM, so it needs no key.
    routed = cli(
        "infer", "--router", "knnrouter", "--config", config, "--route-only", "--input", source
    )
    assert routed.code == 0
    assert all("error" not in r for r in routed.records())


def test_infer_negative_cost_weight_is_a_user_error(trained: Trained) -> None:
    result = cli(
        "infer",
        "--router",
        "knnrouter",
        "--config",
        trained.config,
        "--route-only",
        "--query",
        "hi",
        "--cost-weight",
        "-1",
    )
    assert_user_error(result, "--cost-weight must be >= 0")


def test_infer_empty_input_file_explains_itself(
    trained: Trained, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("API_KEYS", raising=False)
    source = tmp_path / "empty.txt"
    source.write_text("\n", encoding="utf-8")
    result = cli("infer", "--router", "knnrouter", "--config", trained.config, "--input", source)
    assert result.code == 0 or result.err.strip(), result


# --- eval ---------------------------------------------------------------------------------------


def test_eval_json_figures_match_the_data(trained: Trained, slices: Slices) -> None:
    result = cli(
        "eval",
        "--router",
        "knnrouter",
        "--config",
        trained.config,
        "--data",
        slices.test_json,
        "--json",
    )
    assert result.code == 0, result
    report = json.loads(result.out)
    assert report["router"] == "knnrouter"
    assert report["test"] == str(slices.test_json)
    assert report["candidates"] == ROUTERDC_CANDIDATES
    splits = {s["label"]: s for s in report["splits"]}
    assert list(splits) == ["all", "novel"]
    assert splits["all"]["n_queries"] == N_TEST_NOVEL + N_TEST_SEEN
    assert splits["novel"]["n_queries"] == N_TEST_NOVEL

    # Recompute Q0 and C0 from the raw JSON and the saved router's own choices.
    queries = [r["question"] for r in slices.test]
    decisions = load_router(trained.model_dir).route_batch(queries)
    perf = slices.perf(slices.test)
    chosen = np.array([ROUTERDC_CANDIDATES.index(d.model) for d in decisions])
    quality = perf[np.arange(len(queries)), chosen]
    cost_per_1k = np.array([d.est_cost for d in decisions]) * 1000
    novel = np.arange(len(queries)) < N_TEST_NOVEL
    train_means = slices.perf(slices.train).mean(axis=0)
    for label, mask in (("all", np.ones(len(queries), dtype=bool)), ("novel", novel)):
        figures, refs = splits[label]["report"], splits[label]["references"]
        assert figures["name"] == "knnrouter"
        assert figures["n_queries"] == int(mask.sum())
        assert figures["q0"] == pytest.approx(quality[mask].mean())
        assert figures["c0"] == pytest.approx(cost_per_1k[mask].mean())
        assert refs["oracle_quality"] == pytest.approx(perf[mask].max(axis=1).mean())
        assert refs["oracle_quality"] >= figures["q0"]
        # "Best single" is judged on the training file named in the config.
        assert refs["best_single"] == int(np.argmax(train_means))
        best = refs["best_single"]
        assert refs["best_single_quality"] == pytest.approx(perf[mask, best].mean())
        assert refs["cheapest"] == ROUTERDC_CANDIDATES.index(CHEAPEST)
        assert refs["candidate_quality"] == pytest.approx(perf[mask].mean(axis=0).tolist())
    # The copied training queries are routed to a candidate that got them right (k=5,
    # distance weights: the query itself dominates its neighbours).
    seen = ~novel
    assert quality[seen].mean() == pytest.approx(perf[seen].max(axis=1).mean())


def test_eval_best_single_comes_from_the_training_file(
    trained: Trained, slices: Slices, tmp_path: Path
) -> None:
    """On a test file where the training file's best candidate scores 0, the reference
    "best single" is still that candidate (BENCHMARK.md), not the test file's best."""
    train_best = ROUTERDC_CANDIDATES[int(np.argmax(slices.perf(slices.train).mean(axis=0)))]
    skewed = [
        {"question": r["question"], "scores": {**r["scores"], train_best: 0.0}} for r in slices.test
    ]
    data = tmp_path / "skewed.json"
    data.write_text(json.dumps(skewed), encoding="utf-8")
    result = cli(
        "eval", "--router", "knnrouter", "--config", trained.config, "--data", data, "--json"
    )
    assert result.code == 0, result
    refs = json.loads(result.out)["splits"][0]["references"]
    assert refs["best_single"] == ROUTERDC_CANDIDATES.index(train_best)
    assert refs["best_single_quality"] == 0.0
    assert refs["candidate_quality"][refs["best_single"]] == 0.0


def test_eval_table_output(trained: Trained) -> None:
    """Without --json: a table per split, test data from the config's routing_data_test."""
    result = cli("eval", "--router", "knnrouter", "--config", trained.config)
    assert result.code == 0, result
    assert f"all test queries ({N_TEST_NOVEL + N_TEST_SEEN})" in result.out
    assert f"novel test queries ({N_TEST_NOVEL})" in result.out
    assert "knnrouter" in result.out
    assert "oracle" in result.out.lower()


def baseline_config(slices: Slices, path: Path, name: str) -> Path:
    """A config for an untrained baseline over all 14 pool candidates (nothing saved)."""
    return write_yaml(
        path,
        {
            "router": name,
            "data_path": {
                "routing_data_train": str(slices.train_json),
                "routing_data_test": str(slices.test_json),
                "llm_data": str(slices.llm),
            },
            "model_path": {"load_model_path": str(path.parent / "not_saved")},
        },
    )


def test_eval_smallest_llm_baseline(slices: Slices, tmp_path: Path) -> None:
    config = baseline_config(slices, tmp_path / "smallest.yaml", "smallest_llm")
    result = cli("eval", "--router", "smallest_llm", "--config", config, "--json")
    assert result.code == 0, result
    report = json.loads(result.out)["splits"][0]["report"]
    perf = slices.perf(slices.test)
    assert report["q0"] == pytest.approx(perf[:, ROUTERDC_CANDIDATES.index(SMALLEST)].mean())


def test_eval_largest_llm_agrees_with_bench(slices: Slices, tmp_path: Path) -> None:
    config = baseline_config(slices, tmp_path / "largest.yaml", "largest_llm")
    result = cli("eval", "--router", "largest_llm", "--config", config, "--json")
    assert result.code == 0, result
    report = json.loads(result.out)["splits"][0]["report"]
    perf = slices.perf(slices.test)
    # `llmrouter bench` scores largest_llm as the largest candidate WITH data (the 70B one).
    largest = ROUTERDC_CANDIDATES.index("llama3-chatqa-1.5-70b")
    assert report["q0"] == pytest.approx(perf[:, largest].mean())


def test_eval_on_the_training_file(trained: Trained, slices: Slices) -> None:
    result = cli(
        "eval",
        "--router",
        "knnrouter",
        "--config",
        trained.config,
        "--data",
        slices.train_jsonl,
        "--json",
    )
    assert result.code == 0, result
    splits = json.loads(result.out)["splits"]
    assert splits[0]["n_queries"] == N_TRAIN
    assert all(s["n_queries"] == 0 for s in splits[1:])


# --- bench --------------------------------------------------------------------------------------


def test_bench_json_on_a_small_slice(
    trained: Trained, slices: Slices, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # no configs/bench/routerdc.yaml here: flags only
    output = tmp_path / "figures" / "bench.json"
    result = cli(
        "bench",
        "--routers",
        "KNNRouter, smallest_llm",
        "--train",
        slices.train_json,
        "--test",
        slices.test_json,
        "--llm-data",
        slices.llm,
        "--json",
        "--output",
        output,
    )
    assert result.code == 0, result
    figures = json.loads(result.out)
    assert json.loads(output.read_text(encoding="utf-8")) == figures
    assert "knnrouter: fitted in" in result.err  # progress goes to stderr
    assert figures["routers"] == ["knnrouter", "smallest_llm"]
    assert figures["n_train"] == N_TRAIN
    assert figures["candidates"] == ROUTERDC_CANDIDATES
    assert figures["train"] == str(slices.train_json)
    assert figures["test"] == str(slices.test_json)
    labels = [(s["label"], s["n_queries"]) for s in figures["splits"]]
    assert labels == [
        ("all test queries", N_TEST_NOVEL + N_TEST_SEEN),
        ("novel test queries", N_TEST_NOVEL),
    ]

    perf = slices.perf(slices.test)
    split = figures["splits"][0]
    reports = {r["name"]: r for r in split["reports"]}
    expected_names = {
        "knnrouter",
        "smallest_llm",
        "randomrouter",
        "largest_llm",
        "oracle",
        *(f"always {c}" for c in ROUTERDC_CANDIDATES),
    }
    assert set(reports) == expected_names
    assert len(split["reports"]) == len(expected_names)  # smallest_llm is not listed twice
    for j, cand in enumerate(ROUTERDC_CANDIDATES):
        assert reports[f"always {cand}"]["q0"] == pytest.approx(perf[:, j].mean())
    assert reports["smallest_llm"]["q0"] == reports[f"always {SMALLEST}"]["q0"]
    assert reports["smallest_llm"]["c0"] == pytest.approx(reports[f"always {SMALLEST}"]["c0"])
    assert reports["largest_llm"]["q0"] == reports["always llama3-chatqa-1.5-70b"]["q0"]
    assert reports["oracle"]["q0"] == pytest.approx(perf.max(axis=1).mean())
    assert all(r["q0"] <= reports["oracle"]["q0"] + 1e-9 for r in reports.values())
    assert reports["knnrouter"]["fit_s"] is not None
    assert reports["knnrouter"]["route_ms_per_1k"] > 0
    assert reports["knnrouter"]["c0"] > 0


def test_bench_config_hparams_match_eval(trained: Trained, slices: Slices, tmp_path: Path) -> None:
    """A bench config's router hyperparameters are used; with the same k, the kNN figures
    equal those of `llmrouter eval` on the router `llmrouter train` saved."""
    config = write_yaml(
        tmp_path / "bench.yaml",
        {
            "data_path": {
                "routing_data_train": str(slices.train_json),
                "routing_data_test": str(slices.test_json),
                "llm_data": str(slices.llm),
            },
            "routers": {"knnrouter": {"k": K, "weights": "distance", "metric": "cosine"}},
        },
    )
    bench = cli("bench", "--config", config, "--json")
    assert bench.code == 0, bench
    figures = json.loads(bench.out)
    assert figures["routers"] == ["knnrouter"]
    evaluation = cli(
        "eval", "--router", "knnrouter", "--config", trained.config, "--json"
    )  # test file from the config
    assert evaluation.code == 0, evaluation
    evaluated = json.loads(evaluation.out)
    for bench_split, eval_split in zip(figures["splits"], evaluated["splits"], strict=True):
        knn = next(r for r in bench_split["reports"] if r["name"] == "knnrouter")
        assert knn["q0"] == pytest.approx(eval_split["report"]["q0"])
        assert knn["c0"] == pytest.approx(eval_split["report"]["c0"])
        assert bench_split["n_queries"] == eval_split["n_queries"]


def test_bench_compares_variants_and_two_candidate_routers(
    slices: Slices, tmp_path: Path, shared_data: Path
) -> None:
    """Rows may name their router (two kNN variants side by side), and a router that knows
    only two candidates (the thresholdrouter plugin) is scored among all nine."""
    config = write_yaml(
        tmp_path / "bench.yaml",
        {
            "data_path": {
                "routing_data_train": str(slices.train_json),
                "routing_data_test": str(slices.test_json),
                "llm_data": str(slices.llm),
                "llm_embedding_data": str(shared_data / "default_llm_embeddings.json"),
            },
            "routers": {
                "knn-k1": {"router": "knnrouter", "k": 1},
                "knn-k30": {"router": "knnrouter", "k": 30},
                "thresholdrouter": {"epochs": 2, "hidden_dim": 8, "threshold": 0.2},
            },
        },
    )
    bench = cli("bench", "--config", config, "--json")
    assert bench.code == 0, bench
    figures = json.loads(bench.out)
    assert figures["routers"] == ["knn-k1", "knn-k30", "thresholdrouter"]
    reports = {r["name"]: r for r in figures["splits"][0]["reports"]}
    assert reports["knn-k1"]["q0"] != reports["knn-k30"]["q0"]
    # The two-candidate router only ever pays for gemma-2-9b-it or the nemotron-51b.
    allowed = {
        reports[f"always {c}"]["c0"] for c in ("gemma-2-9b-it", "llama-3.1-nemotron-51b-instruct")
    }
    assert min(allowed) - 1e-9 <= reports["thresholdrouter"]["c0"] <= max(allowed) + 1e-9


def test_bench_without_data_says_what_is_missing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    result = cli("bench", "--routers", "knnrouter")
    assert_user_error(result, "data_path.routing_data_train", "--config or on the command line")


def test_bench_with_no_novel_test_queries(slices: Slices) -> None:
    result = cli(
        "bench",
        "--routers",
        "smallest_llm",
        "--train",
        slices.train_json,
        "--test",
        slices.train_json,
        "--llm-data",
        slices.llm,
        "--json",
    )
    assert result.code == 0, result
    assert json.loads(result.out)["splits"][0]["n_queries"] == N_TRAIN


# --- the real entry points (subprocesses) ---------------------------------------------------------


def _console_script() -> str:
    script = Path(sys.executable).with_name("llmrouter")
    found = str(script) if script.is_file() else shutil.which("llmrouter")
    assert found, "the llmrouter console script is not installed"
    return found


def test_console_script_list_routers() -> None:
    proc = subprocess.run(
        [_console_script(), "list-routers"],
        capture_output=True,
        text=True,
        timeout=120,
        env=os.environ.copy(),
    )
    assert proc.returncode == 0, proc.stderr
    names = [line.split()[0] for line in proc.stdout.splitlines()[1 : 1 + len(BUILTIN)]]
    assert names == BUILTIN
    # Run from the repository root, so the example plugin in ./custom_routers/ is found.
    plugins = proc.stdout.split("plugin routers:")[1]
    assert "thresholdrouter" in plugins


def test_output_into_a_closed_pipe_exits_without_a_traceback() -> None:
    """`llmrouter list-routers | head`: the reader leaves early; no BrokenPipeError traceback."""
    # Deterministic: the read end is closed before the process writes its first line.
    proc = subprocess.Popen(
        [_console_script(), "list-routers"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=os.environ.copy(),
    )
    assert proc.stdout is not None and proc.stderr is not None
    proc.stdout.close()
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=120) == 1, err  # the Python docs' status for EPIPE
    assert err == ""

    # As a person types it.
    shell = subprocess.run(
        ["bash", "-c", f"{shlex.quote(_console_script())} list-routers | head -1"],
        capture_output=True,
        text=True,
        timeout=120,
        env=os.environ.copy(),
    )
    assert shell.stdout == "built-in routers:\n"
    assert "Traceback" not in shell.stderr and "BrokenPipe" not in shell.stderr, shell.stderr


def test_python_m_train_and_exit_status(slices: Slices, tmp_path: Path) -> None:
    config = write_yaml(
        tmp_path / "smallest.yaml",
        {
            "router": "smallest_llm",
            "data_path": {"llm_data": str(slices.llm)},
            "model_path": {"save_model_path": "models/smallest_llm"},
        },
    )
    run = [sys.executable, "-m", "langchain_llmrouter.train", "--config", str(config)]
    proc = subprocess.run(
        [*run, "--router", "smallest_llm"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
        env=os.environ.copy(),
    )
    assert proc.returncode == 0, proc.stderr
    summary = json.loads(proc.stdout.splitlines()[-1])
    assert summary["router"] == "smallest_llm"
    saved = tmp_path / "models" / "smallest_llm"
    assert Path(summary["saved_to"]).resolve() == saved.resolve()
    document = json.loads((saved / "router.json").read_text(encoding="utf-8"))
    assert document["router"] == "smallest_llm"
    assert document["candidates"][document["state"]["choice"]] == SMALLEST

    # A user error is one line on stderr and exit status 2 from the real process.
    proc = subprocess.run(
        [*run, "--router", "no_such_router"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
        env=os.environ.copy(),
    )
    assert proc.returncode == 2
    assert proc.stderr.startswith("error: unknown router 'no_such_router'; valid routers: ")
    assert "Traceback" not in proc.stderr


# --- multi-round routers: infer runs their graph -----------------------------------------------

PLANNER = "qwen2.5-7b-instruct"


def planned_reply(model_id: str) -> Any:
    """The planner's scripted replies: two routed sub-questions, then an aggregated answer."""

    def reply(messages: list[dict]) -> str:
        prompt = str(messages[-1].get("content") or "")
        if "=> <model name>" in prompt:
            return f"First part? => {CHEAPEST}\nSecond part? => mistral-7b-instruct-v0.3"
        if "Sub-questions and their answers" in prompt:
            return "<answer>combined</answer>"
        return f"[{model_id}] You said: {prompt}"

    return reply


def llm_multiround_config(slices: Slices, path: Path, endpoint: str) -> Path:
    return write_yaml(
        path,
        {
            "router": "llmmultiroundrouter",
            "data_path": {"llm_data": str(slices.llm)},
            "api_endpoint": endpoint,
            "base_model": PLANNER,  # LLMRouter's key for the decomposer/aggregator
        },
    )


def test_infer_runs_a_multi_round_router_graph(
    slices: Slices, served: FakeOpenAIServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from langchain_llmrouter.testing import ModelBehavior

    monkeypatch.delenv("API_KEYS", raising=False)
    planner_id = slices.pool[PLANNER].model
    served.set_behavior(planner_id, ModelBehavior(reply=planned_reply(planner_id)))
    config = llm_multiround_config(slices, tmp_path / "llm_mr.yaml", served.base_url)
    result = cli("infer", "--router", "llmmultiroundrouter", "--config", config, "--query", "Q?")
    assert result.code == 0, result
    record = json.loads(result.out)
    assert record["response"] == "combined"
    assert record["stop_reason"] == "answer"
    assert record["models"] == sorted([CHEAPEST, "mistral-7b-instruct-v0.3"])
    roles = [c["role"] for c in record["calls"]]
    assert roles.count("candidate") == 2 and len(roles) == 4
    assert record["actual_cost"] == pytest.approx(sum(c["cost"] for c in record["calls"]))
    assert record["actual_cost"] > 0
    usage = record["usage"]
    assert usage["input_tokens"] == sum(c["input_tokens"] for c in record["calls"])
    served_models = sorted(c.model for c in served.calls)
    expected = [planner_id, planner_id, slices.pool[CHEAPEST].model]
    expected.append(slices.pool["mistral-7b-instruct-v0.3"].model)
    assert served_models == sorted(expected)


def test_multi_round_routers_refuse_route_only_and_eval(
    slices: Slices, served: FakeOpenAIServer, tmp_path: Path
) -> None:
    config = llm_multiround_config(slices, tmp_path / "llm_mr.yaml", served.base_url)
    route_only = cli(
        "infer",
        "--router",
        "llmmultiroundrouter",
        "--config",
        config,
        "--query",
        "Q",
        "--route-only",
    )
    assert_user_error(route_only, "multi-round router", "--route-only")
    evaluated = cli(
        "eval", "--router", "llmmultiroundrouter", "--config", config, "--data", slices.test_json
    )
    assert_user_error(evaluated, "multi-round router", "llmrouter infer")
    weighted = cli(
        "infer",
        "--router",
        "llmmultiroundrouter",
        "--config",
        config,
        "--query",
        "Q",
        "--cost-weight",
        "0.5",
    )
    assert_user_error(weighted, "--cost-weight does not apply to llmmultiroundrouter")
    assert served.calls == []


def test_train_knn_multiround_router_trains_its_knn_part(slices: Slices, tmp_path: Path) -> None:
    save = tmp_path / "models" / "knnmr"
    config = knn_config(
        slices, tmp_path / "knnmr.yaml", save, api_endpoint=None, router="knnmultiroundrouter"
    )
    result = cli("train", "--router", "knnmultiroundrouter", "--config", config)
    assert result.code == 0, result
    router = load_router(save)
    assert router.name == "knnmultiroundrouter" and router.graph_router
    query = slices.test[0]["question"]
    knn = load_router(save).route(query).model  # still routes a whole query as a kNN router
    assert knn in ROUTERDC_CANDIDATES


# --- make demo and CI --------------------------------------------------------------------------

REPO = Path(__file__).resolve().parents[2]


def _make_variable(makefile: str, name: str) -> str:
    match = re.search(rf"^{name}\s*\??=\s*(.*)$", makefile, re.MULTILINE)
    assert match, f"the Makefile sets no {name}"
    return match.group(1).strip()


def _make_rule(makefile: str, target: str) -> tuple[str, str]:
    """(prerequisites, recipe) of ``target``."""
    match = re.search(rf"^{re.escape(target)}:([^\n]*)\n((?:\t[^\n]*\n?)*)", makefile, re.MULTILINE)
    assert match, f"the Makefile has no rule for {target}"
    return match.group(1), match.group(2)


def test_make_demo_installs_the_optional_dependencies_of_every_router_it_runs(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Every extra that a router of configs/bench/routerdc.yaml (and the plugin example it
    includes) asks for through `import_optional` is one the demo target installs: the check
    that a fresh `make demo` does not stop after training eight routers."""
    import inspect
    import tomllib

    from langchain_llmrouter.config import load_bench_config
    from langchain_llmrouter.routers.registry import get_router_class

    monkeypatch.chdir(REPO)  # the plugin example is found in ./custom_routers/, as by make demo
    makefile = (REPO / "Makefile").read_text(encoding="utf-8")
    extras = set(
        tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    )
    installed = {e.strip() for e in _make_variable(makefile, "DEMO_EXTRAS").split(",") if e.strip()}
    assert installed <= extras

    prerequisites, recipe = _make_rule(makefile, "demo")
    assert prerequisites.split() == ["$(VENV)/.demo"]  # not the dev extra's stamp
    _, stamp = _make_rule(makefile, "$(VENV)/.demo")
    assert 'pip install -q -e ".[$(DEMO_EXTRAS)]"' in stamp
    assert "llmrouter bench --config configs/bench/routerdc.yaml" in recipe

    needed: dict[str, set[str]] = {}
    config = load_bench_config(REPO / "configs" / "bench" / "routerdc.yaml")
    for label, params in config.routers.items():
        cls = get_router_class(params.get("router", label))
        for klass in cls.__mro__:
            module = sys.modules.get(klass.__module__)
            if module is None or klass.__module__ in ("builtins", "abc", "typing"):
                continue
            try:
                source = inspect.getsource(module)
            except (OSError, TypeError):
                continue
            for extra in re.findall(r'import_optional\([^)]*extra="([\w-]+)"', source, re.S):
                needed.setdefault(extra, set()).add(label)
    if "--plot" in recipe:  # the quality-cost plot needs matplotlib
        needed.setdefault("demo", set()).add("bench --plot")
    assert needed.get("graph") == {"graphrouter"}  # the scan sees the one we know of
    missing = {extra: sorted(labels) for extra, labels in needed.items() if extra not in installed}
    assert not missing, f"make demo runs routers whose extras it does not install: {missing}"


def test_ci_runs_the_tests_then_the_demo_in_a_fresh_venv_with_an_empty_cache() -> None:
    script = (REPO / ".ci" / "run").read_text(encoding="utf-8")
    commands = [
        line.strip()
        for line in script.splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    ]
    assert "set -euo pipefail" in commands  # either failing fails CI
    assert "make test" in commands  # exactly the README's test command
    (demo,) = [c for c in commands if "make demo" in c and not c.startswith("echo")]
    assert commands.index("make test") < commands.index(demo)
    # Its own venv (not the one `make test` filled with the dev extra) and an empty cache.
    assert re.search(r'\bVENV="\$scratch/venv"', demo), demo
    assert re.search(r'^LLMROUTER_CACHE_DIR="\$scratch/cache" ', demo), demo
    assert 'scratch="$(mktemp -d)"' in commands
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    assert "make test   # venv + install with the dev extra" in readme
