"""Run an untrusted Python program in a separate, confined process (MBPP/HumanEval scoring).

`run_python_sandboxed` runs a program with ``python -I`` and returns a `SandboxResult`. Where
bubblewrap (``bwrap``) works, the process gets new user, PID, network, IPC, UTS and mount
namespaces, sees only the system libraries and this Python installation (read-only) plus a
size-limited tmpfs as its directory, and everything it started dies with the run. Elsewhere a
weaker fallback (user + network namespaces, Landlock, rlimits) runs it, with a
`SandboxFallbackWarning`. Both add resource limits, a wall-clock timeout and a Python-level
guard. `sandbox_backend` tells which is used; the ``LLMROUTER_SANDBOX`` variable (``auto``,
``bubblewrap``, ``landlock``) requires one. Details: docs/howto/data-pipeline.md, "The code
sandbox".
"""

from __future__ import annotations

import contextlib
import math
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import warnings
from dataclasses import dataclass
from typing import IO, Literal

from langchain_llmrouter.evaluation.code_sandbox_bwrap import SANDBOX_DIR, bubblewrap, bwrap_command
from langchain_llmrouter.evaluation.code_sandbox_child import READY, landlock_abi

__all__ = [
    "SANDBOX_ENV_VAR",
    "SandboxBackend",
    "SandboxChoice",
    "SandboxFallbackWarning",
    "SandboxResult",
    "run_python_sandboxed",
    "sandbox_backend",
]

SandboxBackend = Literal["bubblewrap", "landlock", "none"]
"""What confined a program: bubblewrap, or the fallback with Landlock or without it."""
SandboxChoice = Literal["auto", "bubblewrap", "landlock"]
"""``auto``: bubblewrap when it works, else the fallback; ``bubblewrap``: bubblewrap or an
``"error"`` result; ``landlock``: always the fallback."""
SANDBOX_ENV_VAR = "LLMROUTER_SANDBOX"
"""The environment variable holding the default `SandboxChoice`."""

_OUTPUT_TAIL_CHARS = 2000
_PROGRAM_NAME = "program.py"
_CHILD_SCRIPT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "code_sandbox_child.py")
_Status = Literal["passed", "failed", "timeout", "error"]
_FALLBACK_GAPS = (
    "reading files outside its directory, changing their mode or times (chmod/utime through "
    "ctypes), connecting to Unix sockets by path, leaving setsid'd grandchildren running "
    "after the timeout, or filling the disk (only each file's size is limited)"
)
_fallback_warned = False
_warn_lock = threading.Lock()


class SandboxFallbackWarning(RuntimeWarning):
    """Generated code runs in the weaker fallback sandbox, not under bubblewrap."""


@dataclass(frozen=True)
class SandboxResult:
    """What happened to a sandboxed program."""

    status: _Status
    """``passed``: exit status 0; ``failed``: any other exit (exception, assertion, memory,
    disk, signal); ``timeout``: killed at the wall-clock or CPU limit; ``error``: could not
    run."""
    returncode: int | None
    """The exit status (negative: killed by that signal); None when it never started."""
    output: str
    """The last ~2,000 characters of stdout and stderr, interleaved."""
    duration_s: float
    """Wall-clock seconds, process start-up included."""
    sandbox: SandboxBackend = "none"
    """The sandbox it ran in (see `sandbox_backend`)."""

    @property
    def passed(self) -> bool:
        """Whether the program ran to the end and exited with status 0."""
        return self.status == "passed"


def _resolve(choice: str | None) -> SandboxChoice:
    value = (os.environ.get(SANDBOX_ENV_VAR, "") if choice is None else choice).strip().lower()
    if value in ("", "auto"):
        return "auto"
    if value == "bubblewrap":
        return "bubblewrap"
    if value == "landlock":
        return "landlock"
    raise ValueError(
        f"unknown code sandbox {value!r} (from {SANDBOX_ENV_VAR} or sandbox=); "
        "expected 'auto', 'bubblewrap' or 'landlock'"
    )


def sandbox_backend(choice: SandboxChoice | None = None) -> SandboxBackend:
    """The sandbox `run_python_sandboxed` uses here (bubblewrap is probed once per process).

    Args:
        choice: What to use; None reads ``LLMROUTER_SANDBOX`` (default ``auto``).

    Returns:
        ``"bubblewrap"``, or for the fallback ``"landlock"`` (Linux 5.13+) or ``"none"``.

    Raises:
        ValueError: If the choice is unknown.
        RuntimeError: If bubblewrap is required but cannot be used; the message says why.
    """
    resolved = _resolve(choice)
    if resolved != "landlock":
        found = bubblewrap()
        if found.path is not None:
            return "bubblewrap"
        if resolved == "bubblewrap":
            raise RuntimeError(f"the code sandbox requires bubblewrap, but {found.reason}")
    return "landlock" if landlock_abi() >= 1 else "none"


def run_python_sandboxed(
    program: str,
    *,
    timeout_s: float = 10.0,
    memory_mb: int = 1024,
    disk_mb: int = 64,
    sandbox: SandboxChoice | None = None,
) -> SandboxResult:
    """Run a Python program in a fresh, confined ``python -I`` process.

    Args:
        program: The source code, run as ``__main__`` from a file in a new, empty directory
            (also its working directory, ``HOME`` and ``TMPDIR``).
        timeout_s: Wall-clock limit in seconds; the CPU limit is this rounded up.
        memory_mb: Address-space limit of the process in MiB.
        disk_mb: Size of the directory (a tmpfs) in MiB under bubblewrap. The fallback only
            limits each file to 16 MiB.
        sandbox: Which sandbox to use (see `SandboxChoice`); None reads ``LLMROUTER_SANDBOX``.

    Returns:
        The outcome; ``"error"`` when the sandbox could not run it (bubblewrap required but
        unusable, or the child could not confine itself). Never raises for anything the
        program does.

    Raises:
        ValueError: If a limit is not positive or the sandbox choice is unknown.
    """
    if not timeout_s > 0 or memory_mb <= 0 or disk_mb <= 0:
        raise ValueError(
            "timeout_s, memory_mb and disk_mb must be positive, "
            f"got {timeout_s}, {memory_mb}, {disk_mb}"
        )
    resolved = _resolve(sandbox)
    try:
        backend = sandbox_backend(resolved)
    except RuntimeError as exc:
        return SandboxResult("error", None, str(exc), 0.0, "none")
    cpu_s = str(max(1, math.ceil(timeout_s)))
    if backend == "bubblewrap":
        child_args = [_PROGRAM_NAME, str(memory_mb), cpu_s, backend]
        return _run_bubblewrap(program, timeout_s, child_args, disk_mb)
    _warn_fallback(f"{SANDBOX_ENV_VAR}=landlock" if resolved == "landlock" else bubblewrap().reason)
    start = time.monotonic()
    try:
        workdir = os.path.realpath(tempfile.mkdtemp(prefix="llmrouter-sandbox-"))
    except OSError as exc:
        message = f"cannot create a temporary directory: {exc}"
        return SandboxResult("error", None, message, 0.0, backend)
    try:
        try:  # "replace": a lone surrogate must not stop the run
            with open(
                os.path.join(workdir, _PROGRAM_NAME), "w", encoding="utf-8", errors="replace"
            ) as fh:
                fh.write(program)
        except OSError as exc:
            return SandboxResult("error", None, f"cannot write the program: {exc}", 0.0, backend)
        command = [sys.executable, "-I", "-B", "-X", "utf8", _CHILD_SCRIPT, workdir]
        command += [_PROGRAM_NAME, str(memory_mb), cpu_s, "fallback"]
        return _execute(command, workdir, _environment(workdir), None, timeout_s, start, backend)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def _warn_fallback(reason: str) -> None:
    global _fallback_warned
    with _warn_lock:
        if _fallback_warned:
            return
        _fallback_warned = True
    warnings.warn(
        f"the code sandbox runs generated code without bubblewrap ({reason}), under the "
        f"Landlock + rlimits fallback, which does not stop it from {_FALLBACK_GAPS}. "
        "Install bubblewrap (apt-get install bubblewrap) and let it create user namespaces "
        "for the full sandbox.",
        SandboxFallbackWarning,
        stacklevel=3,
    )


def _environment(workdir: str) -> dict[str, str]:
    return {
        "PATH": os.defpath,
        "HOME": workdir,
        "TMPDIR": workdir,
        "LANG": "C.UTF-8",
        # Numeric libraries otherwise reserve memory per core and trip the address-space limit.
        "OMP_NUM_THREADS": "1",
        "OPENBLAS_NUM_THREADS": "1",
        "MKL_NUM_THREADS": "1",
    }


def _run_bubblewrap(
    program: str, timeout_s: float, child_args: list[str], disk_mb: int
) -> SandboxResult:
    start = time.monotonic()
    with tempfile.TemporaryFile() as source:  # bwrap copies the program from it into the tmpfs
        source.write(program.encode("utf-8", errors="replace"))
        source.flush()
        source.seek(0)
        command = bwrap_command(
            bubblewrap(),
            program_fd=source.fileno(),
            child_script=_CHILD_SCRIPT,
            child_args=child_args,
            disk_mb=disk_mb,
        )
        env = _environment(SANDBOX_DIR)
        return _execute(command, None, env, source.fileno(), timeout_s, start, "bubblewrap")


def _execute(
    command: list[str],
    cwd: str | None,
    env: dict[str, str],
    source_fd: int | None,
    timeout_s: float,
    start: float,
    backend: SandboxBackend,
) -> SandboxResult:
    # The child writes to this pipe once it is confined, just before the program runs, and
    # closes it: without that report the sandbox failed ("error"), whatever the output says.
    ready_read, ready_write = os.pipe()
    command = [*command, str(ready_write)]
    pass_fds = (ready_write,) if source_fd is None else (ready_write, source_fd)
    # An anonymous file, not a pipe: nothing can fill up and block, and RLIMIT_FSIZE caps it.
    with tempfile.TemporaryFile() as out:
        try:
            try:
                proc = subprocess.Popen(
                    command,
                    cwd=cwd,
                    env=env,
                    stdin=subprocess.DEVNULL,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                    close_fds=True,
                    pass_fds=pass_fds,
                )
            except (OSError, ValueError) as exc:
                message = f"cannot start {command[0]!r}: {exc}"
                return SandboxResult("error", None, message, time.monotonic() - start, backend)
            finally:
                os.close(ready_write)
            timed_out = False
            try:
                proc.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                timed_out = True
            finally:
                # Ends whatever the program left in its group; under bubblewrap, killing bwrap
                # also ends its PID namespace, setsid'd grandchildren included.
                _kill_group(proc.pid)
                returncode = proc.wait()
            os.set_blocking(ready_read, False)
            try:
                ready = os.read(ready_read, 16) == READY
            except OSError:  # nothing written
                ready = False
        finally:
            os.close(ready_read)
        duration = time.monotonic() - start
        output = _tail(out)
    if backend == "bubblewrap" and returncode > 128 and not timed_out:
        returncode = 128 - returncode  # bwrap reports "killed by signal N" as 128 + N
    status: _Status
    if timed_out or returncode == -signal.SIGXCPU:
        status = "timeout"
    elif not ready:
        status = "error"
    elif returncode == 0:
        status = "passed"
    else:
        status = "failed"
    return SandboxResult(status, returncode, output, duration, backend)


def _kill_group(pgid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):  # the group is gone
        os.killpg(pgid, signal.SIGKILL)


def _tail(file: IO[bytes]) -> str:
    file.seek(0, os.SEEK_END)
    size = file.tell()
    file.seek(max(0, size - 4 * _OUTPUT_TAIL_CHARS))  # 4 bytes per character at most
    text = file.read().decode("utf-8", errors="replace")
    return text[-_OUTPUT_TAIL_CHARS:]
