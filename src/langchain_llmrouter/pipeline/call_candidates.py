"""Stage 3: call every candidate on every query, score the answers, write routing data.

For each split, every (query, candidate) pair not yet in the routing file is sent to the
candidate's LangChain chat model (``ChatOpenAI`` on its OpenAI-compatible endpoint), with at
most ``calls.max_concurrency`` calls in flight, a rate limiter per service, retries with
exponential back-off for rate limits, server errors and timeouts, and the API keys of
``API_KEYS`` rotated per request. Each answer is scored with its task's metric; tokens come
from the response's ``usage_metadata`` and dollars from the candidate's prices. Rows are
appended as they arrive (see `langchain_llmrouter.pipeline.store`), so a killed run resumes
without calling a finished pair again, and a failed call is recorded and retried by the next
run rather than scored as wrong. ``--max-cost`` stops launching calls before the recorded
spend, plus the worst case of calls a kill left in flight (`pipeline.journal`), could pass
it. At the end the query embeddings are written as safetensors.

Run: ``llmrouter pipeline call-candidates --config CONFIG`` (from a checkout also
``python -m data_pipeline.call_candidates --config CONFIG``).
Exit codes: 0 every pair done; 3 stopped with pairs left (failed calls, or ``--max-cost``):
run again to continue; 2 bad input.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import itertools
import logging
import os
import random
import sys
import time
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from langchain_core.messages import BaseMessage

from langchain_llmrouter.candidates import CandidatePool
from langchain_llmrouter.pipeline._io import cli_main
from langchain_llmrouter.pipeline.answers import Scorer, finished_row, paid_call
from langchain_llmrouter.pipeline.calling import (
    Caller,
    build_pool,
    error_label,
    rate_limiters,
    selected_models,
    worst_case_cost,
)
from langchain_llmrouter.pipeline.commands import STAGES
from langchain_llmrouter.pipeline.config import PipelineConfig, Split, load_pipeline_config
from langchain_llmrouter.pipeline.queries import read_query_rows
from langchain_llmrouter.pipeline.rounds import Job, active_plan, pending_jobs, run_rounds
from langchain_llmrouter.pipeline.store import SplitStore, query_key
from langchain_llmrouter.pipeline.tasks import load_plugins, render_messages

_QUERY_FIELDS = ("task_name", "query", "ground_truth", "metric", "choices", "task_id")

logger = logging.getLogger(__name__)


# --- what a run did ------------------------------------------------------------------------


@dataclass
class CallSummary:
    """What one stage-3 run did."""

    total: int = 0
    """Pairs in scope (queries × candidates over the processed splits)."""
    done_before: int = 0
    """Pairs finished by earlier runs."""
    done: int = 0
    """Pairs finished now (all runs)."""
    calls: int = 0
    """Successful LLM calls this run."""
    failed: int = 0
    """Pairs whose call or scoring failed this run (retried by the next run)."""
    rescored: int = 0
    """Paid responses of earlier runs scored now without calling again."""
    spent: float = 0.0
    """Dollars recorded in the routing files (all runs)."""
    in_flight_found: int = 0
    """Calls the last run had in flight when it was killed (read from the journals at start)."""
    in_flight_found_cost: float = 0.0
    """Their worst-case dollars (prompt and ``max_tokens`` at the candidate's prices)."""
    lost_calls: int = 0
    """Calls lost in flight by all interrupted runs (the journals' tally)."""
    lost_cost: float = 0.0
    """Their worst-case dollars, which ``max_cost`` counts as spent."""
    stopped_at_max_cost: bool = False
    """Whether ``max_cost`` stopped the run with pairs left."""
    elapsed_s: float = 0.0
    """Wall time of this run's calls."""
    engine_start_s: float = 0.0
    """Part of ``elapsed_s`` spent starting the engine (``engine: ray``: its actors)."""
    errors: dict[str, int] = field(default_factory=dict)
    """This run's errors by type."""
    active: str = ""
    """Active mode: training pairs called out of all (`pipeline.active`); empty otherwise."""

    @property
    def complete(self) -> bool:
        """Whether every pair in scope is finished."""
        return self.done == self.total


# --- reading the query files ---------------------------------------------------------------


def query_rows_by_split(
    config: PipelineConfig, *, required: tuple[str, ...] = ()
) -> dict[str, list[tuple[int, dict[str, Any]]]]:
    """The numbered rows of the query files that exist (a split in ``required`` must exist)."""
    rows: dict[str, list[tuple[int, dict[str, Any]]]] = {}
    for split in ("train", "test"):
        path = config.resolve(
            config.query_file(split),
            what=f"data_path.query_data_{split}",
            must_exist=split in required,
        )
        if path is not None and path.exists():
            rows[split] = read_query_rows(path, require_metric=False)
    return rows


def embedding_ids(
    rows_by_split: Mapping[str, list[tuple[int, dict[str, Any]]]],
) -> dict[str, int]:
    """Sequential ids over the unique queries, train file first, so a query shared by both
    splits has one id (LLMRouter's numbering)."""
    ids: dict[str, int] = {}
    for split in ("train", "test"):
        for _, row in rows_by_split.get(split, []):
            ids.setdefault(query_key(row), len(ids))
    return ids


# --- the run ------------------------------------------------------------------------------


class _Progress:
    """A tqdm bar: done / total, calls per second, errors, dollars."""

    def __init__(self, total: int, initial: int, enabled: bool) -> None:
        from tqdm import tqdm

        self.bar = tqdm(
            total=total,
            initial=initial,
            unit="call",
            disable=not enabled,
            file=sys.stderr,
            dynamic_ncols=True,
            mininterval=0.5,
            smoothing=0.1,
        )
        self.errors = 0

    def update(self, spent: float, *, error: bool = False) -> None:
        self.errors += error
        if not error:
            self.bar.update(1)
        self.bar.set_postfix_str(f"errors={self.errors} ${spent:.4f}", refresh=False)

    def close(self) -> None:
        self.bar.close()


class _Run:
    """State of one stage-3 run (kept in one place so the workers stay small)."""

    def __init__(
        self,
        config: PipelineConfig,
        pool: CandidatePool,
        models: list[str],
        stores: dict[Split, SplitStore],
        ids: dict[str, int],
        max_cost: float | None,
        summary: CallSummary,
        progress: _Progress,
        scorer: Scorer,
    ) -> None:
        self.config, self.pool, self.models, self.stores, self.ids = (
            config,
            pool,
            models,
            stores,
            ids,
        )
        self.max_cost, self.summary, self.progress = max_cost, summary, progress
        self.scorer = scorer
        self.reserved = 0.0
        self.rng = random.Random(config.queries.random_seed)
        self.request_ids = (f"{uuid.uuid4().hex[:12]}-{n}" for n in itertools.count())
        self.lost_cost = sum(store.inflight.lost_cost for store in stores.values())
        self.stop = False

    @functools.cached_property
    def callers(self) -> dict[str, Caller]:
        """A retrying, rate-limited caller per candidate, built on first use (a Ray run's
        driver never calls a candidate itself)."""
        calls = self.config.calls
        limiters = rate_limiters(self.pool, self.models, calls.requests_per_second)
        return {
            name: Caller(
                self.pool.chat_model(name),
                limiters[name],
                calls.max_retries,
                calls.retry_backoff_s,
                self.rng,
                self._count_retry,
            )
            for name in self.models
        }

    def _count_retry(self, exc: BaseException) -> None:
        key = f"retried {error_label(exc)}"
        self.summary.errors[key] = self.summary.errors.get(key, 0) + 1

    def spent(self) -> float:
        return sum(store.spent for store in self.stores.values())

    def base_row(self, job: Job) -> dict[str, Any]:
        row = {k: job.row.get(k) for k in _QUERY_FIELDS}
        row["metric"] = self.scorer.metric_name(job.row)
        row["model_name"] = job.model
        return row

    def reserve(self, job: Job, messages: list[BaseMessage]) -> float | None:
        """Reserve a call's worst case against ``max_cost``; None (and stop) when it would
        not fit under the bound with what is spent, lost and already reserved."""
        estimate = worst_case_cost(self.pool[job.model], messages, self.config.calls.max_tokens)
        committed = self.spent() + self.lost_cost + self.reserved
        if self.max_cost is not None and committed + estimate > self.max_cost:
            self.stop = True
            self.summary.stopped_at_max_cost = True
            return None
        self.reserved += estimate
        return estimate

    async def run_job(self, job: Job) -> None:
        store = self.stores[job.split]
        pending = store.unscored.get((query_key(job.row), job.model))
        if pending is not None:
            await self._score_and_store(job, pending, rescoring=True)
            return
        messages = render_messages(job.row)
        estimate = self.reserve(job, messages)
        if estimate is None:
            return
        request_id = next(self.request_ids)
        pair = (query_key(job.row), job.model)

        def journal_start() -> None:
            store.inflight.start(request_id, pair, estimate)

        try:
            paid = await paid_call(
                self.callers[job.model],
                self.pool[job.model],
                messages,
                self.base_row(job),
                journal_start,
            )
        except Exception as exc:
            self.reserved -= estimate
            self.record_failure(job, "call", exc, request_id=request_id)
            return
        self.reserved -= estimate
        self.summary.calls += 1
        await self._score_and_store(job, paid, rescoring=False, request_id=request_id)

    async def _score_and_store(
        self, job: Job, paid: dict[str, Any], *, rescoring: bool, request_id: str | None = None
    ) -> None:
        base = self.base_row(job)
        try:
            performance = await self.scorer.score(str(paid["response"]), {**job.row, **base})
        except Exception as exc:
            self.record_failure(job, "score", exc, paid=paid, request_id=request_id)
            return
        self.store_row(job, finished_row(base, paid, performance, self.ids), rescoring, request_id)

    def store_row(
        self, job: Job, row: dict[str, Any], rescoring: bool, request_id: str | None
    ) -> None:
        """Append a scored row, end its journal entry and count it."""
        self.stores[job.split].add(row)
        if request_id is not None:
            self.stores[job.split].inflight.end(request_id)
        self.summary.rescored += rescoring
        self.summary.done += 1
        self.progress.update(self.spent())

    def record_failure(
        self,
        job: Job,
        stage: str,
        exc: BaseException,
        *,
        paid: dict[str, Any] | None = None,
        request_id: str | None = None,
    ) -> None:
        self.record_error(
            job,
            stage,
            f"{type(exc).__name__}: {exc}",
            error_label(exc),
            paid=paid,
            request_id=request_id,
        )

    def record_error(
        self,
        job: Job,
        stage: str,
        error: str,
        label: str,
        *,
        paid: dict[str, Any] | None = None,
        request_id: str | None = None,
    ) -> None:
        """Append a failure record (``error``: type and message; ``label``: its count key),
        end its journal entry and count it."""
        record = {
            **(paid or self.base_row(job)),
            "stage": stage,
            "error": error[:2000],
            "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        }
        store = self.stores[job.split]
        if request_id is not None and request_id in store.inflight.open_calls:
            record["request_id"] = request_id  # ties the journal entry to this record
        store.add_failure(record)
        if request_id is not None:
            store.inflight.end(request_id)
        self.summary.failed += 1
        kind = f"{stage} failed: {label}"
        self.summary.errors[kind] = self.summary.errors.get(kind, 0) + 1
        self.progress.update(self.spent(), error=True)

    def before_round(self) -> None:
        """Called before each round of calls (the Ray engine starts its actors here)."""

    def close(self) -> None:
        """Release what the run started (nothing locally; the Ray engine's actors)."""

    async def worker(self, jobs: Iterator[Job]) -> None:
        for job in jobs:  # the iterator is shared: each job goes to one worker
            if self.stop:
                return
            await self.run_job(job)


async def acall_candidates(
    config: PipelineConfig,
    *,
    max_cost: float | None = None,
    progress: bool = True,
    pool: CandidatePool | None = None,
) -> CallSummary:
    """Run stage 3 (async). See the module docstring.

    With ``engine: ray`` in the config, the calls run on Ray
    (`langchain_llmrouter.pipeline.ray_engine`); the result is the same.

    Args:
        config: The pipeline config.
        max_cost: Overrides ``calls.max_cost``.
        progress: Show the progress bar (on stderr).
        pool: Candidates to call instead of building them from ``data_path.llm_data``
            (for chat models you already have; prices still come from the pool). Local
            engine only.

    Returns:
        What the run did.
    """
    if config.engine == "ray":
        from langchain_llmrouter.pipeline.ray_engine import acall_candidates_on_ray

        return await acall_candidates_on_ray(
            config, max_cost=max_cost, progress=progress, pool=pool
        )
    return await run_stage3(config, pool, max_cost=max_cost, progress=progress)


async def run_stage3(
    config: PipelineConfig,
    pool: CandidatePool | None,
    *,
    max_cost: float | None,
    progress: bool,
    run_class: type[_Run] = _Run,
) -> CallSummary:
    """Stage 3 on an engine: the pairs still to do (`rounds.pending_jobs`, the active plan's
    rounds) run by ``run_class`` (`_Run` here; the Ray engine's subclass dispatches each pair
    to an actor). Arguments as for `acall_candidates`."""
    if config.source is not None:
        load_plugins(config.plugins, base=config.source.parent)
    pool = pool if pool is not None else build_pool(config)
    models = selected_models(config, pool)
    max_cost = max_cost if max_cost is not None else config.calls.max_cost
    rows_by_split = query_rows_by_split(config, required=tuple(config.calls.splits))
    ids = embedding_ids(rows_by_split)

    summary = CallSummary()
    scorer = Scorer(config)
    stores: dict[Split, SplitStore] = {}
    run: _Run | None = None
    try:
        jobs = pending_jobs(config, scorer, models, rows_by_split, ids, stores, summary)
        plan = active_plan(config, pool, models, rows_by_split, stores, summary, jobs)
        bar = _Progress(summary.total, summary.done_before, progress)
        run = run_class(config, pool, models, stores, ids, max_cost, summary, bar, scorer)
        await run_rounds(run, jobs, plan, bar, concurrency=config.calls.max_concurrency)
    finally:
        for store in stores.values():
            store.close()
        if run is not None:
            run.close()
    return summary


def call_candidates(config: PipelineConfig, **kwargs: Any) -> CallSummary:
    """Run stage 3 (sync wrapper of `acall_candidates`; ``engine: ray`` runs it on Ray)."""
    return asyncio.run(acall_candidates(config, **kwargs))


def query_texts(config: PipelineConfig) -> list[str]:
    """The unique queries of the query files, in embedding-id order."""
    rows_by_split = query_rows_by_split(config)
    ids = embedding_ids(rows_by_split)
    texts = [""] * len(ids)
    for numbered in rows_by_split.values():
        for _, row in numbered:
            texts[ids[query_key(row)]] = row["query"]
    return texts


def write_query_embeddings(config: PipelineConfig) -> Path:
    """Embed the unique queries of the query files (ids as in the routing rows) and save them
    as ``{"embeddings": float32[n, dim]}`` in safetensors."""
    if config.engine == "ray":
        from langchain_llmrouter.pipeline.ray_engine import write_query_embeddings_on_ray

        return write_query_embeddings_on_ray(config)
    from langchain_llmrouter.embeddings import embed_texts

    texts = query_texts(config)
    embeddings = config.build_embeddings()
    vectors = embed_texts(texts, embeddings) if texts else np.zeros((0, 0), dtype=np.float32)
    return save_query_embeddings(config, vectors, embeddings)


def save_query_embeddings(config: PipelineConfig, vectors: np.ndarray, embeddings: Any) -> Path:
    """Write the query embeddings (row = embedding id) to ``data_path.query_embedding_data``
    as safetensors (atomic), named after ``embeddings`` (None: the default model)."""
    from safetensors.numpy import save_file

    from langchain_llmrouter.embeddings import DEFAULT_EMBEDDING_MODEL, embedding_name

    target = config.output(config.data_path.query_embedding_data)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.tmp")
    name = embedding_name(embeddings) if embeddings is not None else DEFAULT_EMBEDDING_MODEL
    save_file(
        {"embeddings": np.ascontiguousarray(vectors, dtype=np.float32)},
        str(tmp),
        metadata={"model": name, "count": str(len(vectors))},
    )
    os.replace(tmp, target)
    return target


def format_report(summary: CallSummary) -> str:
    left = summary.total - summary.done
    calling_s = summary.elapsed_s - summary.engine_start_s
    rate = summary.calls / calling_s if calling_s > 0 else 0.0
    lines = [
        f"pairs: {summary.done}/{summary.total} done ({summary.done_before} from earlier runs, "
        f"{summary.calls} called now at {rate:.1f} calls/s, {summary.rescored} re-scored)",
        f"spent: ${summary.spent:.4f} recorded in the routing files",
    ]
    if summary.engine_start_s:
        lines.append(f"engine: Ray actors started in {summary.engine_start_s:.1f} s")
    if summary.active:
        lines.append(summary.active)
    if summary.lost_calls:
        lines.append(
            f"lost in flight: {summary.in_flight_found} calls at the last kill "
            f"(worst case ${summary.in_flight_found_cost:.4f}); {summary.lost_calls} over all "
            f"runs (worst case ${summary.lost_cost:.4f}, counted against --max-cost)"
        )
    if summary.errors:
        lines.append(
            "errors: " + ", ".join(f"{k} × {v}" for k, v in sorted(summary.errors.items()))
        )
    if summary.stopped_at_max_cost:
        lines.append(
            f"stopped at max cost with {left} pairs left; raise --max-cost and run again to continue"
        )
    elif left:
        lines.append(
            f"{left} pairs left ({summary.failed} failed this run, see *.failures.jsonl); run again to retry them"
        )
    return "\n".join(lines)


def run_stage(config: PipelineConfig, args: argparse.Namespace) -> int:
    """Stage 3 and the query embeddings, with the report; the exit code (0 done, 3 pairs
    left)."""
    apply_engine_flags(config, args)
    if args.limit is not None:
        config.calls.limit = args.limit
    summary = call_candidates(config, max_cost=args.max_cost, progress=not args.no_progress)
    target = write_query_embeddings(config)
    print(format_report(summary))
    print(f"query embeddings -> {target}")
    return 0 if summary.complete else 3


def apply_engine_flags(config: PipelineConfig, args: argparse.Namespace) -> None:
    """Apply ``--engine`` and ``--ray-address`` (`commands.add_call_arguments`) to the config."""
    if getattr(args, "engine", None) is not None:
        config.engine = args.engine
    if getattr(args, "ray_address", None) is not None:
        config.ray_address = args.ray_address


def run(args: argparse.Namespace) -> int:
    """Run stage 3 on parsed flags (`commands.add_call_stage_arguments`); the exit code."""
    return cli_main(lambda: run_stage(load_pipeline_config(args.config), args))


def main(
    argv: list[str] | None = None,
    *,
    prog: str = "python -m langchain_llmrouter.pipeline.call_candidates",
) -> int:
    """Command line: ``--config FILE [--max-cost USD] [--limit N] [--no-progress]``; the same
    as ``llmrouter pipeline call-candidates``."""
    return run(STAGES["call-candidates"].parser(prog).parse_args(argv))


if __name__ == "__main__":
    raise SystemExit(main())
