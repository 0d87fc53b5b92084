"""The pipeline as shipped: inside the wheel as `langchain_llmrouter.pipeline` (never as a
top-level `data_pipeline`), run as ``llmrouter pipeline <stage>`` or, from a checkout,
``python -m data_pipeline.<stage>``; and its task registry, which points one way."""

from __future__ import annotations

import ast
import json
import random
import subprocess
import sys
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
from setuptools import find_namespace_packages

from langchain_llmrouter.cli.main import main
from langchain_llmrouter.pipeline import SAMPLE_CONFIG, tasks
from langchain_llmrouter.pipeline.commands import STAGES
from langchain_llmrouter.pipeline.config import BUILTIN_TASKS

REPO = Path(__file__).resolve().parents[3]
PIPELINE_DIR = REPO / "src" / "langchain_llmrouter" / "pipeline"
STAGE_MODULES = ("queries", "embed_candidates", "call_candidates", "run")
"""The ``python -m data_pipeline.<module>`` entry points, one per stage."""


def python(code: str) -> str:
    """Run ``code`` in a fresh interpreter from the repository root; its stdout."""
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


# --- the wheel ------------------------------------------------------------------------------


def test_the_wheel_ships_the_pipeline_inside_the_package_and_no_data_pipeline() -> None:
    """What setuptools packs, from pyproject's own ``packages.find`` and ``package-data``."""
    setuptools = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]
    find = setuptools["packages"]["find"]
    packages = {
        package
        for where in find["where"]
        for package in find_namespace_packages(
            where=str(REPO / where), include=find["include"], exclude=find.get("exclude", ())
        )
    }
    assert {"langchain_llmrouter", "langchain_llmrouter.pipeline"} <= packages
    assert not [p for p in packages if p.split(".")[0] != "langchain_llmrouter"], packages

    patterns = setuptools["package-data"]["langchain_llmrouter.pipeline"]
    shipped = {path for pattern in patterns for path in PIPELINE_DIR.glob(pattern)}
    assert SAMPLE_CONFIG in shipped
    prompts = {tasks.get_task(name).prompt_file for name in BUILTIN_TASKS}
    generic = {
        tasks.PROMPTS_DIR / f"{name}.yaml" for name in ("generic", "generic_multiple_choice")
    }
    assert prompts | generic <= shipped
    assert all(path.is_file() for path in shipped)


def test_git_ignores_no_source_file_of_the_package() -> None:
    """A ``.gitignore`` pattern (such as ``data/`` for pipeline output) must not hide a module
    of the package (such as ``langchain_llmrouter/data/``) from commits and the wheel."""
    sources = [str(p.relative_to(REPO)) for p in (REPO / "src").rglob("*.py")]
    try:
        done = subprocess.run(
            ["git", "check-ignore", "--no-index", "--stdin"],
            cwd=REPO,
            input="\n".join(sources),
            capture_output=True,
            text=True,
            timeout=60,
        )
    except FileNotFoundError:
        pytest.skip("git is not installed")
    if done.returncode not in (0, 1):  # 1: nothing ignored; other codes: not a work tree
        pytest.skip(f"not a git work tree: {done.stderr.strip()}")
    assert done.stdout == "", done.stdout


# --- llmrouter pipeline ---------------------------------------------------------------------


def test_llmrouter_pipeline_help_lists_the_stages(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["pipeline", "--help"])
    assert info.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: llmrouter pipeline ")
    for stage in STAGES.values():
        assert stage.name in out and stage.summary.split(":")[0] in out
    assert "embed-candidates (embed_candidates)" in out
    assert str(SAMPLE_CONFIG) in out.replace("\n", "")


def test_llmrouter_help_lists_the_pipeline_verb(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["--help"])
    assert info.value.code == 0
    assert "pipeline" in capsys.readouterr().out


@pytest.mark.parametrize("verb", ["call-candidates", "call_candidates"])
def test_a_stage_help_shows_its_own_flags(verb: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["pipeline", verb, "--help"])
    assert info.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: llmrouter pipeline call-candidates ")  # either spelling
    for flag in ("--config", "--max-cost", "--limit", "--no-progress"):
        assert flag in out


def test_pipeline_without_a_stage_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["pipeline"])
    assert info.value.code == 2
    assert "STAGE" in capsys.readouterr().err


def test_llmrouter_pipeline_runs_the_stage(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The verb reaches the stage's own code: a missing config is its one-line user error."""
    missing = tmp_path / "nope.yaml"
    assert main(["pipeline", "queries", "--config", str(missing)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and str(missing) in err and "Traceback" not in err


def test_run_rejects_an_unknown_stage(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["pipeline", "run", "--config", "x.yaml", "--stages", "queries,nope"])
    assert info.value.code == 2
    assert "unknown stage 'nope'; valid stages: queries, embed, calls" in capsys.readouterr().err


def test_building_the_cli_parser_imports_no_stage() -> None:
    """``llmrouter --help`` stays quick: the stages' modules load only when one runs."""
    loaded = python(
        "import json, sys\n"
        "from langchain_llmrouter.cli.main import build_parser\n"
        "build_parser()\n"
        "pipeline = [m for m in sys.modules if m.startswith('langchain_llmrouter.pipeline')]\n"
        "print(json.dumps(sorted(pipeline)))"
    )
    assert json.loads(loaded) == [
        "langchain_llmrouter.pipeline",
        "langchain_llmrouter.pipeline.commands",
    ]


# --- python -m data_pipeline.<stage> (a checkout) -------------------------------------------


@pytest.mark.parametrize("module", STAGE_MODULES)
def test_python_m_data_pipeline_stage_help_still_works(module: str) -> None:
    done = subprocess.run(
        [sys.executable, "-m", f"data_pipeline.{module}", "--help"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(f"usage: python -m data_pipeline.{module} ")
    assert "--config" in done.stdout


def test_python_m_langchain_llmrouter_pipeline_is_the_verb() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "langchain_llmrouter.pipeline", "--help"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("usage: llmrouter pipeline ")


def test_data_pipeline_keeps_its_plugin_names() -> None:
    """Plugins written as ``from data_pipeline import ...`` still work from a checkout."""
    out = python(
        "import data_pipeline, langchain_llmrouter.pipeline as p\n"
        "print(all(getattr(data_pipeline, n) is getattr(p, n) for n in data_pipeline.__all__))"
    )
    assert out.strip() == "True"


# --- the task registry ----------------------------------------------------------------------


def test_the_registry_never_imports_the_modules_that_define_tasks() -> None:
    source = (PIPELINE_DIR / "tasks.py").read_text()
    imported = [
        node.module if isinstance(node, ast.ImportFrom) else alias.name
        for node in ast.walk(ast.parse(source))
        if isinstance(node, ast.Import | ast.ImportFrom)
        for alias in node.names
    ]
    assert not [m for m in imported if m and "benchmarks" in m], imported
    found = python(
        "import sys\n"
        "from langchain_llmrouter.pipeline import tasks\n"
        "before = 'langchain_llmrouter.pipeline.benchmarks' in sys.modules\n"
        "tasks.task_names()\n"
        "listed = 'langchain_llmrouter.pipeline.benchmarks' in sys.modules\n"
        "tasks.get_task('gsm8k')\n"
        "print(before, listed, 'langchain_llmrouter.pipeline.benchmarks' in sys.modules)"
    )
    assert found.split() == ["False", "False", "True"]


def test_every_builtin_task_resolves_to_its_spec() -> None:
    assert tasks.builtin_tasks() == sorted(BUILTIN_TASKS)
    for name in BUILTIN_TASKS:
        spec = tasks.get_task(name)
        assert isinstance(spec, tasks.TaskSpec) and spec.name == name
        assert spec.to_query is not None and spec.prompt_file.is_file()


def test_a_registered_task_overrides_a_builtin(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tasks, "_TASKS", dict(tasks._TASKS))

    @tasks.register_task("gsm8k", metric="em")
    def my_gsm8k(record: Mapping[str, Any], rng: random.Random) -> dict[str, Any]:
        return {"query": record["q"], "ground_truth": record["a"]}

    assert tasks.get_task("gsm8k").metric == "em"
    assert tasks.get_task("gsm8k").to_query is my_gsm8k
    assert tasks.task_names().count("gsm8k") == 1
    monkeypatch.undo()
    assert tasks.get_task("gsm8k").metric == "GSM8K"
