"""The route-quality benchmark: train routers on one file, measure them on another.

Follows ``BENCHMARK.md``: every figure on all test queries and on the novel ones
(not in the training file), with the single candidates, the random, smallest and
largest baselines and the oracle as reference rows, all in one run. Each router's ECE
(calibration of its predicted qualities) is a column; a row with ``calibrate: isotonic``
fits an isotonic quality calibration on out-of-fold training predictions after training.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, cast

import numpy as np

from langchain_llmrouter.errors import GraphRouterError
from langchain_llmrouter.evaluation.router_metrics import (
    ReferencePoints,
    RouterReport,
    evaluate_choices,
    evaluate_router,
    format_table,
    quality_cost_curve,
    reference_points,
)
from langchain_llmrouter.routers.registry import get_router_class, router_kind

if TYPE_CHECKING:
    from langchain_core.embeddings import Embeddings

    from langchain_llmrouter.data import RoutingDataset
    from langchain_llmrouter.routers.base import BaseRouter

CURVE_WEIGHTS = (0.0, 0.03, 0.1, 0.3, 1.0, 3.0)
"""cost_weight values whose curve points the text report lists per router."""
CALIBRATION_METHODS = ("isotonic", "isotonic-pooled")
"""Values of a row's ``calibrate`` key: one isotonic map per candidate, or one for all."""


@dataclass
class SplitResult:
    """Reports on one subset of the test queries."""

    label: str
    n_queries: int
    references: ReferencePoints
    reports: list[RouterReport]


@dataclass
class BenchResult:
    """Everything one benchmark run measured."""

    candidates: list[str]
    n_train: int
    splits: list[SplitResult]
    routers: list[str]
    machine: str = ""
    curves: dict[str, list[tuple[float, float, float]]] = field(default_factory=dict)

    def format(self) -> str:
        """The tables of ``BENCHMARK.md`` as plain text."""
        blocks = [
            f"train queries: {self.n_train}; candidates: {len(self.candidates)}; {self.machine}"
        ]
        for split in self.splits:
            blocks.append(
                format_table(
                    split.reports,
                    split.references,
                    title=f"{split.label} ({split.n_queries} test queries)",
                    candidate_names=self.candidates,
                )
            )
        for name, points in self.curves.items():
            lines = [
                f"### {name} quality-cost curve (all test queries)",
                "",
                "| cost_weight | Q | $/1k |",
                "| --- | --- | --- |",
            ]
            lines += [f"| {w:g} | {q:.3f} | {c:.3f} |" for w, q, c in points]
            blocks.append("\n".join(lines))
        return "\n\n".join(blocks)

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable figures."""
        return {
            "candidates": self.candidates,
            "n_train": self.n_train,
            "machine": self.machine,
            "routers": self.routers,
            "splits": [
                {
                    "label": s.label,
                    "n_queries": s.n_queries,
                    "references": s.references.to_dict(),
                    "reports": [r.to_dict() for r in s.reports],
                }
                for s in self.splits
            ],
        }


def _machine() -> str:
    import os
    import platform

    return f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"


def _route_ms_per_1k(
    router: BaseRouter, queries: list[str], embeddings: np.ndarray | None
) -> float:
    """Milliseconds to route 1,000 queries in one batch, embeddings precomputed."""
    reps = -(-1000 // len(queries))
    batch = (queries * reps)[:1000]
    x = None if embeddings is None else np.tile(embeddings, (reps, 1))[:1000]
    router.route_batch(batch[:10], query_embeddings=None if x is None else x[:10])  # warm-up
    start = time.perf_counter()
    router.route_batch(batch, query_embeddings=x)
    return (time.perf_counter() - start) * 1000.0


def _single_round_class(name: str) -> type[BaseRouter]:
    """The registry's class for ``name``, a single-round router (``router_kind`` "single")."""
    cls = get_router_class(name)
    if router_kind(name) != "single":
        raise GraphRouterError(name)
    return cast("type[BaseRouter]", cls)


def _router_spec(
    label: str, params: dict[str, Any]
) -> tuple[str, dict[str, Any], str | None, str | None]:
    """(router name, hyperparameters, featuriser, quality calibration) of one benchmark row."""
    from langchain_llmrouter.embeddings import DEFAULT_EMBEDDING_MODEL, STATIC_EMBEDDING_MODEL

    params = dict(params or {})
    name = params.pop("router", label)
    if not isinstance(name, str):
        raise ValueError(f"routers.{label}.router must be a router name, got {name!r}")
    featuriser = params.pop("embedding", None)
    valid = (DEFAULT_EMBEDDING_MODEL, STATIC_EMBEDDING_MODEL)
    if featuriser is not None and featuriser not in valid:
        raise ValueError(
            f"routers.{label}.embedding must be one of {', '.join(valid)}, got {featuriser!r}"
        )
    calibrate = params.pop("calibrate", None)
    if calibrate is not None and calibrate not in CALIBRATION_METHODS:
        raise ValueError(
            f"routers.{label}.calibrate must be one of {', '.join(CALIBRATION_METHODS)}, "
            f"got {calibrate!r}"
        )
    return name, params, featuriser, calibrate


def _align(router: BaseRouter, predicted: np.ndarray, test: RoutingDataset) -> np.ndarray:
    """Predictions in the test file's candidate order; a candidate the router does not
    know (a two-candidate router, say) gets NaN, which the policy never picks."""
    if router.candidates_ == test.candidates:
        return predicted
    unknown = sorted(set(router.candidates_) - set(test.candidates))
    if unknown:
        raise ValueError(f"{router.name} routes to candidates the test data lacks: {unknown}")
    aligned = np.full((len(predicted), len(test.candidates)), np.nan)
    for j, name in enumerate(router.candidates_):
        aligned[:, test.candidates.index(name)] = predicted[:, j]
    return aligned


def run_benchmark(
    train: RoutingDataset,
    test: RoutingDataset,
    routers: dict[str, dict[str, Any]],
    *,
    embeddings: Embeddings | None = None,
    log: Callable[[str], None] | None = None,
) -> BenchResult:
    """Train each router on ``train`` and evaluate it on ``test``.

    Args:
        train: Training routing data.
        test: Test routing data (same candidates, in the same order).
        routers: Row label -> hyperparameters. The label is the router name, unless the
            hyperparameters name the router under a ``router`` key, which lets one run
            compare variants (``{"elo-global": {"router": "elorouter", "variant": "global"}}``);
            an ``embedding`` key (``static-minilm-l6-v2`` or ``all-MiniLM-L6-v2``) trains that
            row on another featuriser, and a ``calibrate`` key (``isotonic`` or
            ``isotonic-pooled``) calibrates its qualities on out-of-fold training predictions
            (`langchain_llmrouter.routers.calibrate_quality`; counted in "fit s").
        embeddings: Embedder for embedding-based routers (default: bundled MiniLM).
        log: Progress messages go here.
    """
    say = log or (lambda _msg: None)
    if train.candidates != test.candidates:
        raise ValueError(
            f"train and test have different candidates: {train.candidates} vs {test.candidates}; "
            "read both with the same CandidatePool"
        )
    best = train.candidates.index(train.best_single())
    novel = test.novel_mask(train)
    subsets = [("all", np.ones(len(test), dtype=bool))]
    if novel.any():  # test queries that all appear in the training file have no novel split
        subsets.append(("novel", novel))

    specs = {label: _router_spec(label, params) for label, params in routers.items()}
    multi_round = sorted(
        label for label, (name, *_) in specs.items() if router_kind(name) == "graph"
    )
    if multi_round:
        raise ValueError(
            f"multi-round routers cannot be benchmarked on recorded routing data (they decide "
            f"while calling LLMs): {', '.join(multi_round)}"
        )
    classes = {label: _single_round_class(name) for label, (name, *_) in specs.items()}
    for label, (name, _, _, calibrate) in specs.items():
        if calibrate is not None and not classes[label].cost_aware:
            raise ValueError(
                f"routers.{label}.calibrate: {name} makes a fixed choice (no predicted "
                "qualities to calibrate)"
            )
    # One embedder and one pair of vector sets per featuriser the rows use.
    embedders: dict[str | None, Embeddings | None] = {None: embeddings}
    vectors: dict[str | None, tuple[np.ndarray, np.ndarray]] = {}
    for label, (_, _, featuriser, _) in specs.items():
        if featuriser is not None and featuriser not in embedders:
            from langchain_llmrouter.embeddings import builtin_embeddings

            embedders[featuriser] = builtin_embeddings(featuriser)
        if classes[label].uses_embeddings and featuriser not in vectors:
            from langchain_llmrouter.embeddings import embed_texts

            say(
                f"embedding {len(train)} train and {len(test)} test queries with "
                f"{featuriser or 'the configured embedder'} (cached after the first run)"
            )
            embedder = embedders[featuriser]
            vectors[featuriser] = (
                embed_texts(train.queries, embedder),
                embed_texts(test.queries, embedder),
            )

    # Per subset: list of (name, kind, payload) evaluated the same way.
    entries: list[tuple[str, str, np.ndarray, float | None, float | None]] = []
    for name, (_, params, featuriser, calibrate) in specs.items():
        cls = classes[name]
        x_train, x_test = vectors.get(featuriser, (None, None))
        router = cls.from_params(params, embeddings=embedders[featuriser])
        start = time.perf_counter()
        if cls.trainable:
            router.fit(train, query_embeddings=x_train if cls.uses_embeddings else None)
        else:
            router.fit_candidates(train.candidate_info())
        if calibrate is not None and cls.cost_aware:
            from langchain_llmrouter.routers.calibrate_quality import calibrate_qualities

            calibrate_qualities(
                router,
                train,
                query_embeddings=x_train if cls.uses_embeddings else None,
                pooled=calibrate == "isotonic-pooled",
            )
        fit_s = time.perf_counter() - start
        emb = x_test if cls.uses_embeddings else None
        route_ms = _route_ms_per_1k(router, test.queries, emb)
        predicted = _align(router, router.predict_quality(test.queries, query_embeddings=emb), test)
        say(f"{name}: fitted in {fit_s:.2f}s, routes 1k queries in {route_ms:.1f} ms")
        if cls.cost_aware:
            entries.append(
                (name, "predicted", predicted, fit_s if cls.trainable else None, route_ms)
            )
        else:
            entries.append((name, "choices", predicted.argmax(axis=1), None, route_ms))

    references: list[tuple[str, str, np.ndarray]] = []
    n = len(test)
    for j, cand in enumerate(test.candidates):
        references.append((f"always {cand}", "choices", np.full(n, j)))
    for name in ("randomrouter", "smallest_llm", "largest_llm"):
        if name in routers:
            continue
        ref_cls = _single_round_class(name)
        ref = ref_cls.from_params({"seed": 0} if name == "randomrouter" else {}).fit_candidates(
            train.candidate_info()
        )
        references.append((name, "choices", ref.predict_quality(test.queries).argmax(axis=1)))
    references.append(("oracle", "predicted", np.nan_to_num(test.performance, nan=-1.0)))

    splits = []
    for label, mask in subsets:
        perf, cost = test.performance[mask], test.cost[mask]
        refs = reference_points(perf, cost, best)
        reports = []
        for name, kind, payload, fitted_s, routed_ms in entries:
            evaluate = evaluate_router if kind == "predicted" else evaluate_choices
            reports.append(
                evaluate(
                    name, payload[mask], perf, cost, best, fit_s=fitted_s, route_ms_per_1k=routed_ms
                )
            )
        for name, kind, payload in references:
            evaluate = evaluate_router if kind == "predicted" else evaluate_choices
            reports.append(evaluate(name, payload[mask], perf, cost, best))
        splits.append(
            SplitResult(
                label=f"{label} test queries",
                n_queries=int(mask.sum()),
                references=refs,
                reports=reports,
            )
        )

    curves = {
        name: [
            (p.cost_weight, p.quality, p.cost_per_1k)
            for p in quality_cost_curve(payload, test.performance, test.cost, CURVE_WEIGHTS)
        ]
        for name, kind, payload, _, _ in entries
        if kind == "predicted"
    }
    return BenchResult(
        candidates=list(test.candidates),
        n_train=len(train),
        splits=splits,
        routers=list(routers),
        machine=_machine(),
        curves=curves,
    )
