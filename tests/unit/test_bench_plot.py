"""Tests of the benchmark's quality-cost plot and of ``llmrouter bench --plot``.

A module fixture writes small slices of the RouterDC example data (short queries only, and
some test queries copied from the training slice so there is a "novel" split) and runs
`run_benchmark` on them with a deterministic fake embedder; the series are checked against
figures computed straight from the data, the figure against the series, and the CLI runs
on the same files with a router that needs no embedder.
"""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from langchain_core.embeddings import DeterministicFakeEmbedding

from langchain_llmrouter import CandidatePool, RoutingDataset
from langchain_llmrouter._optional import MissingDependencyError
from langchain_llmrouter.cli.main import main
from langchain_llmrouter.errors import ConfigError, UnknownNameError
from langchain_llmrouter.evaluation import (
    COST_WEIGHT_GRID,
    CurvePoint,
    RouterReport,
    evaluate_choices,
    evaluate_router,
    reference_points,
)
from langchain_llmrouter.evaluation.bench import BenchResult, SplitResult, run_benchmark
from langchain_llmrouter.evaluation.plot import (
    DPI,
    FIGSIZE,
    quality_cost_figure,
    quality_cost_series,
)

N_TRAIN = 120
N_TEST_NOVEL = 40
N_TEST_SEEN = 8  # copied from the training slice: not "novel"
MAX_CHARS = 160  # short queries embed fast on a CPU
PNG_SHAPE = (round(FIGSIZE[1] * DPI), round(FIGSIZE[0] * DPI), 4)  # rows, columns, RGBA


@dataclass
class Slices:
    """Small routing-data files and the datasets read from them."""

    llm: Path
    train_json: Path
    test_json: Path
    train: RoutingDataset
    test: RoutingDataset


def _short_rows(path: Path, n: int) -> list[dict[str, object]]:
    rows = json.loads(path.read_text(encoding="utf-8"))
    return [r for r in rows if len(r["question"]) <= MAX_CHARS][:n]


@pytest.fixture(scope="module")
def slices(shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Slices:
    root = tmp_path_factory.mktemp("bench_plot_data")
    train_rows = _short_rows(shared_data / "routerdc_train.json", N_TRAIN)
    test_rows = _short_rows(shared_data / "routerdc_test.json", N_TEST_NOVEL)
    test_rows += train_rows[:N_TEST_SEEN]
    train_json, test_json = root / "train.json", root / "test.json"
    train_json.write_text(json.dumps(train_rows), encoding="utf-8")
    test_json.write_text(json.dumps(test_rows), encoding="utf-8")
    llm = shared_data / "default_llm.json"
    pool = CandidatePool.from_json(llm)
    return Slices(
        llm=llm,
        train_json=train_json,
        test_json=test_json,
        train=RoutingDataset.from_file(train_json, candidates=pool),
        test=RoutingDataset.from_file(test_json, candidates=pool),
    )


@pytest.fixture(scope="module")
def result(slices: Slices) -> BenchResult:
    """knnrouter (cost-aware: a real curve) and smallest_llm (a fixed choice: one point)."""
    return run_benchmark(
        slices.train,
        slices.test,
        {"knnrouter": {"k": 10}, "smallest_llm": {}},
        embeddings=DeterministicFakeEmbedding(size=16),
    )


def _tiny_result(cost_row: list[float]) -> BenchResult:
    """A two-candidate, three-query result built by hand; ``cost_row`` is each candidate's
    cost per call in dollars (the same for every query)."""
    perf = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    cost = np.tile(np.array(cost_row), (3, 1))
    predicted = np.array([[0.9, 0.2], [0.3, 0.6], [0.5, 0.5]])
    reports = [
        evaluate_router("r", predicted, perf, cost, 0, n_boot=10),
        evaluate_choices("always a", np.zeros(3, dtype=int), perf, cost, 0, n_boot=10),
        evaluate_choices("always b", np.ones(3, dtype=int), perf, cost, 0, n_boot=10),
    ]
    split = SplitResult("all test queries", 3, reference_points(perf, cost, 0), reports)
    return BenchResult(candidates=["a", "b"], n_train=3, splits=[split], routers=["r"])


# --- the plotted series -------------------------------------------------------------------------


def test_series_are_the_reports_curves_and_the_data_means(
    result: BenchResult, slices: Slices
) -> None:
    series = quality_cost_series(result)
    test = slices.test
    assert series.split_label == "all test queries"
    assert series.n_queries == N_TEST_NOVEL + N_TEST_SEEN
    assert list(series.curves) == ["knnrouter", "smallest_llm"]
    reports = {r.name: r for r in result.splits[0].reports}
    for name, curve in series.curves.items():
        assert curve == reports[name].curve
        assert [p.cost_weight for p in curve] == pytest.approx(COST_WEIGHT_GRID.tolist())
    knn = series.curves["knnrouter"]
    assert knn[0].quality == pytest.approx(reports["knnrouter"].q0)
    assert len({(p.quality, p.cost_per_1k) for p in knn}) > 1  # the weight moves it
    assert len({(p.quality, p.cost_per_1k) for p in series.curves["smallest_llm"]}) == 1

    # Single candidates and the oracle, straight from the data (no NaN in RouterDC scores).
    assert [p.name for p in series.candidates] == test.candidates
    for j, point in enumerate(series.candidates):
        assert point.quality == pytest.approx(test.performance[:, j].mean())
        assert point.cost_per_1k == pytest.approx(test.cost[:, j].mean() * 1000.0)
    assert series.oracle.name == "oracle"
    assert series.oracle.quality == pytest.approx(test.performance.max(axis=1).mean())
    assert series.oracle.cost_per_1k == pytest.approx(reports["oracle"].c0)
    assert all(p.quality <= series.oracle.quality + 1e-9 for p in series.candidates)
    assert series.best_single == slices.train.best_single()
    assert [p.name for p in series.baselines] == ["random"]
    assert series.baselines[0].quality == pytest.approx(reports["randomrouter"].q0)
    # RouterDC prices span more than a factor of 4 ($0.10 to $0.90 per million tokens).
    assert series.log_x


def test_series_of_the_novel_split(result: BenchResult, slices: Slices) -> None:
    novel = quality_cost_series(result, split="novel")
    assert novel.split_label == "novel test queries"
    assert novel.n_queries == N_TEST_NOVEL
    assert quality_cost_series(result, split=1) == novel
    mask = slices.test.novel_mask(slices.train)
    perf = slices.test.performance[mask]
    assert novel.oracle.quality == pytest.approx(perf.max(axis=1).mean())
    assert novel.curves["knnrouter"] == result.splits[1].reports[0].curve


def test_unknown_split_lists_the_valid_ones(result: BenchResult) -> None:
    with pytest.raises(UnknownNameError, match="novel test queries") as info:
        quality_cost_series(result, split="seen")
    assert info.value.valid == ["all test queries", "novel test queries"]
    with pytest.raises(ValueError, match="out of range"):
        quality_cost_series(result, split=2)


def test_routers_drawn_in_order_and_random_not_doubled() -> None:
    tiny = _tiny_result([1e-4, 2e-4])
    series = quality_cost_series(tiny)
    assert list(series.curves) == ["r"]
    assert series.baselines == []  # no randomrouter report in this result
    assert series.best_single == "a"
    assert [(p.name, p.quality) for p in series.candidates] == [("a", 2 / 3), ("b", 2 / 3)]


@pytest.mark.parametrize(
    ("cost_row", "log_x"),
    [([1e-4, 2e-4], False), ([1e-4, 1e-3], True), ([0.0, 1e-3], False)],
    ids=["narrow-spread-linear", "tenfold-log", "free-candidate-linear"],
)
def test_log_scale_only_for_a_wide_positive_spread(cost_row: list[float], log_x: bool) -> None:
    assert quality_cost_series(_tiny_result(cost_row)).log_x is log_x


# --- the figure and the image -------------------------------------------------------------------


def test_figure_draws_the_series(result: BenchResult) -> None:
    series = quality_cost_series(result)
    fig = quality_cost_figure(result, title="Quality vs cost on test.json")
    (ax,) = fig.axes
    assert ax.get_title() == "Quality vs cost on test.json (all test queries, n=48)"
    assert ax.get_xscale() == "log"
    assert "$ per 1,000 queries" in ax.get_xlabel()
    lines = {line.get_label(): line for line in ax.get_lines()}
    assert set(lines) == {"knnrouter", "smallest_llm"}
    assert lines["smallest_llm"].get_marker() == "D"  # a fixed choice: one big point
    assert lines["knnrouter"].get_marker() == "o"
    knn = series.curves["knnrouter"]
    assert np.asarray(lines["knnrouter"].get_xdata()) == pytest.approx([p.cost_per_1k for p in knn])
    assert np.asarray(lines["knnrouter"].get_ydata()) == pytest.approx([p.quality for p in knn])
    legend = [t.get_text() for t in fig.legends[0].get_texts()]
    assert legend == ["knnrouter", "smallest_llm", "single candidates", "oracle"]
    labels = {t.get_text() for t in ax.texts}
    assert "oracle" in labels and "random" in labels
    assert f"{series.best_single} (best single)" in labels
    assert {p.name for p in series.candidates} - {series.best_single} <= labels


def test_labels_move_off_a_curve_and_off_each_other() -> None:
    """A curve running through where the candidates' names would go pushes them up or down,
    with a leader line, onto free space."""
    tiny = _tiny_result([1e-4, 2e-4])  # candidates at $0.1 and $0.2 per 1k, both Q 2/3
    split = tiny.splits[0]
    costs = np.linspace(0.1, 0.2, 21)
    flat = [CurvePoint(float(w), 2 / 3, float(c)) for w, c in enumerate(costs)]
    split.reports.append(
        RouterReport("flat", 2 / 3, 0.2, 0.0, 1.0, 0.0, (0.0, 0.0), flat, split.n_queries)
    )
    tiny.routers.append("flat")

    fig = quality_cost_figure(tiny)
    (ax,) = fig.axes
    renderer = fig.canvas.get_renderer()
    labels = {t.get_text(): t for t in ax.texts}
    assert set(labels) == {"a (best single)", "b", "oracle"}
    curve_px = ax.transData.transform([(c, 2 / 3) for c in np.linspace(0.1, 0.2, 200)])
    boxes = []
    for name in ("a (best single)", "b"):
        label = labels[name]
        assert label.xyann[1] != 0  # moved off its point's height...
        assert label.arrow_patch is not None  # ...with a leader line to the point
        box = label.get_window_extent(renderer)
        assert not any(box.contains(x, y) for x, y in curve_px)
        boxes.append(box)
    boxes.append(labels["oracle"].get_window_extent(renderer))
    assert not any(b1.overlaps(b2) for i, b1 in enumerate(boxes) for b2 in boxes[i + 1 :])


def test_png_is_written_at_the_expected_size(result: BenchResult, tmp_path: Path) -> None:
    import matplotlib.image

    from langchain_llmrouter.evaluation.plot import plot_quality_cost

    path = plot_quality_cost(result, tmp_path / "new" / "plot.png", title="T")
    assert path == tmp_path / "new" / "plot.png"
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    pixels = matplotlib.image.imread(path)
    assert pixels.shape == PNG_SHAPE
    assert pixels[..., :3].std() > 0.05  # something is drawn, not a blank canvas


def test_unsupported_suffix_is_a_config_error(result: BenchResult, tmp_path: Path) -> None:
    from langchain_llmrouter.evaluation.plot import plot_quality_cost

    with pytest.raises(ConfigError, match=r"\.png") as info:
        plot_quality_cost(result, tmp_path / "plot.txt")
    assert "--plot" in str(info.value)
    assert not (tmp_path / "plot.txt").exists()


def test_missing_matplotlib_names_the_demo_extra(
    result: BenchResult, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from langchain_llmrouter.evaluation.plot import plot_quality_cost

    monkeypatch.setitem(sys.modules, "matplotlib", None)  # `import matplotlib` now fails
    with pytest.raises(MissingDependencyError, match=r"langchain-llmrouter\[demo\]") as info:
        plot_quality_cost(result, tmp_path / "plot.png")
    assert "llmrouter bench --plot" in str(info.value)
    assert not (tmp_path / "plot.png").exists()


# --- the command line ---------------------------------------------------------------------------


def test_cli_bench_plot_writes_the_image(
    slices: Slices, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import matplotlib.image

    plot = tmp_path / "images" / "bench.png"
    # smallest_llm needs no embeddings, so no embedder is loaded: fast.
    argv = ["bench", "--routers", "smallest_llm", "--train", str(slices.train_json)]
    argv += ["--test", str(slices.test_json), "--llm-data", str(slices.llm), "--plot", str(plot)]
    code = main(argv)
    out, err = capsys.readouterr()
    assert code == 0, err
    assert f"wrote the quality-cost plot to {plot}" in err
    assert "| smallest_llm" in out  # the table is still printed
    assert matplotlib.image.imread(plot).shape == PNG_SHAPE


def test_cli_plot_problems_are_reported_before_training(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # The data files do not exist: an error about them would mean the plot was checked late.
    missing = tmp_path / "nothing.json"
    argv = ["bench", "--routers", "knnrouter", "--train", str(missing), "--test", str(missing)]
    argv += ["--llm-data", str(missing)]
    assert main([*argv, "--plot", str(tmp_path / "plot.txt")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: --plot") and ".png" in err

    monkeypatch.setitem(sys.modules, "matplotlib", None)
    assert main([*argv, "--plot", str(tmp_path / "plot.png")]) == 2
    err = capsys.readouterr().err
    assert "pip install 'langchain-llmrouter[demo]'" in err
    assert "Traceback" not in err


def test_importing_the_package_and_cli_does_not_load_matplotlib() -> None:
    code = (
        "import sys, langchain_llmrouter, langchain_llmrouter.evaluation.plot; "
        "from langchain_llmrouter.cli.main import build_parser; build_parser(); "
        "print('matplotlib' in sys.modules)"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert done.stdout.strip() == "False"
