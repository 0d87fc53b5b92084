"""Stage 1: benchmarks (or query files) -> ``query_data_{train,test}.jsonl``.

Run: ``llmrouter pipeline queries --config CONFIG [--tasks a,b] [--sample-size N]`` (from a
checkout also ``python -m data_pipeline.queries ...``).

For each task in ``queries.tasks``, rows come from the first source that has them:

1. ``queries.query_files`` (files in the ``default_query_*.jsonl`` format): the rows whose
   ``task_name`` is the task; such a task need not be registered;
2. ``queries.local_dir``: the task's benchmark as a local file or folder in its hub schema;
3. the Hugging Face hub and its local cache (when ``queries.hub`` is true).

Each task's sample (``sample_size`` rows, all when fewer) is split ``train_ratio`` / rest,
so every task with two rows or more is in both files; each file is then shuffled. All of
it follows from ``random_seed``: one generator per task (seeded from the seed and the task
name, so adding a task leaves the others' samples alone), one per benchmark record for
option shuffling (seeded from its position, so a record's options come out the same in any
sample), and one per file.

Each row has ``task_name, query, ground_truth, metric, choices, task_id`` as in
``default_query_*.jsonl`` (``choices`` a JSON string ``{"text": [...], "labels": [...]}`` or
null; ``ground_truth`` text, MBPP's asserts as the text of a Python list; ``task_id`` text
for the code tasks, else null), plus ``formatted_query``: the rendered prompt
``{"system", "user"}``, so the prompt each candidate is asked is fixed in the file.
"""

from __future__ import annotations

import argparse
import json
import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from langchain_llmrouter.errors import (
    ConfigError,
    DataFormatError,
    LLMRouterError,
    UnknownNameError,
)
from langchain_llmrouter.pipeline._io import cli_main, dumps_row, iter_jsonl, write_atomic
from langchain_llmrouter.pipeline.commands import STAGES
from langchain_llmrouter.pipeline.config import PipelineConfig, QueriesConfig, load_pipeline_config
from langchain_llmrouter.pipeline.sources import BenchmarkLoadError, load_benchmark
from langchain_llmrouter.pipeline.tasks import (
    TaskSpec,
    formatted_query,
    get_task,
    load_plugins,
    parse_choices,
    task_names,
)

QUERY_FIELDS = ("task_name", "query", "ground_truth", "metric", "choices", "task_id")
"""The fields of a query row, in file order (``formatted_query`` follows)."""

_CONVERTER_ERRORS = (KeyError, TypeError, ValueError, IndexError, AttributeError)
"""What a converter raises on a record that does not fit its schema."""


@dataclass
class TaskSummary:
    """What stage 1 did for one task."""

    task: str
    """Task name."""
    source: str
    """Where its rows came from."""
    available: int
    """Rows (or benchmark records) the source has."""
    train: int = 0
    """Rows written to the training file."""
    test: int = 0
    """Rows written to the test file."""


@dataclass
class QuerySplits:
    """Stage 1's result before it is written."""

    train: list[dict[str, Any]] = field(default_factory=list)
    """Training rows, shuffled."""
    test: list[dict[str, Any]] = field(default_factory=list)
    """Test rows, shuffled."""
    summaries: list[TaskSummary] = field(default_factory=list)
    """One per task, in the config's order."""


# --- query files ---------------------------------------------------------------------------


def read_query_rows(path: Path, *, require_metric: bool = True) -> list[tuple[int, dict[str, Any]]]:
    """The rows of a query file (``default_query_*.jsonl`` format), with their line numbers.

    Args:
        path: The file.
        require_metric: Whether each row must name its metric (stage 3 may take it from
            ``calls.metrics`` instead).

    Raises:
        DataFormatError: naming the file, line and field of a malformed row.
    """
    required = ("task_name", "query", "metric") if require_metric else ("task_name", "query")
    rows = []
    for line, record in iter_jsonl(path):
        for name in required:
            value = record.get(name)
            if not isinstance(value, str) or not value.strip():
                problem = "missing" if value is None else "expected a non-empty string"
                raise DataFormatError(problem, path=path, line=line, field=name)
        if "ground_truth" not in record:
            raise DataFormatError("missing", path=path, line=line, field="ground_truth")
        choices = record.get("choices")
        if choices not in (None, "") and not parse_choices(choices):
            raise DataFormatError(
                "cannot read the options (expected a JSON or Python-literal list, or a "
                "mapping of 'label(s)' and 'text' lists)",
                path=path,
                line=line,
                field="choices",
            )
        rows.append((line, record))
    return rows


def read_query_files(paths: list[Path]) -> dict[str, list[dict[str, Any]]]:
    """The rows of query files, by task name, in file order (see `read_query_rows`)."""
    by_task: dict[str, list[dict[str, Any]]] = {}
    for path in paths:
        for _, record in read_query_rows(path):
            by_task.setdefault(record["task_name"], []).append(record)
    return by_task


def _file_row(record: Mapping[str, Any]) -> dict[str, Any]:
    """A query-file row as an output row: its fields kept, ``formatted_query`` added."""
    row = {name: record.get(name) for name in QUERY_FIELDS}
    row.update({k: v for k, v in record.items() if k not in row})
    if not isinstance(row.get("formatted_query"), Mapping):
        row["formatted_query"] = formatted_query(row)
    return row


# --- benchmark records ---------------------------------------------------------------------


def _choices_json(value: Any) -> str | None:
    """Options as the query files hold them: ``{"text": [...], "labels": [...]}`` JSON."""
    if value is None or (isinstance(value, list | tuple | str) and not value):
        return None
    pairs = parse_choices(value)
    if not pairs:
        raise ValueError(f"cannot read the options {value!r}")
    return json.dumps(
        {"text": [text for _, text in pairs], "labels": [label for label, _ in pairs]},
        ensure_ascii=False,
    )


def _ground_truth_text(value: Any) -> str:
    """The ground truth as text; a list (MBPP's asserts) as the text of a Python list, as in
    ``default_query_*.jsonl`` (the code metric parses it with `ast.literal_eval`)."""
    if isinstance(value, str):
        return value
    if isinstance(value, list | tuple):
        return repr([str(item) for item in value])
    return str(value)


def benchmark_row(task: TaskSpec, fields: Mapping[str, Any]) -> dict[str, Any] | None:
    """A converter's output as a query row (None when it has no question or no answer).

    Raises:
        ValueError: when the options cannot be read.
    """
    query = fields.get("query")
    truth = fields.get("ground_truth")
    if not isinstance(query, str) or not query.strip() or truth in (None, "", [], ()):
        return None
    task_id = fields.get("task_id")
    row: dict[str, Any] = {
        "task_name": task.name,
        "query": query,
        "ground_truth": _ground_truth_text(truth),
        "metric": task.metric,
        "choices": _choices_json(fields.get("choices")),
        "task_id": None if task_id is None else str(task_id),
    }
    row["formatted_query"] = formatted_query(row)
    return row


def _convert(
    task: TaskSpec, records: Any, index: int, seed: int, source: str, path: Path | None
) -> dict[str, Any] | None:
    """Convert benchmark record ``index`` with the task's converter, naming the record and
    its fields when it does not fit."""
    assert task.to_query is not None
    record = records[index]
    # Seeded by position, so a record's shuffled options do not depend on the sample.
    rng = random.Random(f"{seed}/{task.name}/record/{index}")
    try:
        fields = task.to_query(record, rng)
        return None if fields is None else benchmark_row(task, fields)
    except LLMRouterError:  # e.g. a broken prompt template: not the record's fault
        raise
    except _CONVERTER_ERRORS as exc:
        missing = isinstance(exc, KeyError) and exc.args
        message = f"missing field {exc.args[0]!r}" if missing else f"{type(exc).__name__}: {exc}"
        keys = ", ".join(map(str, record)) if isinstance(record, Mapping) else type(record).__name__
        where = f"record {index + 1}" + ("" if path else f" of {source}")
        raise DataFormatError(
            f"task {task.name!r}, {where}: {message}; records must be in the benchmark's hub "
            f"schema (this one has: {keys})",
            path=path,
            field=str(exc.args[0]) if missing else None,
        ) from exc


# --- sampling and splitting ----------------------------------------------------------------


def _task_rows(
    task_name: str,
    queries: QueriesConfig,
    file_rows: list[dict[str, Any]] | None,
    local_dir: Path | None,
) -> tuple[list[dict[str, Any]], TaskSummary]:
    """Up to ``sample_size`` rows of one task, in random order, and its summary."""
    rng = random.Random(f"{queries.random_seed}/{task_name}")
    if file_rows:
        order = list(range(len(file_rows)))
        rng.shuffle(order)
        rows = [_file_row(file_rows[i]) for i in order[: queries.sample_size]]
        return rows, TaskSummary(task_name, "query files", len(file_rows))
    task = get_task(task_name)
    if task.to_query is None:
        raise BenchmarkLoadError(
            f"task {task_name!r} has no benchmark converter, so it can only come from query "
            "files, and none of queries.query_files has rows for it"
        )
    bench = load_benchmark(task, local_dir=local_dir, hub=queries.hub)
    order = list(range(len(bench.records)))
    rng.shuffle(order)
    rows = []
    for index in order:
        if len(rows) == queries.sample_size:
            break
        row = _convert(task, bench.records, index, queries.random_seed, bench.source, bench.path)
        if row is not None:
            rows.append(row)
    return rows, TaskSummary(task_name, bench.source, len(order))


def train_count(n: int, train_ratio: float) -> int:
    """Rows of an ``n``-row sample that go to the training file: ``n * train_ratio``
    rounded, but at least one row in each file when ``n >= 2`` and ``train_ratio < 1``."""
    count = int(n * train_ratio + 0.5)
    if n >= 2 and train_ratio < 1.0:
        count = min(max(count, 1), n - 1)
    return min(count, n)


def build_queries(config: PipelineConfig) -> QuerySplits:
    """Stage 1 without writing: sample, convert, split and shuffle every configured task.

    Raises:
        UnknownNameError: for a task that is neither registered nor in the query files.
        BenchmarkLoadError: for a benchmark found nowhere (the message says where it looked).
        DataFormatError: for a malformed query file or benchmark record.
        ConfigError: for a missing plugin, query file or local folder.
    """
    queries = config.queries
    load_plugins(config.plugins, base=config.source.parent if config.source else None)
    files = [config.input(p, what="queries.query_files") for p in queries.query_files]
    from_files = read_query_files(files)
    tasks = list(dict.fromkeys(queries.tasks))
    valid = set(task_names()) | set(from_files)
    for name in tasks:  # all names first, so a typo fails before any slow load
        if name not in valid:
            raise UnknownNameError("task", name, valid)
    local_dir = (
        config.input(queries.local_dir, what="queries.local_dir") if queries.local_dir else None
    )
    result = QuerySplits()
    for name in tasks:
        rows, summary = _task_rows(name, queries, from_files.get(name), local_dir)
        n_train = train_count(len(rows), queries.train_ratio)
        result.train.extend(rows[:n_train])
        result.test.extend(rows[n_train:])
        summary.train, summary.test = n_train, len(rows) - n_train
        result.summaries.append(summary)
    random.Random(f"{queries.random_seed}/train").shuffle(result.train)
    random.Random(f"{queries.random_seed}/test").shuffle(result.test)
    return result


# --- writing -------------------------------------------------------------------------------


def output_paths(config: PipelineConfig) -> dict[str, Path]:
    """Where stage 1 writes, checked not to overwrite an input query file.

    Raises:
        ConfigError: when an output is also an input query file, or both outputs are one file.
    """
    outputs = {
        "train": config.output(config.data_path.query_data_train),
        "test": config.output(config.data_path.query_data_test),
    }
    if outputs["train"].resolve() == outputs["test"].resolve():
        raise ConfigError(
            "query_data_train and query_data_test are the same file",
            path=config.source,
            field="data_path.query_data_test",
        )
    inputs = {
        config.input(p, what="queries.query_files").resolve() for p in config.queries.query_files
    }
    for split, path in outputs.items():
        if path.resolve() in inputs:
            raise ConfigError(
                f"refusing to overwrite {path}: it is also an input in queries.query_files; "
                "write the output somewhere else",
                path=config.source,
                field=f"data_path.query_data_{split}",
            )
    return outputs


def format_summary(summaries: list[TaskSummary]) -> str:
    """The per-task table: task, source, rows available, train, test."""
    header = ("task", "source", "available", "train", "test")
    lines = [(s.task, s.source, str(s.available), str(s.train), str(s.test)) for s in summaries]
    total = (
        "total",
        "",
        str(sum(s.available for s in summaries)),
        str(sum(s.train for s in summaries)),
        str(sum(s.test for s in summaries)),
    )
    table = [header, *lines, total]
    widths = [max(len(row[i]) for row in table) for i in range(len(header))]
    out = []
    for row in table:
        cells = [row[0].ljust(widths[0]), row[1].ljust(widths[1])]
        cells += [cell.rjust(width) for cell, width in zip(row[2:], widths[2:], strict=True)]
        out.append("  ".join(cells).rstrip())
    return "\n".join(out)


def generate_queries(
    config: PipelineConfig, *, echo: Callable[[str], None] | None = print
) -> dict[str, Path]:
    """Run stage 1 and write the training and test query files (atomically).

    Args:
        config: The pipeline config (``queries`` and ``data_path``).
        echo: Where the per-task summary goes (None: nowhere).

    Returns:
        ``{"train": path, "test": path}`` of the files written.
    """
    outputs = output_paths(config)  # before any work, so a bad output path fails at once
    splits = build_queries(config)
    for split, rows in (("train", splits.train), ("test", splits.test)):
        try:
            write_atomic(outputs[split], "".join(dumps_row(row) for row in rows))
        except OSError as exc:
            raise ConfigError(
                f"cannot write {outputs[split]}: {exc.strerror or exc}",
                path=config.source,
                field=f"data_path.query_data_{split}",
            ) from exc
    if echo is not None:
        echo(format_summary(splits.summaries))
        echo(f"{len(splits.train)} training queries -> {outputs['train']}")
        echo(f"{len(splits.test)} test queries -> {outputs['test']}")
    return outputs


def _override(config: PipelineConfig, tasks: str | None, sample_size: int | None) -> PipelineConfig:
    """The config with the command line's overrides, validated like the file."""
    update: dict[str, Any] = {}
    if tasks is not None:
        update["tasks"] = [name.strip() for name in tasks.split(",") if name.strip()]
    if sample_size is not None:
        update["sample_size"] = sample_size
    if not update:
        return config
    queries = QueriesConfig.model_validate({**config.queries.model_dump(), **update})
    return config.model_copy(update={"queries": queries})


def run(args: argparse.Namespace) -> int:
    """Run stage 1 on parsed flags (`commands.add_query_arguments`); returns 0, or 2 with
    ``error: ...`` on stderr for bad input."""

    def stage() -> int:
        config = _override(load_pipeline_config(args.config), args.tasks, args.sample_size)
        generate_queries(config)
        return 0

    return cli_main(stage)


def main(
    argv: list[str] | None = None, *, prog: str = "python -m langchain_llmrouter.pipeline.queries"
) -> int:
    """Command line: ``--config FILE [--tasks a,b] [--sample-size N]``; the same as
    ``llmrouter pipeline queries``."""
    return run(STAGES["queries"].parser(prog).parse_args(argv))


if __name__ == "__main__":
    raise SystemExit(main())
