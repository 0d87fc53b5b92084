"""Fault-injection benchmark: RouterChatModel under provider faults, in four calling styles.

A local FakeOpenAIServer (127.0.0.1 only) injects provider faults at a seeded rate: 429 with
Retry-After, 500, 503 "overloaded", an answer slower than the client timeout, and TCP resets
mid-body and mid-stream (after the role chunk, or after one or two text chunks). A
RouterChatModel with a kNN router (k=50, fitted on routerdc_train.json) answers the RouterDC
test questions through it, with the candidates' own retries limited to one, in each mode:

  * invoke:  a thread pool calling ``llm.invoke``;
  * abatch:  ``await llm.abatch(questions, config={"max_concurrency": C})``;
  * stream:  a thread pool consuming ``llm.stream``;
  * astream: asyncio tasks behind a semaphore consuming ``llm.astream``.

For each (fault rate, mode) it prints the requests, the failed ones (an exception reached
the caller, or a stream ended without text; "mid" counts those that failed after a chunk
had arrived, "txt" those that failed after text had arrived, which no fallback can rescue
without splicing two answers), the answers that fell back, wall time, p50/p99 latency, the
faults injected, and the cost the router reported (sum of
``response_metadata["routing"]["actual_cost"]``) against what the provider billed (the
server's recorded usage of every request, failed ones included, at the candidates' prices).
Latency in ``abatch`` mode runs from an input's first chat-model callback to its last, so it
includes routing only where routing happens inside the model's run. The server runs in this
process, so on a small machine the figures include its share of the CPU.

Usage: python benchmarks/fault_injection.py [--rates 0.1,0.3] [--requests 500]
       [--concurrency 50] [--train-limit N] [--kinds 429,500,...] [--json out.json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import math
import os
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from functools import reduce
from pathlib import Path
from typing import Any
from uuid import UUID

import numpy as np
from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.messages import BaseMessage

from langchain_llmrouter import (
    APIKeys,
    CandidatePool,
    RouterChatModel,
    RoutingDataset,
    create_router,
)
from langchain_llmrouter.testing import FAULT_KINDS, FakeOpenAIServer, FaultInjection, ServedCall

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "llmrouter_example"
MODES = ("invoke", "abatch", "stream", "astream")


@dataclass
class Outcome:
    """What one request gave the caller."""

    latency_s: float
    error: str | None = None  # the exception type that reached the caller
    empty: bool = False  # finished without text
    mid_stream: bool = False  # failed after at least one chunk had arrived
    after_text: bool = False  # failed after text had arrived
    fallback: bool = False
    actual_cost: float | None = None

    @property
    def failed(self) -> bool:
        return self.error is not None or self.empty


@dataclass
class Row:
    """The figures of one (rate, mode) run."""

    rate: float
    mode: str
    requests: int
    failed: int
    failed_mid_stream: int
    failed_after_text: int
    fallbacks: int
    wall_s: float
    p50_ms: float
    p99_ms: float
    faults: dict[str, int]
    errors: dict[str, int]
    router_cost: float
    billed_cost: float
    cost_ratio: float
    no_cost: int = 0  # successful answers whose routing metadata had no actual_cost
    server_calls: int = 0
    extra: dict[str, Any] = field(default_factory=dict)


def _text(message: BaseMessage) -> str:
    content = message.content
    if isinstance(content, str):
        return content
    return "".join(
        part if isinstance(part, str) else str(part.get("text") or "")
        for part in content
        if isinstance(part, str | dict)
    )


def _routing(message: BaseMessage | None) -> dict[str, Any]:
    if message is None:
        return {}
    routing = message.response_metadata.get("routing")
    return routing if isinstance(routing, dict) else {}


def _from_message(message: BaseMessage, latency_s: float) -> Outcome:
    routing = _routing(message)
    return Outcome(
        latency_s,
        empty=not _text(message).strip(),
        fallback=bool(routing.get("fallback")),
        actual_cost=routing.get("actual_cost"),
    )


def _from_chunks(chunks: list[BaseMessage], latency_s: float, error: str | None) -> Outcome:
    """Merge a stream's chunks with ``+``; the decision is read from the first chunk with one."""
    first = next((_routing(c) for c in chunks if "fallback" in _routing(c)), {})
    merged: BaseMessage | None = None
    cost = None
    if chunks:
        try:
            merged = reduce(lambda a, b: a + b, chunks)  # type: ignore[operator]
            cost = _routing(merged).get("actual_cost")
        except (TypeError, ValueError):
            # Routing metadata that does not merge: take the last cost any chunk carried.
            costs = [_routing(c).get("actual_cost") for c in chunks]
            cost = next((c for c in reversed(costs) if c is not None), None)
    text = "".join(_text(c) for c in chunks)
    return Outcome(
        latency_s,
        error=error,
        empty=not text.strip(),
        mid_stream=error is not None and bool(chunks),
        after_text=error is not None and bool(text.strip()),
        fallback=bool(first.get("fallback")),
        actual_cost=cost,
    )


def _threaded(
    questions: list[str], concurrency: int, one: Callable[[str], Outcome]
) -> list[Outcome]:
    with ThreadPoolExecutor(max_workers=concurrency) as pool:
        return list(pool.map(one, questions))


def run_invoke(llm: RouterChatModel, questions: list[str], concurrency: int) -> list[Outcome]:
    def one(question: str) -> Outcome:
        start = time.perf_counter()
        try:
            message = llm.invoke(question)
        except Exception as exc:
            return Outcome(time.perf_counter() - start, error=type(exc).__name__)
        return _from_message(message, time.perf_counter() - start)

    return _threaded(questions, concurrency, one)


def run_stream(llm: RouterChatModel, questions: list[str], concurrency: int) -> list[Outcome]:
    def one(question: str) -> Outcome:
        chunks: list[BaseMessage] = []
        start = time.perf_counter()
        try:
            for chunk in llm.stream(question):
                chunks.append(chunk)
        except Exception as exc:
            return _from_chunks(chunks, time.perf_counter() - start, type(exc).__name__)
        return _from_chunks(chunks, time.perf_counter() - start, None)

    return _threaded(questions, concurrency, one)


class _Timer(BaseCallbackHandler):
    """Times one abatch input: its first chat-model start to its last end or error.

    ``abatch`` returns all answers at once, so per-request latency comes from callbacks.
    """

    run_inline = True  # called in the event loop, not in an executor: timestamps stay exact

    def __init__(self) -> None:
        self.start: float | None = None
        self.end: float | None = None

    def on_chat_model_start(self, *args: Any, run_id: UUID, **kwargs: Any) -> None:
        self.start = self.start or time.perf_counter()

    def on_llm_end(self, *args: Any, run_id: UUID, **kwargs: Any) -> None:
        self.end = time.perf_counter()

    def on_llm_error(self, *args: Any, run_id: UUID, **kwargs: Any) -> None:
        self.end = time.perf_counter()

    def latency(self, fallback: float) -> float:
        if self.start is None or self.end is None:
            return fallback
        return self.end - self.start


async def run_abatch(llm: RouterChatModel, questions: list[str], concurrency: int) -> list[Outcome]:
    timers = [_Timer() for _ in questions]
    # A config per input only to attach each input's timer; max_concurrency is the first's.
    configs: list[Any] = [{"max_concurrency": concurrency, "callbacks": [t]} for t in timers]
    start = time.perf_counter()
    results = await llm.abatch(questions, config=configs, return_exceptions=True)
    wall = time.perf_counter() - start
    outcomes = []
    for result, timer in zip(results, timers, strict=True):
        latency = timer.latency(fallback=math.nan)
        if isinstance(result, BaseException):
            outcomes.append(Outcome(latency, error=type(result).__name__))
        else:
            outcomes.append(_from_message(result, latency))
    if all(math.isnan(o.latency_s) for o in outcomes):  # no callbacks fired: wall time only
        for outcome in outcomes:
            outcome.latency_s = wall
    return outcomes


async def run_astream(
    llm: RouterChatModel, questions: list[str], concurrency: int
) -> list[Outcome]:
    gate = asyncio.Semaphore(concurrency)

    async def one(question: str) -> Outcome:
        async with gate:
            chunks: list[BaseMessage] = []
            start = time.perf_counter()
            try:
                async for chunk in llm.astream(question):
                    chunks.append(chunk)
            except Exception as exc:
                return _from_chunks(chunks, time.perf_counter() - start, type(exc).__name__)
            return _from_chunks(chunks, time.perf_counter() - start, None)

    return await asyncio.gather(*(one(q) for q in questions))


def billed_cost(pool: CandidatePool, calls: Iterable[ServedCall]) -> float:
    """Dollars the provider billed: every request's recorded usage at its candidate's prices."""
    by_model = {pool[name].model: name for name in reversed(pool.names)}
    total = 0.0
    for call in calls:
        if call.usage and call.model in by_model:
            total += pool[by_model[call.model]].estimate_cost(
                call.usage["prompt_tokens"], call.usage["completion_tokens"]
            )
    return total


def percentile_ms(samples: list[float], q: float) -> float:
    values = [s for s in samples if not math.isnan(s)]
    return float(np.percentile(np.array(values) * 1000.0, q)) if values else math.nan


def run_mode(
    mode: str, llm: RouterChatModel, questions: list[str], concurrency: int
) -> list[Outcome]:
    if mode == "invoke":
        return run_invoke(llm, questions, concurrency)
    if mode == "stream":
        return run_stream(llm, questions, concurrency)
    if mode == "abatch":
        return asyncio.run(run_abatch(llm, questions, concurrency))
    return asyncio.run(run_astream(llm, questions, concurrency))


def measure(
    rate: float,
    mode: str,
    llm: RouterChatModel,
    server: FakeOpenAIServer,
    faults: FaultInjection,
    questions: list[str],
    concurrency: int,
) -> Row:
    server.reset()
    server.set_faults(faults)  # restarts the seeded sequence: every mode draws the same faults
    start = time.perf_counter()
    outcomes = run_mode(mode, llm, questions, concurrency)
    wall = time.perf_counter() - start
    server.set_faults(None)
    calls = server.calls
    router_cost = sum(o.actual_cost or 0.0 for o in outcomes if not o.failed)
    billed = billed_cost(llm.pool, calls)
    errors: dict[str, int] = {}
    for outcome in outcomes:
        if outcome.failed:
            key = outcome.error or "empty"
            errors[key] = errors.get(key, 0) + 1
    latencies = [o.latency_s for o in outcomes]
    return Row(
        rate=rate,
        mode=mode,
        requests=len(outcomes),
        failed=sum(o.failed for o in outcomes),
        failed_mid_stream=sum(o.failed and o.mid_stream for o in outcomes),
        failed_after_text=sum(o.failed and o.after_text for o in outcomes),
        fallbacks=sum(o.fallback for o in outcomes),
        wall_s=wall,
        p50_ms=percentile_ms(latencies, 50),
        p99_ms=percentile_ms(latencies, 99),
        faults=dict(sorted(server.fault_counts().items())),
        errors=errors,
        router_cost=router_cost,
        billed_cost=billed,
        cost_ratio=router_cost / billed if billed else math.nan,
        no_cost=sum(o.actual_cost is None for o in outcomes if not o.failed),
        server_calls=len(calls),
    )


def print_header() -> None:
    print(
        f"{'rate':>5} {'mode':<8} {'reqs':>5} {'failed':>6} {'mid':>4} {'txt':>4} {'fallbk':>6} "
        f"{'wall s':>7} {'p50 ms':>7} {'p99 ms':>7} {'router $':>10} {'billed $':>10} "
        f"{'ratio':>6}  faults injected"
    )


def print_row(row: Row) -> None:
    faults = " ".join(f"{k}:{v}" for k, v in row.faults.items()) or "-"
    print(
        f"{row.rate:>5.2f} {row.mode:<8} {row.requests:>5} {row.failed:>6} "
        f"{row.failed_mid_stream:>4} {row.failed_after_text:>4} {row.fallbacks:>6} "
        f"{row.wall_s:>7.1f} {row.p50_ms:>7.0f} {row.p99_ms:>7.0f} "
        f"{row.router_cost:>10.6f} {row.billed_cost:>10.6f} "
        f"{row.cost_ratio:>6.3f}  {faults}",
        flush=True,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--rates", default="0.1,0.3", help="comma-separated fault rates")
    parser.add_argument("--modes", default=",".join(MODES), help="comma-separated modes")
    parser.add_argument("--requests", type=int, default=500, help="requests per mode")
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--train-limit", type=int, default=None, help="fit on the first N")
    parser.add_argument("--timeout", type=float, default=2.0, help="client timeout, seconds")
    parser.add_argument("--retry-after", type=float, default=1.0, help="429/503 Retry-After")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--kinds", default=",".join(FAULT_KINDS), help="comma-separated fault kinds to inject"
    )
    parser.add_argument(
        "--sse-text-chunks",
        default="0",
        help="text chunks a reset_sse fault sends before the reset: a number, or 'drawn' "
        "(0, 1 or 2 at random). 0, the default, drops the connection before the first token, "
        "the case a fallback can rescue; after text has gone out a stream raises "
        "PartialStreamError instead of splicing two answers",
    )
    parser.add_argument("--json", type=Path, default=None, help="also write the rows here")
    args = parser.parse_args()
    sse_text_chunks = None if args.sse_text_chunks == "drawn" else int(args.sse_text_chunks)
    rates = [float(r) for r in args.rates.split(",") if r.strip()]
    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    kinds = tuple(k.strip() for k in args.kinds.split(",") if k.strip())
    if unknown := set(kinds) - set(FAULT_KINDS):
        parser.error(f"unknown fault kinds {sorted(unknown)}; choose from {FAULT_KINDS}")
    if unknown := set(modes) - set(MODES):
        parser.error(f"unknown modes {sorted(unknown)}; choose from {MODES}")
    if not 1 <= args.requests <= 5000 or not 1 <= args.concurrency <= 200:
        parser.error("--requests must be in 1..5000 and --concurrency in 1..200")
    # Every fallback logs a warning; hundreds of them would bury the table.
    logging.getLogger("langchain_llmrouter").setLevel(logging.ERROR)

    test = json.loads((args.data / "routerdc_test.json").read_text(encoding="utf-8"))
    questions = [str(row["question"]) for row in test]
    questions = [questions[i % len(questions)] for i in range(args.requests)]
    with FakeOpenAIServer() as server:
        pool = CandidatePool.from_json(
            args.data / "default_llm.json",
            api_endpoint=server.base_url,
            api_keys=APIKeys.parse(None),
            chat_model_kwargs={"max_retries": 1, "timeout": args.timeout},
        )
        train = RoutingDataset.from_file(args.data / "routerdc_train.json", candidates=pool)
        if args.train_limit:
            train = train.head(args.train_limit)
        router = create_router("knnrouter", k=50).fit(train)
        router.route_batch(questions)  # embeds the questions once: every mode reads the cache
        llm = RouterChatModel(router=router, candidates=pool)
        print(
            f"machine: {os.cpu_count()} cores; knnrouter (k=50) on {len(train)} train queries; "
            f"{args.requests} requests x {args.concurrency} concurrent per mode; client timeout "
            f"{args.timeout:g} s, max_retries=1; slow fault {args.timeout + 1:g} s; "
            f"Retry-After {args.retry_after:g} s; seed {args.seed}; reset_sse text chunks "
            f"{args.sse_text_chunks}"
        )
        print_header()
        rows = []
        for rate in rates:
            faults = FaultInjection(
                rate,
                kinds=kinds,
                seed=args.seed,
                slow_s=args.timeout + 1,
                retry_after_s=args.retry_after,
                sse_text_chunks=sse_text_chunks,
            )
            for mode in modes:
                row = measure(rate, mode, llm, server, faults, questions, args.concurrency)
                print_row(row)
                rows.append(row)
    print(
        "\nfailed: an exception reached the caller or a stream ended without text; of those, "
        "mid: after a chunk had arrived, txt: after text had arrived;\nratio: router-reported "
        "actual_cost / provider-billed cost (usage of every request the server worked on, "
        "failed ones too)."
    )
    for row in rows:
        if row.failed:
            print(f"  {row.rate:.2f} {row.mode:<8} errors: {row.errors}")
        if row.no_cost:
            print(f"  {row.rate:.2f} {row.mode:<8} answers without actual_cost: {row.no_cost}")
    if args.json:
        args.json.write_text(json.dumps([asdict(r) for r in rows], indent=2) + "\n")
        print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
