"""Load on ``llmrouter serve``: concurrent streaming clients, with and without provider faults.

One run, three phases of the same requests (streamed, ``include_usage``), each from
``--concurrency`` concurrent clients:

1. ``direct``: straight to the local test server (no faults): the baseline latency;
2. ``served``: through ``llmrouter serve`` (no faults): the added latency is p50/p99 of 2 - 1;
3. ``faults``: through the server while the test server injects ``--fault-rate`` faults
   (429, 500, 503, slow answers past the candidate's timeout, resets before the first token):
   a failed request is a non-200 answer, an error event or a stream without ``[DONE]``.

The server runs as ``python -m langchain_llmrouter.serve`` in a subprocess (``--workers``
workers) over ``smallest_llm`` (no featuriser, so the figures are the serving layer's own).

    .venv/bin/python benchmarks/serve_load.py --requests 2000 --concurrency 200 --workers 1
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np

from langchain_llmrouter.testing import FakeOpenAIServer, FaultInjection

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data" / "llmrouter_example"


async def _one(client: httpx.AsyncClient, url: str, model: str, i: int) -> tuple[bool, float]:
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
                await response.aread()
                return False, time.perf_counter() - started
            done = errored = False
            async for line in response.aiter_lines():
                if line == "data: [DONE]":
                    done = True
                elif line.startswith('data: {"error"'):
                    errored = True
            return done and not errored, time.perf_counter() - started
    except httpx.HTTPError:
        return False, time.perf_counter() - started


async def _phase(url: str, model: str, requests: int, concurrency: int) -> dict[str, float]:
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    gate = asyncio.Semaphore(concurrency)
    async with httpx.AsyncClient(limits=limits, timeout=60) as client:

        async def gated(i: int) -> tuple[bool, float]:
            async with gate:
                return await _one(client, url, model, i)

        started = time.perf_counter()
        results = await asyncio.gather(*(gated(i) for i in range(requests)))
        wall = time.perf_counter() - started
    latencies = np.array([s for ok, s in results if ok]) * 1000
    return {
        "failed": sum(not ok for ok, _ in results),
        "wall_s": wall,
        "rps": requests / wall,
        "p50_ms": float(np.percentile(latencies, 50)) if len(latencies) else float("nan"),
        "p99_ms": float(np.percentile(latencies, 99)) if len(latencies) else float("nan"),
    }


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=200)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--fault-rate", type=float, default=0.1)
    args = parser.parse_args()

    with FakeOpenAIServer() as fake, tempfile.TemporaryDirectory() as tmp:
        config = Path(tmp) / "serve.yaml"
        config.write_text(
            f"candidates:\n  llm_data: {SHARED / 'default_llm.json'}\n"
            f"  api_endpoint: {fake.base_url}\n  timeout_s: 2\n  max_retries: 1\n"
            "routers:\n  small:\n    router: smallest_llm\nmax_fallbacks: 2\n"
        )
        port = _free_port()
        command = [sys.executable, "-m", "langchain_llmrouter.serve", "--config", str(config)]
        command += ["--port", str(port), "--workers", str(args.workers), "--no-auth"]
        command += ["--log-level", "warning"]
        env = {**os.environ, "OPENBLAS_NUM_THREADS": "1"}
        server = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL)
        try:
            base = f"http://127.0.0.1:{port}"
            deadline = time.monotonic() + 120
            while True:
                try:
                    if httpx.get(f"{base}/health/readiness").status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                if time.monotonic() > deadline or server.poll() is not None:
                    raise SystemExit("the server did not start")
                time.sleep(0.2)
            n, c = args.requests, args.concurrency
            direct_url = f"{fake.base_url}/chat/completions"
            served_url = f"{base}/v1/chat/completions"
            model_id = "qwen/qwen2.5-7b-instruct"
            direct = asyncio.run(_phase(direct_url, model_id, n, c))
            served = asyncio.run(_phase(served_url, "auto", n, c))
            fake.set_faults(
                FaultInjection(rate=args.fault_rate, seed=0, slow_s=3.0, sse_text_chunks=0)
            )
            faulty = asyncio.run(_phase(served_url, "auto", n, c))
            injected = dict(fake.fault_counts())
        finally:
            server.terminate()
            server.wait(timeout=30)
    report = {
        "requests": n,
        "concurrency": c,
        "workers": args.workers,
        "direct": direct,
        "served": served,
        "faults": {**faulty, "injected": injected},
        "added_p50_ms": served["p50_ms"] - direct["p50_ms"],
        "added_p99_ms": served["p99_ms"] - direct["p99_ms"],
        "rps_per_worker": served["rps"] / args.workers,
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
