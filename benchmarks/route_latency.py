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
from langchain_core.messages import HumanMessage

from langchain_llmrouter import CandidatePool, RouterChatModel, RoutingDataset, create_router
from langchain_llmrouter.embeddings import embed_texts
from langchain_llmrouter.static_embeddings import StaticEmbeddings
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


def measure(name: str, embeddings: Any, train: RoutingDataset, test: RoutingDataset) -> dict:
    """Every figure for one featuriser."""
    router = create_router("knnrouter", k=50, embeddings=embeddings)
    router.fit(train, query_embeddings=embed_texts(train.queries, embeddings))
    decisions = router.route_batch(
        test.queries, query_embeddings=embed_texts(test.queries, embeddings)
    )
    chosen = [test.candidates.index(d.model) for d in decisions]
    q0 = float(np.mean(test.performance[np.arange(len(chosen)), chosen]))
    for query in test.queries[:20]:  # load the model and warm the caches
        router.route(query)
    single = []
    for query in test.queries:
        start = time.perf_counter()
        router.route(query)  # the featuriser runs on every call (no disk cache here)
        single.append(time.perf_counter() - start)
    start = time.perf_counter()
    router.route_batch(test.queries)
    batch_s = time.perf_counter() - start
    with tempfile.TemporaryDirectory() as tmp:
        router.save(Path(tmp) / "router")
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
    cold = min(colds, key=lambda c: c["seconds"])
    return {
        "featuriser": name,
        "router": router,
        "q0": q0,
        "p50_ms": float(np.percentile(single, 50) * 1000),
        "p99_ms": float(np.percentile(single, 99) * 1000),
        "batch_qps": len(test.queries) / batch_s,
        "cold_s": cold["seconds"],
        "cold_rss_mb": cold["rss_mb"],
        "cold_heavy": cold["heavy"],
    }


def chat_overhead(rows: list[dict], data: Path, prompts: list[str], calls: int) -> None:
    """RouterChatModel.invoke minus ChatOpenAI.invoke on the chosen candidate, interleaved."""
    with FakeOpenAIServer() as server:
        pool = CandidatePool.from_json(data / "default_llm.json", api_endpoint=server.base_url)
        models = {
            row["featuriser"]: RouterChatModel(router=row["router"], candidates=pool)
            for row in rows
        }
        timings: dict[str, list[float]] = {name: [] for name in models}
        direct: list[float] = []
        picks = [next(iter(models.values())).decide([HumanMessage(p)]).model for p in prompts]
        for prompt, pick in list(zip(prompts, picks, strict=True))[:20]:
            pool.chat_model(pick).invoke(prompt)
            for llm in models.values():
                llm.invoke(prompt)
        for i in range(calls):
            prompt, pick = prompts[i % len(prompts)], picks[i % len(prompts)]
            start = time.perf_counter()
            pool.chat_model(pick).invoke(prompt)
            direct.append(time.perf_counter() - start)
            for name, llm in models.items():
                start = time.perf_counter()
                llm.invoke(prompt)
                timings[name].append(time.perf_counter() - start)
    base = statistics.median(direct)
    print(f"\nChatOpenAI.invoke, local test server: median {base * 1000:.2f} ms ({calls} calls)")
    for row in rows:
        routed = statistics.median(timings[row["featuriser"]])
        row["chat_overhead_ms"] = (routed - base) * 1000
        print(
            f"RouterChatModel.invoke, {row['featuriser']:<7}: median {routed * 1000:.2f} ms "
            f"(+{row['chat_overhead_ms']:.2f} ms)"
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
        measure("minilm", None, train, test),
        measure("static", StaticEmbeddings(), train, test),
    ]
    chat_overhead(rows, args.data, [q[:300] for q in test.queries], args.calls)
    base = rows[0]
    print("\nfeaturiser   Q0     p50 ms  p99 ms  batch q/s  cold s  cold RSS MB  torch loaded")
    for row in rows:
        print(
            f"{row['featuriser']:<10} {row['q0']:.3f} {row['p50_ms']:8.3f} {row['p99_ms']:7.3f} "
            f"{row['batch_qps']:10.0f} {row['cold_s']:7.2f} {row['cold_rss_mb']:12.0f}  "
            f"{'yes' if row['cold_heavy'] else 'no'}"
        )
    static = rows[1]
    print(
        f"\nstatic / minilm: p50 {static['p50_ms'] / base['p50_ms']:.4f}x, batch "
        f"{static['batch_qps'] / base['batch_qps']:.0f}x, cold start "
        f"{static['cold_s'] / base['cold_s']:.2f}x, RSS {static['cold_rss_mb'] / base['cold_rss_mb']:.2f}x, "
        f"Q0 {static['q0'] - base['q0']:+.3f}"
    )


if __name__ == "__main__":
    main()
