"""Tests of the code sandbox and of the code metric run end to end on example MBPP and
HumanEval rows: right solutions pass, wrong ones fail, infinite loops time out and leave no
process behind, and file-deleting, memory-hungry or networking programs harm nothing.
"""

from __future__ import annotations

import json
import os
import socket
import time
from pathlib import Path
from typing import Any

import pytest

from langchain_llmrouter.evaluation.code_sandbox import (
    SandboxResult,
    _landlock_abi,
    run_python_sandboxed,
)
from langchain_llmrouter.evaluation.task_metrics import CodeExecutionMetric, score_response

Row = dict[str, Any]

needs_landlock = pytest.mark.xfail(
    _landlock_abi() < 1, reason="bypassing the guard is only stopped by Landlock (Linux 5.13+)"
)


@pytest.fixture(scope="module")
def code_rows(shared_data: Path) -> dict[str, Row]:
    """The example MBPP and HumanEval test rows, by task id."""
    with open(shared_data / "default_query_test.jsonl", encoding="utf-8") as fh:
        rows = [json.loads(line) for line in fh]
    return {row["task_id"]: row for row in rows if row["metric"] == "code_eval"}


# --- the sandbox --------------------------------------------------------------------------


def test_a_passing_and_a_failing_program() -> None:
    passed = run_python_sandboxed("print('hello')\nassert sum([1, 2]) == 3\n")
    assert passed == SandboxResult("passed", 0, "hello\n", passed.duration_s)
    assert passed.passed
    failed = run_python_sandboxed("assert sum([1, 2]) == 4, 'wrong sum'\n")
    assert failed.status == "failed" and not failed.passed
    assert failed.returncode == 1
    assert "AssertionError: wrong sum" in failed.output
    syntax = run_python_sandboxed("def f(:\n")
    assert syntax.status == "failed" and "SyntaxError" in syntax.output


def test_overhead_per_program_is_well_under_a_second() -> None:
    durations = [run_python_sandboxed("x = 1").duration_s for _ in range(3)]
    assert sum(durations) / len(durations) < 1.0, durations


def test_environment_is_minimal_and_the_directory_is_removed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-secret")
    program = (
        "import os, sys\n"
        "print(os.getcwd())\n"
        "print(sorted(os.environ))\n"
        "print(os.environ['HOME'] == os.getcwd() == os.environ['TMPDIR'])\n"
        "print(sys.flags.isolated, sys.stdin.read() == '')\n"
        "open('scratch.txt', 'w').write('inside the sandbox is fine')\n"
    )
    result = run_python_sandboxed(program)
    assert result.passed, result.output
    workdir, names, same, flags = result.output.splitlines()
    assert "OPENAI_API_KEY" not in names and "sk-secret" not in result.output
    assert same == "True" and flags == "1 True"
    assert not os.path.exists(workdir)


def test_output_is_the_tail() -> None:
    result = run_python_sandboxed("print('x' * 5000 + 'END')")
    assert result.passed
    assert 1900 <= len(result.output) <= 2000
    assert result.output.endswith("END\n")


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", encoding="utf-8") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"  # a zombie is dead
    except FileNotFoundError:
        return False


def test_infinite_loop_times_out_and_leaves_no_process() -> None:
    # The raw libc fork bypasses the guard on purpose: the grandchild must be killed too.
    program = (
        "import ctypes, os\n"
        "ctypes.CDLL(None).fork()\n"
        "print(os.getpid(), flush=True)\n"
        "while True:\n"
        "    pass\n"
    )
    start = time.monotonic()
    result = run_python_sandboxed(program, timeout_s=2)
    assert result.status == "timeout"
    assert not result.passed
    assert time.monotonic() - start < 5
    pids = [int(line) for line in result.output.split()]
    assert len(pids) == 2, result.output
    deadline = time.monotonic() + 3
    while any(_alive(pid) for pid in pids) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not any(_alive(pid) for pid in pids)


def test_sleeping_program_times_out_at_the_wall_clock() -> None:
    result = run_python_sandboxed("import time\ntime.sleep(60)\n", timeout_s=1)
    assert result.status == "timeout"
    assert 0.9 < result.duration_s < 3


@pytest.mark.parametrize(
    "attack",
    [
        pytest.param("os.remove({file!r})", id="os.remove"),
        pytest.param("pathlib.Path({file!r}).unlink()", id="Path.unlink"),
        pytest.param("open({file!r}, 'w').write('overwritten')", id="open-w"),
        pytest.param("shutil.rmtree({folder!r})", id="shutil.rmtree"),
        pytest.param("shutil.move({folder!r}, 'stolen')", id="shutil.move"),
        pytest.param("subprocess.run(['rm', '-rf', {folder!r}])", id="subprocess-rm"),
        pytest.param("os.system('rm -rf ' + {folder!r})", id="os.system-rm"),
        pytest.param("os.rename({file!r}, 'stolen')", id="os.rename"),
        pytest.param(
            "ctypes.CDLL(None).unlink({file!r}.encode())", id="ctypes-unlink", marks=needs_landlock
        ),
        pytest.param(
            "ctypes.CDLL(None).fopen({file!r}.encode(), b'w')",
            id="ctypes-truncate",
            marks=needs_landlock,
        ),
    ],
)
def test_deleting_files_outside_the_sandbox_deletes_nothing(tmp_path: Path, attack: str) -> None:
    folder = tmp_path / "keep"
    folder.mkdir()
    file = folder / "precious.txt"
    file.write_text("precious")
    code = attack.format(file=str(file), folder=str(folder))
    result = run_python_sandboxed(f"import ctypes, os, pathlib, shutil, subprocess\n{code}\n")
    assert file.read_text() == "precious", result.output
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["keep", "precious.txt"]
    if not code.startswith("ctypes"):  # the guard stops it with an error
        assert result.status == "failed"
        assert "PermissionError" in result.output


def test_files_and_environment_inside_the_sandbox_still_work() -> None:
    program = (
        "import os, shutil, tempfile\n"
        "with tempfile.NamedTemporaryFile('w') as fh:\n"
        "    fh.write('scratch')\n"
        "folder = tempfile.mkdtemp()\n"
        "os.makedirs(os.path.join(folder, 'a', 'b'))\n"
        "open(os.path.join(folder, 'a', 'f.txt'), 'w').close()\n"
        "os.rename(os.path.join(folder, 'a', 'f.txt'), os.path.join(folder, 'g.txt'))\n"
        "shutil.rmtree(folder)\n"
        "assert not os.path.exists(folder)\n"
        "os.environ['SOME_FLAG'] = '1'\n"
        "assert os.environ['SOME_FLAG'] == '1'\n"
    )
    result = run_python_sandboxed(program)
    assert result.passed, result.output


def test_memory_bomb_fails_cleanly() -> None:
    whole = run_python_sandboxed("b = bytearray(8 * 1024**3)\n", memory_mb=256)
    assert whole.status == "failed"
    assert "MemoryError" in whole.output
    growing = run_python_sandboxed(
        "chunks = []\nwhile True:\n    chunks.append(bytearray(10**7))\n", memory_mb=256
    )
    assert growing.status in ("failed", "error")
    assert run_python_sandboxed("b = bytearray(10**7)", memory_mb=256).passed  # it still works


_RAW_CONNECT = """
import ctypes, struct
libc = ctypes.CDLL(None, use_errno=True)
fd = libc.socket(2, 1, 0)  # AF_INET, SOCK_STREAM, created without the socket module
address = struct.pack("=H", 2) + struct.pack("!H", {port}) + bytes([127, 0, 0, 1]) + bytes(8)
print("connect", libc.connect(fd, address, len(address)), ctypes.get_errno())
"""


@pytest.mark.parametrize(
    "program",
    [
        pytest.param("import socket\nsocket.create_connection(('127.0.0.1', {port}))", id="socket"),
        pytest.param(
            "import urllib.request\nurllib.request.urlopen('http://127.0.0.1:{port}/')", id="urllib"
        ),
        pytest.param(
            _RAW_CONNECT,
            id="raw-libc",
            marks=pytest.mark.xfail(
                _landlock_abi() < 4,
                reason="a raw socket is stopped by a network namespace or Landlock ABI 4",
            ),
        ),
    ],
)
def test_network_does_not_reach_a_local_listener(program: str) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        listener.settimeout(0.3)
        port = listener.getsockname()[1]
        result = run_python_sandboxed(program.replace("{port}", str(port)))
        with pytest.raises(TimeoutError):
            listener.accept()
    assert "connect 0 " not in result.output


def test_exit_is_disabled() -> None:
    result = run_python_sandboxed("exit(0)\n")
    assert result.status == "failed"
    assert "PermissionError" in result.output


def test_bad_limits_are_rejected() -> None:
    with pytest.raises(ValueError, match="positive"):
        run_python_sandboxed("pass", timeout_s=0)
    with pytest.raises(ValueError, match="positive"):
        run_python_sandboxed("pass", memory_mb=0)


# --- the code metric on example rows ------------------------------------------------------

_MBPP_546_RIGHT = """[BEGIN]
def last_occurence_char(string, char):
    index = string.rfind(char)
    return None if index < 0 else index + 1
[DONE]"""
_MBPP_546_WRONG = """[BEGIN]
def last_occurence_char(string, char):
    return string.rfind(char)
[DONE]"""
_MBPP_785_RIGHT = """Here is the function:
```python
def tuple_str_int(text):
    return tuple(int(part) for part in text.strip("()").split(", "))
```
It strips the parentheses and converts each part."""
_MBPP_785_WRONG = """[BEGIN]
def tuple_str_int(text):
    return text.strip("()").split(", ")
[DONE]"""
_HE8_WHOLE = """[BEGIN]
def sum_product(numbers: List[int]) -> Tuple[int, int]:
    product = 1
    for number in numbers:
        product *= number
    return sum(numbers), product
[DONE]"""
_HE8_BODY = """[BEGIN]
    product = 1
    for number in numbers:
        product *= number
    return sum(numbers), product
[DONE]"""
_HE8_FENCED = """```python
from typing import List, Tuple
import math


def sum_product(numbers: List[int]) -> Tuple[int, int]:
    return sum(numbers), math.prod(numbers)


if __name__ == "__main__":
    print(sum_product(eval(input())))
```"""
_HE8_WRONG = """[BEGIN]
    return sum(numbers), 0
[DONE]"""
_HE131_BODY = """product, odd = 1, False
for digit in str(n):
    if int(digit) % 2:
        product *= int(digit)
        odd = True
return product if odd else 0"""
_HE131_WRONG = """def digits(n):
    product = 1
    for digit in str(n):
        if int(digit) % 2:
            product *= int(digit)
    return product"""


@pytest.mark.parametrize(
    ("task_id", "answer", "expected"),
    [
        pytest.param("546", _MBPP_546_RIGHT, 1.0, id="mbpp546-right"),
        pytest.param("546", _MBPP_546_WRONG, 0.0, id="mbpp546-wrong"),
        pytest.param("785", _MBPP_785_RIGHT, 1.0, id="mbpp785-fenced-right"),
        pytest.param("785", _MBPP_785_WRONG, 0.0, id="mbpp785-wrong"),
        pytest.param("HumanEval/8", _HE8_WHOLE, 1.0, id="he8-whole-function"),
        pytest.param("HumanEval/8", _HE8_BODY, 1.0, id="he8-body"),
        pytest.param("HumanEval/8", _HE8_FENCED, 1.0, id="he8-fenced-with-main"),
        pytest.param("HumanEval/8", _HE8_WRONG, 0.0, id="he8-wrong"),
        pytest.param("HumanEval/131", _HE131_BODY, 1.0, id="he131-bare-body"),
        pytest.param("HumanEval/131", _HE131_WRONG, 0.0, id="he131-wrong"),
        pytest.param("HumanEval/131", "I cannot solve this.", 0.0, id="he131-prose"),
        pytest.param("HumanEval/131", "", 0.0, id="he131-empty"),
    ],
)
def test_code_eval_on_example_rows(
    code_rows: dict[str, Row], task_id: str, answer: str, expected: float
) -> None:
    assert score_response(answer, code_rows[task_id]) == expected


def test_code_that_exits_early_or_loops_scores_zero(code_rows: dict[str, Row]) -> None:
    row = code_rows["546"]
    early = "import sys\ndef last_occurence_char(s, c):\n    return 0\nsys.exit(0)\n"
    assert score_response(early, row) == 0.0
    looping = "def last_occurence_char(s, c):\n    while True:\n        pass\n"
    start = time.monotonic()
    assert CodeExecutionMetric(timeout_s=2)(looping, row["ground_truth"], row) == 0.0
    assert time.monotonic() - start < 5
