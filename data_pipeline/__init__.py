"""Entry points of the data pipeline for a repository checkout: ``python -m data_pipeline.<stage>``.

The pipeline itself is `langchain_llmrouter.pipeline`, installed with the package; installed
users run ``llmrouter pipeline <stage>``. This folder is not shipped in the wheel (its name
is too generic for site-packages): each module here only calls the stage's ``main``, and the
names below are re-exported so plugins written as ``from data_pipeline import ...`` keep
working from a checkout.
"""

from langchain_llmrouter.pipeline import (
    HubDataset,
    PipelineConfig,
    load_pipeline_config,
    register_metric,
    register_task,
)

__all__ = [
    "HubDataset",
    "PipelineConfig",
    "load_pipeline_config",
    "register_metric",
    "register_task",
]
