"""A plugin router written from the README alone passes the shipped router contract.

The README's "Check your router with the contract" subsection holds a plugin file, its test
file and a `check_router` script. They are copied, as they are, into a fresh project folder
(``custom_routers/ridgerouter.py``, ``tests/test_ridgerouter.py``, ``check.py``) and run there
in fresh processes, as a plugin author would run them: pytest on the test file, then the script.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[3] / "README.md"
SECTION = "#### Check your router with the contract"
CONTRACT_TESTS = 10
"""Tests of `RouterContractTests` (one per check)."""


def _section_blocks() -> dict[str, str]:
    """The subsection's Python blocks, keyed by the file the text before each one names."""
    text = README.read_text(encoding="utf-8")
    assert SECTION in text, f"the README has no {SECTION!r} subsection"
    section = text.split(SECTION, 1)[1]
    section = re.split(r"\n#{1,4} ", section, maxsplit=1)[0]
    blocks: dict[str, str] = {}
    for match in re.finditer(r"```python\n(.*?)```", section, re.DOTALL):
        before = section[: match.start()].rstrip().rsplit("\n", 1)[-1]
        named = re.findall(r"`([\w/]+\.py)`", before)
        blocks[named[-1] if named else "check.py"] = match.group(1)
    return blocks


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str]]:
    """A plugin author's folder made of the README's files, and the environment to run in."""
    blocks = _section_blocks()
    assert set(blocks) == {"custom_routers/ridgerouter.py", "tests/test_ridgerouter.py", "check.py"}
    root = tmp_path_factory.mktemp("plugin_author")
    for name, code in blocks.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(code, encoding="utf-8")
    (root / "home").mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LLMROUTER_", "PYTEST_"))}
    env.update(HOME=str(root / "home"), LLMROUTER_CACHE_DIR=str(root / "cache"))
    return root, env


def _run(args: list[str], root: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, *args], cwd=root, env=env, capture_output=True, text=True, timeout=240
    )


def test_the_readme_plugin_passes_the_contract_under_pytest(
    project: tuple[Path, dict[str, str]],
) -> None:
    root, env = project
    result = _run(["-m", "pytest", "-q", "-p", "no:cacheprovider", "tests"], root, env)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert f"{CONTRACT_TESTS} passed" in output, output
    assert not re.search(r"\d+ (failed|skipped|xfailed|error)", output), output


def test_the_readme_check_router_script_passes(project: tuple[Path, dict[str, str]]) -> None:
    root, env = project
    result = _run(["check.py"], root, env)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_contract_test_count_is_the_one_the_readme_gives() -> None:
    from langchain_llmrouter.testing import RouterContractTests

    tests = [name for name in dir(RouterContractTests) if name.startswith("test_")]
    assert len(tests) == CONTRACT_TESTS
    assert f"runs the {CONTRACT_TESTS} contract tests" in README.read_text(encoding="utf-8")
