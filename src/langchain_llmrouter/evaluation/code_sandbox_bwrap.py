"""The bubblewrap backend of the code sandbox: is ``bwrap`` usable here, and its command line.

`bubblewrap` probes once per process (``bwrap --help``, then one trivial sandboxed run with
the very options real runs use) and `bwrap_command` builds the command for one program.
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
import sys
import sysconfig
import tempfile
from dataclasses import dataclass

__all__ = ["SANDBOX_DIR", "Bubblewrap", "bubblewrap", "bwrap_command"]

SANDBOX_DIR = "/sandbox"
"""The size-limited tmpfs inside the sandbox: the program's file, working directory, HOME and
TMPDIR (``/tmp`` is a symlink to it)."""
_CHILD_PATH = "/llmrouter_sandbox_child.py"
_SANDBOX_UID = 65534  # "nobody": the caller's uid is mapped to it
_SYSTEM_LIBRARIES = ("/usr/lib", "/usr/lib64", "/usr/lib32", "/usr/libx32")
_TOP_LEVEL_LINKS = ("/lib", "/lib64", "/lib32", "/libx32")
_PROBE_TIMEOUT_S = 20.0


@dataclass(frozen=True)
class Bubblewrap:
    """What the probe found."""

    path: str | None
    """The ``bwrap`` executable, None when it cannot be used (see `reason`)."""
    reason: str
    """Why bubblewrap cannot be used; empty when it can."""
    disable_userns: bool = False
    """Whether this ``bwrap`` has ``--disable-userns`` (0.8+), used when it does."""


def _python_paths() -> list[str]:
    """The directories (and files) of the running Python installation a ``python -I`` needs."""
    paths = {sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix}
    paths |= {sys.executable, os.path.realpath(sys.executable)}
    installed = sysconfig.get_paths()
    paths |= {installed[name] for name in ("stdlib", "platstdlib", "purelib", "platlib")}
    return sorted(p for p in paths if p and os.path.exists(p))


def _mounts() -> list[str]:
    """Read-only binds of the system libraries and the Python installation, and the symlinks
    (``/lib`` -> ``usr/lib`` on merged-/usr systems) that keep their paths valid."""
    links: list[tuple[str, str]] = []  # (target, link)
    targets = [lib for lib in _SYSTEM_LIBRARIES if os.path.isdir(lib)]
    for top in _TOP_LEVEL_LINKS:
        if os.path.islink(top):
            links.append((os.readlink(top), top))
        elif os.path.isdir(top):
            targets.append(top)
    for path in _python_paths():
        targets.append(os.path.realpath(path))
        if os.path.realpath(path) != path:
            links.append((os.path.realpath(path), path))
    bound: list[str] = []

    def covered(path: str) -> bool:
        return any(path == done or path.startswith(done.rstrip(os.sep) + os.sep) for done in bound)

    args: list[str] = []
    for path in sorted(set(targets), key=lambda p: (p.count(os.sep), p)):  # parents first
        if not covered(path):
            bound.append(path)
            args += ["--ro-bind", path, path]
    for target, link in links:  # a link inside a bound directory is there already
        if not covered(link):
            args += ["--symlink", target, link]
    return args


def bwrap_command(
    bwrap: Bubblewrap,
    *,
    program_fd: int,
    child_script: str,
    child_args: list[str],
    disk_mb: int,
) -> list[str]:
    """The ``bwrap`` command that runs ``child_script`` with ``child_args`` in a new sandbox.

    New user (the caller mapped to ``nobody``), PID, network, IPC, UTS and cgroup namespaces;
    no capabilities; a read-only view of the system libraries and of this Python installation
    only; ``/proc``, a minimal ``/dev`` and a tmpfs of ``disk_mb`` MiB at `SANDBOX_DIR` into
    which the program is copied from ``program_fd`` (``child_args[0]`` names it). The
    sandbox dies with its parent.
    """
    if bwrap.path is None:
        raise RuntimeError(f"bubblewrap cannot be used: {bwrap.reason}")
    command = [bwrap.path, "--unshare-all", "--unshare-user"]
    command += ["--uid", str(_SANDBOX_UID), "--gid", str(_SANDBOX_UID)]
    if bwrap.disable_userns:
        command.append("--disable-userns")
    command += ["--die-with-parent", "--new-session", "--cap-drop", "ALL", "--hostname", "sandbox"]
    mounts = _mounts()
    command += mounts
    command += ["--proc", "/proc", "--dev", "/dev"]
    command += ["--size", str(disk_mb * 2**20), "--tmpfs", SANDBOX_DIR]
    command += ["--file", str(program_fd), f"{SANDBOX_DIR}/{child_args[0]}"]
    if not any(m == "/tmp" or m.startswith("/tmp/") for m in mounts):
        # /tmp leads into the tmpfs; where Python itself lives under /tmp (a checkout or venv
        # there, as in CI) /tmp holds that read-only bind instead, and TMPDIR still points here.
        command += ["--symlink", SANDBOX_DIR.lstrip("/"), "/tmp"]
    command += ["--chdir", SANDBOX_DIR]
    command += ["--ro-bind", child_script, _CHILD_PATH, "--"]
    command += [sys.executable, "-I", "-B", "-X", "utf8", _CHILD_PATH, SANDBOX_DIR, *child_args]
    return command


@functools.cache
def bubblewrap() -> Bubblewrap:
    """Find ``bwrap`` and check, once per process, that it can build the sandbox here."""
    path = shutil.which("bwrap") or next(
        (p for p in ("/usr/bin/bwrap", "/bin/bwrap") if os.access(p, os.X_OK)), None
    )
    if path is None or not sys.platform.startswith("linux"):
        return Bubblewrap(None, "bwrap is not installed")
    try:
        usage = subprocess.run(
            [path, "--help"], capture_output=True, text=True, timeout=_PROBE_TIMEOUT_S
        ).stdout
    except (OSError, subprocess.SubprocessError) as exc:
        return Bubblewrap(None, f"{path} --help failed: {exc}")
    if "--size" not in usage:
        return Bubblewrap(None, f"{path} is older than 0.5 (no --size for a tmpfs)")
    found = Bubblewrap(path, "", disable_userns="--disable-userns" in usage)
    with tempfile.TemporaryFile() as program:
        program.write(b"import sys\nassert sys.flags.isolated\n")
        program.flush()
        program.seek(0)
        command = bwrap_command(
            found,
            program_fd=program.fileno(),
            child_script=os.path.join(
                os.path.dirname(os.path.abspath(__file__)), "code_sandbox_child.py"
            ),
            child_args=["program.py", "256", "5", "bubblewrap", "-1"],
            disk_mb=1,
        )
        try:
            probe = subprocess.run(
                command,
                env={"PATH": os.defpath, "LANG": "C.UTF-8"},
                stdin=subprocess.DEVNULL,
                capture_output=True,
                text=True,
                errors="replace",
                pass_fds=(program.fileno(),),
                start_new_session=True,
                timeout=_PROBE_TIMEOUT_S,
            )
        except (OSError, subprocess.SubprocessError) as exc:
            return Bubblewrap(None, f"{path} could not be started: {exc}")
    if probe.returncode != 0:
        detail = (probe.stderr or probe.stdout).strip()[-300:] or f"exit status {probe.returncode}"
        return Bubblewrap(None, f"{path} cannot create the sandbox here: {detail}")
    return found
