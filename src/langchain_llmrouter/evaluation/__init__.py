"""Evaluation of routers: quality-cost curves and the benchmark figures of ``BENCHMARK.md``."""

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

__all__ = [
    "COST_WEIGHT_GRID",
    "CurvePoint",
    "ReferencePoints",
    "RouterReport",
    "apgr_cpt",
    "choose",
    "evaluate_choices",
    "evaluate_router",
    "format_table",
    "quality_cost_curve",
    "reference_points",
]
