"""The sandboxed child: run as a script, it confines itself, then executes the program.

Started by `langchain_llmrouter.evaluation.code_sandbox` as ``python -I`` on this file, either
inside bubblewrap or directly (the fallback). It imports nothing but the standard library,
since inside bubblewrap only the Python installation is visible. The layers it adds are
described in docs/howto/data-pipeline.md, "The code sandbox".
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from typing import Any

_MAX_FILE_BYTES = 16 * 2**20
"""RLIMIT_FSIZE: the largest file the program may write, its captured output included."""
_MAX_OPEN_FILES = 256
SETUP_FAILED = 121
"""The child's exit status when it could not confine itself."""
SETUP_MARKER = "code sandbox setup failed:"
READY = b"ready"
"""Written to the parent's pipe once confined: without it, a run is an ``"error"``."""

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


def landlock_abi() -> int:
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

    abi = landlock_abi()
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
    """Confine this process, then run the program.

    ``argv``: this file, the directory, the program's file name, memory MiB, CPU seconds,
    ``bubblewrap`` or ``fallback`` (only the fallback unshares its own network namespace) and
    the descriptor to report `READY` on.
    """
    workdir, program_name, memory_mb, cpu_s = argv[1], argv[2], int(argv[3]), int(argv[4])
    inside_bubblewrap, ready_fd = argv[5] == "bubblewrap", int(argv[6])
    path = os.path.join(workdir, program_name)
    try:
        if not inside_bubblewrap:
            _isolate_network()
        _restrict_filesystem(workdir)
        _set_limits(memory_mb, cpu_s)
        with open(path, encoding="utf-8") as fh:
            source = fh.read()
        if ready_fd >= 0:  # -1: nobody is listening (bubblewrap's probe)
            os.write(ready_fd, READY)
            os.close(ready_fd)  # before the program runs, so it cannot report for itself
    except Exception as exc:  # report "could not run", distinct from a failing program
        sys.stderr.write(f"{SETUP_MARKER} {type(exc).__name__}: {exc}\n")
        sys.stderr.flush()
        os._exit(SETUP_FAILED)
    code = compile(source, path, "exec")  # a SyntaxError is the program's failure
    _install_guard(workdir)
    sys.argv = [path]
    exec(code, {"__name__": "__main__", "__file__": path, "__builtins__": __builtins__})


if __name__ == "__main__":
    _child_main(sys.argv)
