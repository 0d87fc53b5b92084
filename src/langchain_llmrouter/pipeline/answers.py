"""One pair's call and score: the code both engines run for every (query, candidate) pair.

`paid_call` calls a candidate through its `Caller` (rate limit, retries) and records tokens,
dollars and latency; `Scorer` scores the answer with the row's metric (generated programs in
the sandbox, at most one per CPU); `finished_row` is the routing row written for the pair.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable, Mapping
from typing import Any

from langchain_core.messages import BaseMessage

from langchain_llmrouter.candidates import LLMCandidate
from langchain_llmrouter.evaluation.task_metrics import CodeExecutionMetric, Metric, get_metric
from langchain_llmrouter.pipeline.calling import Caller, usage_tokens
from langchain_llmrouter.pipeline.config import PipelineConfig
from langchain_llmrouter.pipeline.store import query_key

_PAID_FIELDS = (
    "token_num",
    "input_tokens",
    "output_tokens",
    "cost",
    "latency",
    "attempts",
    "usage_estimated",
)
"""What a paid call adds to a routing row, after the score (in this order)."""


class Scorer:
    """Resolves each row's metric (config overrides first) and scores answers; programs run
    in threads, at most one per CPU."""

    def __init__(self, config: PipelineConfig) -> None:
        self.overrides = dict(config.calls.metrics)
        self.timeout_s = config.calls.code_timeout_s
        self.memory_mb = config.calls.code_memory_mb
        self._metrics: dict[str, Metric] = {}
        self._code = asyncio.Semaphore(max(1, os.cpu_count() or 1))

    def metric_name(self, row: Mapping[str, Any]) -> str:
        name = self.overrides.get(str(row.get("task_name")), row.get("metric"))
        if not name:
            raise ValueError("no metric (set it in the row or in calls.metrics for the task)")
        return str(name)

    def metric(self, name: str) -> Metric:
        if name not in self._metrics:
            metric = get_metric(name)  # unknown names raise, listing the valid ones
            if isinstance(metric, CodeExecutionMetric):
                metric = CodeExecutionMetric(
                    timeout_s=self.timeout_s, memory_mb=self.memory_mb, kind=metric.kind
                )
            self._metrics[name] = metric
        return self._metrics[name]

    async def score(self, response: str, row: Mapping[str, Any]) -> float:
        metric = self.metric(self.metric_name(row))
        if isinstance(metric, CodeExecutionMetric):
            async with self._code:
                value = await asyncio.to_thread(metric, response, row.get("ground_truth"), row)
        else:
            value = metric(response, row.get("ground_truth"), row)
        value = float(value)
        if not 0.0 <= value <= 1.0:
            raise ValueError(f"metric returned {value}, outside [0, 1]")
        return value


async def paid_call(
    caller: Caller,
    candidate: LLMCandidate,
    messages: list[BaseMessage],
    base: dict[str, Any],
    before_send: Callable[[], None] | None = None,
) -> dict[str, Any]:
    """Call a candidate (through its `Caller`: rate limit, retries) and return the paid
    response as a routing row without its score: ``base`` plus the response, tokens, dollars,
    latency and attempts. Errors of the call propagate."""
    message, latency, attempts = await caller(messages, before_send)
    prompt_text = "\n".join(m.text for m in messages)
    input_tokens, output_tokens, estimated = usage_tokens(message, prompt_text)
    paid = {
        **base,
        "response": message.text,
        "input_tokens": input_tokens,
        "output_tokens": output_tokens,
        "token_num": input_tokens + output_tokens,
        "cost": candidate.estimate_cost(input_tokens, output_tokens),
        "latency": round(latency, 4),
        "attempts": attempts,
    }
    if estimated:
        paid["usage_estimated"] = True
    return paid


def finished_row(
    base: dict[str, Any], paid: Mapping[str, Any], performance: float, ids: Mapping[str, int]
) -> dict[str, Any]:
    """The routing row of a scored pair, in file order."""
    return {
        **base,
        "response": paid["response"],
        "performance": performance,
        "embedding_id": ids.get(query_key(base)),
        **{key: paid[key] for key in _PAID_FIELDS if key in paid},
    }
