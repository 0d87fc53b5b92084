"""Quality-cost metrics for routers, as defined in ``BENCHMARK.md`` (pure numpy).

Inputs are aligned ``(n_queries, n_candidates)`` matrices: ``performance`` (true
quality, NaN where a candidate has no score), ``cost`` (dollars per call) and a
router's ``predicted`` quality. Every router goes through the shared policy
`choose`: ``argmax(predicted - cost_weight * cost_per_1k)`` with ``cost_per_1k =
cost * 1000``; sweeping ``cost_weight`` over `COST_WEIGHT_GRID` traces its
quality-cost curve, which `evaluate_router` condenses into the benchmark figures
(Q0, C0, gap closed, cost to match, nAUC, a paired bootstrap interval, and the expected
calibration error of the predictions, `langchain_llmrouter.evaluation.reliability`).
`apgr_cpt` gives RouteLLM's figures for strong-vs-weak data and `format_table`
prints reports side by side.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, replace
from typing import Any

import numpy as np
import numpy.typing as npt

from langchain_llmrouter.evaluation.reliability import ReliabilityBin, reliability_curve
from langchain_llmrouter.routers.policy import choose as policy_choose

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.intp]
BoolArray = npt.NDArray[np.bool_]

#: ``cost_weight`` values swept for a curve: 0 and 60 log-spaced values in [1e-3, 1e2].
COST_WEIGHT_GRID: FloatArray = np.concatenate(([0.0], np.logspace(-3.0, 2.0, 60)))
#: Number of uniformly spaced costs nAUC averages over.
NAUC_GRID_POINTS = 200
#: Slack for comparing means computed in different orders.
_TOL = 1e-9
#: Upper bound on bootstrap index-matrix elements held at once.
_BOOT_CHUNK_ELEMENTS = 2_000_000


@dataclass(frozen=True)
class CurvePoint:
    """One point of a router's quality-cost curve.

    Attributes:
        cost_weight: The policy's quality given up per dollar per 1,000 queries.
        quality: Mean true quality of the chosen candidates.
        cost_per_1k: Mean cost of the chosen candidates, dollars per 1,000 queries.
    """

    cost_weight: float
    quality: float
    cost_per_1k: float


@dataclass(frozen=True, eq=False)
class ReferencePoints:
    """Single-candidate and oracle reference figures of a test set.

    Attributes:
        candidate_quality: (m,) mean quality per candidate over its scored queries.
        candidate_cost: (m,) mean cost per candidate, dollars per 1,000 queries.
        best_single: Index of the candidate best on the training file.
        best_single_quality: Test quality of ``best_single``.
        best_single_cost: Test cost of ``best_single`` ($ per 1k queries).
        cheapest: Index of the scored candidate with the lowest mean cost.
        cheapest_quality: Test quality of ``cheapest``.
        cheapest_cost: Test cost of ``cheapest`` ($ per 1k queries).
        oracle_quality: Mean over queries of the best available quality.
        oracle_cost: Mean cost of the cheapest best-quality candidate per query.
    """

    candidate_quality: FloatArray
    candidate_cost: FloatArray
    best_single: int
    best_single_quality: float
    best_single_cost: float
    cheapest: int
    cheapest_quality: float
    cheapest_cost: float
    oracle_quality: float
    oracle_cost: float

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable form (arrays as lists, non-finite floats as None)."""
        return _jsonable(dict(vars(self)))


@dataclass(frozen=True)
class RouterReport:
    """The benchmark figures of one router on one test set.

    Attributes:
        name: Router name as printed.
        q0: Mean true quality at ``cost_weight`` 0.
        c0: Mean cost at ``cost_weight`` 0, dollars per 1,000 queries.
        gap_closed: (q0 - best single) / (oracle - best single); NaN if undefined.
        cost_to_match: Lowest curve cost reaching the best single's quality, as a
            fraction of that candidate's cost; None if no curve point reaches it.
        nauc: Normalised area under the curve between the cheapest and the best
            single candidate's cost (0 = cheapest, 1 = oracle); NaN if undefined.
        q0_diff_ci: Bootstrap 95% interval of mean(router - best single) at weight
            0, paired over test queries.
        curve: The quality-cost curve, one point per cost weight.
        n_queries: Number of test queries.
        fit_s: Training time in seconds, if measured.
        route_ms_per_1k: Time to route 1,000 queries in one batch, if measured.
        ece: Expected calibration error of the predicted qualities (equal-mass bins over
            every scored (query, candidate) pair); None for a router that only chooses.
        reliability: The reliability curve behind ``ece``; None likewise.
    """

    name: str
    q0: float
    c0: float
    gap_closed: float
    cost_to_match: float | None
    nauc: float
    q0_diff_ci: tuple[float, float]
    curve: list[CurvePoint]
    n_queries: int
    fit_s: float | None = None
    route_ms_per_1k: float | None = None
    ece: float | None = None
    reliability: list[ReliabilityBin] | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable form (tuples as lists, non-finite floats as None)."""
        return _jsonable(asdict(self))


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: _jsonable(v) for key, v in value.items()}
    if isinstance(value, list | tuple | np.ndarray):
        return [_jsonable(v) for v in value]
    if isinstance(value, float | np.floating):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, np.integer):
        return int(value)
    return value


def _as_matrix(name: str, values: npt.ArrayLike) -> FloatArray:
    arr = np.asarray(values, dtype=np.float64)
    if arr.ndim != 2:
        raise ValueError(
            f"{name} must be a 2-D (n_queries, n_candidates) array, got shape {arr.shape}"
        )
    return arr


def _check_shapes(**arrays: npt.NDArray[Any]) -> tuple[int, int]:
    shapes = {name: arr.shape for name, arr in arrays.items()}
    if len(set(shapes.values())) > 1:
        listed = ", ".join(f"{name} {shape}" for name, shape in shapes.items())
        raise ValueError(f"shape mismatch: {listed}; all must be (n_queries, n_candidates)")
    n, m = next(iter(shapes.values()))
    if n == 0 or m == 0:
        raise ValueError(f"need at least one query and one candidate, got shape {(n, m)}")
    return n, m


def _check_cost(cost: FloatArray) -> None:
    if not np.isfinite(cost).all():
        raise ValueError("cost must be finite everywhere (dollars per call)")


def _check_weights(cost_weights: npt.ArrayLike) -> FloatArray:
    weights = np.asarray(cost_weights, dtype=np.float64).reshape(-1)
    if weights.size == 0 or not (np.isfinite(weights) & (weights >= 0.0)).all():
        raise ValueError(f"cost_weight must be a finite number >= 0, got {weights.tolist()}")
    return weights


def _choose(
    predicted: FloatArray,
    cost: FloatArray,
    weight: float,
    available: BoolArray,
    budget: float | None,
) -> IntArray:
    # The routers' own policy, so evaluation measures exactly what routing does.
    if not available.any(axis=1).all():
        row = int(np.argmin(available.any(axis=1)))
        raise ValueError(f"query {row} has no available candidate")
    return policy_choose(predicted, cost, weight, budget=budget, available=available)


def choose(
    predicted: npt.ArrayLike,
    cost: npt.ArrayLike,
    cost_weight: float,
    *,
    budget: float | None = None,
    available: npt.ArrayLike | None = None,
) -> IntArray:
    """Pick one candidate per query with the shared policy.

    ``argmax_j(predicted[i, j] - cost_weight * 1000 * cost[i, j])``; ties go to the
    cheapest, then the lowest index. A NaN prediction ranks below every number.

    Args:
        predicted: (n, m) predicted quality, higher is better.
        cost: (n, m) dollars per call.
        cost_weight: Quality given up per dollar per 1,000 queries (>= 0).
        budget: Max dollars per call; candidates above it are excluded unless none
            fits, in which case the cheapest available one is chosen.
        available: (n, m) boolean mask; unavailable candidates are never chosen.

    Returns:
        (n,) integer array of chosen candidate indices.

    Raises:
        ValueError: On mismatched shapes, a negative weight or budget, non-finite
            costs, or a query with no available candidate.
    """
    pred = _as_matrix("predicted", predicted)
    cst = _as_matrix("cost", cost)
    if available is None:
        avail = np.ones(pred.shape, dtype=bool)
        _check_shapes(predicted=pred, cost=cst)
    else:
        avail = np.asarray(available)
        if avail.dtype != np.bool_:
            raise ValueError(f"available must be a boolean mask, got dtype {avail.dtype}")
        _check_shapes(predicted=pred, cost=cst, available=avail)
    _check_cost(cst)
    if budget is not None and not float(budget) >= 0.0:
        raise ValueError(f"budget must be >= 0 dollars per query, got {budget}")
    return _choose(pred, cst, float(_check_weights(cost_weight)[0]), avail, budget)


def _curve(
    choice_fn: Callable[[float], IntArray],
    performance: FloatArray,
    cost: FloatArray,
    weights: FloatArray,
) -> list[CurvePoint]:
    rows = np.arange(performance.shape[0])
    picks = [(float(w), choice_fn(float(w))) for w in weights]
    return [
        CurvePoint(w, float(performance[rows, c].mean()), float(cost[rows, c].mean() * 1000.0))
        for w, c in picks
    ]


def _prepare(
    performance: npt.ArrayLike, cost: npt.ArrayLike, **others: npt.NDArray[Any]
) -> tuple[FloatArray, FloatArray, BoolArray]:
    perf = _as_matrix("performance", performance)
    cst = _as_matrix("cost", cost)
    _check_shapes(**others, performance=perf, cost=cst)
    _check_cost(cst)
    available = ~np.isnan(perf)
    if not available.any(axis=1).all():
        row = int(np.argmin(available.any(axis=1)))
        raise ValueError(f"performance has no score for any candidate on query {row}")
    return perf, cst, available


def quality_cost_curve(
    predicted: npt.ArrayLike,
    performance: npt.ArrayLike,
    cost: npt.ArrayLike,
    cost_weights: npt.ArrayLike = COST_WEIGHT_GRID,
) -> list[CurvePoint]:
    """Trace a router's quality-cost curve over ``cost_weights``.

    Args:
        predicted: (n, m) predicted quality.
        performance: (n, m) true quality; NaN marks a candidate that cannot be chosen.
        cost: (n, m) dollars per call.
        cost_weights: Weights to sweep (each >= 0).

    Returns:
        One `CurvePoint` per weight, in the given order.
    """
    pred = _as_matrix("predicted", predicted)
    perf, cst, available = _prepare(performance, cost, predicted=pred)
    weights = _check_weights(cost_weights)
    return _curve(lambda w: _choose(pred, cst, w, available, None), perf, cst, weights)


def reference_points(
    performance: npt.ArrayLike, cost: npt.ArrayLike, train_best_single: int
) -> ReferencePoints:
    """Single-candidate and oracle figures of a test set.

    Args:
        performance: (n, m) true quality (NaN = no score).
        cost: (n, m) dollars per call.
        train_best_single: Index of the candidate best on the training file.

    Returns:
        The `ReferencePoints`.
    """
    perf, cst, available = _prepare(performance, cost)
    n, m = perf.shape
    if not 0 <= int(train_best_single) < m:
        raise ValueError(f"train_best_single must be in [0, {m}), got {train_best_single}")
    best = int(train_best_single)
    counts = available.sum(axis=0)
    sums = np.where(available, perf, 0.0).sum(axis=0)
    quality = np.where(counts > 0, sums / np.maximum(counts, 1), np.nan)
    mean_cost = cst.mean(axis=0) * 1000.0
    if counts[best] == 0:
        raise ValueError(f"candidate {best} (train_best_single) has no score on any query")
    cheapest = int(np.argmin(np.where(counts > 0, mean_cost, np.inf)))
    rows = np.arange(n)
    row_best = np.where(available, perf, -np.inf).max(axis=1)
    is_best = available & (perf == row_best[:, None])
    oracle_pick = np.where(is_best, cst, np.inf).argmin(axis=1)
    return ReferencePoints(
        candidate_quality=quality,
        candidate_cost=mean_cost,
        best_single=best,
        best_single_quality=float(quality[best]),
        best_single_cost=float(mean_cost[best]),
        cheapest=cheapest,
        cheapest_quality=float(quality[cheapest]),
        cheapest_cost=float(mean_cost[cheapest]),
        oracle_quality=float(row_best.mean()),
        oracle_cost=float(cst[rows, oracle_pick].mean() * 1000.0),
    )


def _ratio(num: float, den: float) -> float:
    return num / den if den > _TOL else math.nan


def _cost_to_match(curve: list[CurvePoint], refs: ReferencePoints) -> float | None:
    target = refs.best_single_quality - _TOL
    costs = [p.cost_per_1k for p in curve if p.quality >= target]
    if not costs:
        return None
    low = min(costs)
    if refs.best_single_cost > 0:
        return low / refs.best_single_cost
    return 0.0 if low <= 0 else math.inf


def _nauc(curve: list[CurvePoint], refs: ReferencePoints) -> float:
    lo, hi = refs.cheapest_cost, refs.best_single_cost
    xs = np.linspace(lo, hi, NAUC_GRID_POINTS) if hi > lo else np.array([hi])
    costs = np.array([lo] + [p.cost_per_1k for p in curve])
    quals = np.array([refs.cheapest_quality] + [p.quality for p in curve])
    order = np.argsort(costs, kind="stable")
    best_so_far = np.maximum.accumulate(quals[order])
    idx = np.searchsorted(costs[order], xs + _TOL, side="right") - 1
    f = best_so_far[np.maximum(idx, 0)]
    den = refs.oracle_quality - refs.cheapest_quality
    return float(np.mean(f - refs.cheapest_quality) / den) if den > _TOL else math.nan


def _paired_ci(diff: FloatArray, n_boot: int, seed: int) -> tuple[float, float]:
    diff = diff[~np.isnan(diff)]
    if diff.size == 0:
        return (math.nan, math.nan)
    rng = np.random.default_rng(seed)
    chunk = max(1, _BOOT_CHUNK_ELEMENTS // diff.size)
    means = np.empty(n_boot)
    for start in range(0, n_boot, chunk):
        stop = min(n_boot, start + chunk)
        idx = rng.integers(0, diff.size, size=(stop - start, diff.size))
        means[start:stop] = diff[idx].mean(axis=1)
    low, high = np.percentile(means, [2.5, 97.5])
    return (float(low), float(high))


def _evaluate(
    name: str,
    choice_fn: Callable[[float], IntArray],
    perf: FloatArray,
    cost: FloatArray,
    train_best_single: int,
    weights: FloatArray,
    n_boot: int,
    seed: int,
    timing: tuple[float | None, float | None],
) -> RouterReport:
    if n_boot < 1:
        raise ValueError(f"n_boot must be >= 1, got {n_boot}")
    refs = reference_points(perf, cost, train_best_single)
    rows = np.arange(perf.shape[0])
    picked = choice_fn(0.0)
    q_router = perf[rows, picked]
    q0 = float(q_router.mean())
    curve = _curve(choice_fn, perf, cost, weights)
    best_q = refs.best_single_quality
    return RouterReport(
        name=name,
        q0=q0,
        c0=float(cost[rows, picked].mean() * 1000.0),
        gap_closed=_ratio(q0 - best_q, refs.oracle_quality - best_q),
        cost_to_match=_cost_to_match(curve, refs),
        nauc=_nauc(curve, refs),
        q0_diff_ci=_paired_ci(q_router - perf[:, refs.best_single], n_boot, seed),
        curve=curve,
        n_queries=int(perf.shape[0]),
        fit_s=timing[0],
        route_ms_per_1k=timing[1],
    )


def evaluate_router(
    name: str,
    predicted: npt.ArrayLike,
    performance: npt.ArrayLike,
    cost: npt.ArrayLike,
    train_best_single: int,
    *,
    cost_weights: npt.ArrayLike = COST_WEIGHT_GRID,
    n_boot: int = 1000,
    seed: int = 0,
    fit_s: float | None = None,
    route_ms_per_1k: float | None = None,
) -> RouterReport:
    """All benchmark figures of a router that predicts a quality per candidate, with the
    calibration of its predictions (``ece``, ``reliability``).

    Args:
        name: Router name as printed.
        predicted: (n, m) predicted quality.
        performance: (n, m) true quality (NaN = no score, never chosen).
        cost: (n, m) dollars per call.
        train_best_single: Index of the candidate best on the training file.
        cost_weights: Weights to sweep for the curve.
        n_boot: Bootstrap resamples for the Q0 interval.
        seed: Seed of the bootstrap's random generator.
        fit_s: Training time in seconds, if measured.
        route_ms_per_1k: Batch routing time per 1,000 queries, if measured.

    Returns:
        The `RouterReport`.
    """
    pred = _as_matrix("predicted", predicted)
    perf, cst, available = _prepare(performance, cost, predicted=pred)
    weights = _check_weights(cost_weights)

    def pick(weight: float) -> IntArray:
        return _choose(pred, cst, weight, available, None)

    timing = (fit_s, route_ms_per_1k)
    report = _evaluate(name, pick, perf, cst, train_best_single, weights, n_boot, seed, timing)
    curve = reliability_curve(pred, perf)
    return replace(report, ece=curve.ece, reliability=curve.bins)


def evaluate_choices(
    name: str,
    choices: npt.ArrayLike,
    performance: npt.ArrayLike,
    cost: npt.ArrayLike,
    train_best_single: int,
    *,
    cost_weights: npt.ArrayLike = COST_WEIGHT_GRID,
    n_boot: int = 1000,
    seed: int = 0,
    fit_s: float | None = None,
    route_ms_per_1k: float | None = None,
) -> RouterReport:
    """Benchmark figures of a router that makes one fixed choice per query.

    The router ignores ``cost_weight``, so its curve is the same point at every
    weight. Arguments are as in `evaluate_router`, with ``choices`` an (n,) array of
    candidate indices in place of predictions.

    Returns:
        The `RouterReport`.
    """
    perf, cst, available = _prepare(performance, cost)
    n, m = perf.shape
    picked = np.asarray(choices)
    if picked.shape != (n,) or not np.issubdtype(picked.dtype, np.integer):
        raise ValueError(
            f"choices must be an integer array of shape ({n},), got {picked.dtype} {picked.shape}"
        )
    if picked.min() < 0 or picked.max() >= m:
        raise ValueError(f"choices must be candidate indices in [0, {m})")
    missing = ~available[np.arange(n), picked]
    if missing.any():
        raise ValueError(f"choice for query {int(np.argmax(missing))} has no score (NaN)")
    fixed = picked.astype(np.intp)
    weights, timing = _check_weights(cost_weights), (fit_s, route_ms_per_1k)
    return _evaluate(
        name, lambda _w: fixed, perf, cst, train_best_single, weights, n_boot, seed, timing
    )


def apgr_cpt(
    strong_advantage: npt.ArrayLike,
    performance_strong: npt.ArrayLike,
    performance_weak: npt.ArrayLike,
) -> dict[str, Any]:
    """RouteLLM's APGR and CPT for two-candidate (strong vs weak) data.

    Queries are ranked by ``strong_advantage`` descending (ties keep input order);
    for each share s in 0, 0.05, ..., 1 the top ``round(s*n)`` (halves up) go to the
    strong model.

    Args:
        strong_advantage: (n,) the router's predicted advantage of the strong model.
        performance_strong: (n,) true quality of the strong model.
        performance_weak: (n,) true quality of the weak model.

    Returns:
        ``{"apgr": float, "cpt50": float | None, "cpt80": float | None,
        "pgr_curve": [(share, pgr), ...]}``; a CPT is None if no share reaches it.
    """
    arrays = {
        "strong_advantage": np.asarray(strong_advantage, dtype=np.float64),
        "performance_strong": np.asarray(performance_strong, dtype=np.float64),
        "performance_weak": np.asarray(performance_weak, dtype=np.float64),
    }
    shapes = {name: arr.shape for name, arr in arrays.items()}
    if len(set(shapes.values())) > 1 or arrays["strong_advantage"].ndim != 1:
        listed = ", ".join(f"{name} {shape}" for name, shape in shapes.items())
        raise ValueError(f"shape mismatch: {listed}; all must be 1-D (n_queries,)")
    for name, arr in arrays.items():
        if arr.size == 0 or not np.isfinite(arr).all():
            raise ValueError(f"{name} must be non-empty and finite")
    adv, strong, weak = arrays.values()
    n = adv.size
    order = np.argsort(-adv, kind="stable")
    gain = np.concatenate(([0.0], np.cumsum((strong - weak)[order])))
    if abs(gain[-1]) <= _TOL * n:
        raise ValueError("strong and weak have the same mean quality: PGR is undefined")
    steps = np.arange(21)
    pgr = gain[(steps * n + 10) // 20] / gain[-1]
    shares = steps / 20.0

    def cpt(p: float) -> float | None:
        hit = np.flatnonzero(pgr >= p - _TOL)
        return float(shares[hit[0]]) if hit.size else None

    return {
        "apgr": float(pgr.mean()),
        "cpt50": cpt(0.5),
        "cpt80": cpt(0.8),
        "pgr_curve": [(float(s), float(v)) for s, v in zip(shares, pgr, strict=True)],
    }


def _fmt(value: float | None, spec: str) -> str:
    if value is None:
        return "-"
    if not math.isfinite(value):
        return "nan"
    text = format(value, spec)
    return format(0.0, spec) if float(text) == 0.0 else text  # no "-0.00"


def _fmt_match(value: float | None) -> str:
    if value is None:
        return "never"
    return f"{value * 100:.0f}%" if math.isfinite(value) else "inf"


def format_table(
    reports: list[RouterReport],
    refs: ReferencePoints,
    *,
    title: str = "",
    candidate_names: Sequence[str] | None = None,
) -> str:
    """A pipe table of reports, followed by a line of reference figures.

    Args:
        reports: Router reports, printed in the given order.
        refs: Reference figures of the same test set.
        title: Optional heading printed above the table.
        candidate_names: Optional names for the reference line (else indices).

    Returns:
        The table as markdown-compatible plain text.
    """
    header = [
        "router", "Q0", "95% CI vs best", "C0 $/1k", "gap closed",
        "cost to match", "nAUC", "ECE", "fit s", "route ms/1k",
    ]  # fmt: skip
    rows = [
        [
            r.name,
            _fmt(r.q0, ".3f"),
            f"[{_fmt(r.q0_diff_ci[0], '+.3f')}, {_fmt(r.q0_diff_ci[1], '+.3f')}]",
            _fmt(r.c0, ".3f"),
            _fmt(r.gap_closed, ".2f"),
            _fmt_match(r.cost_to_match),
            _fmt(r.nauc, ".3f"),
            _fmt(r.ece, ".3f"),
            _fmt(r.fit_s, ".2f"),
            _fmt(r.route_ms_per_1k, ".1f"),
        ]
        for r in reports
    ]
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]

    def line(cells: list[str]) -> str:
        return "| " + " | ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)) + " |"

    def label(index: int) -> str:
        return candidate_names[index] if candidate_names is not None else f"#{index}"

    lines = [f"### {title}", ""] if title else []
    lines += [line(header), "| " + " | ".join("-" * w for w in widths) + " |"]
    lines += [line(row) for row in rows]
    lines += [
        "",
        f"reference: best single {label(refs.best_single)} Q {refs.best_single_quality:.3f}"
        f" at ${refs.best_single_cost:.3f}/1k; cheapest {label(refs.cheapest)}"
        f" Q {refs.cheapest_quality:.3f} at ${refs.cheapest_cost:.3f}/1k;"
        f" oracle Q {refs.oracle_quality:.3f} at ${refs.oracle_cost:.3f}/1k",
    ]
    return "\n".join(lines)
