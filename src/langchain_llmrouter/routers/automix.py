"""AutoMix (Aggarwal et al., 2023, arXiv 2310.12963): the framework-free part.

A cascade of candidates, cheapest first, answers one stage at a time; each answer is
self-verified ``k`` times and a policy accepts it or escalates to the next model. This
module holds the policies (``threshold``, ``self_consistency``, ``pomdp``: the one
implementation of "escalate?", used by the graph's ``decide`` node and by the simulation
here), the vectorised simulation of the cascade, and `AutoMixFitter`, which fits a policy
from routing data with verification results. It imports no LangGraph:
`langchain_llmrouter.graphs.automix` runs the cascade as a graph, and
`langchain_llmrouter.graphs.automix_router.AutoMixRouter` (the registry's ``automix``) adds
``as_graph`` to `AutoMixFitter`. ``docs/routers/automix.md`` describes the policies, the
simulation and the objectives.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
from pydantic import Field, field_validator

from langchain_llmrouter.errors import ConfigError, DataFormatError
from langchain_llmrouter.routers.estimator import RouterEstimator, RouterParams

if TYPE_CHECKING:
    from langchain_llmrouter.data import RoutingDataset

logger = logging.getLogger(__name__)

Method = Literal["threshold", "pomdp", "self_consistency"]
Objective = Literal["ibc_lift", "utility"]

DEFAULT_THRESHOLD = 0.5
"""The untrained policy: escalate when at most half of the verifications say "Correct"."""
UNPARSED_CONFIDENCE = 0.5
"""Confidence when no verification decision could be read (or the data has none)."""
MAX_SWEEPS = 5
"""Coordinate-ascent sweeps over the stages' thresholds (cascades of three or more)."""
HOPELESS_QUANTILE = 0.1
"""A pair is hopeless when both models are at or below this quantile of their quality."""
_EPS = 1e-9


# --- policies: the one implementation of "escalate?" -------------------------------------


def confidence_bins(confidence: np.ndarray, num_bins: int) -> np.ndarray:
    """The bin of each confidence: ``floor(confidence × num_bins)`` in ``0 .. num_bins``
    (a confidence of 1 has a bin of its own; NaN counts as `UNPARSED_CONFIDENCE`)."""
    conf = np.nan_to_num(np.asarray(confidence, dtype=np.float64), nan=UNPARSED_CONFIDENCE)
    return np.clip(np.floor(conf * num_bins + _EPS), 0, num_bins).astype(np.intp)


class _Policy:
    """Shared by the policies: `escalate` is `escalate_mask` on one confidence."""

    @property
    def n_decisions(self) -> int:
        """The number of verified (non-final) stages the policy decides for."""
        raise NotImplementedError

    def escalate_mask(self, stage: int, confidence: np.ndarray) -> np.ndarray:
        """Whether to escalate after ``stage`` for each confidence (NaN: 0.5)."""
        raise NotImplementedError

    def escalate(self, stage: int, confidence: float | None) -> bool:
        """Whether to escalate after ``stage`` given its verification confidence."""
        value = UNPARSED_CONFIDENCE if confidence is None else float(confidence)
        return bool(self.escalate_mask(stage, np.array([value]))[0])


@dataclass(frozen=True)
class ThresholdPolicy(_Policy):
    """Escalate after stage ``s`` iff its confidence is at most ``thresholds[s]``."""

    thresholds: tuple[float, ...]

    @property
    def n_decisions(self) -> int:
        return len(self.thresholds)

    def escalate_mask(self, stage: int, confidence: np.ndarray) -> np.ndarray:
        conf = np.nan_to_num(np.asarray(confidence, dtype=np.float64), nan=UNPARSED_CONFIDENCE)
        return conf <= self.thresholds[stage] + _EPS

    def describe(self) -> dict[str, Any]:
        """The policy as JSON."""
        return {"kind": "threshold", "thresholds": list(self.thresholds)}


@dataclass(frozen=True)
class POMDPPolicy(_Policy):
    """Escalate after stage ``s`` iff its confidence falls in a bin marked in
    ``escalate_bins[s]`` (``num_bins + 1`` entries, see `confidence_bins`)."""

    escalate_bins: tuple[tuple[bool, ...], ...]
    num_bins: int

    def __post_init__(self) -> None:
        for row in self.escalate_bins:
            if len(row) != self.num_bins + 1:
                raise ValueError(f"each stage needs {self.num_bins + 1} bins, got {len(row)}")

    @property
    def n_decisions(self) -> int:
        return len(self.escalate_bins)

    def escalate_mask(self, stage: int, confidence: np.ndarray) -> np.ndarray:
        table = np.asarray(self.escalate_bins[stage], dtype=bool)
        return table[confidence_bins(confidence, self.num_bins)]

    def describe(self) -> dict[str, Any]:
        """The policy as JSON."""
        return {
            "kind": "pomdp",
            "num_bins": self.num_bins,
            "escalate_bins": [list(row) for row in self.escalate_bins],
        }


AutoMixPolicy = ThresholdPolicy | POMDPPolicy
"""A fitted (or explicit) escalation policy."""


# --- simulation and objectives --------------------------------------------------------


@dataclass(frozen=True)
class CascadeData:
    """Per query and cascade stage: quality, answer cost (dollars) and verification
    confidence (NaN: 0.5); all of shape (n_queries, n_stages)."""

    performance: np.ndarray
    cost: np.ndarray
    confidence: np.ndarray
    verify_samples: int
    max_cost: float | None = None

    @property
    def n_stages(self) -> int:
        """The cascade's length."""
        return int(self.performance.shape[1])


@dataclass(frozen=True)
class CascadeOutcome:
    """What a policy did on `CascadeData`."""

    performance: float
    """Mean quality of the accepted answers (0 where none was affordable)."""
    cost: float
    """Mean dollars per query, verification included."""
    final_stage: np.ndarray
    """Per query, the stage whose answer was accepted (-1: none affordable)."""

    def stage_shares(self, n_stages: int) -> list[float]:
        """Share of queries answered by each stage."""
        return [float(np.mean(self.final_stage == s)) for s in range(n_stages)]


def simulate(policy: _Policy, data: CascadeData) -> CascadeOutcome:
    """Run the cascade of the graph on every query of ``data`` (vectorised).

    Stage ``s`` answers; unless it is the last, it is verified ``k`` times (cost ``k ×`` its
    answer's cost) and the policy decides; the last stage is accepted unverified. With
    ``max_cost``, a call that would take a query past it is not made and the query keeps
    the answer it has (as the graph does).
    """
    perf, cost, conf = data.performance, data.cost, data.confidence
    n, n_stages = perf.shape
    k = data.verify_samples
    bound = math.inf if data.max_cost is None else data.max_cost
    total = np.zeros(n)
    final = np.full(n, -1, dtype=np.intp)
    active = cost[:, 0] <= bound + 1e-12
    for s in range(n_stages):
        total[active] += cost[active, s]
        if s == n_stages - 1:
            final[active] = s
            break
        verify = total + k * cost[:, s] <= bound + 1e-12
        final[active & ~verify] = s
        active &= verify
        total[active] += k * cost[active, s]
        go_on = policy.escalate_mask(s, conf[:, s]) & (total + cost[:, s + 1] <= bound + 1e-12)
        final[active & ~go_on] = s
        active &= go_on
    picked = np.where(final >= 0, perf[np.arange(n), np.maximum(final, 0)], 0.0)
    return CascadeOutcome(float(picked.mean()), float(total.mean()), final)


def ibc_lift(
    performance: float, cost: float, first: tuple[float, float], last: tuple[float, float]
) -> float:
    """Incremental benefit per cost over the line from ``first`` to ``last`` (each a
    (mean quality, mean cost) pair): ``(slope − slope_base) / slope_base``. A point with
    the first model's cost and quality lies on the line (0)."""
    slope_base = (last[0] - first[0]) / (last[1] - first[1])
    gain, extra = performance - first[0], cost - first[1]
    if abs(extra) < 1e-15:
        return 0.0 if abs(gain) < 1e-12 else math.copysign(math.inf, gain)
    return (gain / extra - slope_base) / slope_base


def utility(performance: float, cost: float, cost_weight: float) -> float:
    """``performance − cost_weight × cost × 1000`` (cost in dollars per query)."""
    return performance - cost_weight * cost * 1000.0


# --- fitting -------------------------------------------------------------------------


Scorer = Callable[[CascadeOutcome], float]
"""An objective: higher is better."""


def fit_thresholds(
    data: CascadeData, grid: np.ndarray, score: Scorer, init: float = DEFAULT_THRESHOLD
) -> tuple[tuple[float, ...], float]:
    """Stage-by-stage threshold search (exhaustive for two stages).

    Args:
        data: The cascade data.
        grid: Candidate thresholds, in the order ties are resolved (earlier wins).
        score: ``CascadeOutcome -> float`` (higher is better).
        init: Starting threshold of every stage (kept on ties).

    Returns:
        The thresholds and their score.
    """
    thresholds = [init] * (data.n_stages - 1)
    best = score(simulate(ThresholdPolicy(tuple(thresholds)), data))
    for _ in range(MAX_SWEEPS):
        changed = False
        for s in range(len(thresholds)):
            for t in grid:
                trial = [*thresholds[:s], float(t), *thresholds[s + 1 :]]
                value = score(simulate(ThresholdPolicy(tuple(trial)), data))
                if value > best + 1e-12:
                    best, thresholds, changed = value, trial, True
        if not changed:
            break
    return tuple(thresholds), best


def pomdp_beliefs(data: CascadeData, num_bins: int) -> tuple[np.ndarray, np.ndarray]:
    """Expected quality gain and expected extra cost of escalating, per stage and bin.

    Returns:
        Two arrays of shape (n_stages - 1, num_bins + 1).
    """
    perf, cost = data.performance, data.cost
    n_stages = data.n_stages
    low = np.quantile(perf, HOPELESS_QUANTILE, axis=0)
    gains = np.zeros((n_stages - 1, num_bins + 1))
    extra = np.zeros((n_stages - 1, num_bins + 1))
    for s in range(n_stages - 1):
        gain = perf[:, s + 1] - perf[:, s]
        hopeless = (gain <= 0) & (perf[:, s] <= low[s]) & (perf[:, s + 1] <= low[s + 1])
        category = np.where(gain > 0, 1, np.where(hopeless, 2, 0))  # good, helps, hopeless
        bins = confidence_bins(data.confidence[:, s], num_bins)
        verified_next = data.verify_samples if s + 1 < n_stages - 1 else 0
        next_cost = cost[:, s + 1] * (1 + verified_next)
        for c in range(3):
            in_c = category == c
            prior_gain = float(gain[in_c].mean()) if in_c.any() else 0.0
            for b in range(num_bins + 1):
                in_b = bins == b
                n_cb = int((in_c & in_b).sum())
                p_c = (n_cb + 1.0) / (int(in_b.sum()) + 3.0)
                g_cb = (float(gain[in_c & in_b].sum()) + prior_gain) / (n_cb + 1.0)
                gains[s, b] += p_c * g_cb
        for b in range(num_bins + 1):
            in_b = bins == b
            extra[s, b] = float(next_cost[in_b].mean()) if in_b.any() else float(next_cost.mean())
    return gains, extra


def pomdp_policy(gains: np.ndarray, extra: np.ndarray, lam: float, num_bins: int) -> POMDPPolicy:
    """Escalate in the bins whose expected gain exceeds ``lam ×`` their expected extra cost."""
    with np.errstate(invalid="ignore"):
        mask = gains > lam * extra if math.isfinite(lam) else np.zeros_like(gains, dtype=bool)
    return POMDPPolicy(tuple(tuple(bool(v) for v in row) for row in mask), num_bins)


def fit_pomdp(
    data: CascadeData, num_bins: int, score: Scorer
) -> tuple[POMDPPolicy, float, float, np.ndarray, np.ndarray]:
    """Search ``λ`` over the bins' gain/cost ratios (plus 0 and infinity).

    Returns:
        The best policy, its λ, its score, and the expected gains and extra costs.
    """
    gains, extra = pomdp_beliefs(data, num_bins)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratios = np.where(extra > 0, gains / extra, np.where(gains > 0, math.inf, -math.inf))
    grid = [0.0, *sorted({float(r) for r in ratios.ravel() if 0 < r < math.inf}), math.inf]
    best: tuple[POMDPPolicy, float, float] | None = None
    for lam in grid:
        policy = pomdp_policy(gains, extra, lam, num_bins)
        value = score(simulate(policy, data))
        if best is None or value > best[2] + 1e-12:
            best = (policy, lam, value)
    assert best is not None
    return (*best, gains, extra)


# --- the fitter -----------------------------------------------------------------------


class AutoMixParams(RouterParams):
    """Hyperparameters of AutoMix (`AutoMixFitter` and the registry's ``automix``)."""

    cascade: list[str] | None = Field(default=None, min_length=2)
    """Candidate names, cheapest first (None: the cheapest then the dearest candidate in the
    data, the published two-model cascade)."""
    method: Method = "threshold"
    """Escalation policy: ``threshold``, ``pomdp`` or ``self_consistency`` (fixed 0.5)."""
    num_bins: int = Field(default=8, ge=1, le=1000)
    """Confidence grid: thresholds ``i/num_bins`` and the POMDP's ``num_bins + 1`` bins."""
    verify_samples: int = Field(default=4, ge=1, le=64)
    """Verification samples k per answer (the graph's default; costs count k calls)."""
    objective: Objective = "ibc_lift"
    """What the fit maximises: ``ibc_lift`` (published) or ``utility`` (uses cost_weight)."""
    max_cost: float | None = Field(default=None, gt=0)
    """Dollars per question the cascade may spend (the graph's bound; simulated in fit)."""

    @field_validator("cascade")
    @classmethod
    def _distinct(cls, value: list[str] | None) -> list[str] | None:
        if value is not None and len(set(value)) != len(value):
            raise ValueError("the cascade names a candidate twice")
        return value


class AutoMixFitter(RouterEstimator):
    """Fits AutoMix's escalation policy from routing data with self-verification results.

    Hyperparameters, fitting, `evaluate` and saving, without a graph: the registry's
    ``automix`` (`langchain_llmrouter.graphs.automix_router.AutoMixRouter`) subclasses it and
    adds ``as_graph``.
    """

    name = "automix"
    Params = AutoMixParams

    def __init__(
        self,
        *,
        cascade: list[str] | None = None,
        method: Method = "threshold",
        num_bins: int = 8,
        verify_samples: int = 4,
        objective: Objective = "ibc_lift",
        cost_weight: float = 0.0,
        max_cost: float | None = None,
    ) -> None:
        super().__init__()
        self.cost_weight = cost_weight
        self.cascade = cascade
        self.method = method
        self.num_bins = num_bins
        self.verify_samples = verify_samples
        self.objective = objective
        self.max_cost = max_cost

    # --- fitting ---------------------------------------------------------------------

    def _resolve_cascade(self, dataset: RoutingDataset) -> list[str]:
        names = list(dataset.candidates)
        if self.cascade is not None:
            unknown = [c for c in self.cascade if c not in names]
            if unknown:
                raise ConfigError(
                    f"cascade names {unknown[0]!r}, which the routing data does not have; "
                    f"valid: {', '.join(names)}",
                    field="hparam.cascade",
                )
            return list(self.cascade)
        if len(names) < 2:
            raise ConfigError(
                "a cascade needs at least two candidates in the data", field="hparam.cascade"
            )
        price = self.input_price_ + self.output_price_
        with np.errstate(invalid="ignore"):
            mean_cost = np.nan_to_num(np.nanmean(dataset.cost, axis=0), nan=0.0)
        # The published pair: the cheapest candidate, then the dearest (see `default_cascade`).
        order = sorted(range(len(names)), key=lambda j: (price[j], mean_cost[j], j))
        return [names[order[0]], names[order[-1]]]

    def cascade_data(self, dataset: RoutingDataset, cascade: list[str]) -> CascadeData:
        """The cascade's columns of ``dataset`` (queries missing any quality are dropped).

        Raises:
            DataFormatError: the data has no verification results for a verified stage.
        """
        source = dataset.source or "the routing data"
        hint = (
            "add them with langchain_llmrouter.pipeline.self_verification.add_self_verification("
            "rows, candidates, output=...) (it runs the self-verification of each row's response)"
        )
        if dataset.verification is None:
            raise DataFormatError(
                "automix is trained on self-verification results, and this data has none "
                f"(no verification_score on any row); {hint}",
                path=source,
                field="verification_score",
            )
        cols = [dataset.candidates.index(c) for c in cascade]
        ver = dataset.verification[:, cols]
        for s, name in enumerate(cascade[:-1]):
            if np.isnan(ver[:, s]).all():
                raise DataFormatError(
                    f"no verification_score for candidate {name!r}, stage {s + 1} of the "
                    f"cascade (every stage but the last is verified); {hint}",
                    path=source,
                    field="verification_score",
                )
        perf = dataset.performance[:, cols]
        keep = ~np.isnan(perf).any(axis=1)
        if not keep.any():
            raise DataFormatError(
                f"no query has a performance for every cascade candidate ({', '.join(cascade)})",
                path=source,
                field="performance",
            )
        if not keep.all():
            logger.info("%s: %d queries lack a cascade score; dropped", source, (~keep).sum())
        cost = dataset.cost[:, cols]
        estimated = self._estimate_costs(dataset.queries)[:, cols]
        cost = np.where(np.isnan(cost), estimated, cost)
        return CascadeData(
            performance=perf[keep],
            cost=cost[keep],
            confidence=ver[keep],
            verify_samples=self.verify_samples,
            max_cost=self.max_cost,
        )

    def _scorer(self, data: CascadeData, *, warn: bool = False) -> tuple[str, Scorer]:
        first = (float(data.performance[:, 0].mean()), float(data.cost[:, 0].mean()))
        last = (float(data.performance[:, -1].mean()), float(data.cost[:, -1].mean()))
        if self.objective == "ibc_lift":
            if last[0] - first[0] > 1e-12 and last[1] - first[1] > 1e-15:
                return "ibc_lift", lambda o: ibc_lift(o.performance, o.cost, first, last)
            if warn:
                logger.warning(
                    "automix: the last cascade model is not both better and dearer than the "
                    "first on this data, so IBC lift is undefined; fitting by utility instead"
                )
        weight = float(self.cost_weight)
        return "utility", lambda o: utility(o.performance, o.cost, weight)

    def _fit(self, dataset: RoutingDataset | None, query_embeddings: np.ndarray | None) -> None:
        assert dataset is not None
        cascade = self._resolve_cascade(dataset)
        data = self.cascade_data(dataset, cascade)
        self.objective_, score = self._scorer(data, warn=True)
        self.cascade_ = cascade
        self.lambda_: float | None = None
        self.expected_gain_: np.ndarray | None = None
        self.expected_cost_: np.ndarray | None = None
        policy: AutoMixPolicy
        if self.method == "pomdp":
            policy, self.lambda_, _, self.expected_gain_, self.expected_cost_ = fit_pomdp(
                data, self.num_bins, score
            )
        elif self.method == "threshold":
            grid = np.arange(self.num_bins + 1) / self.num_bins
            thresholds, _ = fit_thresholds(data, grid, score)
            policy = ThresholdPolicy(thresholds)
        else:
            policy = ThresholdPolicy((DEFAULT_THRESHOLD,) * (len(cascade) - 1))
        self.policy_ = policy
        self.train_metrics_ = self._metrics(policy, data)

    def _metrics(self, policy: _Policy, data: CascadeData) -> dict[str, Any]:
        outcome, (_, score) = simulate(policy, data), self._scorer(data)
        alone = {
            f"{key}_model": {
                "performance": float(data.performance[:, j].mean()),
                "cost": float(data.cost[:, j].mean()),
            }
            for key, j in (("first", 0), ("last", -1))
        }
        return {
            "queries": len(data.performance),
            "performance": outcome.performance,
            "cost": outcome.cost,
            "objective": score(outcome),
            "stage_shares": outcome.stage_shares(data.n_stages),
            **alone,
        }

    def evaluate(self, dataset: RoutingDataset) -> dict[str, Any]:
        """Simulate the fitted cascade on routing data with verification results.

        Returns:
            Mean quality and cost, the objective (as fitted), the share of queries each
            stage answered, and the first and last models' mean quality and cost.
        """
        self._check_fitted()
        return self._metrics(self.policy_, self.cascade_data(dataset, self.cascade_))

    # --- persistence -----------------------------------------------------------------

    def _get_state(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        meta: dict[str, Any] = {
            "cascade": self.cascade_,
            "objective": self.objective_,
            "policy": self.policy_.describe(),
            "lambda": None if self.lambda_ is None else _json_float(self.lambda_),
            "train_metrics": self.train_metrics_,
        }
        arrays: dict[str, np.ndarray] = {}
        if self.expected_gain_ is not None and self.expected_cost_ is not None:
            arrays = {"expected_gain": self.expected_gain_, "expected_cost": self.expected_cost_}
        return meta, arrays

    def _set_state(self, meta: dict[str, Any], arrays: dict[str, np.ndarray]) -> None:
        self.cascade_ = [str(c) for c in meta["cascade"]]
        self.objective_ = str(meta["objective"])
        lam = meta.get("lambda")
        self.lambda_ = None if lam is None else float(lam)
        self.train_metrics_ = dict(meta.get("train_metrics") or {})
        self.expected_gain_ = arrays.get("expected_gain")
        self.expected_cost_ = arrays.get("expected_cost")
        policy = meta["policy"]
        if policy["kind"] == "threshold":
            self.policy_ = ThresholdPolicy(tuple(float(t) for t in policy["thresholds"]))
        else:
            rows = tuple(tuple(bool(v) for v in row) for row in policy["escalate_bins"])
            self.policy_ = POMDPPolicy(rows, int(policy["num_bins"]))


def _json_float(value: float) -> float | str:
    """JSON has no infinity: write it as a string."""
    return value if math.isfinite(value) else "inf"
