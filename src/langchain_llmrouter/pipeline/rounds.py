"""Which (query, candidate) pairs stage 3 calls, and in which rounds; both engines run them here.

`pending_jobs` lists the pairs not yet in the routing files; with ``calls.strategy: active``
`active_plan` takes the training pairs out and hands them back round by round
(`pipeline.active`); `run_rounds` runs the rounds on an engine's workers (the local engine's
asyncio workers, or the Ray engine's dispatchers) until they are done or ``--max-cost`` stops
them.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from langchain_llmrouter.errors import DataFormatError, UnknownNameError
from langchain_llmrouter.pipeline.active import ActivePlan
from langchain_llmrouter.pipeline.config import PipelineConfig, Split
from langchain_llmrouter.pipeline.store import SplitStore, query_key

if TYPE_CHECKING:
    from langchain_llmrouter.candidates import CandidatePool
    from langchain_llmrouter.pipeline.answers import Scorer
    from langchain_llmrouter.pipeline.call_candidates import CallSummary

logger = logging.getLogger("langchain_llmrouter.pipeline.call_candidates")


class Engine(Protocol):
    """What `run_rounds` needs of an engine's run state."""

    summary: CallSummary
    stop: bool

    async def worker(self, jobs: Iterator[Job]) -> None: ...

    def before_round(self) -> None: ...

    def spent(self) -> float: ...


class _Bar(Protocol):
    def close(self) -> None: ...


@dataclass
class Job:
    """One (query, candidate) pair to call: the split, the query row, the candidate."""

    split: Split
    row: dict[str, Any]
    model: str


def pending_jobs(
    config: PipelineConfig,
    scorer: Scorer,
    models: list[str],
    rows_by_split: Mapping[str, list[tuple[int, dict[str, Any]]]],
    ids: dict[str, int],
    stores: dict[Split, SplitStore],
    summary: CallSummary,
) -> list[Job]:
    """The (query, candidate) pairs still to do, over the configured splits; both engines
    take their jobs from here. Opens each split's store into ``stores`` (the caller closes
    them), checks every row's metric before any call, and counts the pairs in ``summary``
    (its ``done`` starts at ``done_before``); the journals' lost calls are noted too.

    Raises:
        DataFormatError: a row whose metric is unknown (naming file, line and field).
    """
    jobs: list[Job] = []
    for split in config.calls.splits:
        numbered = rows_by_split[split][: config.calls.limit]
        for line, row in numbered:  # unknown metrics fail before any call is made
            try:
                scorer.metric(scorer.metric_name(row))
            except (ValueError, UnknownNameError) as exc:
                raise DataFormatError(
                    str(exc), path=config.query_file(split), line=line, field="metric"
                ) from None
        store = stores[split] = SplitStore(config.output(config.routing_file(split))).open()
        store.sync_embedding_ids(ids)
        for _, row in numbered:
            key = query_key(row)
            for model in models:
                summary.total += 1
                if (key, model) in store.done:
                    summary.done_before += 1
                else:
                    jobs.append(Job(split, row, model))
    summary.done = summary.done_before
    note_lost_calls(stores, summary)
    return jobs


def active_plan(
    config: PipelineConfig,
    pool: CandidatePool,
    models: list[str],
    rows_by_split: Mapping[str, list[tuple[int, dict[str, Any]]]],
    stores: Mapping[Split, SplitStore],
    summary: CallSummary,
    jobs: list[Job],
) -> ActivePlan | None:
    """With ``calls.strategy: active``, the training split's plan (`pipeline.active`): the
    training jobs leave ``jobs`` (the plan hands them out round by round, `job_rounds`) and
    ``summary.total`` counts the pair budget instead of every training pair. None otherwise."""
    if config.calls.strategy != "active":
        return None
    rows = [row for _, row in rows_by_split["train"][: config.calls.limit]]
    store = stores["train"]
    plan = ActivePlan(config, rows, models, store, pool)
    jobs[:] = [job for job in jobs if job.split != "train"]
    counted = sum((query_key(row), model) in store.done for row in rows for model in models)
    known = plan.held() - len(plan.pending())
    plan.target = max(plan.budget_pairs, plan.held())
    summary.total += plan.target - len(rows) * len(models)
    summary.done_before += known - counted
    summary.done += known - counted
    return plan


def job_rounds(jobs: list[Job], plan: ActivePlan | None) -> Iterator[list[Job]]:
    """The jobs in rounds: with a plan, its training rounds (each chosen when the caller asks
    for the next, i.e. after the last one finished), then ``jobs``; otherwise ``jobs``."""
    if plan is not None:
        while batch := plan.next_pairs():
            yield [Job("train", row, model) for row, model in batch]
    if jobs or plan is None:
        yield jobs


def end_active_plan(plan: ActivePlan, summary: CallSummary, *, stopped: bool) -> None:
    """Settle the summary of an active run: the pairs in scope are those known or chosen
    (plus the unspent pair budget if the run ``stopped`` early); closes the plan."""
    target = max(plan.held(), plan.budget_pairs) if stopped else plan.held()
    summary.total += target - plan.target
    summary.active = plan.describe()
    plan.close()


def note_lost_calls(stores: Mapping[Split, SplitStore], summary: CallSummary) -> None:
    """Put what the journals say about calls lost in flight in the summary, and log it."""
    for store in stores.values():
        journal = store.inflight
        summary.in_flight_found += len(journal.found)
        summary.in_flight_found_cost += journal.found_cost
        summary.lost_calls += journal.lost_calls
        summary.lost_cost += journal.lost_cost
    if summary.in_flight_found:
        logger.warning(
            "the last run was killed with %d calls in flight (worst case $%.4f); they may have "
            "been paid for and are called again; --max-cost counts $%.4f lost over all runs",
            summary.in_flight_found,
            summary.in_flight_found_cost,
            summary.lost_cost,
        )


async def run_rounds(
    run: Engine,
    jobs: list[Job],
    plan: ActivePlan | None,
    bar: _Bar,
    *,
    concurrency: int,
) -> None:
    """Run the jobs round by round (`job_rounds`) on ``concurrency`` workers at most, until
    they are done or the run stops (``--max-cost``); then fill in the summary's time and
    spend, close the progress bar and settle an active plan.

    Args:
        run: The engine's run state.
        jobs: From `pending_jobs` (and `active_plan`).
        plan: The active plan, or None.
        bar: The progress bar.
        concurrency: Workers at once.
    """
    summary = run.summary
    started = time.perf_counter()
    try:
        for batch in job_rounds(jobs, plan):
            if not batch:
                continue
            run.before_round()  # the Ray engine starts its actors before the first
            shared = iter(batch)  # each job goes to one worker
            await asyncio.gather(*(run.worker(shared) for _ in range(min(concurrency, len(batch)))))
            if run.stop:
                break
    finally:
        summary.elapsed_s = time.perf_counter() - started
        summary.spent = run.spent()
        bar.close()
        if plan is not None:
            end_active_plan(plan, summary, stopped=run.stop)
