"""Routing latency by featuriser: MiniLM against the static table, side by side in one run.

For knnrouter (k=50, fitted on routerdc_train.json) with each featuriser it prints: the
quality Q0 on the 500 routerdc_test queries, one routing decision's p50/p99 with the
featuriser included, batched throughput (the 500 queries in one call), a fresh process's
time to its first decision with its peak RSS and whether it imported torch, and
`RouterChatModel.invoke` against `ChatOpenAI.invoke` on the same local server (interleaved,
median). Ratios are against MiniLM measured in the same run.

Usage: python benchmarks/route_latency.py [--calls 200] [--data ../shared/data/llmrouter_example]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path
from typing import Any

import numpy as np

from langchain_llmrouter import (
    CandidatePool,
    RouterChatModel,
    RoutingDataset,
    create_router,
    load_router,
)
from langchain_llmrouter.embeddings import builtin_embeddings, embed_texts
from langchain_llmrouter.testing import FakeOpenAIServer

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "llmrouter_example"

COLD_START = textwrap.dedent(
    """
    import json, sys, time
    start = time.perf_counter()
    from langchain_llmrouter import load_router
    router = load_router(sys.argv[1])
    router.route("Write a Python function that returns the n-th Fibonacci number.")
    seconds = time.perf_counter() - start
    heavy = [m for m in ("torch", "sentence_transformers", "sklearn") if m in sys.modules]
    # VmHWM: this process's peak RSS (ru_maxrss would carry the parent's over fork/exec).
    status = open("/proc/self/status").read().split("VmHWM:")[1].split()[0]
    rss = int(status) / 1024
    print(json.dumps({"seconds": seconds, "rss_mb": rss, "heavy": heavy}))
    """
)


def measure(
    name: str, embedding: str, params: dict[str, Any], train: RoutingDataset, test: RoutingDataset
) -> dict:
    """Every figure for one featuriser and kNN setting."""
    embeddings = builtin_embeddings(embedding)
    router = create_router("knnrouter", k=50, embeddings=embeddings, **params)
    router.fit(train, query_embeddings=embed_texts(train.queries, embeddings))
    decisions = router.route_batch(
        test.queries, query_embeddings=embed_texts(test.queries, embeddings)
    )
    chosen = [test.candidates.index(d.model) for d in decisions]
    q0 = float(np.mean(test.performance[np.arange(len(chosen)), chosen]))
    with tempfile.TemporaryDirectory() as tmp:
        router.save(Path(tmp) / "router")
        # Timed as a server runs it: loaded from disk, with a featuriser that has seen none
        # of the test queries (the static one caches token ids word by word).
        served = load_router(Path(tmp) / "router")
        for query in train.queries[:20]:  # load the model and warm the code paths
            served.route(query)
        single = []
        for query in test.queries:
            start = time.perf_counter()
            served.route(query)  # the featuriser runs on every call (no disk cache here)
            single.append(time.perf_counter() - start)
        batched = load_router(Path(tmp) / "router")
        batched.route_batch(train.queries[:20])
        start = time.perf_counter()
        batched.route_batch(test.queries)
        batch_s = time.perf_counter() - start
        colds = []
        for _ in range(3):
            proc = subprocess.run(
                [sys.executable, "-c", COLD_START, str(Path(tmp) / "router")],
                capture_output=True,
                text=True,
                timeout=300,
                check=True,
            )
            colds.append(json.loads(proc.stdout.strip().splitlines()[-1]))
        fresh = load_router(Path(tmp) / "router")  # for the chat arm: no words seen yet
    cold = min(colds, key=lambda c: c["seconds"])
    return {
        "featuriser": name,
        "router": fresh,
        "q0": q0,
        "p50_ms": float(np.percentile(single, 50) * 1000),
        "p99_ms": float(np.percentile(single, 99) * 1000),
        "batch_qps": len(test.queries) / batch_s,
        "cold_s": cold["seconds"],
        "cold_rss_mb": cold["rss_mb"],
        "cold_heavy": cold["heavy"],
    }


def chat_overhead(rows: list[dict], data: Path, prompts: list[str], calls: int) -> None:
    """RouterChatModel.invoke minus ChatOpenAI.invoke on the same candidate, interleaved.

    Each featuriser is measured in its own alternating run of direct and routed calls, as a
    process serving that featuriser alone would see them (a MiniLM forward pass between the
    calls would empty the caches the static path reads).
    """
    with FakeOpenAIServer() as server:
        pool = CandidatePool.from_json(data / "default_llm.json", api_endpoint=server.base_url)
        picks = [rows[0]["router"].route(p).model for p in prompts]
        print(f"\n{calls} calls per arm, alternating, to a local test server (medians)")
        for row in rows:
            llm = RouterChatModel(router=row["router"], candidates=pool)
            for prompt, pick in zip(prompts[-20:], picks[-20:], strict=True):  # warm-up
                pool.chat_model(pick).invoke(prompt)
                llm.invoke(prompt)
            direct, routed = [], []
            for i in range(calls):
                prompt, pick = prompts[i % len(prompts)], picks[i % len(prompts)]
                start = time.perf_counter()
                pool.chat_model(pick).invoke(prompt)
                direct.append(time.perf_counter() - start)
                start = time.perf_counter()
                llm.invoke(prompt)
                routed.append(time.perf_counter() - start)
            base, median = statistics.median(direct), statistics.median(routed)
            row["chat_overhead_ms"] = (median - base) * 1000
            print(
                f"{row['featuriser']:<10} ChatOpenAI.invoke {base * 1000:.2f} ms, "
                f"RouterChatModel.invoke {median * 1000:.2f} ms (+{row['chat_overhead_ms']:.2f} ms)"
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--calls", type=int, default=200, help="chat calls per arm")
    args = parser.parse_args()
    pool = CandidatePool.from_json(args.data / "default_llm.json")
    train = RoutingDataset.from_file(args.data / "routerdc_train.json", candidates=pool)
    test = RoutingDataset.from_file(args.data / "routerdc_test.json", candidates=pool)
    print(f"machine: {os.cpu_count()} cores; knnrouter (k=50) on {len(train)} train queries")
    rows = [
        measure(label, embedding, params, train, test)
        for label, embedding, params in (
            ("minilm", "all-MiniLM-L6-v2", {}),
            ("static", "static-minilm-l6-v2", {}),
            ("static-64", "static-minilm-l6-v2", {"dims": 64}),
        )
    ]
    if args.calls > len(test.queries) - 20:
        parser.error(f"--calls: at most {len(test.queries) - 20} (the last 20 queries warm up)")
    chat_overhead(rows, args.data, [q[:300] for q in test.queries], args.calls)
    base = rows[0]
    print("\nfeaturiser   Q0     p50 ms  p99 ms  batch q/s  cold s  cold RSS MB  torch loaded")
    for row in rows:
        print(
            f"{row['featuriser']:<10} {row['q0']:.3f} {row['p50_ms']:8.3f} {row['p99_ms']:7.3f} "
            f"{row['batch_qps']:10.0f} {row['cold_s']:7.2f} {row['cold_rss_mb']:12.0f}  "
            f"{'yes' if row['cold_heavy'] else 'no'}"
        )
    for row in rows[1:]:
        print(
            f"{row['featuriser']} / {base['featuriser']}: p50 {row['p50_ms'] / base['p50_ms']:.4f}x, "
            f"batch {row['batch_qps'] / base['batch_qps']:.0f}x, cold start "
            f"{row['cold_s'] / base['cold_s']:.2f}x, RSS "
            f"{row['cold_rss_mb'] / base['cold_rss_mb']:.2f}x, Q0 {row['q0'] - base['q0']:+.3f}"
        )


if __name__ == "__main__":
    main()
