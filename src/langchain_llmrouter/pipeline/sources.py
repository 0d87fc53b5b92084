"""Loading a task's benchmark through `datasets`: from a local file or folder first, then from
the Hugging Face hub (whose local cache answers first, also offline).

Local files are looked up by task name in the config's ``queries.local_dir``:
``<task>.jsonl``, ``<task>.json``, ``<task>.parquet``, ``<task>.csv``, or a folder
``<task>/`` that is either a `datasets` ``save_to_disk`` folder or holds data files of one of
those kinds. Records are in the benchmark's own hub schema; the task's converter turns them
into query rows.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from langchain_llmrouter._optional import import_optional
from langchain_llmrouter.errors import DataFormatError, LLMRouterError
from langchain_llmrouter.pipeline.tasks import HubDataset, TaskSpec

LOCAL_SUFFIXES: dict[str, str] = {
    ".jsonl": "json",
    ".json": "json",
    ".parquet": "parquet",
    ".csv": "csv",
}
"""Local file suffix -> the `datasets` builder that reads it, in lookup order."""

HUB_CONFIGS: dict[str, tuple[str, ...]] = {
    "EleutherAI/hendrycks_math": (
        "algebra",
        "counting_and_probability",
        "geometry",
        "intermediate_algebra",
        "number_theory",
        "prealgebra",
        "precalculus",
    ),
}
"""Hub datasets split into several configurations that one task uses together: when a task's
`HubDataset` names no configuration and its path is here, every listed configuration is
loaded and the records are joined (in this order). A plugin may add entries."""

_SAVED_MARKERS = ("state.json", "dataset_dict.json")
"""Files that mark a ``save_to_disk`` folder (a `Dataset` or a `DatasetDict`)."""


class BenchmarkLoadError(LLMRouterError):
    """A task's benchmark was found neither locally nor on the hub (or its cache)."""


@dataclass(frozen=True)
class Benchmark:
    """A loaded benchmark: its records, indexable, and where they came from."""

    records: Any
    """A `datasets.Dataset` (or any sequence of record mappings)."""
    source: str
    """Where the records came from, for the summary (``local <path>`` or ``hub <id>``)."""
    path: Path | None
    """The local file or folder, if local (for error messages)."""


def datasets_module() -> Any:
    """The `datasets` package, imported on first use (it is an optional dependency)."""
    return import_optional("datasets", extra="pipeline", feature="the data pipeline's stage 1")


def local_candidates(task: str, local_dir: Path) -> list[Path]:
    """Every local path where the benchmark of ``task`` may be, in lookup order."""
    return [local_dir / f"{task}{suffix}" for suffix in LOCAL_SUFFIXES] + [local_dir / task]


def describe_hub(hub: HubDataset) -> str:
    """The hub id, configuration(s) and split, for messages."""
    configs = HUB_CONFIGS.get(hub.path) if hub.name is None else None
    if configs:
        return f"{hub.path} (configs {', '.join(configs)}):{hub.split}"
    return hub.describe()


def load_local(path: Path, *, split: str = "train") -> Any:
    """Load a local benchmark file or folder with `datasets`.

    Args:
        path: A ``.jsonl``/``.json``/``.parquet``/``.csv`` file, a ``save_to_disk`` folder,
            or a folder of such data files (all of one kind).
        split: The split to take from a saved `DatasetDict` (its only split, or ``train``,
            when it has no such split).

    Raises:
        DataFormatError: naming the path when it cannot be read.
    """
    ds = datasets_module()
    try:
        if path.is_dir():
            if any((path / marker).is_file() for marker in _SAVED_MARKERS):
                return _pick_split(ds.load_from_disk(str(path)), split, path)
            files = sorted(p for p in path.iterdir() if p.suffix in LOCAL_SUFFIXES and p.is_file())
            builders = {LOCAL_SUFFIXES[p.suffix] for p in files}
            if not files:
                raise DataFormatError(
                    "neither a save_to_disk folder nor a folder of "
                    f"{'/'.join(LOCAL_SUFFIXES)} files",
                    path=path,
                )
            if len(builders) > 1:
                raise DataFormatError(
                    f"mixes data file kinds ({', '.join(sorted(builders))}); keep one kind",
                    path=path,
                )
            return ds.load_dataset(
                builders.pop(), data_files=[str(p) for p in files], split="train"
            )
        return ds.load_dataset(LOCAL_SUFFIXES[path.suffix], data_files=[str(path)], split="train")
    except LLMRouterError:
        raise
    except Exception as exc:  # datasets raises many kinds; all mean "this file is unreadable"
        raise DataFormatError(f"cannot load with datasets: {_one_line(exc)}", path=path) from exc


def _pick_split(loaded: Any, split: str, path: Path) -> Any:
    """A `Dataset` from what ``load_from_disk`` returned (a `Dataset` or a `DatasetDict`)."""
    if not hasattr(loaded, "keys"):
        return loaded
    names = list(loaded.keys())
    for name in (split, "train"):
        if name in names:
            return loaded[name]
    if len(names) == 1:
        return loaded[names[0]]
    raise DataFormatError(
        f"the saved DatasetDict has no split {split!r} (splits: {', '.join(names)})", path=path
    )


def load_hub(hub: HubDataset) -> Any:
    """Load a benchmark from the hub with ``datasets.load_dataset`` (its cache answers first;
    with ``HF_DATASETS_OFFLINE=1`` only the cache is used).

    A dataset listed in `HUB_CONFIGS` whose `HubDataset` names no configuration is loaded
    configuration by configuration and joined.
    """
    ds = datasets_module()
    configs = HUB_CONFIGS.get(hub.path) if hub.name is None else None
    if not configs:
        return ds.load_dataset(hub.path, hub.name, split=hub.split)
    parts = [ds.load_dataset(hub.path, name, split=hub.split) for name in configs]
    return ds.concatenate_datasets(parts)


def load_benchmark(task: TaskSpec, *, local_dir: Path | None, hub: bool) -> Benchmark:
    """The benchmark records of ``task``: from ``local_dir`` if there, else from the hub.

    Args:
        task: The registered task.
        local_dir: The folder of local benchmark files (None: none configured).
        hub: Whether to try the hub (and its local cache).

    Raises:
        BenchmarkLoadError: saying every place it looked and how to provide the data.
        DataFormatError: when a local file exists but cannot be read.
    """
    tried: list[str] = []
    if local_dir is not None:
        candidates = local_candidates(task.name, local_dir)
        for path in candidates:
            if path.exists():
                return Benchmark(
                    load_local(path, split=task.hub.split if task.hub else "train"),
                    f"local {path}",
                    path,
                )
        tried.append(f"local: none of {_paths(candidates)}")
    else:
        tried.append("local: not tried (queries.local_dir is not set)")
    if task.hub is None:
        tried.append("hub: the task names no hub dataset")
    elif not hub:
        tried.append(
            f"hub: not tried (queries.hub is false; the dataset is {describe_hub(task.hub)})"
        )
    else:
        try:
            return Benchmark(load_hub(task.hub), f"hub {describe_hub(task.hub)}", None)
        except Exception as exc:  # network, offline, missing dataset or config: all reported
            tried.append(f"hub: {describe_hub(task.hub)} failed: {_one_line(exc)}")
    raise BenchmarkLoadError(
        f"cannot load the benchmark of task {task.name!r}. Looked in: {'; '.join(tried)}. "
        + how_to_provide(task)
    )


def how_to_provide(task: TaskSpec) -> str:
    """How a user without hub access can provide the benchmark of ``task``."""
    text = (
        f"To provide it locally, put {task.name}.jsonl (or .json/.parquet/.csv, or a "
        f"save_to_disk folder {task.name}/) with the records in the benchmark's own hub schema "
        "into the folder set as queries.local_dir"
    )
    if task.hub is None:
        return text + "."
    configs = HUB_CONFIGS.get(task.hub.path) if task.hub.name is None else None
    name = "<config>" if configs else repr(task.hub.name)
    load = f"datasets.load_dataset({task.hub.path!r}, {name}, split={task.hub.split!r})"
    if configs:
        load += f" for each of its {len(configs)} configs, concatenated,"
    return (
        f"{text}, e.g. made on a machine with hub access by {load} then "
        f".to_json('{task.name}.jsonl'); or load it there to fill the Hugging Face cache, "
        "copy the cache (~/.cache/huggingface) to this machine and set HF_DATASETS_OFFLINE=1."
    )


def _paths(paths: Iterable[Path]) -> str:
    paths = list(paths)
    if not paths:
        return ""
    return ", ".join(str(p) for p in paths[:-1]) + f" or the folder {paths[-1]}/"


def _one_line(exc: BaseException) -> str:
    """An exception as ``Type: first line`` (hub errors can be long)."""
    lines = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {lines[0]}" if lines else type(exc).__name__
