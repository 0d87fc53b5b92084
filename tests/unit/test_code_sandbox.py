"""Tests of the code sandbox and of the code metric run end to end on example MBPP and
HumanEval rows: right solutions pass, wrong ones fail, infinite loops time out and leave no
process behind, and file-deleting, memory-hungry or networking programs harm nothing. Under
bubblewrap, six escapes a user found against the fallback are contained too: reading, chmod
and utime of a file outside, a Unix socket by path, a setsid'd grandchild and a full disk.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import socket
import stat
import subprocess
import tempfile
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from langchain_llmrouter.evaluation import code_sandbox
from langchain_llmrouter.evaluation.code_sandbox import (
    SandboxFallbackWarning,
    SandboxResult,
    run_python_sandboxed,
    sandbox_backend,
)
from langchain_llmrouter.evaluation.code_sandbox_bwrap import Bubblewrap, bubblewrap
from langchain_llmrouter.evaluation.code_sandbox_child import landlock_abi
from langchain_llmrouter.evaluation.task_metrics import CodeExecutionMetric, score_response

Row = dict[str, Any]

# The fallback warns once per process; `test_forced_fallback_works_and_warns` checks that.
pytestmark = pytest.mark.filterwarnings(
    "ignore::langchain_llmrouter.evaluation.code_sandbox.SandboxFallbackWarning"
)

needs_bubblewrap = pytest.mark.skipif(
    bubblewrap().path is None,
    reason=f"bubblewrap is not usable here ({bubblewrap().reason}); .ci/run installs it",
)
BACKENDS = [pytest.param("bubblewrap", marks=needs_bubblewrap), pytest.param("landlock")]


def test_ci_runs_the_bubblewrap_path() -> None:
    """Under CI (``CI`` set), where .ci/run has installed bubblewrap, the strong path must work:
    a sandbox set-up that breaks (say, with the checkout under /tmp) fails here instead of
    skipping every bubblewrap test."""
    path = shutil.which("bwrap")
    if not os.environ.get("CI") or path is None:
        pytest.skip("only under CI with bubblewrap installed")
    plain = [path, "--unshare-all", "--unshare-user", "--ro-bind", "/", "/", "true"]
    if subprocess.run(plain, capture_output=True, timeout=30).returncode != 0:
        pytest.skip("this machine lets no process create user namespaces")
    assert bubblewrap().path is not None, bubblewrap().reason


"""Tests that hold in both sandboxes run in each (``landlock`` forces the fallback)."""

_LIBC = "import ctypes, os\nlibc = ctypes.CDLL(None, use_errno=True)\n"


@pytest.fixture(scope="module")
def code_rows(shared_data: Path) -> dict[str, Row]:
    """The example MBPP and HumanEval test rows, by task id."""
    with open(shared_data / "default_query_test.jsonl", encoding="utf-8") as fh:
        rows = [json.loads(line) for line in fh]
    return {row["task_id"]: row for row in rows if row["metric"] == "code_eval"}


# --- the sandbox --------------------------------------------------------------------------


def test_a_passing_and_a_failing_program() -> None:
    passed = run_python_sandboxed("print('hello')\nassert sum([1, 2]) == 3\n")
    expected = SandboxResult("passed", 0, "hello\n", passed.duration_s, sandbox_backend())
    assert passed == expected
    assert passed.passed
    failed = run_python_sandboxed("assert sum([1, 2]) == 4, 'wrong sum'\n")
    assert failed.status == "failed" and not failed.passed
    assert failed.returncode == 1
    assert "AssertionError: wrong sum" in failed.output
    syntax = run_python_sandboxed("def f(:\n")
    assert syntax.status == "failed" and "SyntaxError" in syntax.output


@pytest.mark.parametrize("backend", BACKENDS)
def test_overhead_per_program_is_well_under_a_second(backend: Any) -> None:
    results = [run_python_sandboxed("x = 1", sandbox=backend) for _ in range(3)]
    assert {result.sandbox for result in results} <= {backend, "none"}
    durations = [result.duration_s for result in results]
    assert sum(durations) / len(durations) < 1.0, durations


@pytest.mark.parametrize("backend", BACKENDS)
def test_environment_is_minimal_and_the_directory_is_removed(
    monkeypatch: pytest.MonkeyPatch, backend: Any
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
    result = run_python_sandboxed(program, sandbox=backend)
    assert result.passed, result.output
    workdir, names, same, flags = result.output.splitlines()
    assert "OPENAI_API_KEY" not in names and "sk-secret" not in result.output
    assert same == "True" and flags == "1 True"
    if backend == "landlock":
        assert not os.path.exists(workdir)


def test_output_is_the_tail() -> None:
    result = run_python_sandboxed("print('x' * 5000 + 'END')")
    assert result.passed
    assert 1900 <= len(result.output) <= 2000
    assert result.output.endswith("END\n")


def _running(name: str) -> list[int]:
    """Host pids of the live (not zombie) processes whose name (``comm``) is ``name``."""
    pids = []
    for entry in os.listdir("/proc"):
        try:
            with open(f"/proc/{entry}/stat", encoding="utf-8") as fh:
                comm, state = fh.read().rsplit(")", 1)
        except (OSError, ValueError):
            continue  # not a process, or gone
        if comm.split("(", 1)[1] == name and state.split()[0] != "Z":
            pids.append(int(entry))
    return pids


def _gone(name: str, within_s: float = 3.0) -> bool:
    deadline = time.monotonic() + within_s
    while _running(name):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


@pytest.fixture
def process_name() -> Iterator[str]:
    """A unique process name (``prctl(PR_SET_NAME)``) to find a program's processes by."""
    name = "sbx" + secrets.token_hex(4)
    yield name
    for pid in _running(name):  # only if a test failed: do not leave them running
        os.kill(pid, 9)


_NAMED = "libc.prctl(15, {name!r}.encode(), 0, 0, 0)  # PR_SET_NAME\n"


@pytest.mark.parametrize("backend", BACKENDS)
def test_infinite_loop_times_out_and_leaves_no_process(backend: Any, process_name: str) -> None:
    # The raw libc fork bypasses the guard on purpose: the child must be killed too.
    program = (
        _LIBC + "libc.fork()\n" + _NAMED + "print('running', flush=True)\nwhile True:\n    pass\n"
    )
    start = time.monotonic()
    result = run_python_sandboxed(program.format(name=process_name), timeout_s=2, sandbox=backend)
    assert result.status == "timeout"
    assert not result.passed
    assert time.monotonic() - start < 5
    assert result.output.split() == ["running", "running"], result.output
    assert _gone(process_name)


def test_sleeping_program_times_out_at_the_wall_clock() -> None:
    result = run_python_sandboxed("import time\ntime.sleep(60)\n", timeout_s=1)
    assert result.status == "timeout"
    assert 0.9 < result.duration_s < 3


@pytest.mark.parametrize("backend", BACKENDS)
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
        pytest.param("ctypes.CDLL(None).unlink({file!r}.encode())", id="ctypes-unlink"),
        pytest.param("ctypes.CDLL(None).fopen({file!r}.encode(), b'w')", id="ctypes-truncate"),
    ],
)
def test_deleting_files_outside_the_sandbox_deletes_nothing(
    tmp_path: Path, attack: str, backend: Any
) -> None:
    if attack.startswith("ctypes") and backend == "landlock" and landlock_abi() < 1:
        pytest.xfail("in the fallback, bypassing the guard is only stopped by Landlock (5.13+)")
    folder = tmp_path / "keep"
    folder.mkdir()
    file = folder / "precious.txt"
    file.write_text("precious")
    code = attack.format(file=str(file), folder=str(folder))
    program = f"import ctypes, os, pathlib, shutil, subprocess\n{code}\n"
    result = run_python_sandboxed(program, sandbox=backend)
    assert file.read_text() == "precious", result.output
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["keep", "precious.txt"]
    if not code.startswith("ctypes"):  # the guard stops it with an error
        assert result.status == "failed"
        # Under bubblewrap /tmp is the sandbox's own tmpfs, where the path does not exist.
        errors = (
            ("PermissionError", "FileNotFoundError")
            if backend == "bubblewrap"
            else ("PermissionError",)
        )
        assert any(error in result.output for error in errors), result.output


@pytest.mark.parametrize("backend", BACKENDS)
def test_files_and_environment_inside_the_sandbox_still_work(backend: Any) -> None:
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
    result = run_python_sandboxed(program, sandbox=backend)
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


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize(
    "program",
    [
        pytest.param("import socket\nsocket.create_connection(('127.0.0.1', {port}))", id="socket"),
        pytest.param(
            "import urllib.request\nurllib.request.urlopen('http://127.0.0.1:{port}/')", id="urllib"
        ),
        pytest.param(_RAW_CONNECT, id="raw-libc"),
    ],
)
def test_network_does_not_reach_a_local_listener(program: str, backend: Any) -> None:
    if program == _RAW_CONNECT and backend == "landlock" and landlock_abi() < 4:
        pytest.xfail("in the fallback, a raw socket is stopped by a network namespace or ABI 4")
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        listener.settimeout(0.3)
        port = listener.getsockname()[1]
        result = run_python_sandboxed(program.replace("{port}", str(port)), sandbox=backend)
        with pytest.raises(TimeoutError):
            listener.accept()
    assert "connect 0 " not in result.output


def test_exit_is_disabled() -> None:
    result = run_python_sandboxed("exit(0)\n")
    assert result.status == "failed"
    assert "PermissionError" in result.output


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_program_cannot_pass_for_a_sandbox_failure(backend: Any) -> None:
    # "error" makes the code metric stop the whole run, so only the sandbox may report it.
    program = "import os\nprint('code sandbox setup failed: no', flush=True)\nos._exit(121)\n"
    result = run_python_sandboxed(program, sandbox=backend)
    assert result.status == "failed" and result.returncode == 121


def test_bad_limits_are_rejected() -> None:
    with pytest.raises(ValueError, match="positive"):
        run_python_sandboxed("pass", timeout_s=0)
    with pytest.raises(ValueError, match="positive"):
        run_python_sandboxed("pass", memory_mb=0)
    with pytest.raises(ValueError, match="positive"):
        run_python_sandboxed("pass", disk_mb=0)


# --- which sandbox ------------------------------------------------------------------------


def test_the_sandbox_choice(monkeypatch: pytest.MonkeyPatch) -> None:
    fallback = "landlock" if landlock_abi() >= 1 else "none"
    monkeypatch.setenv("LLMROUTER_SANDBOX", "landlock")
    assert sandbox_backend() == fallback
    assert run_python_sandboxed("pass").sandbox == fallback
    monkeypatch.setenv("LLMROUTER_SANDBOX", "chroot")
    with pytest.raises(ValueError, match="unknown code sandbox 'chroot'"):
        sandbox_backend()
    with pytest.raises(ValueError, match="unknown code sandbox"):
        run_python_sandboxed("pass")
    monkeypatch.delenv("LLMROUTER_SANDBOX")
    expected = "bubblewrap" if bubblewrap().path else fallback
    assert sandbox_backend() == sandbox_backend("auto") == expected


def test_without_bubblewrap_auto_falls_back_and_bubblewrap_is_an_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(
        code_sandbox, "bubblewrap", lambda: Bubblewrap(None, "bwrap is not installed")
    )
    monkeypatch.setattr(code_sandbox, "_fallback_warned", False)
    with pytest.raises(RuntimeError, match="requires bubblewrap, but bwrap is not installed"):
        sandbox_backend("bubblewrap")
    required = run_python_sandboxed("pass", sandbox="bubblewrap")
    assert required.status == "error" and "bwrap is not installed" in required.output
    with pytest.warns(
        SandboxFallbackWarning, match=r"without bubblewrap \(bwrap is not installed\)"
    ):
        assert run_python_sandboxed("pass").passed


def test_forced_fallback_works_and_warns(
    monkeypatch: pytest.MonkeyPatch, code_rows: dict[str, Row]
) -> None:
    monkeypatch.setattr(code_sandbox, "_fallback_warned", False)
    monkeypatch.setenv("LLMROUTER_SANDBOX", "landlock")
    gaps = (
        r"reading files outside its directory, changing their mode or times \(chmod/utime "
        r"through ctypes\), connecting to Unix sockets by path, leaving setsid'd grandchildren"
    )
    with pytest.warns(SandboxFallbackWarning, match=r"LLMROUTER_SANDBOX=landlock.*" + gaps):
        result = run_python_sandboxed("assert sorted([3, 1, 2]) == [1, 2, 3]\n")
    assert result.passed and result.sandbox in ("landlock", "none")
    with warnings.catch_warnings():
        warnings.simplefilter("error", SandboxFallbackWarning)  # once per process
        assert score_response(_MBPP_546_RIGHT, code_rows["546"]) == 1.0
        assert score_response(_MBPP_546_WRONG, code_rows["546"]) == 0.0


@needs_bubblewrap
def test_bubblewrap_scores_right_and_wrong_code(
    monkeypatch: pytest.MonkeyPatch, code_rows: dict[str, Row]
) -> None:
    monkeypatch.setenv("LLMROUTER_SANDBOX", "bubblewrap")
    assert sandbox_backend() == "bubblewrap"
    assert score_response(_MBPP_546_RIGHT, code_rows["546"]) == 1.0
    assert score_response(_MBPP_546_WRONG, code_rows["546"]) == 0.0
    assert score_response(_MBPP_785_RIGHT, code_rows["785"]) == 1.0
    assert score_response(_HE8_BODY, code_rows["HumanEval/8"]) == 1.0
    numpy = run_python_sandboxed("import numpy\nassert numpy.arange(4).sum() == 6\n")
    assert numpy.passed and numpy.sandbox == "bubblewrap", numpy.output


# --- six escapes from the fallback, contained by bubblewrap -------------------------------


@needs_bubblewrap
@pytest.mark.parametrize(
    "attack",
    [
        pytest.param("print(open({file!r}).read())", id="read-0600-file"),
        pytest.param("print('chmod', libc.chmod({file!r}.encode(), 0o777))", id="ctypes-chmod"),
        pytest.param("print('utime', libc.utimes({file!r}.encode(), None))", id="ctypes-utime"),
    ],
)
def test_a_file_outside_cannot_be_read_or_changed(tmp_path: Path, attack: str) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("TOPSECRET")
    secret.chmod(0o600)
    os.utime(secret, (1_000_000_000, 1_000_000_000))
    program = _LIBC + attack.format(file=str(secret))
    result = run_python_sandboxed(program, sandbox="bubblewrap")
    assert "TOPSECRET" not in result.output
    assert "chmod 0" not in result.output and "utime 0" not in result.output
    assert stat.S_IMODE(secret.stat().st_mode) == 0o600
    assert secret.stat().st_mtime == 1_000_000_000
    assert secret.read_text() == "TOPSECRET"


@needs_bubblewrap
def test_a_unix_socket_outside_cannot_be_reached(tmp_path: Path) -> None:
    folder = tmp_path if len(str(tmp_path)) < 90 else Path(tempfile.mkdtemp())
    path = str(folder / "s.sock")
    program = _LIBC + (
        "import struct\n"
        "fd = libc.socket(1, 1, 0)  # AF_UNIX, SOCK_STREAM\n"
        f"address = struct.pack('=H', 1) + {path!r}.encode() + bytes(108 - len({path!r}))\n"
        "print('connect', libc.connect(fd, address, len(address)), ctypes.get_errno())\n"
    )
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as listener:
        listener.bind(path)
        listener.listen(1)
        listener.settimeout(0.3)
        result = run_python_sandboxed(program, sandbox="bubblewrap")
        with pytest.raises(TimeoutError):
            listener.accept()
    assert "connect -1 " in result.output, result.output


@needs_bubblewrap
def test_a_setsid_grandchild_dies_with_the_run(tmp_path: Path, process_name: str) -> None:
    marker = tmp_path / "still-running"
    program = _LIBC + (
        "import time\n"
        "if libc.fork() == 0:\n"
        "    libc.setsid()  # out of the process group the timeout kills\n"
        "    if libc.fork() == 0:\n"
        f"        {_NAMED.format(name=process_name)}"
        "        print('grandchild started', flush=True)\n"
        "        while True:\n"
        "            time.sleep(0.1)\n"
        "            try:\n"
        f"                open({str(marker)!r}, 'w').close()\n"
        "            except OSError:\n"
        "                pass\n"
        "    os._exit(0)\n"
        "time.sleep(60)\n"
    )
    result = run_python_sandboxed(program, timeout_s=1.5, sandbox="bubblewrap")
    assert result.status == "timeout"
    assert "grandchild started" in result.output, result.output
    assert _gone(process_name)
    assert not marker.exists()


@needs_bubblewrap
def test_the_disk_is_limited_to_the_tmpfs_size() -> None:
    # Files of 15 MiB, under the 16 MiB file size limit: only the tmpfs size stops them.
    program = (
        "import errno\n"
        "written = 0\n"
        "try:\n"
        "    for i in range(10):\n"
        "        with open(f'file{i}', 'wb') as fh:\n"
        "            for _ in range(15):\n"
        "                fh.write(bytes(2**20))\n"
        "                fh.flush()\n"
        "                written += 1\n"
        "except OSError as exc:\n"
        "    print(errno.errorcode[exc.errno])\n"
        "print('MiB', written)\n"
    )
    default = run_python_sandboxed(program, sandbox="bubblewrap")
    assert default.output.split() == ["ENOSPC", "MiB", default.output.split()[-1]], default.output
    assert 48 <= int(default.output.split()[-1]) <= 64
    small = run_python_sandboxed(program, sandbox="bubblewrap", disk_mb=8)
    assert small.output.split()[:2] == ["ENOSPC", "MiB"], small.output
    assert int(small.output.split()[-1]) <= 8


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
