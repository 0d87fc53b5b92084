"""The data pipeline: benchmarks -> query files -> candidate embeddings -> routing data.

Three stages, each a module runnable with ``python -m data_pipeline.<stage> --config FILE``,
and ``python -m data_pipeline.run`` for all three:

1. `data_pipeline.queries` samples the benchmarks into ``query_data_{train,test}.jsonl``;
2. `data_pipeline.embed_candidates` embeds the candidates' descriptions;
3. `data_pipeline.call_candidates` calls every candidate on every query, scores the answers
   and writes the routing data that ``llmrouter train`` reads.

Custom tasks register with `register_task` and custom metrics with `register_metric`, in a
plugin file named by the config's ``plugins`` key.
"""

from data_pipeline.config import PipelineConfig, load_pipeline_config
from data_pipeline.tasks import HubDataset, register_task
from langchain_llmrouter.evaluation.task_metrics import register_metric

__all__ = [
    "HubDataset",
    "PipelineConfig",
    "load_pipeline_config",
    "register_metric",
    "register_task",
]
