"""Stage 1 of the data pipeline (`langchain_llmrouter.pipeline.queries`): benchmarks and
query files to query files. All offline: benchmarks are tiny hand-made files in each hub
schema, the hub is switched to offline mode with an empty private cache, and query files are
slices of the example ``default_query_test.jsonl``.
"""

from __future__ import annotations

import ast
import json
import os
import random
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pipeline_fixtures import (
    EXPECTED,
    GPQA_RECORDS,
    HUB_RECORDS,
    option_texts,
    read_jsonl,
    write_config,
    write_jsonl,
)

from langchain_llmrouter.errors import ConfigError, DataFormatError, UnknownNameError
from langchain_llmrouter.pipeline import tasks
from langchain_llmrouter.pipeline.config import load_pipeline_config
from langchain_llmrouter.pipeline.queries import QUERY_FIELDS, generate_queries, main, train_count
from langchain_llmrouter.pipeline.sources import BenchmarkLoadError
from langchain_llmrouter.pipeline.tasks import formatted_query, get_task, parse_choices

REPO = Path(__file__).resolve().parents[3]
OFFLINE_ENV = {"HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}


@pytest.fixture(scope="module", autouse=True)
def offline_hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Hub offline, and an empty private `datasets` cache (so nothing is found there and the
    user's cache is neither read nor written), also if `datasets` was imported before."""
    cache = tmp_path_factory.mktemp("hf_datasets_cache")
    with pytest.MonkeyPatch.context() as mp:
        for name, value in OFFLINE_ENV.items():
            mp.setenv(name, value)
        mp.setenv("HF_DATASETS_CACHE", str(cache))
        import datasets
        import huggingface_hub.constants

        mp.setattr(datasets.config, "HF_HUB_OFFLINE", True)
        mp.setattr(datasets.config, "HF_DATASETS_OFFLINE", True)
        mp.setattr(datasets.config, "HF_DATASETS_CACHE", cache)
        mp.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
        yield cache


def run_stage1(config_path: Path) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Run stage 1 on a config; the rows of the training and test files."""
    paths = generate_queries(load_pipeline_config(config_path), echo=None)
    return read_jsonl(paths["train"]), read_jsonl(paths["test"])


def all_rows(config_path: Path) -> list[dict[str, Any]]:
    """Stage 1's training rows, then its test rows."""
    train, test = run_stage1(config_path)
    return train + test


# --- the 11 benchmarks from local files ----------------------------------------------------


def write_benchmarks(folder: Path) -> None:
    """Every built-in benchmark into ``folder``: mmlu as parquet, gpqa as a save_to_disk
    folder, math as a folder of two JSONL files, the rest as ``<task>.jsonl``."""
    import datasets

    for task, records in HUB_RECORDS.items():
        if task == "mmlu":
            datasets.Dataset.from_list(records).to_parquet(str(folder / "mmlu.parquet"))
        elif task == "gpqa":
            datasets.Dataset.from_list(records).save_to_disk(str(folder / "gpqa"))
        elif task == "math":
            write_jsonl(folder / "math" / "algebra.jsonl", records[:1])
            write_jsonl(folder / "math" / "geometry.jsonl", records[1:])
        else:
            write_jsonl(folder / f"{task}.jsonl", records)


@pytest.fixture(scope="module")
def bench_dir(tmp_path_factory: pytest.TempPathFactory, offline_hub: Path) -> Path:
    folder = tmp_path_factory.mktemp("benchmarks")
    write_benchmarks(folder)
    return folder


@pytest.fixture(scope="module")
def builtin_rows(
    tmp_path_factory: pytest.TempPathFactory, bench_dir: Path
) -> dict[str, list[dict[str, Any]]]:
    """Stage 1 over all 11 benchmarks from `bench_dir` (hub off): output rows by task."""
    folder = tmp_path_factory.mktemp("stage1_all")
    config = write_config(
        folder,
        tasks=list(HUB_RECORDS),
        sample_size=10,
        train_ratio=0.5,
        local_dir=str(bench_dir),
        hub=False,
    )
    train, test = run_stage1(config)
    by_task: dict[str, list[dict[str, Any]]] = {}
    for row in train + test:
        by_task.setdefault(row["task_name"], []).append(row)
    return by_task


@pytest.mark.parametrize("task", sorted(EXPECTED))
def test_benchmark_records_become_query_rows(
    task: str, builtin_rows: dict[str, list[dict[str, Any]]]
) -> None:
    rows = builtin_rows[task]
    got = sorted(
        (
            {
                "query": r["query"],
                "ground_truth": r["ground_truth"],
                "choices": option_texts(r["choices"]),
                "task_id": r["task_id"],
            }
            for r in rows
        ),
        key=lambda r: r["query"],
    )
    assert got == sorted(EXPECTED[task], key=lambda r: r["query"])
    metric = get_task(task).metric
    for row in rows:
        assert list(row)[: len(QUERY_FIELDS)] == list(QUERY_FIELDS)
        assert row["metric"] == metric
        assert row["formatted_query"] == formatted_query(row)
        assert row["query"] in row["formatted_query"]["user"]


def test_stored_metric_names(builtin_rows: dict[str, list[dict[str, Any]]]) -> None:
    metrics = {task: rows[0]["metric"] for task, rows in builtin_rows.items()}
    assert metrics == {
        "natural_qa": "f1_score",
        "trivia_qa": "f1_score",
        "mmlu": "em_mc",
        "gpqa": "em_mc",
        "mbpp": "code_eval",
        "human_eval": "code_eval",
        "gsm8k": "GSM8K",
        "commonsense_qa": "em_mc",
        "math": "MATH",
        "openbook_qa": "em_mc",
        "arc_challenge": "em_mc",
    }


def test_formatted_query_contents(builtin_rows: dict[str, list[dict[str, Any]]]) -> None:
    def prompt(task: str, query: str) -> dict[str, Any]:
        return next(r for r in builtin_rows[task] if r["query"] == query)["formatted_query"]

    mc = prompt("mmlu", "What is 2 + 2?")
    assert "(A) 3\n(B) 4\n(C) 5\n(D) 22" in mc["user"]
    assert "parentheses" in mc["system"]
    code = prompt("mbpp", "Write a function to add two numbers.")
    assert "assert add(1, 2) == 3\nassert add(-1, 1) == 0" in code["user"]
    assert "[BEGIN]" in code["user"] and "[DONE]" in code["user"]
    assert "\\boxed{}" in prompt("math", "Solve $x + 2 = 7$.")["system"]
    assert "####" in prompt("gsm8k", EXPECTED["gsm8k"][0]["query"])["system"]
    human = prompt("human_eval", EXPECTED["human_eval"][0]["query"])
    assert EXPECTED["human_eval"][0]["query"].rstrip() in human["user"]
    assert "[BEGIN]" in human["user"]
    qa = prompt("natural_qa", "who wrote the novel dracula")
    assert qa["user"] == "who wrote the novel dracula"


def test_gpqa_options_shuffled_deterministically(
    builtin_rows: dict[str, list[dict[str, Any]]], bench_dir: Path, tmp_path: Path
) -> None:
    by_question = {r["query"]: r for r in builtin_rows["gpqa"]}
    assert len(by_question) == len(GPQA_RECORDS)
    for record in GPQA_RECORDS:
        row = by_question[record["Question"]]
        options = option_texts(row["choices"])
        assert sorted(options) == sorted(
            record[k] for k in ("Correct Answer", *(f"Incorrect Answer {i}" for i in (1, 2, 3)))
        )
        assert options[ord(row["ground_truth"]) - ord("A")] == record["Correct Answer"]
    # The right answer is not always in the same place.
    assert len({r["ground_truth"] for r in by_question.values()}) > 1

    # Same seed, other sample size and task list: each question keeps its option order.
    again = write_config(
        tmp_path / "same", tasks=["gpqa"], sample_size=3, local_dir=str(bench_dir), hub=False
    )
    for row in all_rows(again):
        assert row["choices"] == by_question[row["query"]]["choices"]
    # Another seed: another order for some question.
    other = write_config(
        tmp_path / "other",
        tasks=["gpqa"],
        sample_size=10,
        random_seed=7,
        local_dir=str(bench_dir),
        hub=False,
    )
    rows = all_rows(other)
    assert any(r["choices"] != by_question[r["query"]]["choices"] for r in rows)


def test_converters_accept_schema_variants() -> None:
    rng = random.Random(0)
    nested = {"train": {"question": "Q?", "subject": "s", "choices": ["x", "y"], "answer": 1}}
    assert get_task("mmlu").to_query(nested, rng) == {
        "query": "Q?",
        "ground_truth": "B",
        "choices": ["x", "y"],
    }
    # A CSV file stores nested fields as text.
    csv_like = {
        "question": "Q?",
        "choices": "{'text': ['a', 'b'], 'label': ['A', 'B']}",
        "answerKey": "A",
    }
    assert get_task("arc_challenge").to_query(csv_like, rng)["choices"] == ["a", "b"]
    with pytest.raises(ValueError, match="answerKey 'E'"):
        get_task("arc_challenge").to_query({**csv_like, "answerKey": "E"}, rng)


# --- query files ---------------------------------------------------------------------------

SLICE = {"mmlu": 9, "gsm8k": 9, "commongen": 9, "agentverse-mgsm": 3, "human_eval": 1}
"""Rows per task in the query-file slice: more, fewer and just one compared with the sample."""


@pytest.fixture
def query_slice(shared_data: Path, tmp_path: Path) -> Path:
    rows = read_jsonl(shared_data / "default_query_test.jsonl")
    picked = []
    for task, n in SLICE.items():
        picked += [r for r in rows if r["task_name"] == task][:n]
    return write_jsonl(tmp_path / "slice.jsonl", picked)


def test_query_files_sampled_and_split_by_task(query_slice: Path, tmp_path: Path) -> None:
    config = write_config(
        tmp_path, tasks=list(SLICE), sample_size=6, train_ratio=0.5, query_files=[str(query_slice)]
    )
    train, test = run_stage1(config)
    count = {
        (split, task): sum(r["task_name"] == task for r in rows)
        for split, rows in (("train", train), ("test", test))
        for task in SLICE
    }
    expected = {
        "mmlu": (3, 3),
        "gsm8k": (3, 3),
        "commongen": (3, 3),
        "agentverse-mgsm": (2, 1),
        "human_eval": (1, 0),
    }
    assert {t: (count["train", t], count["test", t]) for t in SLICE} == expected
    inputs = {json.dumps(r, sort_keys=True) for r in read_jsonl(query_slice)}
    outputs = [r for r in train + test]
    for row in outputs:  # the file's fields kept as they were, formatted_query added
        kept = {k: v for k, v in row.items() if k != "formatted_query"}
        assert json.dumps(kept, sort_keys=True) in inputs
        assert row["formatted_query"] == formatted_query(kept)
    assert len({(r["task_name"], r["query"]) for r in outputs}) == len(outputs)
    # Unregistered tasks get a generic template that asks for what their metric reads.
    commongen = next(r for r in outputs if r["task_name"] == "commongen")
    assert commongen["formatted_query"] == {
        "system": None,
        "user": f"Write one or two natural sentences that use all of these concepts: {commongen['query']}",
    }
    mgsm = [r for r in outputs if r["task_name"] == "agentverse-mgsm"]
    assert all("\\boxed{}" in r["formatted_query"]["system"] for r in mgsm)


def test_query_files_deterministic(query_slice: Path, tmp_path: Path) -> None:
    def files(folder: str, seed: int) -> tuple[str, str]:
        config = write_config(
            tmp_path / folder,
            tasks=["mmlu", "gsm8k"],
            sample_size=5,
            random_seed=seed,
            query_files=[str(query_slice)],
        )
        paths = generate_queries(load_pipeline_config(config), echo=None)
        return paths["train"].read_text(), paths["test"].read_text()

    first = files("a", 42)
    assert files("b", 42) == first
    assert files("c", 43) != first


def test_train_ratio_one_and_task_order(query_slice: Path, tmp_path: Path) -> None:
    config = write_config(
        tmp_path / "all",
        tasks=["gsm8k"],
        sample_size=4,
        train_ratio=1.0,
        query_files=[str(query_slice)],
    )
    train, test = run_stage1(config)
    assert (len(train), len(test)) == (4, 0)
    # A task's sample does not depend on which other tasks are sampled.
    both = write_config(
        tmp_path / "both",
        tasks=["mmlu", "gsm8k"],
        sample_size=4,
        train_ratio=1.0,
        query_files=[str(query_slice)],
    )
    assert {r["query"] for r in run_stage1(both)[0] if r["task_name"] == "gsm8k"} == {
        r["query"] for r in train
    }


@pytest.mark.parametrize(
    ("n", "ratio", "expected"),
    [(10, 0.8, 8), (5, 0.5, 3), (2, 0.99, 1), (2, 0.01, 1), (1, 0.5, 1), (5, 1.0, 5), (0, 0.8, 0)],
)
def test_train_count(n: int, ratio: float, expected: int) -> None:
    assert train_count(n, ratio) == expected


def test_every_template_renders_every_example_row(shared_data: Path) -> None:
    rows = read_jsonl(shared_data / "default_query_test.jsonl")
    for row in rows:
        user = formatted_query(row)["user"]
        assert row["query"].strip() in user, row["task_name"]
        if row["task_name"] == "mbpp":  # its choices repeat the tests; the tests are shown
            assert all(test in user for test in ast.literal_eval(row["ground_truth"]))
        else:
            for label, text in parse_choices(row["choices"]):
                assert f"({label}) {text}" in user, row["task_name"]
    assert {r["task_name"] for r in rows} >= set(EXPECTED) | {"gpqa"}


# --- errors --------------------------------------------------------------------------------


def test_unknown_task_lists_valid_ones(query_slice: Path, tmp_path: Path) -> None:
    # All names are checked before anything loads: gsm8k, listed first, could not load.
    config = write_config(tmp_path / "a", tasks=["gsm8k", "gsm8"], hub=False)
    with pytest.raises(UnknownNameError) as err:
        generate_queries(load_pipeline_config(config), echo=None)
    message = str(err.value)
    assert "unknown task 'gsm8'" in message
    assert "gsm8k" in message and "arc_challenge" in message
    # Tasks named in query files count as valid.
    config = write_config(tmp_path / "b", tasks=["gsm8"], query_files=[str(query_slice)])
    with pytest.raises(UnknownNameError) as err:
        generate_queries(load_pipeline_config(config), echo=None)
    assert "agentverse-mgsm" in str(err.value) and "commongen" in str(err.value)


def test_benchmark_missing_hub_off(tmp_path: Path) -> None:
    local = tmp_path / "local"
    local.mkdir()
    config = write_config(tmp_path, tasks=["gsm8k"], local_dir=str(local), hub=False)
    with pytest.raises(BenchmarkLoadError) as err:
        generate_queries(load_pipeline_config(config), echo=None)
    message = str(err.value)
    for looked in ("gsm8k.jsonl", "gsm8k.parquet", "gsm8k.csv", f"{local / 'gsm8k'}/"):
        assert looked in message
    assert "queries.hub is false" in message and "openai/gsm8k/main:train" in message
    assert "HF_DATASETS_OFFLINE=1" in message and "to_json('gsm8k.jsonl')" in message
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    ("task", "hub_id"),
    [
        ("gpqa", "Idavidrein/gpqa/gpqa_main:train"),
        ("math", "EleutherAI/hendrycks_math (configs algebra, counting_and_probability"),
    ],
)
def test_benchmark_missing_hub_offline(task: str, hub_id: str, tmp_path: Path) -> None:
    config = write_config(tmp_path, tasks=[task], hub=True)
    with pytest.raises(BenchmarkLoadError) as err:
        generate_queries(load_pipeline_config(config), echo=None)
    message = str(err.value)
    assert "queries.local_dir is not set" in message
    assert f"hub: {hub_id}" in message and "failed: " in message
    assert "\n" not in message


def test_malformed_query_file_line(tmp_path: Path, shared_data: Path) -> None:
    good = (shared_data / "default_query_test.jsonl").read_text().splitlines()[:2]
    bad_json = tmp_path / "bad.jsonl"
    bad_json.write_text("\n".join([*good, '{"task_name": "mmlu", "query": ']) + "\n")
    with pytest.raises(DataFormatError) as err:
        run_stage1(write_config(tmp_path / "a", tasks=["mmlu"], query_files=[str(bad_json)]))
    assert (err.value.path, err.value.line) == (str(bad_json), 3)
    no_query = tmp_path / "no_query.jsonl"
    row = json.loads(good[0])
    del row["query"]
    no_query.write_text("\n".join([good[1], json.dumps(row)]) + "\n")
    with pytest.raises(DataFormatError) as err:
        run_stage1(write_config(tmp_path / "b", tasks=["mmlu"], query_files=[str(no_query)]))
    assert (err.value.path, err.value.line, err.value.field) == (str(no_query), 2, "query")


def test_benchmark_in_another_schema(tmp_path: Path) -> None:
    # gsm8k records with the answer under another name (a null answer would be skipped).
    path = write_jsonl(
        tmp_path / "local" / "gsm8k.jsonl", [{"question": "q?", "solution": "#### 1"}]
    )
    config = write_config(tmp_path, tasks=["gsm8k"], local_dir=str(tmp_path / "local"), hub=False)
    with pytest.raises(DataFormatError) as err:
        run_stage1(config)
    assert (err.value.path, err.value.field) == (str(path), "answer")
    assert "hub schema" in str(err.value) and "question, solution" in str(err.value)


def test_refuses_to_overwrite_an_input(query_slice: Path, tmp_path: Path) -> None:
    before = query_slice.read_text()
    config = load_pipeline_config(
        write_config(tmp_path, tasks=["mmlu"], query_files=[str(query_slice)])
    )
    config.data_path.query_data_test = str(query_slice)
    with pytest.raises(ConfigError, match="refusing to overwrite") as err:
        generate_queries(config, echo=None)
    assert err.value.field == "data_path.query_data_test"
    assert query_slice.read_text() == before
    assert not Path(config.data_path.query_data_train).exists()


# --- the command line ----------------------------------------------------------------------


def test_cli_subprocess(
    query_slice: Path, bench_dir: Path, tmp_path: Path, offline_hub: Path
) -> None:
    env = {**os.environ, **OFFLINE_ENV, "HF_DATASETS_CACHE": str(offline_hub)}
    config = write_config(
        tmp_path,
        tasks=["mmlu", "gsm8k"],
        sample_size=4,
        query_files=[str(query_slice)],
        local_dir=str(bench_dir),
    )
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "data_pipeline.queries",
            "--config",
            str(config),
            "--tasks",
            "mmlu,arc_challenge",
        ],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert "arc_challenge  local " in done.stdout and "query files" in done.stdout
    train = read_jsonl(tmp_path / "out" / "query_data_train.jsonl")
    test = read_jsonl(tmp_path / "out" / "query_data_test.jsonl")
    assert {r["task_name"] for r in train} == {"mmlu", "arc_challenge"}
    assert {r["task_name"] for r in test} == {"mmlu", "arc_challenge"}

    bad = tmp_path / "bad.yaml"
    bad.write_text(config.read_text().replace("sample_size: 4", "sample_size: 0"))
    line = next(
        i for i, text in enumerate(bad.read_text().splitlines(), 1) if "sample_size" in text
    )
    done = subprocess.run(
        [sys.executable, "-m", "data_pipeline.queries", "--config", str(bad)],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2
    assert done.stderr.startswith("error: ") and "Traceback" not in done.stderr
    assert (
        str(bad) in done.stderr and f"line {line}" in done.stderr and "sample_size" in done.stderr
    )


def test_cli_overrides_in_process(
    query_slice: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = write_config(
        tmp_path, tasks=["mmlu", "gsm8k"], sample_size=5, query_files=[str(query_slice)]
    )
    assert main(["--config", str(config), "--tasks", "gsm8k", "--sample-size", "2"]) == 0
    rows = read_jsonl(tmp_path / "out" / "query_data_train.jsonl") + read_jsonl(
        tmp_path / "out" / "query_data_test.jsonl"
    )
    assert [r["task_name"] for r in rows] == ["gsm8k", "gsm8k"]
    assert "gsm8k" in capsys.readouterr().out
    assert main(["--config", str(config), "--tasks", "nope"]) == 2
    assert capsys.readouterr().err.startswith("error: unknown task 'nope'")


# --- a custom task from a plugin -----------------------------------------------------------

PLUGIN = '''"""A test plugin: a capitals quiz task with its own prompt."""
from langchain_llmrouter.pipeline.tasks import HubDataset, register_task


@register_task(
    "capitals_quiz", metric="em", hub=HubDataset("example/capitals"), prompt="capitals.yaml"
)
def capitals_quiz(record, rng):
    if not record["capital"]:
        return None
    query = f"What is the capital of {record['country']}?"
    return {"query": query, "ground_truth": record["capital"]}
'''


@pytest.fixture
def registry_snapshot(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tasks registered during a test are forgotten afterwards (the built-ins are not in
    `_TASKS`: the registry finds them by name)."""
    monkeypatch.setattr(tasks, "_TASKS", dict(tasks._TASKS))


def test_custom_task_from_plugin(tmp_path: Path, registry_snapshot: None) -> None:
    (tmp_path / "capitals_plugin.py").write_text(PLUGIN)
    (tmp_path / "capitals.yaml").write_text('system: Name the city only.\nuser: "Quiz: {query}"\n')
    write_jsonl(
        tmp_path / "local" / "capitals_quiz.jsonl",
        [
            {"country": "France", "capital": "Paris"},
            {"country": "Peru", "capital": "Lima"},
            {"country": "Atlantis", "capital": ""},
        ],
    )
    config = write_config(
        tmp_path,
        tasks=["capitals_quiz"],
        local_dir="local",
        hub=False,
        plugins=["capitals_plugin.py"],
    )
    # "local" and the plugin are not in the working directory: found beside the config.
    train, test = run_stage1(config)
    rows = sorted(train + test, key=lambda r: r["query"])
    assert [(r["query"], r["ground_truth"], r["metric"]) for r in rows] == [
        ("What is the capital of France?", "Paris", "em"),
        ("What is the capital of Peru?", "Lima", "em"),
    ]
    assert rows[0]["formatted_query"] == {
        "system": "Name the city only.",
        "user": "Quiz: What is the capital of France?",
    }
