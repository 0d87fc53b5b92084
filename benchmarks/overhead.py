"""Overhead benchmark: what routing costs in time, side by side in one run.

Prints, for the kNN router trained on routerdc_train.json:
  * routing latency per query, p50/p99 over 1,000 queries, embedding included and excluded;
  * batch routing throughput (1,000 queries, embedding included);
  * RouterChatModel overhead: median `invoke` through the router minus the same call on the
    chosen ChatOpenAI directly, against the local OpenAI-compatible test server, interleaved.

Usage: python benchmarks/overhead.py [--calls 200] [--data ../shared/data/llmrouter_example]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from pathlib import Path
from typing import Any

import numpy as np

from langchain_llmrouter import CandidatePool, RouterChatModel, RoutingDataset, create_router
from langchain_llmrouter.embeddings import default_embeddings, embed_texts
from langchain_llmrouter.testing import FakeOpenAIServer

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "llmrouter_example"


def percentile_ms(samples: list[float], q: float) -> float:
    return float(np.percentile(np.array(samples) * 1000.0, q))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--calls", type=int, default=200, help="chat calls per arm")
    parser.add_argument(
        "--chat-only", action="store_true", help="only the RouterChatModel vs ChatOpenAI part"
    )
    args = parser.parse_args()

    pool = CandidatePool.from_json(args.data / "default_llm.json")
    train = RoutingDataset.from_file(args.data / "routerdc_train.json", candidates=pool)
    test = RoutingDataset.from_file(args.data / "routerdc_test.json", candidates=pool)
    router = create_router("knnrouter").fit(train)
    queries = (test.queries + train.queries[-500:])[:1000]
    x = embed_texts(queries)
    default_embeddings().embed_array(queries[:8])  # warm-up: model loaded before timing

    print(
        f"machine: {os.cpu_count()} cores; router: knnrouter (k=50) on {len(train)} train queries"
    )
    if not args.chat_only:
        route_latency(router, queries, x)
    chat_overhead(router, queries, args)


def route_latency(router: Any, queries: list[str], x: np.ndarray) -> None:
    """Routing alone: one query at a time and in one batch, with and without the embedding."""
    with_embedding, without_embedding = [], []
    for i, q in enumerate(queries):
        start = time.perf_counter()
        router.route(q)
        with_embedding.append(time.perf_counter() - start)
        start = time.perf_counter()
        router.route_batch([q], query_embeddings=x[i : i + 1])
        without_embedding.append(time.perf_counter() - start)
    print("\nroute one query (1,000 queries)      p50 ms   p99 ms")
    print(
        f"  embedding included               {percentile_ms(with_embedding, 50):8.2f} {percentile_ms(with_embedding, 99):8.2f}"
    )
    print(
        f"  embedding excluded               {percentile_ms(without_embedding, 50):8.2f} {percentile_ms(without_embedding, 99):8.2f}"
    )

    start = time.perf_counter()
    router.route_batch(queries)
    batch_s = time.perf_counter() - start
    start = time.perf_counter()
    router.route_batch(queries, query_embeddings=x)
    batch_pre_s = time.perf_counter() - start
    print("\nbatch routing, 1,000 queries        queries/s")
    print(f"  embedding included               {1000 / batch_s:9.0f}")
    print(f"  embedding excluded               {1000 / batch_pre_s:9.0f}")
    print(f"  ratio (excluded / included)      {batch_s / batch_pre_s:9.1f}x")


def chat_overhead(router: Any, queries: list[str], args: argparse.Namespace) -> None:
    """RouterChatModel.invoke against the chosen candidate's ChatOpenAI.invoke, interleaved."""
    with FakeOpenAIServer() as server:
        local_pool = CandidatePool.from_json(
            args.data / "default_llm.json", api_endpoint=server.base_url
        )
        llm = RouterChatModel(router=router, candidates=local_pool)
        prompts = [queries[i % len(queries)][:300] for i in range(args.calls)]
        direct_models = {}
        for p in prompts[:20]:  # warm up both paths and the HTTP clients
            name = llm.decide([_human(p)]).model
            direct_models.setdefault(name, local_pool.chat_model(name)).invoke(p)
            llm.invoke(p)
        # The request path alone: a router that needs no featuriser (smallest_llm) picks one
        # fixed candidate, so the difference is RouterChatModel's own work per call.
        fixed = RouterChatModel(router=create_router("smallest_llm"), candidates=local_pool)
        fixed_model = local_pool.chat_model(fixed.decide([_human("x")]).model)
        for p in prompts[:20]:
            fixed.invoke(p)
            fixed_model.invoke(p)
        routed: list[float] = []
        direct: list[float] = []
        plain: list[float] = []
        plain_direct: list[float] = []
        for p in prompts:
            direct_model = local_pool.chat_model(llm.decide([_human(p)]).model)
            for model, samples in (
                (direct_model, direct),
                (llm, routed),
                (fixed_model, plain_direct),
                (fixed, plain),
            ):
                start = time.perf_counter()
                model.invoke(p)
                samples.append(time.perf_counter() - start)
    d_med, r_med = statistics.median(direct), statistics.median(routed)
    pd_med, p_med = statistics.median(plain_direct), statistics.median(plain)
    print(
        f"\nRouterChatModel vs ChatOpenAI, local test server, {args.calls} calls each (interleaved)"
    )
    print(f"  ChatOpenAI.invoke (chosen model)  median {d_med * 1000:7.2f} ms")
    print(f"  RouterChatModel.invoke            median {r_med * 1000:7.2f} ms")
    print(
        f"  overhead                          median {(r_med - d_med) * 1000:7.2f} ms ({r_med / d_med:.2f}x)"
    )
    print("\nthe request path alone (smallest_llm router: no featuriser), same calls, interleaved")
    print(f"  ChatOpenAI.invoke                 median {pd_med * 1000:7.2f} ms")
    print(f"  RouterChatModel.invoke            median {p_med * 1000:7.2f} ms")
    print(
        f"  overhead                          median {(p_med - pd_med) * 1000:7.2f} ms ({p_med / pd_med:.2f}x)"
    )


def _human(text: str):
    from langchain_core.messages import HumanMessage

    return HumanMessage(text)


if __name__ == "__main__":
    main()
