"""Plugin discovery: routers from ./custom_routers/, ~/.llmrouter/plugins/ and $LLMROUTER_PLUGINS."""

from __future__ import annotations

import contextlib
import io
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from langchain_llmrouter import UnknownRouterError, create_router, get_router_class
from langchain_llmrouter.cli.main import main
from langchain_llmrouter.routers import registry

REPO = Path(__file__).resolve().parents[2]

PLUGIN = """
import numpy as np
from langchain_llmrouter import BaseRouter, register_router


@register_router()
class {cls}(BaseRouter):
    \"\"\"Always the first candidate ({name}).\"\"\"

    name = "{name}"
    trainable = False

    def __init__(self, *, cost_weight=0.0, budget=None):
        super().__init__(cost_weight=cost_weight, budget=budget)

    def _fit(self, dataset, query_embeddings):
        pass

    def _predict_quality(self, queries, query_embeddings):
        scores = np.zeros((len(queries), len(self.candidates_)))
        scores[:, 0] = 1.0
        return scores
"""


def _write_plugin(directory: Path, name: str, file: str | None = None) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / (file or f"{name}.py")
    path.write_text(PLUGIN.format(cls=name.title().replace("_", ""), name=name), encoding="utf-8")
    return path


@pytest.fixture
def fresh_registry(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[Path]:
    """An empty plugin registry, a fake home and working directory; yields the working dir."""
    monkeypatch.setattr(registry, "_PLUGINS", {})
    monkeypatch.setattr(registry, "_PLUGIN_SOURCES", {})
    monkeypatch.setattr(registry, "_discovery", {"done": False, "loaded": set(), "errors": []})
    home, work = tmp_path / "home", tmp_path / "work"
    home.mkdir()
    work.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.delenv(registry.PLUGIN_ENV, raising=False)
    monkeypatch.delenv(registry.NO_PLUGINS_ENV, raising=False)
    monkeypatch.chdir(work)
    modules = set(sys.modules)
    yield work
    for name in set(sys.modules) - modules:
        if name.startswith("_llmrouter_plugin_"):
            del sys.modules[name]


def test_the_three_plugin_locations(
    fresh_registry: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    work = fresh_registry
    in_cwd = _write_plugin(work / "custom_routers", "cwd_router")
    in_home = _write_plugin(Path.home() / ".llmrouter" / "plugins", "home_router")
    env_dir = _write_plugin(tmp_path / "envdir", "env_dir_router").parent
    env_file = _write_plugin(tmp_path / "single", "env_file_router")
    monkeypatch.setenv(registry.PLUGIN_ENV, f"{env_dir}:{env_file}")

    assert registry.plugin_routers() == [
        "cwd_router",
        "env_dir_router",
        "env_file_router",
        "home_router",
    ]
    assert registry.plugin_source("cwd_router") == str(in_cwd.resolve())
    assert registry.plugin_source("home_router") == str(in_home.resolve())
    router = create_router("env_file_router").fit_candidates([])
    assert router.name == "env_file_router"
    assert "home_router" in registry.available_routers()
    assert "home_router" not in registry.builtin_routers()


def test_discovery_runs_once_and_force_finds_new_files(fresh_registry: Path) -> None:
    _write_plugin(fresh_registry / "custom_routers", "first_router")
    assert registry.plugin_routers() == ["first_router"]
    _write_plugin(fresh_registry / "custom_routers", "second_router")
    assert registry.plugin_routers() == ["first_router"]
    registry.discover_plugins(force=True)
    assert registry.plugin_routers() == ["first_router", "second_router"]


def test_two_folders_may_hold_files_of_the_same_name(
    fresh_registry: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _write_plugin(fresh_registry / "custom_routers", "alpha_router", file="router.py")
    _write_plugin(tmp_path / "other", "beta_router", file="router.py")
    monkeypatch.setenv(registry.PLUGIN_ENV, str(tmp_path / "other"))
    assert registry.plugin_routers() == ["alpha_router", "beta_router"]


def test_a_package_folder_is_a_plugin(fresh_registry: Path) -> None:
    _write_plugin(
        fresh_registry / "custom_routers" / "pkg_router", "pkg_router", file="__init__.py"
    )
    assert registry.plugin_routers() == ["pkg_router"]


def test_private_and_non_python_files_are_ignored(fresh_registry: Path) -> None:
    folder = fresh_registry / "custom_routers"
    _write_plugin(folder, "hidden_router", file="_helpers.py")
    (folder / "notes.txt").write_text("not python", encoding="utf-8")
    assert registry.plugin_routers() == []


def test_a_broken_plugin_warns_and_the_others_still_load(fresh_registry: Path) -> None:
    folder = fresh_registry / "custom_routers"
    _write_plugin(folder, "good_router")
    (folder / "broken.py").write_text("raise RuntimeError('boom')\n", encoding="utf-8")
    with pytest.warns(UserWarning, match=r"broken\.py failed to import: boom"):
        errors = registry.discover_plugins()
    assert [e.source.endswith("broken.py") for e in errors] == [True]
    assert "RuntimeError: boom" in errors[0].error
    assert registry.plugin_routers() == ["good_router"]


def test_plugins_can_be_turned_off(fresh_registry: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _write_plugin(fresh_registry / "custom_routers", "off_router")
    monkeypatch.setenv(registry.NO_PLUGINS_ENV, "1")
    with pytest.raises(UnknownRouterError) as info:
        get_router_class("off_router")
    assert "knnrouter" in str(info.value)


def test_a_plugin_may_override_a_builtin_name(fresh_registry: Path) -> None:
    _write_plugin(fresh_registry / "custom_routers", "oracle")
    cls = get_router_class("oracle")
    assert cls.__doc__ is not None and "Always the first candidate" in cls.__doc__


def test_list_routers_shows_builtin_and_plugin_routers_apart(fresh_registry: Path) -> None:
    path = _write_plugin(fresh_registry / "custom_routers", "listed_router")
    (fresh_registry / "custom_routers" / "broken.py").write_text("import nope\n", encoding="utf-8")
    out = io.StringIO()
    with contextlib.redirect_stdout(out), pytest.warns(UserWarning):
        assert main(["list-routers"]) == 0
    text = out.getvalue()
    builtin_part, plugin_part = text.split("plugin routers:")
    assert "knnrouter" in builtin_part and "listed_router" not in builtin_part
    assert "listed_router" in plugin_part and "Always the first candidate" in plugin_part
    assert f"from {path.resolve()}" in plugin_part
    assert "plugin failed to import:" in plugin_part and "broken.py" in plugin_part
    assert str(fresh_registry / "custom_routers") in text


def test_the_repository_threshold_router_is_found_from_the_repo_root(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.chdir(REPO)
    registry.discover_plugins(force=True)
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert main(["list-routers"]) == 0
    plugin_part = out.getvalue().split("plugin routers:")[1]
    assert "thresholdrouter" in plugin_part
    assert "custom_routers/thresholdrouter.py" in plugin_part


def test_plugin_error_text_of_a_missing_router(fresh_registry: Path) -> None:
    with pytest.raises(UnknownRouterError, match="valid"):
        get_router_class("definitely_not_a_router")
