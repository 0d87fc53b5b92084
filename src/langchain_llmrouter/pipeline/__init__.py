"""The data pipeline: benchmarks -> query files -> candidate embeddings -> routing data.

Three stages, each a command: ``llmrouter pipeline <stage> --config FILE`` (from a repository
checkout also ``python -m data_pipeline.<stage>``), and ``llmrouter pipeline run`` for all
three:

1. `queries` samples the benchmarks into ``query_data_{train,test}.jsonl``;
2. `embed_candidates` embeds the candidates' descriptions;
3. `call_candidates` calls every candidate on every query, scores the answers and writes the
   routing data that ``llmrouter train`` reads.

`SAMPLE_CONFIG` is a documented config to start from. Custom tasks register with
`register_task` and custom metrics with `register_metric`, in a plugin file named by the
config's ``plugins`` key. The names below load lazily: importing this package imports
neither the stages nor LangChain.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from langchain_llmrouter.evaluation.task_metrics import register_metric
    from langchain_llmrouter.pipeline.config import PipelineConfig, load_pipeline_config
    from langchain_llmrouter.pipeline.tasks import HubDataset, register_task

SAMPLE_CONFIG = Path(__file__).with_name("sample_config.yaml")
"""The sample pipeline config (shipped with the package), every key commented."""

_EXPORTS: dict[str, str] = {
    "HubDataset": "langchain_llmrouter.pipeline.tasks",
    "PipelineConfig": "langchain_llmrouter.pipeline.config",
    "load_pipeline_config": "langchain_llmrouter.pipeline.config",
    "register_metric": "langchain_llmrouter.evaluation.task_metrics",
    "register_task": "langchain_llmrouter.pipeline.tasks",
}

__all__ = [
    "SAMPLE_CONFIG",
    "HubDataset",
    "PipelineConfig",
    "load_pipeline_config",
    "register_metric",
    "register_task",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'langchain_llmrouter.pipeline' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__
