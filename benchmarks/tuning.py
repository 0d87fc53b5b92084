"""Fit-time tuning (`fit(tune=True)`) against each router's fixed defaults, on RouterDC.

Part ``q0``: each router trained on routerdc_train with the hyperparameters of its
configs/train/<name>.yaml (and featuriser), then again with ``tune=True`` (grouped CV on the
train file only; the test file is read after every choice is made), and ``ensemble`` built
from tuned members. Q0 on all 500 test queries and on the 381 novel ones, with the paired
bootstrap interval of the difference to the best single candidate (the package's
`evaluate_router`, as in ``llmrouter bench``).

Part ``apgr``: two-candidate subsets of RouterDC, every (strong, cheap) pair among the 3
strongest candidates (mean train score) and the 3 cheapest (price per million output
tokens) among the others (9 pairs); each router trained on the pair's train data with and
without tuning, and RouteLLM's APGR (the package's `apgr_cpt`) on the pair's test data.

Usage:
    OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1 nice -n 5 python benchmarks/tuning.py \\
        --part q0 --routers knnrouter elorouter mlprouter --budget 120 --folds 5
    ... --part apgr --routers knnrouter elorouter --budget 20 --folds 3
    ... --part apgr --routers hybrid_llm --trials 8 --folds 3    (the same on any machine)
    ... --part noise    (the test queries also in the train file, routed by their train scores)
    ... --part q0 --routers knnrouter mlprouter --trials 8 --embedder DIR   (another embedder)

Part ``noise``: how noisy a query's scores are, from the test queries whose normalised text
is also in the training file.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import numpy as np

from langchain_llmrouter import CandidatePool, RoutingDataset
from langchain_llmrouter.config import load_config
from langchain_llmrouter.embeddings import embed_texts
from langchain_llmrouter.evaluation import apgr_cpt, evaluate_router
from langchain_llmrouter.evaluation.bench import _align
from langchain_llmrouter.routers.crossval import normalise_query
from langchain_llmrouter.routers.registry import get_router_class
from langchain_llmrouter.routers.tuning import fit_with_tuning, tune_router

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = ROOT.parent / "shared" / "data" / "llmrouter_example"
ROUTERS = ["knnrouter", "elorouter", "mlprouter", "mfrouter", "svmrouter"]


def _setup(name: str) -> tuple[dict[str, Any], Any, str]:
    """The router's hparam and embedder from configs/train/<name>.yaml, and the embedder's name."""
    config = load_config(ROOT / "configs" / "train" / f"{name}.yaml")
    return dict(config.hparam), config.build_embeddings(), config.embedding.model


def _fit(
    name: str,
    params: dict[str, Any],
    embedder: Any,
    train: RoutingDataset,
    x: np.ndarray,
    tune: bool,
    args: argparse.Namespace,
) -> tuple[Any, float]:
    cls = get_router_class(name)
    router = cls.from_params(params, embeddings=embedder)
    start = time.perf_counter()
    x = x if cls.uses_embeddings else None
    if tune and args.trials:  # a count instead of a time: the same choice on any machine
        result = tune_router(
            router,
            train,
            x,
            budget_s=1e9,
            n_folds=args.folds,
            seed=args.seed,
            max_trials=args.trials,
        )
        router.set_params(**result.chosen).fit(train, query_embeddings=x)
        router.tuning_ = result.to_record()
    elif tune:
        fit_with_tuning(router, train, x, budget_s=args.budget, n_folds=args.folds, seed=args.seed)
    else:
        router.fit(train, query_embeddings=x)
    return router, time.perf_counter() - start


def _inputs(
    name: str,
    args: argparse.Namespace,
    train: RoutingDataset,
    test: RoutingDataset,
    vectors: dict[str, tuple[np.ndarray, np.ndarray]],
) -> tuple[dict[str, Any], Any, np.ndarray, np.ndarray]:
    """A router's starting params (``--start`` applied), its embedder, and the train and test
    embeddings of its featuriser (embedded once per featuriser, kept in ``vectors``)."""
    params, embedder, featuriser = _setup(name)
    params.update(args.start)
    if args.embedder is not None:  # every router on this sentence-transformers directory
        from langchain_llmrouter.embeddings import MiniLMEmbeddings

        embedder, featuriser = MiniLMEmbeddings(model_path=str(args.embedder)), str(args.embedder)
    if featuriser not in vectors:
        vectors[featuriser] = (
            embed_texts(train.queries, embedder),
            embed_texts(test.queries, embedder),
        )
    return (params, embedder, *vectors[featuriser])


def part_q0(args: argparse.Namespace, pool: CandidatePool) -> None:
    """Q0 (all / novel) with tuning off and on."""
    train = RoutingDataset.from_file(args.data / "routerdc_train.json", candidates=pool)
    test = RoutingDataset.from_file(args.data / "routerdc_test.json", candidates=pool)
    best = train.candidates.index(train.best_single())
    novel = test.novel_mask(train)
    vectors: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    rows = []
    names = [*args.routers, *(["ensemble"] if args.ensemble else [])]
    for name in names:
        params, embedder, x_train, x_test = _inputs(name, args, train, test, vectors)
        for tune in (False, True):
            router, seconds = _fit(name, params, embedder, train, x_train, tune, args)
            # The test file is read only now, after every choice.
            predicted = _align(  # the bench's: NaN for candidates a two-model router lacks
                router, router.predict_quality(test.queries, query_embeddings=x_test), test
            )
            figures = {}
            for label, mask in (("all", np.ones(len(test), bool)), ("novel", novel)):
                report = evaluate_router(
                    name, predicted[mask], test.performance[mask], test.cost[mask], best
                )
                figures[label] = (report.q0, report.q0_diff_ci)
            record = getattr(router, "tuning_", None)
            row = {
                "router": name,
                "tune": tune,
                "q0_all": figures["all"][0],
                "ci_all": figures["all"][1],
                "q0_novel": figures["novel"][0],
                "ci_novel": figures["novel"][1],
                "fit_s": round(seconds, 1),
                "chosen": None if record is None else record.get("chosen"),
                "cv_q0": None if record is None else record.get("cv_score"),
                "start_cv_q0": None if record is None else record.get("start_cv_score"),
                "trials": None if record is None else len(record.get("trials", [])),
                "members": None
                if record is None or "members" not in record
                else [m.get("chosen") for m in record["members"]],
            }
            rows.append(row)
            print(json.dumps(row, default=str), flush=True)
    print("\n| router | tuning | Q0 all (95% CI vs best single) | Q0 novel (95% CI) | fit s |")
    print("| --- | --- | --- | --- | --- |")
    for r in rows:
        ci_a, ci_n = r["ci_all"], r["ci_novel"]
        print(
            f"| {r['router']} | {'on' if r['tune'] else 'off'} | {r['q0_all']:.4f} "
            f"[{ci_a[0]:+.3f}, {ci_a[1]:+.3f}] | {r['q0_novel']:.4f} [{ci_n[0]:+.3f}, "
            f"{ci_n[1]:+.3f}] | {r['fit_s']:.0f} |"
        )


def part_noise(args: argparse.Namespace, pool: CandidatePool) -> None:
    """How much of the oracle's lead over the best single candidate is noise: the test
    queries that also appear in the training file, routed by their own training scores."""
    train = RoutingDataset.from_file(args.data / "routerdc_train.json", candidates=pool)
    test = RoutingDataset.from_file(args.data / "routerdc_test.json", candidates=pool)
    perf = np.asarray(test.performance, dtype=float)
    best = test.candidates.index(train.best_single())
    rows: dict[str, list[int]] = {}
    for i, query in enumerate(train.queries):
        rows.setdefault(normalise_query(query), []).append(i)
    seen = [
        (i, rows[key]) for i, q in enumerate(test.queries) if (key := normalise_query(q)) in rows
    ]
    order = [train.candidates.index(c) for c in test.candidates]
    looked_up, same = [], 0
    for i, matches in seen:
        known = np.asarray(train.performance, dtype=float)[matches][:, order]
        looked_up.append(perf[i, np.nanargmax(np.nanmean(known, axis=0))])
        same += bool(np.allclose(np.nan_to_num(known[0]), np.nan_to_num(perf[i])))
    dup = [i for i, _ in seen]
    print(
        f"test queries {len(test)}: best single {np.nanmean(perf[:, best]):.4f}, "
        f"oracle {np.nanmax(perf, axis=1).mean():.4f}"
    )
    print(
        f"{len(dup)} also in the training file: best single {np.nanmean(perf[dup, best]):.4f}, "
        f"oracle {np.nanmax(perf[dup], axis=1).mean():.4f}, routed by their own training "
        f"scores {np.mean(looked_up):.4f}; {same} of {len(dup)} have the same scores in both"
    )


def _pairs(train: RoutingDataset, pool: CandidatePool) -> list[tuple[str, str]]:
    means = train.mean_performance()
    strongest = sorted(train.candidates, key=lambda c: -means[c])[:3]
    rest = [c for c in train.candidates if c not in strongest]
    cheapest = sorted(rest, key=lambda c: (pool[c].output_price, pool[c].input_price, c))[:3]
    return [(s, w) for s in strongest for w in cheapest]


def part_apgr(args: argparse.Namespace, pool: CandidatePool) -> None:
    """APGR on the two-candidate subsets, tuning off and on."""
    train = RoutingDataset.from_file(args.data / "routerdc_train.json", candidates=pool)
    test = RoutingDataset.from_file(args.data / "routerdc_test.json", candidates=pool)
    pairs = _pairs(train, pool)
    print(f"{len(pairs)} pairs (strong, cheap): {pairs}", flush=True)
    vectors: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    table: dict[str, dict[bool, list[float]]] = {}
    worst: dict[str, tuple[float, str, tuple[float, float]]] = {}
    for name in args.routers:
        params, embedder, x_train, x_test = _inputs(name, args, train, test, vectors)
        table[name] = {False: [], True: []}
        for strong, weak in pairs:
            sub_train = train.select_candidates([strong, weak])
            sub_test = test.select_candidates([strong, weak])
            perf = np.nan_to_num(sub_test.performance)
            k, m = sub_test.candidates.index(strong), sub_test.candidates.index(weak)
            advantages = {}
            for tune in (False, True):
                router, seconds = _fit(name, params, embedder, sub_train, x_train, tune, args)
                pred = router.predict_quality(sub_test.queries, query_embeddings=x_test)
                i, j = router.candidates_.index(strong), router.candidates_.index(weak)
                advantages[tune] = pred[:, i] - pred[:, j]
                apgr = apgr_cpt(advantages[tune], perf[:, k], perf[:, m])["apgr"]
                table[name][tune].append(apgr)
                chosen = getattr(router, "tuning_", {}).get("chosen")
                print(
                    f"{name} {strong} vs {weak} tune={tune}: APGR {apgr:.4f} "
                    f"({seconds:.0f} s){f' chose {chosen}' if chosen else ''}",
                    flush=True,
                )
            diff = table[name][True][-1] - table[name][False][-1]
            if name not in worst or diff < worst[name][0]:
                ci = _apgr_diff_interval(advantages, perf[:, k], perf[:, m], args.seed)
                worst[name] = (diff, f"{strong} vs {weak}", ci)
    print(
        "\n| router | APGR off (mean of pairs) | APGR on | worst pair: on - off "
        "[95% paired bootstrap over test queries] |"
    )
    print("| --- | --- | --- | --- |")
    for name, by in table.items():
        diff, pair, (low, high) = worst[name]
        print(
            f"| {name} | {np.mean(by[False]):.4f} | {np.mean(by[True]):.4f} | {diff:+.4f} "
            f"[{low:+.3f}, {high:+.3f}] ({pair}) |"
        )


def _apgr_diff_interval(
    advantages: dict[bool, np.ndarray],
    strong: np.ndarray,
    weak: np.ndarray,
    seed: int,
    draws: int = 1000,
) -> tuple[float, float]:
    """95% interval of APGR(tuned) - APGR(defaults), both routers on the same resampled test
    queries (resamples where the two candidates tie on average are skipped)."""
    rng = np.random.default_rng(seed)
    diffs = []
    for _ in range(draws):
        rows = rng.integers(0, len(strong), size=len(strong))
        if abs(float(np.sum(strong[rows] - weak[rows]))) < 1e-9:
            continue
        on, off = (
            apgr_cpt(advantages[t][rows], strong[rows], weak[rows])["apgr"] for t in (True, False)
        )
        diffs.append(on - off)
    low, high = np.percentile(diffs, [2.5, 97.5])
    return float(low), float(high)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--part", choices=["q0", "apgr", "noise"], default="q0")
    parser.add_argument("--routers", nargs="+", default=ROUTERS)
    parser.add_argument("--ensemble", action="store_true", help="q0: also ensemble (tuned members)")
    parser.add_argument("--budget", type=float, default=120.0, help="tuning seconds per fit")
    parser.add_argument("--folds", type=int, default=5, help="folds of the tuning CV")
    parser.add_argument(
        "--trials",
        type=int,
        default=0,
        help="settings tried per search (the start included) instead of --budget seconds, "
        "so that the choice does not depend on the machine's speed (not for --ensemble)",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--embedder",
        type=Path,
        default=None,
        help="a local sentence-transformers directory to embed the queries with, for every "
        "router, instead of each config's featuriser",
    )
    parser.add_argument(
        "--start",
        type=json.loads,
        default={},
        help="JSON hyperparameters replacing the config's (all routers), e.g. '{\"k\": 5}': "
        "how far tuning gets from a poor starting point",
    )
    args = parser.parse_args()
    pool = CandidatePool.from_json(args.data / "default_llm.json")
    {"q0": part_q0, "apgr": part_apgr, "noise": part_noise}[args.part](args, pool)


if __name__ == "__main__":
    main()
