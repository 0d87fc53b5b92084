"""Quality-cost plot of a benchmark run (``llmrouter bench --plot FILE.png``).

`quality_cost_series` extracts what is drawn from a `BenchResult` (pure, no matplotlib):
each router's quality-cost curve over ``COST_WEIGHT_GRID``, each single candidate's mean
quality and cost, the random baseline and the oracle. `quality_cost_figure` draws it and
`plot_quality_cost` saves the drawing, with matplotlib (the ``demo`` extra), imported only
when called, on an Agg canvas of their own: no display is needed and pyplot's global state
is never touched.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from langchain_llmrouter.errors import ConfigError, UnknownNameError

if TYPE_CHECKING:
    from types import ModuleType

    from matplotlib.figure import Figure

    from langchain_llmrouter.evaluation.bench import BenchResult
    from langchain_llmrouter.evaluation.router_metrics import CurvePoint

FIGSIZE = (9.0, 6.0)
"""Figure size in inches: readable at README width."""
DPI = 150
"""Dots per inch of the saved image (9 x 6 in -> 1350 x 900 px)."""
LOG_X_MIN_RATIO = 4.0
"""Costs spanning at least this factor go on a log axis (the cheap models bunch up otherwise)."""
RANDOM_BASELINE = "randomrouter"
"""Name of the random baseline's report, drawn as a reference point."""

_FEATURE = "llmrouter bench --plot"
_LABEL_SHIFTS = (0.0, 9.0, -9.0, 18.0, -18.0, 27.0, -27.0, 36.0, -36.0)
"""Vertical offsets (points) a label may take from its point, nearest first."""
# Labels sit on a pale box, so the grid or a curve behind them does not cut the text.
_LABEL_BOX = {
    "boxstyle": "round,pad=0.15",
    "facecolor": "white",
    "edgecolor": "none",
    "alpha": 0.75,
}


@dataclass(frozen=True)
class PlotPoint:
    """One labelled point of the plot.

    Attributes:
        name: Label drawn next to the point.
        cost_per_1k: Mean cost, dollars per 1,000 queries.
        quality: Mean true quality.
    """

    name: str
    cost_per_1k: float
    quality: float


@dataclass(frozen=True)
class QualityCostSeries:
    """Everything `plot_quality_cost` draws, in plotting units.

    Attributes:
        split_label: Which test queries the figures are on (e.g. ``"all test queries"``).
        n_queries: Number of those queries.
        curves: Router name -> its quality-cost curve, one point per swept ``cost_weight``
            (a router that ignores ``cost_weight`` has the same point throughout).
        candidates: Always-that-candidate points, in the candidates' order; candidates
            without any score on the split are left out.
        best_single: Name of the candidate best on the training file.
        oracle: The best candidate for every query (the cheapest one among ties).
        baselines: Other reference points (the random router, when it is not a row).
        log_x: Whether the cost axis should be logarithmic.
    """

    split_label: str
    n_queries: int
    curves: dict[str, list[CurvePoint]]
    candidates: list[PlotPoint]
    best_single: str
    oracle: PlotPoint
    baselines: list[PlotPoint]
    log_x: bool

    def costs(self) -> list[float]:
        """Every finite plotted cost ($ per 1,000 queries)."""
        return _finite_costs(self.curves, [*self.candidates, self.oracle, *self.baselines])


def _finite_costs(curves: dict[str, list[CurvePoint]], points: list[PlotPoint]) -> list[float]:
    values = [p.cost_per_1k for curve in curves.values() for p in curve]
    values += [p.cost_per_1k for p in points]
    return [v for v in values if math.isfinite(v)]


def _select_split(result: BenchResult, split: int | str) -> int:
    labels = [s.label for s in result.splits]
    if not labels:
        raise ValueError("the benchmark result has no split to plot")
    if isinstance(split, int):
        if not -len(labels) <= split < len(labels):
            raise ValueError(f"split index {split} out of range: the result has {labels}")
        return split
    for i, label in enumerate(labels):
        # "novel" selects "novel test queries".
        if split in (label, label.split()[0]):
            return i
    raise UnknownNameError("split", split, labels)


def quality_cost_series(result: BenchResult, *, split: int | str = 0) -> QualityCostSeries:
    """The data of the quality-cost plot of one split of a benchmark run.

    Args:
        result: The benchmark run.
        split: Index or label of the split (``0``, ``"all"``, ``"novel"``); the first split,
            all test queries, is the main one.

    Returns:
        The `QualityCostSeries`.

    Raises:
        UnknownNameError: No split has that label.
        ValueError: The split index is out of range, or a router of the run has no report.
    """
    chosen = result.splits[_select_split(result, split)]
    reports = {r.name: r for r in chosen.reports}
    missing = [name for name in result.routers if name not in reports]
    if missing:
        raise ValueError(f"routers without a report in split {chosen.label!r}: {missing}")
    refs = chosen.references
    candidates = [
        PlotPoint(name, float(cost), float(quality))
        for name, quality, cost in zip(
            result.candidates, refs.candidate_quality, refs.candidate_cost, strict=True
        )
        if math.isfinite(quality)  # a candidate never scored on this split has no point
    ]
    baselines: list[PlotPoint] = []
    if RANDOM_BASELINE in reports and RANDOM_BASELINE not in result.routers:
        random = reports[RANDOM_BASELINE]
        baselines.append(PlotPoint("random", random.c0, random.q0))
    curves = {name: list(reports[name].curve) for name in result.routers}
    oracle = PlotPoint("oracle", refs.oracle_cost, refs.oracle_quality)
    costs = _finite_costs(curves, [*candidates, oracle, *baselines])
    # A free candidate (cost 0) cannot go on a log axis.
    log_x = bool(costs) and min(costs) > 0 and max(costs) / min(costs) >= LOG_X_MIN_RATIO
    return QualityCostSeries(
        split_label=chosen.label,
        n_queries=chosen.n_queries,
        curves=curves,
        candidates=candidates,
        best_single=result.candidates[refs.best_single],
        oracle=oracle,
        baselines=baselines,
        log_x=log_x,
    )


def _matplotlib() -> ModuleType:
    from langchain_llmrouter._optional import import_optional

    return import_optional("matplotlib", extra="demo", feature=_FEATURE)


def check_plot_path(path: str | Path) -> Path:
    """Fail early (before a long benchmark) if the plot cannot be written.

    Args:
        path: Where the image will go; its suffix picks the format (``.png``, ``.svg``...).

    Returns:
        ``path`` as a `Path`.

    Raises:
        MissingDependencyError: matplotlib is not installed (the ``demo`` extra).
        ConfigError: matplotlib cannot write files with that suffix.
    """
    _matplotlib()
    from matplotlib.backend_bases import FigureCanvasBase

    target = Path(path)
    formats = FigureCanvasBase.get_supported_filetypes()
    if target.suffix.lower().lstrip(".") not in formats:
        raise ConfigError(
            f"--plot {target}: cannot write {target.suffix or 'files without a suffix'}; "
            f"use one of {', '.join('.' + f for f in sorted(formats))}"
        )
    return target


def _dollars(value: float, _pos: Any = None) -> str:
    return f"${value:.3g}"


def _label(ax: Any, point: PlotPoint, dx: float, dy: float, *, leader: bool = False) -> Any:
    return ax.annotate(
        point.name,
        (point.cost_per_1k, point.quality),
        xytext=(dx, dy),
        textcoords="offset points",
        ha="right" if dx < 0 else "left",
        va="center",
        fontsize=7,
        color="0.25",
        bbox=_LABEL_BOX,
        arrowprops={"arrowstyle": "-", "color": "0.5", "linewidth": 0.6} if leader else None,
        zorder=6,
    )


def _plotted_pixels(ax: Any) -> Any:
    """Display coordinates of every curve, densely sampled, and of every marker."""
    import numpy as np

    chunks = []
    for line in ax.get_lines():
        xy = ax.transData.transform(line.get_xydata())
        for start, stop in itertools.pairwise(xy):
            steps = max(2, int(np.hypot(*(stop - start)) / 2.0))  # a sample every ~2 px
            chunks.append(np.linspace(start, stop, steps))
        chunks.append(xy)
    for collection in ax.collections:
        chunks.append(ax.transData.transform(collection.get_offsets()))
    return np.concatenate(chunks) if chunks else np.empty((0, 2))


def _place_labels(fig: Any, ax: Any, points: list[PlotPoint], taken: list[Any]) -> None:
    """Name each point where the name hides the least of the plot.

    Each label tries the vertical offsets of `_LABEL_SHIFTS`, nearest first, and keeps the one
    that covers the fewest plotted pixels, preferring any that overlaps no earlier label and
    stays inside the axes; a label moved off its point gets a leader line. Labels of points in the right 30% of the
    axes go on their left.
    """
    fig.draw_without_rendering()  # final layout and limits, so display coordinates hold
    renderer = fig.canvas.get_renderer()
    pixels = _plotted_pixels(ax)
    frame = ax.get_window_extent(renderer)
    boxes = [artist.get_window_extent(renderer) for artist in taken]
    for point in points:
        px = ax.transData.transform((point.cost_per_1k, point.quality))[0]
        dx = -6.0 if (px - frame.x0) > 0.7 * frame.width else 6.0
        options: list[tuple[float, float, Any]] = []
        for dy in _LABEL_SHIFTS:
            probe = _label(ax, point, dx, dy)
            box = probe.get_window_extent(renderer)
            probe.remove()
            covered = (
                (pixels[:, 0] >= box.x0)
                & (pixels[:, 0] <= box.x1)
                & (pixels[:, 1] >= box.y0)
                & (pixels[:, 1] <= box.y1)
            ).sum()
            clash = any(box.overlaps(other) for other in boxes)
            outside = not (frame.x0 <= box.x0 and box.x1 <= frame.x1)
            outside |= not (frame.y0 <= box.y0 and box.y1 <= frame.y1)
            options.append((float(covered) + 1e6 * (clash + outside), dy, box))
            if options[-1][0] == 0:
                break
        _, dy, box = min(options, key=lambda option: option[0])  # the first of equals: nearest
        _label(ax, point, dx, dy, leader=dy != 0)
        boxes.append(box)


def quality_cost_figure(
    result: BenchResult, *, title: str | None = None, split: int | str = 0
) -> Figure:
    """The quality-cost figure of one split, on an Agg canvas (nothing is shown or saved).

    x is the mean cost per query (in dollars per 1,000 queries, as in the benchmark
    tables; log scale when the costs span a factor of `LOG_X_MIN_RATIO` or more), y the mean
    true quality. Each router is a line with small markers, one per swept ``cost_weight``;
    each candidate is a grey labelled point; the oracle is a gold star.

    Args:
        result: The benchmark run.
        title: Heading, e.g. naming the test file; the split plotted is appended.
        split: Which split to plot (see `quality_cost_series`); default all test queries.

    Returns:
        A ``matplotlib.figure.Figure`` of `FIGSIZE` inches at `DPI`.

    Raises:
        MissingDependencyError: matplotlib is not installed (the ``demo`` extra).
    """
    _matplotlib()
    series = quality_cost_series(result, split=split)
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    fig = Figure(figsize=FIGSIZE, dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)  # Agg: renders without a display
    ax = fig.add_subplot()
    colors = [f"C{i}" for i in range(10)]
    styles = ["-", "--", ":", "-."]
    for i, (name, curve) in enumerate(series.curves.items()):
        # A router that ignores cost_weight is one point: draw it big, above the candidates.
        fixed = len({(p.cost_per_1k, p.quality) for p in curve}) == 1
        ax.plot(
            [p.cost_per_1k for p in curve],
            [p.quality for p in curve],
            color=colors[i % len(colors)],
            linestyle=styles[(i // len(colors)) % len(styles)],
            marker="D" if fixed else "o",
            markersize=6 if fixed else 2.5,
            linewidth=1.3,
            label=name,
            zorder=5 if fixed else 3,
        )
    ax.scatter(
        [p.cost_per_1k for p in series.candidates],
        [p.quality for p in series.candidates],
        s=30,
        color="0.55",
        edgecolors="0.2",
        linewidths=0.6,
        label="single candidates",
        zorder=4,
    )
    for point in series.baselines:
        ax.scatter([point.cost_per_1k], [point.quality], s=40, marker="X", color="0.4", zorder=4)
    ax.scatter(
        [series.oracle.cost_per_1k],
        [series.oracle.quality],
        s=180,
        marker="*",
        color="gold",
        edgecolors="black",
        linewidths=0.8,
        label="oracle",
        zorder=7,
    )
    oracle_label = ax.annotate(
        "oracle",
        (series.oracle.cost_per_1k, series.oracle.quality),
        xytext=(9, 0),
        textcoords="offset points",
        va="center",
        fontsize=8,
        fontweight="bold",
    )
    if series.log_x:
        ax.set_xscale("log")
        # Labels at 1, 1.5, 2, 3, 4, 5 and 7 times a power of ten: readable, not crowded.
        ax.xaxis.set_major_locator(LogLocator(base=10.0, subs=(1.0, 1.5, 2.0, 3.0, 4.0, 5.0, 7.0)))
        ax.xaxis.set_minor_formatter(NullFormatter())
    ax.xaxis.set_major_formatter(FuncFormatter(_dollars))
    ax.tick_params(axis="x", labelsize=8)
    ax.set_xlabel(
        "mean cost per query, in $ per 1,000 queries" + (" (log scale)" if series.log_x else "")
    )
    ax.set_ylabel("mean quality (score of the chosen candidate)")
    ax.grid(True, which="major", alpha=0.3)
    heading = title or "Routers: quality vs cost"
    ax.set_title(f"{heading} ({series.split_label}, n={series.n_queries})", fontsize=11)
    fig.legend(
        loc="outside right upper",
        fontsize=8,
        title="routers (cost_weight\n0 → 100 along a curve)",
        title_fontsize=8,
        frameon=False,
    )
    named = [
        PlotPoint(
            p.name + (" (best single)" if p.name == series.best_single else ""),
            p.cost_per_1k,
            p.quality,
        )
        for p in series.candidates
    ]
    _place_labels(fig, ax, [*named, *series.baselines], [oracle_label])
    return fig


def plot_quality_cost(
    result: BenchResult,
    path: str | Path,
    *,
    title: str | None = None,
    split: int | str = 0,
) -> Path:
    """Draw the routers' quality-cost curves, the single candidates and the oracle to a file.

    See `quality_cost_figure` for what is drawn.

    Args:
        result: The benchmark run.
        path: Image file to write (parent folders are created); the suffix picks the format.
        title: Heading, e.g. naming the test file; the split plotted is appended.
        split: Which split to plot (see `quality_cost_series`); default all test queries.

    Returns:
        The path written.

    Raises:
        MissingDependencyError: matplotlib is not installed (the ``demo`` extra).
        ConfigError: matplotlib cannot write files with that suffix.
    """
    target = check_plot_path(path)
    fig = quality_cost_figure(result, title=title, split=split)
    target.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(target, dpi=DPI)
    return target
