"""Calibration: the ``cost_weight`` that sends a target share of queries to one candidate.

RouteLLM's most-used knob, for every single-round router: on a sample of your own queries,
find the ``cost_weight`` of the shared policy (``argmax(quality − cost_weight × cost_per_1k)``,
`langchain_llmrouter.routers.policy`) that sends ``target_share`` of them to a candidate
(by default the dearest), or that meets a target average dollars per 1,000 queries.

The router scores the sample once; the sweep over ``cost_weight`` is exact and in numpy. As
the weight grows, a query's choice only ever moves to a strictly cheaper candidate, so each
query's choice is a step function of the weight with at most ``m − 1`` steps, found by
intersecting utility lines. Between two consecutive steps of the whole sample nothing changes;
`Calibration.curve` lists every such interval (its smallest weight, share, quality, cost).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from langchain_llmrouter.data import RoutingDataset
from langchain_llmrouter.errors import LLMRouterError, UnknownCandidateError
from langchain_llmrouter.routers.policy import choose

if TYPE_CHECKING:
    from langchain_llmrouter.routers.base import BaseRouter

__all__ = [
    "Calibration",
    "CalibrationError",
    "CurvePoint",
    "calibrate",
    "calibrated_cost_weight",
]

_DECIMALS = 12  # closeness to the target is compared at this precision (ties: smaller weight)


class CalibrationError(LLMRouterError, ValueError):
    """A calibration target is invalid, cannot be met, or was never calibrated."""


class CurvePoint(BaseModel):
    """The routing of the sample from one ``cost_weight`` up to the next point's."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    cost_weight: float
    """The smallest weight of the interval (the policy gives the same choices up to the next)."""
    share: float
    """Share of the sample sent to the calibrated candidate."""
    quality_proxy: float
    """Mean predicted quality of the chosen candidates."""
    quality: float | None = None
    """Mean true quality of the chosen candidates (routing data only; None for bare queries)."""
    cost_per_1k: float
    """Mean estimated dollars per 1,000 queries."""


class Calibration(BaseModel):
    """The calibrated ``cost_weight``, what it achieves on the sample, and the whole curve."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    router: str
    """The router calibrated."""
    candidate: str
    """The candidate whose share is targeted (and reported)."""
    target_share: float | None = None
    """The share asked for, if calibrating a share."""
    target_cost_per_1k: float | None = None
    """The dollars per 1,000 queries asked for, if calibrating a cost."""
    cost_weight: float
    """The chosen weight: 0 when the first interval is chosen, else the middle of the chosen
    interval (twice its start for the last one), so no query sits on the edge of flipping."""
    share: float
    """Share of the sample sent to ``candidate`` at ``cost_weight``."""
    quality_proxy: float
    """Mean predicted quality of the chosen candidates at ``cost_weight``."""
    quality: float | None = None
    """Mean true quality at ``cost_weight`` (routing data only)."""
    cost_per_1k: float
    """Mean estimated dollars per 1,000 queries at ``cost_weight``."""
    n_queries: int
    """Size of the sample."""
    curve: list[CurvePoint] = Field(default_factory=list)
    """Every interval of weights with distinct choices, smallest weight first."""

    def at(self, cost_weight: float) -> CurvePoint:
        """The curve point in force at ``cost_weight`` (the interval that holds it)."""
        if not cost_weight >= 0:
            raise CalibrationError(f"cost_weight must be >= 0, got {cost_weight}")
        starts = [p.cost_weight for p in self.curve]
        return self.curve[max(0, int(np.searchsorted(starts, cost_weight, side="right")) - 1)]

    def grid(self, n: int = 10) -> list[float]:
        """0 and ``n`` log-spaced weights spanning the curve's steps, plus the chosen weight."""
        steps = [p.cost_weight for p in self.curve if p.cost_weight > 0]
        weights = {0.0, self.cost_weight}
        if steps:
            low, high = math.log10(steps[0]), math.log10(steps[-1] * 2)
            weights.update(float(f"{w:.3g}") for w in np.logspace(low, high, n))
        return sorted(weights)

    def table(self, weights: Sequence[float] | None = None) -> str:
        """The curve at ``weights`` (default: `grid`) as a Markdown table; the chosen row is bold."""
        has_truth = self.quality is not None
        header = f"| cost_weight | share to {self.candidate} | Q (predicted) |"
        header += " Q (true) |" if has_truth else ""
        lines = [header + " $ per 1k |", "|" + " --- |" * (5 if has_truth else 4)]
        for w in self.grid() if weights is None else weights:
            p = self.at(w)
            cells = [f"{w:.4g}", f"{p.share:.1%}", f"{p.quality_proxy:.3f}"]
            if has_truth:
                cells.append("" if p.quality is None else f"{p.quality:.3f}")
            cells.append(f"{p.cost_per_1k:.3f}")
            if w == self.cost_weight:
                cells = [f"**{c}**" for c in cells]
            lines.append("| " + " | ".join(cells) + " |")
        return "\n".join(lines)

    def record(self) -> dict[str, Any]:
        """What a saved router keeps of this calibration (`apply`), without the curve."""
        return self.model_dump(exclude={"curve"})

    def apply(self, router: BaseRouter) -> BaseRouter:
        """Set the router's ``cost_weight`` and remember this calibration (``router.save``
        writes both into ``router.json``; a calibration of the same target is replaced)."""
        if router.name != self.router:
            raise CalibrationError(f"this calibration is for {self.router}, not {router.name}")
        router.set_params(cost_weight=self.cost_weight)
        kept = [
            r
            for r in getattr(router, "calibrations_", [])
            if (r.get("candidate"), r.get("target_share"), r.get("target_cost_per_1k"))
            != (self.candidate, self.target_share, self.target_cost_per_1k)
        ]
        router.calibrations_ = [*kept, self.record()]
        return router


def calibrate(
    router: BaseRouter,
    queries: Sequence[str] | RoutingDataset,
    *,
    target_share: float | None = None,
    candidate: str | None = None,
    target_cost_per_1k: float | None = None,
    query_embeddings: np.ndarray | None = None,
) -> Calibration:
    """Find the ``cost_weight`` that meets a target on a sample of queries.

    Give exactly one target. For ``target_share``, the weight whose share of queries sent to
    ``candidate`` is closest to it (ties: the smaller weight). For ``target_cost_per_1k``, the
    smallest weight whose mean estimated cost is at most that many dollars per 1,000 queries
    (the cost never rises with the weight, so that is the best predicted quality within it).
    The router's own ``budget`` applies, as when it routes.

    Args:
        router: A fitted single-round router (its ``cost_weight`` is not changed; see
            `Calibration.apply`).
        queries: Query texts, or routing data (then the curve also has the true quality).
        target_share: Share in [0, 1] of the sample to send to ``candidate``.
        candidate: The candidate whose share is targeted (default: the dearest on the sample,
            ties to the one of highest mean predicted quality, then the first).
        target_cost_per_1k: Mean dollars per 1,000 queries to meet instead.
        query_embeddings: Precomputed embeddings of the queries, for embedding routers.

    Raises:
        CalibrationError: no target or both, a target out of range, a router that ignores
            cost, an empty sample, or a cost target that even the cheapest routing exceeds.
        UnknownCandidateError: ``candidate`` is not one of the router's (they are listed).
    """
    _check_targets(target_share, target_cost_per_1k)
    if not getattr(router, "cost_aware", False) or not hasattr(router, "predict_quality"):
        raise CalibrationError(
            f"{router.name} does not route by the cost policy, so it has no cost_weight to "
            "calibrate (calibrate a single-round router such as knnrouter)"
        )
    data = queries if isinstance(queries, RoutingDataset) else None
    texts = list(queries.queries if isinstance(queries, RoutingDataset) else queries)
    if not texts:
        raise CalibrationError("calibration needs at least one query")
    names = list(router.candidates_)
    predicted = router.predict_quality(texts, query_embeddings=query_embeddings)
    cost = router.estimate_costs(texts)
    if not np.isfinite(cost).all():
        raise CalibrationError("the router's estimated costs are not all finite (check prices)")
    truth = _truth(data, names) if data is not None else None
    if candidate is None:
        target = _dearest(predicted, cost)
    elif candidate in names:
        target = names.index(candidate)
    else:
        raise UnknownCandidateError(candidate, names, context=f"calibrate {router.name}")

    curve = _curve(predicted, cost, truth, target, router.budget)
    if target_share is not None:
        shares = np.array([p.share for p in curve])
        pick = int(np.argmin(np.round(np.abs(shares - target_share), _DECIMALS)))
    else:
        assert target_cost_per_1k is not None
        costs = np.array([p.cost_per_1k for p in curve])
        meets = np.flatnonzero(costs <= target_cost_per_1k * (1 + 1e-12))
        if len(meets) == 0:
            raise CalibrationError(
                f"no cost_weight meets ${target_cost_per_1k:g} per 1k queries: the cheapest "
                f"routing of this sample costs ${costs.min():.4g} per 1k"
            )
        pick = int(meets[0])
    weight = _inside(curve, pick)
    achieved = _evaluate(predicted, cost, truth, target, router.budget, weight)
    return Calibration(
        router=router.name,
        candidate=names[target],
        target_share=target_share,
        target_cost_per_1k=target_cost_per_1k,
        cost_weight=weight,
        share=achieved.share,
        quality_proxy=achieved.quality_proxy,
        quality=achieved.quality,
        cost_per_1k=achieved.cost_per_1k,
        n_queries=len(texts),
        curve=curve,
    )


def calibrated_cost_weight(
    router: BaseRouter,
    target_share: float,
    *,
    queries: Sequence[str] | RoutingDataset | None = None,
    candidate: str | None = None,
) -> float:
    """The ``cost_weight`` for ``target_share``: calibrated now on ``queries`` if given, else
    the latest calibration of that share the router carries (from ``llmrouter calibrate``).

    Raises:
        CalibrationError: no queries and no saved calibration of that share.
    """
    _check_targets(target_share, None)
    if queries is not None:
        return calibrate(
            router, queries, target_share=target_share, candidate=candidate
        ).cost_weight
    saved = [
        r
        for r in getattr(router, "calibrations_", [])
        if r.get("target_share") is not None
        and math.isclose(r["target_share"], target_share, abs_tol=1e-9)
        and candidate in (None, r.get("candidate"))
    ]
    if saved:
        return float(saved[-1]["cost_weight"])
    known = ", ".join(
        f"{r['target_share']:g} to {r.get('candidate')}"
        for r in getattr(router, "calibrations_", [])
        if r.get("target_share") is not None
    )
    raise CalibrationError(
        f"{router.name} carries no calibration for target_share {target_share:g} "
        f"(it has: {known or 'none'}); run `llmrouter calibrate --router {router.name} "
        f"--config CONFIG --queries FILE --target-share {target_share:g}`, "
        "or pass calibration_queries=[...] to calibrate on a sample now"
    )


# --- the sweep ------------------------------------------------------------------------------


def _check_targets(target_share: float | None, target_cost_per_1k: float | None) -> None:
    if (target_share is None) == (target_cost_per_1k is None):
        raise CalibrationError("give exactly one target: target_share or target_cost_per_1k")
    if target_share is not None and not 0 <= target_share <= 1:
        raise CalibrationError(f"target_share must be in [0, 1], got {target_share}")
    if target_cost_per_1k is not None and not target_cost_per_1k > 0:
        raise CalibrationError(f"target_cost_per_1k must be > 0 dollars, got {target_cost_per_1k}")


def _truth(dataset: RoutingDataset, names: list[str]) -> np.ndarray | None:
    """The data's true quality in the router's candidate order (NaN where unknown)."""
    columns = [dataset.candidates.index(n) if n in dataset.candidates else -1 for n in names]
    if all(c < 0 for c in columns):
        return None
    perf = np.asarray(dataset.performance, dtype=np.float64)
    return np.stack([perf[:, c] if c >= 0 else np.full(len(perf), np.nan) for c in columns], axis=1)


def _dearest(predicted: np.ndarray, cost: np.ndarray) -> int:
    """The dearest candidate on the sample; ties: highest mean predicted quality, then first."""
    mean_cost = np.round(cost.mean(axis=0), _DECIMALS + 3)
    with np.errstate(invalid="ignore"):
        mean_quality = np.nan_to_num(np.nanmean(predicted, axis=0), nan=-np.inf)
    order = np.lexsort((np.arange(len(mean_cost)), -mean_quality, -mean_cost))
    return int(order[0])


def _eligible(predicted: np.ndarray, cost: np.ndarray, budget: float | None) -> np.ndarray:
    """Which candidates the policy may choose as the weight varies (within budget, scored)."""
    eligible = np.isfinite(predicted)
    if budget is not None:
        within = eligible & (cost <= budget)
        # With none within budget, the policy's choice is fixed (the cheapest).
        eligible = np.where(within.any(axis=1, keepdims=True), within, False)
    return eligible


def _steps(
    predicted: np.ndarray, cost: np.ndarray, budget: float | None
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Every query's choice at weight 0 and each later change: (first, weight, row, old, new).

    From a query's current choice, only strictly cheaper candidates can overtake it as the
    weight grows; the next change is at the smallest crossing of their utility lines, and at
    the crossing the tie goes to the cheaper (then earlier) candidate, as in the policy.
    """
    n, m = predicted.shape
    slope = cost * 1000.0  # utility = quality − weight × dollars per 1,000 queries
    first = choose(predicted, cost, 0.0, budget=budget)
    eligible = _eligible(predicted, cost, budget)
    rows = np.arange(n)
    current, at = first.copy(), np.zeros(n)
    found: list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]] = []
    for _ in range(m - 1):
        c_now, q_now = slope[rows, current], predicted[rows, current]
        cheaper = eligible & (slope < c_now[:, None]) & eligible[rows, current][:, None]
        with np.errstate(divide="ignore", invalid="ignore"):
            cross = (q_now[:, None] - predicted) / (c_now[:, None] - slope)
        cross = np.where(cheaper, np.maximum(cross, at[:, None]), np.inf)
        nxt_w = cross.min(axis=1)
        moving = np.isfinite(nxt_w)
        if not moving.any():
            break
        # Among candidates crossing first: the cheapest, then the earliest (argmin takes it).
        tied = cheaper & (cross == nxt_w[:, None])
        nxt = np.argmin(np.where(tied, slope, np.inf), axis=1)
        found.append((nxt_w[moving], rows[moving], current[moving], nxt[moving]))
        current = np.where(moving, nxt, current)
        at = np.where(moving, nxt_w, at)
    if not found:
        empty = np.zeros(0, dtype=np.int64)
        return first, np.zeros(0), empty, empty, empty
    weight, row, old, new = (np.concatenate(parts) for parts in zip(*found, strict=True))
    return first, weight, row, old, new


def _curve(
    predicted: np.ndarray,
    cost: np.ndarray,
    truth: np.ndarray | None,
    target: int,
    budget: float | None,
) -> list[CurvePoint]:
    """The sample's share, quality and cost on every interval of weights (exact)."""
    n = len(predicted)
    first, weight, row, old, new = _steps(predicted, cost, budget)
    per_1k = cost * 1000.0
    rows = np.arange(n)

    def totals(matrix: np.ndarray) -> tuple[float, np.ndarray]:
        return float(matrix[rows, first].sum()), matrix[row, new] - matrix[row, old]

    is_target = (np.arange(predicted.shape[1]) == target)[None, :].repeat(n, axis=0)
    sums = {
        "share": totals(is_target.astype(np.float64)),
        "quality_proxy": totals(np.nan_to_num(predicted)),
        "cost_per_1k": totals(per_1k),
    }
    if truth is not None:
        sums["truth_sum"] = totals(np.nan_to_num(truth))
        sums["truth_count"] = totals(np.isfinite(truth).astype(np.float64))
    # Group the changes by weight; weight 0 is the start, with no change of its own.
    order = np.argsort(weight, kind="stable")
    starts, group = np.unique(np.concatenate([[0.0], weight[order]]), return_inverse=True)
    values: dict[str, np.ndarray] = {}
    for key, (base, delta) in sums.items():
        per_group = np.zeros(len(starts))
        np.add.at(per_group, group[1:], delta[order])
        values[key] = base + np.cumsum(per_group)
    points = []
    for i, start in enumerate(starts):
        quality = None
        if truth is not None and values["truth_count"][i] > 0.5:
            quality = float(values["truth_sum"][i] / values["truth_count"][i])
        points.append(
            CurvePoint(
                cost_weight=float(start),
                share=float(np.round(values["share"][i]) / n),
                quality_proxy=float(values["quality_proxy"][i] / n),
                quality=quality,
                cost_per_1k=float(values["cost_per_1k"][i] / n),
            )
        )
    return points


def _inside(curve: list[CurvePoint], index: int) -> float:
    """A weight inside interval ``index``: 0 for the first, else its middle (last: 2 × start)."""
    if index == 0:
        return 0.0
    start = curve[index].cost_weight
    if index + 1 == len(curve):
        return float(2 * start)
    return float((start + curve[index + 1].cost_weight) / 2)


def _evaluate(
    predicted: np.ndarray,
    cost: np.ndarray,
    truth: np.ndarray | None,
    target: int,
    budget: float | None,
    weight: float,
) -> CurvePoint:
    """The sample routed by the policy itself at ``weight`` (what the router will do)."""
    chosen = choose(predicted, cost, weight, budget=budget)
    rows = np.arange(len(chosen))
    quality = None
    if truth is not None:
        picked = truth[rows, chosen]
        quality = float(np.nanmean(picked)) if np.isfinite(picked).any() else None
    return CurvePoint(
        cost_weight=weight,
        share=float(np.mean(chosen == target)),
        quality_proxy=float(np.mean(np.nan_to_num(predicted[rows, chosen]))),
        quality=quality,
        cost_per_1k=float(np.mean(cost[rows, chosen]) * 1000.0),
    )
