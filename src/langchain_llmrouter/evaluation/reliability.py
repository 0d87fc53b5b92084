"""Calibration of predicted qualities: reliability curve and expected calibration error.

The cost policy trades a router's predicted quality against dollars, so a prediction of
0.7 should come true about 70% of the time. Over every (query, candidate) pair with a
known score and a finite prediction, pairs are sorted by predicted quality and cut into
``n_bins`` **equal-mass** bins (as equal in size as whole pairs allow; equal-width bins
leave most bins nearly empty when predictions crowd near 0). Each bin gives its mean
predicted and mean observed quality (the reliability curve); the expected calibration
error is the pair-weighted mean of ``|mean predicted - mean observed|`` over the bins:
0 for a calibrated router, larger for an over- or under-confident one. Pure numpy.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

__all__ = [
    "DEFAULT_ECE_BINS",
    "ReliabilityBin",
    "ReliabilityCurve",
    "expected_calibration_error",
    "reliability_curve",
]

DEFAULT_ECE_BINS = 10
"""Equal-mass bins of the benchmark's ECE (500 queries x 9 candidates: ~450 pairs a bin)."""


@dataclass(frozen=True)
class ReliabilityBin:
    """One bin of a reliability curve.

    Attributes:
        mean_predicted: Mean predicted quality of the bin's pairs.
        mean_observed: Mean observed score of the same pairs.
        count: Number of (query, candidate) pairs in the bin.
    """

    mean_predicted: float
    mean_observed: float
    count: int


@dataclass(frozen=True)
class ReliabilityCurve:
    """Binned predicted vs observed quality, and the expected calibration error.

    Attributes:
        ece: Expected calibration error (NaN when no pair has a score and a prediction).
        bins: The equal-mass bins, by increasing predicted quality.
        n_pairs: Number of (query, candidate) pairs counted.
    """

    ece: float
    bins: list[ReliabilityBin]
    n_pairs: int


def _pairs(
    predicted: npt.ArrayLike, performance: npt.ArrayLike
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    pred = np.asarray(predicted, dtype=np.float64)
    perf = np.asarray(performance, dtype=np.float64)
    if pred.shape != perf.shape:
        raise ValueError(
            f"shape mismatch: predicted {pred.shape}, performance {perf.shape}; "
            "both must be (n_queries, n_candidates)"
        )
    known = np.isfinite(pred) & ~np.isnan(perf)
    return pred[known], perf[known]


def reliability_curve(
    predicted: npt.ArrayLike, performance: npt.ArrayLike, *, n_bins: int = DEFAULT_ECE_BINS
) -> ReliabilityCurve:
    """The reliability curve and ECE of predicted qualities against observed scores.

    Args:
        predicted: (n, m) predicted quality; NaN or infinite entries are left out.
        performance: (n, m) observed score; NaN (no score) entries are left out.
        n_bins: Number of equal-mass bins (fewer when there are fewer pairs).

    Returns:
        The `ReliabilityCurve`.
    """
    if n_bins < 1:
        raise ValueError(f"n_bins must be >= 1, got {n_bins}")
    pred, obs = _pairs(predicted, performance)
    if pred.size == 0:
        return ReliabilityCurve(ece=float("nan"), bins=[], n_pairs=0)
    order = np.argsort(pred, kind="stable")
    bins = []
    ece = 0.0
    for idx in np.array_split(order, min(n_bins, pred.size)):
        mean_p, mean_o = float(pred[idx].mean()), float(obs[idx].mean())
        bins.append(ReliabilityBin(mean_p, mean_o, int(idx.size)))
        ece += idx.size * abs(mean_p - mean_o)
    return ReliabilityCurve(ece=ece / pred.size, bins=bins, n_pairs=int(pred.size))


def expected_calibration_error(
    predicted: npt.ArrayLike, performance: npt.ArrayLike, *, n_bins: int = DEFAULT_ECE_BINS
) -> float:
    """Expected calibration error over equal-mass bins (see `reliability_curve`)."""
    return reliability_curve(predicted, performance, n_bins=n_bins).ece
