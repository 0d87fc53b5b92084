"""kNN routing against a large store of past queries: exact numpy search against FAISS indexes.

For each store size (synthetic, see below) and each index kind it prints: the build time
(``knnrouter.fit``, which builds the index), the index's memory, one query's search p50/p99
on one core, batched queries/s (one call, one core), recall@50 against exact search, and one
routing decision's latency (``router.route_batch`` with the query embedding given, then the
same with the featuriser, MiniLM, included). It also fits knnrouter (k=50) on the real
routerdc_train store through each index and prints Q0 on the 500 routerdc_test queries.

The synthetic store: every stored vector is a real routerdc_train query embedding (MiniLM,
384-d, unit-normalised) plus noise shaped like the data itself (standard normals times the
square roots of the embeddings' principal variances, along their principal axes, scaled by
``--noise``), renormalised, with the scores of the query it was drawn around. Test queries
are drawn the same way around the routerdc_test embeddings. The store is therefore clustered
as real traffic is (many paraphrases per kind of question), not isotropic noise, on which no
approximate index does well. FAISS and numpy run on one thread (``faiss.omp_set_num_threads(1)``
and ``OMP_NUM_THREADS=1``), builds included.

Usage: OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 python benchmarks/scale.py
           [--sizes 100000,1000000] [--kinds exact,flat,hnsw,ivf] [--queries 1000]
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path
from typing import Any

import numpy as np

from langchain_llmrouter import CandidatePool, RoutingDataset
from langchain_llmrouter.embeddings import default_embeddings, embed_texts
from langchain_llmrouter.routers.knn import KNNRouter

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "llmrouter_example"
K = 50
KIND_PARAMS: dict[str, dict[str, Any]] = {
    "exact": {"index": "exact"},
    "flat": {"index": "flat"},
    "hnsw": {"index": "hnsw", "hnsw_m": 32, "hnsw_ef_construction": 80, "hnsw_ef_search": 128},
    "ivf": {"index": "ivf", "ivf_nprobe": 16},
    "ivf-sq8": {"index": "ivf", "ivf_nprobe": 16, "index_code": "sq8"},
    "hnsw-sq8": {"index": "hnsw", "hnsw_m": 32, "hnsw_ef_search": 128, "index_code": "sq8"},
}
"""Index settings measured (``--kinds`` picks among them)."""


def _unit(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


class Sampler:
    """Draws vectors around real embeddings with noise shaped like their covariance."""

    def __init__(self, reference: np.ndarray, noise: float) -> None:
        centred = reference - reference.mean(axis=0)
        _, s, vt = np.linalg.svd(centred, full_matrices=False)
        # Rows of `shape` map standard normals to the data's own spread, axis by axis.
        self.shape = (s[:, None] / np.sqrt(len(reference)) * vt).astype(np.float32) * noise

    def draw(
        self, base: np.ndarray, n: int, rng: np.random.Generator
    ) -> tuple[np.ndarray, np.ndarray]:
        """(vectors, rows of ``base`` they were drawn around), in chunks to bound memory."""
        rows = rng.integers(0, len(base), size=n)
        out = np.empty((n, base.shape[1]), dtype=np.float32)
        for start in range(0, n, 100_000):
            part = rows[start : start + 100_000]
            z = rng.standard_normal((len(part), len(self.shape)), dtype=np.float32)
            out[start : start + len(part)] = _unit(base[part] + z @ self.shape)
        return out, rows


def _index_bytes(router: Any) -> int:
    index = router.index_
    if not index.is_faiss:
        return int(index.vectors_.nbytes + index._unit.nbytes)
    import faiss

    return int(faiss.serialize_index(index.index_).nbytes)


def _percentiles(seconds: list[float]) -> tuple[float, float]:
    ms = np.asarray(seconds) * 1000
    return float(np.percentile(ms, 50)), float(np.percentile(ms, 99))


def measure_size(
    size: int,
    kinds: list[str],
    train: RoutingDataset,
    train_x: np.ndarray,
    test_x: np.ndarray,
    test_queries: list[str],
    args: argparse.Namespace,
) -> list[dict[str, Any]]:
    """Every figure at one store size, index kind by index kind."""
    rng = np.random.default_rng(size)
    sampler = Sampler(train_x, args.noise)
    store, rows = sampler.draw(train_x, size, rng)
    queries, query_rows = sampler.draw(test_x, args.queries, rng)
    texts = [test_queries[i] for i in query_rows]
    data = RoutingDataset(
        queries=[train.queries[i] for i in rows],
        candidates=list(train.candidates),
        performance=train.performance[rows],
        cost=train.cost[rows],
        candidate_specs=train.candidate_specs,
    )
    truth: np.ndarray | None = None
    results = []
    for kind in kinds:
        router = KNNRouter(k=K, **KIND_PARAMS[kind])
        start = time.perf_counter()
        router.fit(data, query_embeddings=store)
        build = time.perf_counter() - start
        index = router.index_
        brute = index.kind_ == "exact" or kind == "flat"
        n_single = args.single_exact if brute else args.single
        memory = round(_index_bytes(router) / 2**20, 1)
        if kind == "exact":
            _, truth = index.search(queries, K)
        sweep: list[tuple[str, int | None]] = [("", None)]
        if index.kind_ == "hnsw":
            sweep = [("ef_search", int(v)) for v in args.ef_search.split(",")]
        elif index.kind_ == "ivf":
            sweep = [("nprobe", int(v)) for v in args.nprobe.split(",")]
        for setting, value in sweep:
            if setting:
                setattr(index, setting, value)
                index._tune()
            row = _search_figures(index, queries, truth, n_single, brute)
            results.append(
                {
                    "size": size,
                    "kind": kind + (f" {setting}={value}" if setting else ""),
                    "build_s": round(build, 2),
                    "memory_mb": memory,
                    **row,
                }
            )
            print(json.dumps(results[-1]), flush=True)
        if sweep[0][0]:  # route with the router's own setting
            setattr(index, sweep[0][0], router.get_params()[f"{index.kind_}_{sweep[0][0]}"])
            index._tune()
        route = []
        for q, text in zip(queries[:n_single], texts, strict=False):
            t = time.perf_counter()
            router.route_batch([text], query_embeddings=q[None])
            route.append(time.perf_counter() - t)
        featurised = []
        for text in texts[: min(n_single, 30)]:
            t = time.perf_counter()
            router.route(text)
            featurised.append(time.perf_counter() - t)
        routing = {
            "size": size,
            "kind": kind,
            "route_p50_ms": round(_percentiles(route)[0], 3),
            "route_minilm_p50_ms": round(_percentiles(featurised)[0], 3),
        }
        print(json.dumps(routing), flush=True)
        for row in results:
            if row["size"] == size and row["kind"].split(" ")[0] == kind:
                row |= routing | {"kind": row["kind"]}
        del router, index
    return results


def _search_figures(
    index: Any, queries: np.ndarray, truth: np.ndarray | None, n_single: int, brute: bool
) -> dict[str, Any]:
    """Single-query p50/p99, batched queries/s and recall@K of one index setting."""
    index.search(queries[:5], K)  # warm up
    single = []
    for q in queries[:n_single]:
        t = time.perf_counter()
        index.search(q[None], K)
        single.append(time.perf_counter() - t)
    n_batch = min(len(queries), 200) if brute else len(queries)
    t = time.perf_counter()
    _, ids = index.search(queries[:n_batch], K)
    batched = n_batch / (time.perf_counter() - t)
    recall = None
    if truth is not None:
        hits = [len(np.intersect1d(a, b)) for a, b in zip(ids, truth[:n_batch], strict=False)]
        recall = float(np.sum(hits) / (K * n_batch))
    p50, p99 = _percentiles(single)
    return {
        "search_p50_ms": round(p50, 3),
        "search_p99_ms": round(p99, 3),
        "batched_qps": round(batched, 1),
        f"recall@{K}": None if recall is None else round(recall, 4),
        "single_queries": n_single,
    }


def measure_q0(
    kinds: list[str], train: RoutingDataset, test: RoutingDataset, train_x: np.ndarray, args: Any
) -> list[dict[str, Any]]:
    """Q0 on routerdc_test with knnrouter (k=50) searching the real store through each index
    (each searched setting of ``--ef-search`` / ``--nprobe``), and its recall@50 there."""
    test_x = embed_texts(test.queries)
    out: list[dict[str, Any]] = []
    truth = None
    for kind in kinds:
        params = KIND_PARAMS[kind]
        sweep: list[dict[str, Any]] = [{}]
        if params["index"] == "hnsw":
            sweep = [{"hnsw_ef_search": int(v)} for v in args.ef_search.split(",")]
        elif params["index"] == "ivf":
            sweep = [{"ivf_nprobe": int(v)} for v in args.nprobe.split(",")]
        for setting in sweep:
            router = KNNRouter(k=K, **{**params, **setting})
            router.fit(train, query_embeddings=train_x)
            decisions = router.route_batch(test.queries, query_embeddings=test_x)
            chosen = [test.candidates.index(d.model) for d in decisions]
            q0 = float(np.mean(test.performance[np.arange(len(chosen)), chosen]))
            _, ids = router.index_.search(test_x, K)
            truth = ids if kind == "exact" else truth
            recall = None
            if truth is not None:
                hits = [len(np.intersect1d(a, b)) for a, b in zip(ids, truth, strict=True)]
                recall = round(float(np.sum(hits)) / truth.size, 4)
            label = kind + "".join(f" {k.split('_', 1)[1]}={v}" for k, v in setting.items())
            out.append({"kind": label, "q0": round(q0, 4), f"recall@{K}": recall})
            print(json.dumps(out[-1]), flush=True)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--sizes", default="100000,1000000", help="store sizes, comma-separated")
    parser.add_argument("--kinds", default="exact,flat,hnsw,ivf", help=", ".join(KIND_PARAMS))
    parser.add_argument("--queries", type=int, default=1000, help="queries for recall and qps")
    parser.add_argument("--single", type=int, default=500, help="single-query timings")
    parser.add_argument("--single-exact", type=int, default=50, help="the same, brute force")
    parser.add_argument("--ef-search", default="64,128,256", help="HNSW settings searched")
    parser.add_argument("--nprobe", default="16,32,64", help="IVF settings searched")
    parser.add_argument("--noise", type=float, default=0.5, help="noise scale (see docstring)")
    parser.add_argument("--no-q0", action="store_true", help="skip Q0 on routerdc_test")
    parser.add_argument("--json", type=Path, help="also write the rows here")
    args = parser.parse_args()
    import faiss

    faiss.omp_set_num_threads(1)
    kinds = [k for k in args.kinds.split(",") if k]
    unknown = sorted(set(kinds) - set(KIND_PARAMS))
    if unknown:
        parser.error(f"unknown kinds {unknown}; valid: {', '.join(KIND_PARAMS)}")
    if "exact" in kinds:
        kinds = ["exact", *(k for k in kinds if k != "exact")]  # the recall reference first
    pool = CandidatePool.from_json(args.data / "default_llm.json")
    train = RoutingDataset.from_file(args.data / "routerdc_train.json", candidates=pool)
    test = RoutingDataset.from_file(args.data / "routerdc_test.json", candidates=pool)
    train_x = _unit(embed_texts(train.queries))
    test_x = _unit(embed_texts(test.queries))
    default_embeddings().embed_query("warm up")
    print(
        f"machine: {os.cpu_count()} cores (shared, run under nice), faiss {faiss.__version__}, "
        f"1 thread; store dim {train_x.shape[1]}; k={K}; noise {args.noise}",
        flush=True,
    )
    rows: dict[str, Any] = {"q0": [], "scale": []}
    if not args.no_q0:
        rows["q0"] = measure_q0(kinds, train, test, train_x, args)
    for size in (int(s) for s in args.sizes.split(",") if s):
        rows["scale"] += measure_size(size, kinds, train, train_x, test_x, test.queries, args)
    header = (
        f"{'size':>9} {'index':<20} {'build s':>8} {'MB':>7} {'p50 ms':>7} {'p99 ms':>7} "
        f"{'q/s':>8} {'recall':>7} {'route ms':>8} {'+MiniLM':>8}"
    )
    print("\n" + header)
    for r in rows["scale"]:
        recall = "-" if r[f"recall@{K}"] is None else f"{r[f'recall@{K}']:.4f}"
        print(
            f"{r['size']:>9} {r['kind']:<20} {r['build_s']:>8.1f} {r['memory_mb']:>7.1f} "
            f"{r['search_p50_ms']:>7.3f} {r['search_p99_ms']:>7.3f} {r['batched_qps']:>8.0f} "
            f"{recall:>7} {r.get('route_p50_ms', float('nan')):>8.3f} "
            f"{r.get('route_minilm_p50_ms', float('nan')):>8.2f}"
        )
    for r in rows["q0"]:
        print(
            f"Q0 routerdc_test, knnrouter k={K}, index {r['kind']}: {r['q0']:.4f} "
            f"(recall@{K} on the real store {r[f'recall@{K}']})"
        )
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
