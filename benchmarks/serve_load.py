"""Load on ``llmrouter serve``: concurrent streaming clients, with and without provider faults.

One run, the same requests (streamed, ``include_usage``) in every phase, each from
``--concurrency`` clients that each hold one keep-alive connection and send their next request
as soon as the last one ends:

1. ``direct``: straight to the local test server (no faults): the baseline latency;
2. ``served``: through ``llmrouter serve`` (no faults): the added latency is p50/p99 of 2 - 1;
3. ``faults``: through the server while the test server injects ``--fault-rate`` faults
   (429, 500, 503, slow answers past the candidate's timeout, resets before the first token).

A failed request is a non-200 answer, an error event, a stream without ``[DONE]`` or a client
error; the report counts each kind (status and body, event text, exception chain).

Phases 2 and 3 run once per worker count in ``--workers`` (``1,2`` measures both in one run),
each against a fresh ``python -m langchain_llmrouter.serve`` subprocess over ``smallest_llm``
(no featuriser, so the figures are the serving layer's own). Then a routing check: prompts
sent to ``router-spread`` (a seeded ``randomrouter``, which spreads them over every
candidate), each four times on fresh connections, must get the same candidate every time and
from every server.

    .venv/bin/python benchmarks/serve_load.py --requests 2000 --concurrency 200 --workers 1,2
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import ssl
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import numpy as np

from langchain_llmrouter.testing import FakeOpenAIServer, FaultInjection

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data" / "llmrouter_example"
MODEL_ID = "qwen/qwen2.5-7b-instruct"
"""The candidate ``smallest_llm`` picks: the direct phase calls it."""


async def _one(client: httpx.AsyncClient, url: str, model: str, i: int) -> tuple[str | None, float]:
    """One streamed request: (None, seconds) when it succeeded, else (what failed, seconds)."""
    body = {
        "model": model,
        "messages": [{"role": "user", "content": f"Question {i}: what is {i} + {i}?"}],
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    started = time.perf_counter()
    try:
        async with client.stream("POST", url, json=body) as response:
            if response.status_code != 200:
                text = (await response.aread()).decode(errors="replace")
                return f"HTTP {response.status_code}: {text[:300]}", time.perf_counter() - started
            done, error = False, None
            async for line in response.aiter_lines():
                if line == "data: [DONE]":
                    done = True
                elif line.startswith('data: {"error"'):
                    error = line[len("data: ") :][:300]
            if error is not None:
                return f"error event: {error}", time.perf_counter() - started
            if not done:
                return "stream ended without [DONE]", time.perf_counter() - started
            return None, time.perf_counter() - started
    except httpx.HTTPError as exc:
        return f"client {_chain(exc)}"[:300], time.perf_counter() - started


def _chain(exc: BaseException) -> str:
    """An exception and its causes, as ``Class: message <- Class: message``."""
    parts = []
    seen: BaseException | None = exc
    while seen is not None and len(parts) < 4:
        parts.append(f"{type(seen).__name__}: {seen}".rstrip(": "))
        seen = seen.__cause__ or seen.__context__
    return " <- ".join(parts)


async def _phase(url: str, model: str, requests: int, concurrency: int) -> dict[str, Any]:
    """``requests`` streamed requests from ``concurrency`` clients, each on its own connection.

    Each client sends its next request as soon as its last one ends, over one keep-alive
    connection (as an SDK client does). One pool shared by every client would measure
    httpcore instead: its pool scans every idle connection for every queued request, which
    at 200 connections costs the load generator more CPU than the server spends.
    """
    indices = iter(range(requests))
    results: list[tuple[str | None, float]] = []
    limits = httpx.Limits(max_connections=1, max_keepalive_connections=1)
    tls = ssl.create_default_context()  # loading CA certificates per client costs 20 ms each

    async def client() -> None:
        async with httpx.AsyncClient(limits=limits, timeout=60, verify=tls) as session:
            for i in indices:  # shared: each client takes the next request
                results.append(await _one(session, url, model, i))

    started = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(concurrency)))
    wall = time.perf_counter() - started
    latencies = np.array([s for failure, s in results if failure is None]) * 1000
    failures = Counter(failure for failure, _ in results if failure is not None)
    return {
        "failed": sum(failures.values()),
        "failures": dict(failures.most_common()),
        "wall_s": round(wall, 2),
        "rps": round(requests / wall, 1),
        "p50_ms": round(float(np.percentile(latencies, 50)), 1) if len(latencies) else None,
        "p99_ms": round(float(np.percentile(latencies, 99)), 1) if len(latencies) else None,
    }


async def _decisions(base: str, prompts: list[str], repeats: int) -> dict[str, set[str]]:
    """The candidates ``router-spread`` chose for each prompt, each sent ``repeats`` times on a
    fresh connection (so the kernel spreads them over the workers)."""
    chosen: dict[str, set[str]] = {p: set() for p in prompts}

    async def ask(prompt: str) -> None:
        body = {"model": "router-spread", "messages": [{"role": "user", "content": prompt}]}
        async with httpx.AsyncClient(timeout=60) as session:
            response = await session.post(f"{base}/v1/chat/completions", json=body)
        chosen[prompt].add(
            response.headers.get("x-llmrouter-model", f"HTTP {response.status_code}")
        )

    await asyncio.gather(*(ask(p) for p in prompts for _ in range(repeats)))
    return chosen


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def _server(config: Path, workers: int, log: Path) -> Iterator[str]:
    """``llmrouter serve`` in a subprocess until the block ends; yields its base URL."""
    port = _free_port()
    command = [sys.executable, "-m", "langchain_llmrouter.serve", "--config", str(config)]
    command += ["--port", str(port), "--workers", str(workers), "--no-auth"]
    command += ["--log-level", "warning"]
    env = {**os.environ, "OPENBLAS_NUM_THREADS": "1"}
    with log.open("a") as stderr:  # the request path's fallback warnings, not the report
        server = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=stderr)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                if httpx.get(f"{base}/health/readiness").status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline or server.poll() is not None:
                raise SystemExit(f"the server did not start:\n{log.read_text()[-3000:]}")
            time.sleep(0.2)
        yield base
    finally:
        server.terminate()
        server.wait(timeout=30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=200)
    parser.add_argument(
        "--workers", default="1", help="worker counts to measure, comma-separated (1,2)"
    )
    parser.add_argument("--fault-rate", type=float, default=0.1)
    parser.add_argument(
        "--consistency-prompts", type=int, default=64, help="prompts of the routing check"
    )
    args = parser.parse_args()
    worker_counts = [int(w) for w in args.workers.split(",")]
    n, c = args.requests, args.concurrency
    prompts = [
        f"Consistency {i}: name a prime above {i * 7}." for i in range(args.consistency_prompts)
    ]

    report: dict[str, Any] = {"requests": n, "concurrency": c, "cpus": os.cpu_count()}
    decisions: dict[int, dict[str, set[str]]] = {}
    with FakeOpenAIServer() as fake, tempfile.TemporaryDirectory() as tmp:
        config = Path(tmp) / "serve.yaml"
        config.write_text(
            f"candidates:\n  llm_data: {SHARED / 'default_llm.json'}\n"
            f"  api_endpoint: {fake.base_url}\n  timeout_s: 2\n  max_retries: 1\n"
            "routers:\n  small:\n    router: smallest_llm\n"
            "  spread:\n    router: randomrouter\n    hparam: {seed: 7}\n"
            "default_router: small\nmax_fallbacks: 2\n"
        )
        log = Path(tmp) / "server.log"
        direct_url = f"{fake.base_url}/chat/completions"
        report["direct"] = direct = asyncio.run(_phase(direct_url, MODEL_ID, n, c))
        for workers in worker_counts:
            with _server(config, workers, log) as base:
                served_url = f"{base}/v1/chat/completions"
                fake.set_faults(None)
                served = asyncio.run(_phase(served_url, "auto", n, c))
                fake.reset()
                fake.set_faults(
                    FaultInjection(rate=args.fault_rate, seed=0, slow_s=3.0, sse_text_chunks=0)
                )
                faulty = asyncio.run(_phase(served_url, "auto", n, c))
                injected = fake.fault_counts()
                fake.set_faults(None)
                decisions[workers] = asyncio.run(_decisions(base, prompts, repeats=4))
            report[f"workers={workers}"] = {
                "served": served,
                "faults": {**faulty, "injected": injected},
                "added_p50_ms": _minus(served["p50_ms"], direct["p50_ms"]),
                "added_p99_ms": _minus(served["p99_ms"], direct["p99_ms"]),
                "rps_per_worker": round(served["rps"] / workers, 1),
            }
    first = decisions[worker_counts[0]]
    report["routing_consistent"] = {
        "prompts": len(prompts),
        "candidates_used": len(set().union(*first.values())),
        "same_within_each_server": all(len(m) == 1 for d in decisions.values() for m in d.values()),
        "same_across_servers": all(d == first for d in decisions.values()),
    }
    print(json.dumps(report, indent=2))


def _minus(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None else round(a - b, 1)


if __name__ == "__main__":
    main()
