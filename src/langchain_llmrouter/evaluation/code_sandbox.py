"""Run an untrusted Python program in a separate, limited process (for MBPP/HumanEval scoring).

`run_python_sandboxed` writes the program into a fresh temporary directory and runs it there
with ``python -I`` (no user site, no ``PYTHON*`` variables), a minimal environment (``HOME``
and ``TMPDIR`` inside the directory, no API keys), stdin closed, in its own session so that a
timeout kills the whole process group, forked grandchildren included. The directory is
removed afterwards.

This same file is the child's entry point: run as a script, it confines itself and then
executes the program. The layers, strongest first:

1. **Namespaces.** The child unshares new user and network namespaces, so it sees only a down
   loopback and cannot reach any host, not even ``127.0.0.1``.
2. **Landlock** (Linux 5.13+). Writing, creating, renaming or deleting files is allowed only
   inside the temporary directory (and ``/dev/null``); newer kernels also get TCP connect and
   bind denied and signals to outside processes blocked.
3. **Resource limits** (``setrlimit``): address space (``memory_mb``), CPU seconds, file size
   (which also caps the captured output), open files, no core dumps. The wall-clock limit is
   enforced by the parent.
4. **A guard** patched into the interpreter before the program runs: deleting, renaming,
   truncating, chmod and ``open()`` for writing work only inside the temporary directory (so
   `tempfile` still works); killing, forking, exec/spawn/system, ``subprocess.Popen``, chown,
   ``exit``/``quit`` and socket creation raise `PermissionError`; ``putenv`` is a no-op.

Layers 1 and 2 are used when the kernel allows them and silently skipped when it does not.
The guard is a safety net against accidents (a solution that "cleans up" with
``shutil.rmtree``), **not a security boundary**: Python code can get around it, for example
through `ctypes`. The namespaces, Landlock and the resource limits are the real limits.
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
import time
from dataclasses import dataclass
from typing import Any, Literal

__all__ = ["SandboxResult", "run_python_sandboxed"]

_OUTPUT_TAIL_CHARS = 2000
_MAX_FILE_BYTES = 16 * 2**20
"""RLIMIT_FSIZE: the largest file the program may write, its captured output included."""
_MAX_OPEN_FILES = 256
_SETUP_FAILED = 121
"""The child's exit status when it could not confine itself (reported as ``"error"``)."""
_SETUP_MARKER = "code sandbox setup failed:"
_PROGRAM_NAME = "program.py"

# Linux constants (<sched.h>, <linux/landlock.h>, <linux/prctl.h>); the syscall numbers are
# the same on every architecture that has Landlock.
_CLONE_NEWUSER = 0x10000000
_CLONE_NEWNET = 0x40000000
_SYS_LANDLOCK_CREATE_RULESET, _SYS_LANDLOCK_ADD_RULE, _SYS_LANDLOCK_RESTRICT_SELF = 444, 445, 446
_LANDLOCK_RULE_PATH_BENEATH = 1
_PR_SET_NO_NEW_PRIVS = 38
_FS_WRITE_FILE = 1 << 1
_FS_MODIFY = sum(1 << bit for bit in (1, *range(4, 13)))  # write, remove, make (not read/exec)
_FS_REFER, _FS_TRUNCATE = 1 << 13, 1 << 14
_NET_BIND_CONNECT_TCP = 0b11
_SCOPE_ABSTRACT_UNIX_AND_SIGNAL = 0b11


@dataclass(frozen=True)
class SandboxResult:
    """What happened to a sandboxed program."""

    status: Literal["passed", "failed", "timeout", "error"]
    """``passed``: exit status 0; ``failed``: any other exit (exception, assertion, memory,
    signal); ``timeout``: killed at the wall-clock or CPU limit; ``error``: could not run."""
    returncode: int | None
    """The exit status (negative: killed by that signal); None when it never started."""
    output: str
    """The last ~2,000 characters of stdout and stderr, interleaved."""
    duration_s: float
    """Wall-clock seconds, process start-up included."""

    @property
    def passed(self) -> bool:
        """Whether the program ran to the end and exited with status 0."""
        return self.status == "passed"


def run_python_sandboxed(
    program: str, *, timeout_s: float = 10.0, memory_mb: int = 1024
) -> SandboxResult:
    """Run a Python program in a fresh, confined ``python -I`` process.

    Args:
        program: The source code, run as ``__main__`` from a file in a new temporary
            directory (also its working directory).
        timeout_s: Wall-clock limit in seconds; the CPU limit is this rounded up.
        memory_mb: Address-space limit of the process in MiB.

    Returns:
        The outcome. Never raises for anything the program does.

    Raises:
        ValueError: If a limit is not positive.
    """
    if not timeout_s > 0 or memory_mb <= 0:
        raise ValueError(f"timeout_s and memory_mb must be positive, got {timeout_s}, {memory_mb}")
    start = time.monotonic()
    try:
        workdir = os.path.realpath(tempfile.mkdtemp(prefix="llmrouter-sandbox-"))
    except OSError as exc:
        return SandboxResult("error", None, f"cannot create a temporary directory: {exc}", 0.0)
    try:
        return _run(workdir, program, timeout_s, memory_mb, start)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def _run(
    workdir: str, program: str, timeout_s: float, memory_mb: int, start: float
) -> SandboxResult:
    try:  # "replace": a lone surrogate must not stop the run
        with open(
            os.path.join(workdir, _PROGRAM_NAME), "w", encoding="utf-8", errors="replace"
        ) as fh:
            fh.write(program)
    except OSError as exc:
        return SandboxResult("error", None, f"cannot write the program: {exc}", 0.0)
    cpu_s = max(1, math.ceil(timeout_s))
    command = [sys.executable, "-I", "-B", "-X", "utf8", os.path.abspath(__file__)]
    command += [workdir, _PROGRAM_NAME, str(memory_mb), str(cpu_s)]
    env = {
        "PATH": os.defpath,
        "HOME": workdir,
        "TMPDIR": workdir,
        "LANG": "C.UTF-8",
        # Numeric libraries otherwise reserve memory per core and trip the address-space limit.
        "OMP_NUM_THREADS": "1",
        "OPENBLAS_NUM_THREADS": "1",
        "MKL_NUM_THREADS": "1",
    }
    # An anonymous file, not a pipe: nothing can fill up and block, and RLIMIT_FSIZE caps it.
    with tempfile.TemporaryFile() as out:
        try:
            proc = subprocess.Popen(
                command,
                cwd=workdir,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                close_fds=True,
            )
        except (OSError, ValueError) as exc:
            message = f"cannot start {sys.executable!r}: {exc}"
            return SandboxResult("error", None, message, time.monotonic() - start)
        timed_out = False
        try:
            proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            timed_out = True
        finally:
            # Also ends whatever the program left running in its group.
            _kill_group(proc.pid)
            returncode = proc.wait()
        duration = time.monotonic() - start
        output = _tail(out)
    if timed_out or returncode == -signal.SIGXCPU:
        status: Literal["passed", "failed", "timeout", "error"] = "timeout"
    elif returncode == 0:
        status = "passed"
    elif returncode == _SETUP_FAILED and _SETUP_MARKER in output:
        status = "error"
    else:
        status = "failed"
    return SandboxResult(status, returncode, output, duration)


def _kill_group(pgid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):  # the group is gone
        os.killpg(pgid, signal.SIGKILL)


def _tail(file: Any) -> str:
    file.seek(0, os.SEEK_END)
    size = file.tell()
    file.seek(max(0, size - 4 * _OUTPUT_TAIL_CHARS))  # 4 bytes per character at most
    text: str = file.read().decode("utf-8", errors="replace")
    return text[-_OUTPUT_TAIL_CHARS:]


# --- the child side: runs in the sandboxed process, before the program --------------------


def _libc() -> Any:
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    libc.syscall.restype = ctypes.c_long
    return libc


def _isolate_network() -> None:
    """Enter new user + network namespaces (just a network one if user ones are refused)."""
    if not sys.platform.startswith("linux"):
        return
    unshare = getattr(_libc(), "unshare", None)
    if unshare is None:
        return
    for flags in (_CLONE_NEWUSER | _CLONE_NEWNET, _CLONE_NEWNET):
        if unshare(flags) == 0:
            return


def _landlock_abi() -> int:
    """The kernel's Landlock ABI version, 0 when Landlock is unavailable."""
    import ctypes

    if not sys.platform.startswith("linux"):
        return 0  # the syscall numbers mean something else elsewhere
    version = _libc().syscall(
        ctypes.c_long(_SYS_LANDLOCK_CREATE_RULESET), None, ctypes.c_size_t(0), ctypes.c_uint32(1)
    )
    return max(0, int(version))


def _restrict_filesystem(workdir: str) -> None:
    """Allow file modifications only beneath ``workdir`` (Landlock), when the kernel can."""
    import ctypes

    abi = _landlock_abi()
    if abi < 1:
        return
    libc = _libc()

    class RulesetAttr(ctypes.Structure):
        _fields_ = [("fs", ctypes.c_uint64), ("net", ctypes.c_uint64), ("scoped", ctypes.c_uint64)]

    class PathBeneath(ctypes.Structure):
        _pack_ = 1
        _fields_ = [("allowed", ctypes.c_uint64), ("parent_fd", ctypes.c_int32)]

    fs = _FS_MODIFY | (_FS_REFER if abi >= 2 else 0) | (_FS_TRUNCATE if abi >= 3 else 0)
    attr = RulesetAttr(
        fs,
        _NET_BIND_CONNECT_TCP if abi >= 4 else 0,
        _SCOPE_ABSTRACT_UNIX_AND_SIGNAL if abi >= 6 else 0,
    )
    size = 8 if abi < 4 else 16 if abi < 6 else 24  # the struct grew with the ABI

    def check(result: int, what: str) -> int:
        if result < 0:
            errno = ctypes.get_errno()
            raise OSError(errno, f"landlock {what}: {os.strerror(errno)}")
        return result

    def syscall(number: int, *args: Any) -> int:
        longs = [ctypes.c_long(a) if isinstance(a, int) else a for a in args]
        return int(libc.syscall(ctypes.c_long(number), *longs))

    ruleset = check(
        syscall(_SYS_LANDLOCK_CREATE_RULESET, ctypes.byref(attr), size, 0), "create_ruleset"
    )
    try:
        for path, allowed in ((workdir, fs), ("/dev/null", fs & (_FS_WRITE_FILE | _FS_TRUNCATE))):
            fd = os.open(path, os.O_PATH | os.O_CLOEXEC)
            try:
                rule = PathBeneath(allowed, fd)
                check(
                    syscall(
                        _SYS_LANDLOCK_ADD_RULE,
                        ruleset,
                        _LANDLOCK_RULE_PATH_BENEATH,
                        ctypes.byref(rule),
                        0,
                    ),
                    f"add_rule {path}",
                )
            finally:
                os.close(fd)
        check(libc.prctl(_PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), "no_new_privs")  # Landlock needs it
        check(syscall(_SYS_LANDLOCK_RESTRICT_SELF, ruleset, 0), "restrict_self")
    finally:
        os.close(ruleset)


def _set_limits(memory_mb: int, cpu_s: int) -> None:
    import resource

    limits = [
        (resource.RLIMIT_AS, memory_mb * 2**20, memory_mb * 2**20),
        (resource.RLIMIT_CPU, cpu_s, cpu_s + 1),  # SIGXCPU at the soft limit, SIGKILL at the hard
        (resource.RLIMIT_FSIZE, _MAX_FILE_BYTES, _MAX_FILE_BYTES),
        (resource.RLIMIT_NOFILE, _MAX_OPEN_FILES, _MAX_OPEN_FILES),
        (resource.RLIMIT_CORE, 0, 0),
    ]
    for kind, soft, hard in limits:
        current_hard = resource.getrlimit(kind)[1]
        if current_hard != resource.RLIM_INFINITY:  # a limit can only be lowered
            hard = min(hard, current_hard)
        resource.setrlimit(kind, (min(soft, hard), hard))


def _install_guard(workdir: str) -> None:
    """Patch the interpreter so that accidents stay inside ``workdir`` (a safety net only)."""
    import _socket
    import builtins
    import io
    import posix
    import socket

    def inside(path: Any, dir_fd: int | None = None) -> bool:
        if isinstance(path, int):
            return True  # an already open descriptor
        text = os.fsdecode(os.fspath(path))
        if dir_fd is not None and not os.path.isabs(text):  # shutil.rmtree works this way
            text = os.path.join(os.readlink(f"/proc/self/fd/{dir_fd}"), text)
        real = os.path.realpath(text)
        return real in (workdir, os.devnull) or real.startswith(workdir + os.sep)

    def deny(name: str) -> Any:
        def denied(*args: Any, **kwargs: Any) -> Any:
            raise PermissionError(f"{name} is disabled in the code sandbox")

        return denied

    def confine(name: str, function: Any, n_paths: int) -> Any:
        """``function`` for paths inside ``workdir`` only (so `tempfile` keeps working)."""

        def confined(*args: Any, **kwargs: Any) -> Any:
            fds = [kwargs.get(key, kwargs.get("dir_fd")) for key in ("src_dir_fd", "dst_dir_fd")]
            for path, fd in zip(args[:n_paths], fds, strict=False):
                if not inside(path, fd):
                    raise PermissionError(f"{name} outside the code sandbox is disabled: {path!r}")
            return function(*args, **kwargs)

        return confined

    confined_names = {"remove": 1, "unlink": 1, "rmdir": 1, "removedirs": 1, "truncate": 1}
    confined_names |= {"rename": 2, "renames": 2, "replace": 2, "chmod": 1, "lchmod": 1}
    denied_names = [
        *("kill", "killpg", "fork", "forkpty", "system", "popen", "posix_spawn", "posix_spawnp"),
        *("execl", "execle", "execlp", "execlpe", "execv", "execve", "execvp", "execvpe"),
        *("spawnl", "spawnle", "spawnlp", "spawnlpe", "spawnv", "spawnve", "spawnvp", "spawnvpe"),
        *("chown", "fchown", "lchown", "fchmod", "chroot"),
    ]
    for module in (os, posix):  # `posix` holds the originals that `os` re-exports
        for name, n_paths in confined_names.items():
            if hasattr(module, name):
                setattr(module, name, confine(f"os.{name}()", getattr(module, name), n_paths))
        for name in denied_names:
            if hasattr(module, name):
                setattr(module, name, deny(f"os.{name}()"))
        # No-ops rather than errors: numpy sets variables at import; os.environ still changes.
        for name in ("putenv", "unsetenv"):
            setattr(module, name, lambda *args: None)
    shutil.rmtree = confine("shutil.rmtree()", shutil.rmtree, 1)
    shutil.move = confine("shutil.move()", shutil.move, 2)
    shutil.chown = deny("shutil.chown()")
    subprocess.Popen = deny("subprocess.Popen()")  # type: ignore[misc]
    builtins.exit = builtins.quit = deny("exit()")  # programs must not skip the tests
    for module in (socket, _socket):
        for name in ("socket", "socketpair", "fromfd", "create_connection", "create_server"):
            if hasattr(module, name):
                setattr(module, name, deny(f"socket.{name}()"))

    real_open, real_os_open = io.open, os.open
    write_flags = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND

    def guarded_open(file: Any, mode: str = "r", *args: Any, **kwargs: Any) -> Any:
        if any(flag in str(mode) for flag in "wax+") and not inside(file):
            raise PermissionError(f"writing outside the code sandbox is disabled: {file!r}")
        return real_open(file, mode, *args, **kwargs)

    def guarded_os_open(path: Any, flags: int, mode: int = 0o777, *, dir_fd: Any = None) -> int:
        if flags & write_flags and not inside(path, dir_fd):
            raise PermissionError(f"writing outside the code sandbox is disabled: {path!r}")
        return real_os_open(path, flags, mode, dir_fd=dir_fd)

    builtins.open = io.open = guarded_open
    os.open = posix.open = guarded_os_open


def _child_main(argv: list[str]) -> None:
    """Confine this process, then run the program (``argv``: dir, file, memory MiB, CPU s)."""
    workdir, program_name, memory_mb, cpu_s = argv[1], argv[2], int(argv[3]), int(argv[4])
    path = os.path.join(workdir, program_name)
    try:
        _isolate_network()
        _restrict_filesystem(workdir)
        _set_limits(memory_mb, cpu_s)
        with open(path, encoding="utf-8") as fh:
            source = fh.read()
    except Exception as exc:  # report "could not run", distinct from a failing program
        sys.stderr.write(f"{_SETUP_MARKER} {type(exc).__name__}: {exc}\n")
        sys.stderr.flush()
        os._exit(_SETUP_FAILED)
    code = compile(source, path, "exec")  # a SyntaxError is the program's failure
    _install_guard(workdir)
    sys.argv = [path]
    exec(code, {"__name__": "__main__", "__file__": path, "__builtins__": __builtins__})


if __name__ == "__main__":
    _child_main(sys.argv)
