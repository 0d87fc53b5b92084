"""Evaluation: task metrics that score an LLM's answer (exact match, F1, multiple choice,
GSM8K, MATH, code pass@1 in a sandbox), and router metrics (quality-cost curves and the
benchmark figures of ``BENCHMARK.md``).

The code metrics (`CodeExecutionMetric`, `extract_code`) load on first use, so importing this
package does not import `langchain_llmrouter.evaluation.code_metric`."""

from importlib import import_module
from typing import TYPE_CHECKING, Any

from langchain_llmrouter.evaluation.code_sandbox import SandboxResult, run_python_sandboxed
from langchain_llmrouter.evaluation.plot import (
    QualityCostSeries,
    plot_quality_cost,
    quality_cost_figure,
    quality_cost_series,
)
from langchain_llmrouter.evaluation.router_metrics import (
    COST_WEIGHT_GRID,
    CurvePoint,
    ReferencePoints,
    RouterReport,
    apgr_cpt,
    choose,
    evaluate_choices,
    evaluate_router,
    format_table,
    quality_cost_curve,
    reference_points,
)
from langchain_llmrouter.evaluation.task_metrics import (
    Metric,
    get_metric,
    metric_names,
    normalize_answer,
    register_metric,
    score_response,
)

if TYPE_CHECKING:
    from langchain_llmrouter.evaluation.code_metric import CodeExecutionMetric, extract_code

__all__ = [
    "COST_WEIGHT_GRID",
    "CodeExecutionMetric",
    "CurvePoint",
    "Metric",
    "QualityCostSeries",
    "ReferencePoints",
    "RouterReport",
    "SandboxResult",
    "apgr_cpt",
    "choose",
    "evaluate_choices",
    "evaluate_router",
    "extract_code",
    "format_table",
    "get_metric",
    "metric_names",
    "normalize_answer",
    "plot_quality_cost",
    "quality_cost_curve",
    "quality_cost_figure",
    "quality_cost_series",
    "reference_points",
    "register_metric",
    "run_python_sandboxed",
    "score_response",
]


def __getattr__(name: str) -> Any:
    """Import the code-metric names on first use."""
    if name in ("CodeExecutionMetric", "extract_code"):
        return getattr(import_module("langchain_llmrouter.evaluation.code_metric"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
