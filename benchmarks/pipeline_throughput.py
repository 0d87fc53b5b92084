"""Stage-3 throughput: calls per second of the data pipeline, and its overhead per call over a
bare ``ChatOpenAI.abatch`` sending the same requests.

The local OpenAI-compatible server runs in a child process (``--delay`` seconds per answer
stands in for a provider's latency). The queries are the first ``--queries`` non-code rows
of ``default_query_test.jsonl``, each rendered with its task's prompt. For each concurrency,
interleaved ``--repeats`` times, it times:

  * ``bare``: ``ChatOpenAI.abatch(prompts, config={"max_concurrency": C})`` on one candidate,
    with the same client settings the pipeline uses (the baseline);
  * ``pipeline``: `acall_candidates` on the same queries and candidate, from reading the
    query file to the last scored row written, into a fresh output folder each time.

  * ``ray`` (with ``--engines local,ray``): the same `acall_candidates` with ``engine: ray``
    (`langchain_llmrouter.pipeline.ray_engine`) on a local Ray started once beforehand
    (``--ray-cpus``, ``--ray-actors`` calling actors), so the cost of the engine itself —
    starting its actors, shipping each pair to an actor and its row back, the cluster-wide
    dispenser — shows against the local engine on the same machine and server. Its fixed
    start-up cost per run (the dispenser and the calling actors, up and ready: the run's
    ``engine_start_s``) is given apart, and calls per second with and without it.

It prints median calls per second of each arm, their ratios, and the pipeline's extra wall
time and client CPU time per call (the driver's CPU only: Ray's actors run in other
processes). (Code questions are left out: running a generated program takes ~0.1 s of CPU
and would measure the sandbox, not the pipeline.)

Usage: python benchmarks/pipeline_throughput.py [--queries 300] [--concurrency 1,8,32]
       [--delay 0.02] [--repeats 3] [--engines local,ray] [--ray-cpus 2] [--ray-actors 2]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

import yaml

from langchain_llmrouter.pipeline.call_candidates import acall_candidates
from langchain_llmrouter.pipeline.calling import build_pool
from langchain_llmrouter.pipeline.config import load_pipeline_config
from langchain_llmrouter.pipeline.tasks import render_messages

REPO = Path(__file__).resolve().parents[1]

DEFAULT_DATA = REPO.parent / "shared" / "data" / "llmrouter_example"
MODEL = "qwen2.5-7b-instruct"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _start_server(delay: float) -> tuple[subprocess.Popen[bytes], str]:
    port = _free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "langchain_llmrouter.testing.openai_server",
            "--port",
            str(port),
            "--delay",
            str(delay),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    for _ in range(200):
        try:
            urllib.request.urlopen(f"{base}/health", timeout=1).read()
            return proc, f"{base}/v1"
        except OSError:
            time.sleep(0.05)
    proc.kill()
    raise RuntimeError("the local server did not start")


def _write_config(
    folder: Path,
    data: Path,
    queries: Path,
    base_url: str,
    concurrency: int,
    engine: str = "local",
    ray_actors: int = 2,
    limit: int | None = None,
) -> Path:
    config: dict[str, Any] = {
        "data_path": {
            "llm_data": str(data / "default_llm.json"),
            "query_data_test": str(queries),
            "query_data_train": str(folder / "none.jsonl"),
            "routing_data_train": str(folder / "routing_train.jsonl"),
            "routing_data_test": str(folder / "routing_test.jsonl"),
            "query_embedding_data": str(folder / "q.safetensors"),
        },
        "api_endpoint": base_url,
        "calls": {
            "models": [MODEL],
            "splits": ["test"],
            "max_concurrency": concurrency,
            "limit": limit,
        },
        "engine": engine,
        "ray_actors": ray_actors,
    }
    path = folder / f"pipeline-{engine}.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


async def _bare(
    config_path: Path, rows: list[dict[str, Any]], concurrency: int
) -> tuple[float, float]:
    config = load_pipeline_config(config_path)
    chat = build_pool(config).chat_model(MODEL)
    prompts = [render_messages(r) for r in rows]
    wall, cpu = time.perf_counter(), time.process_time()
    await chat.abatch(prompts, config={"max_concurrency": concurrency})
    return time.perf_counter() - wall, time.process_time() - cpu


async def _pipeline(config_path: Path) -> tuple[float, float, float]:
    """Wall and CPU seconds of a stage-3 run, and the part of the wall time spent starting
    the engine (Ray's actors; 0 for the local engine)."""
    wall, cpu = time.perf_counter(), time.process_time()
    summary = await acall_candidates(load_pipeline_config(config_path), progress=False)
    elapsed = time.perf_counter() - wall, time.process_time() - cpu, summary.engine_start_s
    assert summary.complete, summary
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--queries", type=int, default=300)
    parser.add_argument("--concurrency", default="1,8,32")
    parser.add_argument("--delay", type=float, default=0.02, help="server seconds per answer")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--engines", default="local", help="comma list: local, ray")
    parser.add_argument("--ray-cpus", type=int, default=2, help="CPUs of the local Ray")
    parser.add_argument("--ray-actors", type=int, default=2, help="calling actors on Ray")
    args = parser.parse_args()
    os.environ.pop("API_KEYS", None)
    engines = [e.strip() for e in args.engines.split(",") if e.strip()]
    if "ray" in engines:
        import ray

        ray.init(num_cpus=args.ray_cpus, include_dashboard=False, log_to_driver=False)

    rows = [
        json.loads(x) for x in (args.data / "default_query_test.jsonl").read_text().splitlines()
    ]
    rows = [r for r in rows if r["metric"] != "code_eval"][: args.queries]
    server, base_url = _start_server(args.delay)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            queries = Path(tmp) / "queries.jsonl"
            queries.write_text("".join(json.dumps(r) + "\n" for r in rows))
            print(
                f"{len(rows)} calls per run to one candidate; server delay {args.delay * 1000:.0f} ms; "
                f"median of {args.repeats} interleaved runs; {os.cpu_count()} CPUs, load average "
                f"{os.getloadavg()[0]:.2f} at start\n"
            )
            ray_head = (
                " ray calls/s | ray start-up s | ray calls/s after start-up | that ÷ local |"
                if "ray" in engines
                else ""
            )
            print(
                "| concurrency | bare calls/s | pipeline calls/s | pipeline ÷ bare | extra wall ms/call | bare CPU ms/call | pipeline CPU ms/call |"
                + ray_head
            )
            print("| --- " * (7 + 4 * ("ray" in engines)) + "|")
            for concurrency in (int(c) for c in args.concurrency.split(",")):
                bare, pipe, on_ray = [], [], []
                for repeat in range(args.repeats):
                    folder = Path(tmp) / f"c{concurrency}-r{repeat}"
                    folder.mkdir()
                    config_path = _write_config(folder, args.data, queries, base_url, concurrency)
                    bare.append(asyncio.run(_bare(config_path, rows, concurrency)))
                    pipe.append(asyncio.run(_pipeline(config_path)))
                    if "ray" in engines:
                        (folder / "ray").mkdir()
                        ray_path = _write_config(
                            folder / "ray",
                            args.data,
                            queries,
                            base_url,
                            concurrency,
                            engine="ray",
                            ray_actors=args.ray_actors,
                        )
                        on_ray.append(asyncio.run(_pipeline(ray_path)))
                n = len(rows)
                bare_wall = statistics.median(w for w, _ in bare)
                pipe_wall = statistics.median(w for w, _, _ in pipe)
                bare_cpu = statistics.median(c for _, c in bare)
                pipe_cpu = statistics.median(c for _, c, _ in pipe)
                ray_cells = ""
                if on_ray:
                    ray_wall = statistics.median(w for w, _, _ in on_ray)
                    start = statistics.median(s for _, _, s in on_ray)
                    steady = statistics.median(n / (w - s) for w, _, s in on_ray)
                    ray_cells = (
                        f" {n / ray_wall:.1f} | {start:.2f} | {steady:.1f} | "
                        f"{steady / (n / pipe_wall):.2f} |"
                    )
                print(
                    f"| {concurrency} | {n / bare_wall:.1f} | {n / pipe_wall:.1f} | {bare_wall / pipe_wall:.2f} | "
                    f"{(pipe_wall - bare_wall) / n * 1000:.2f} | {bare_cpu / n * 1000:.2f} | {pipe_cpu / n * 1000:.2f} |"
                    + ray_cells
                )
    finally:
        server.terminate()
        server.wait(10)


if __name__ == "__main__":
    main()
