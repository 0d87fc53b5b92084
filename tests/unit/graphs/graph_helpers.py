"""Helpers for the router-graph tests (imported as ``graph_helpers``: a module named
``conftest`` would clash with the other test folders' conftests): a gate that holds a request
open, a subprocess that is killed mid-run, and mermaid snapshots.

The kill-and-resume tests work like this: a script builds the graph with a SQLite
checkpointer and runs it in a child process against the session's local server; a `Gate`
in one model's reply holds a chosen request open (the child runs with
``durability="sync"``, so every earlier step is checkpointed by then);
the test kills the child with SIGKILL while the request is held, then resumes the same
thread in-process and counts, at the server, that no finished call was made twice.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

SNAPSHOTS = Path(__file__).parent / "snapshots"
REPO = Path(__file__).resolve().parents[3]


class Gate:
    """Wrap a reply function so that the first request matching ``when`` blocks.

    While blocked, `reached` is set; the request is answered once `release` is set (or after
    ``hold_s``). Later matching requests are answered at once.
    """

    def __init__(
        self,
        reply: Callable[[list[dict]], str],
        when: Callable[[list[dict]], bool],
        *,
        hold_s: float = 30.0,
    ) -> None:
        self.reply, self.when, self.hold_s = reply, when, hold_s
        self.reached, self.release = threading.Event(), threading.Event()
        self._used = False
        self._lock = threading.Lock()

    def __call__(self, messages: list[dict]) -> str:
        with self._lock:
            block = not self._used and self.when(messages)
            self._used = self._used or block
        if block:
            self.reached.set()
            self.release.wait(self.hold_s)
        return self.reply(messages)


def run_until_gate_then_kill(script: str, gate: Gate, *, timeout_s: float = 120.0) -> None:
    """Run ``python -c script`` from the repository root; SIGKILL it once ``gate`` is reached.

    Fails the test (with the child's output) if the child exits or times out first.
    """
    proc = subprocess.Popen(
        [sys.executable, "-c", script],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "LLMROUTER_NO_PLUGINS": "1"},
        start_new_session=True,
    )
    deadline = time.monotonic() + timeout_s
    try:
        while not gate.reached.wait(0.05):
            if proc.poll() is not None:
                output = proc.stdout.read() if proc.stdout else ""
                pytest.fail(f"the child exited ({proc.returncode}) before the gate:\n{output}")
            if time.monotonic() > deadline:
                pytest.fail(f"the child did not reach the gate within {timeout_s} s")
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(10)
        assert proc.returncode == -signal.SIGKILL
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)
        if proc.stdout:
            proc.stdout.close()
        gate.release.set()  # let the held server thread finish (its client is gone)


def assert_mermaid_snapshot(graph: object, name: str) -> None:
    """Compare ``graph.get_graph().draw_mermaid()`` with ``snapshots/<name>.mmd``.

    Set ``UPDATE_SNAPSHOTS=1`` to (re)write the file instead.
    """
    drawing = graph.get_graph().draw_mermaid()  # type: ignore[attr-defined]
    path = SNAPSHOTS / f"{name}.mmd"
    if os.environ.get("UPDATE_SNAPSHOTS") == "1" or not path.exists():
        if os.environ.get("CI") and not path.exists():
            pytest.fail(f"missing snapshot {path}; run the test locally with UPDATE_SNAPSHOTS=1")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(drawing, encoding="utf-8")
    assert drawing == path.read_text(encoding="utf-8"), f"mermaid drawing differs from {path}"


def last_user_text(messages: list[dict]) -> str:
    """The text of the last user message of an OpenAI-format request."""
    for message in reversed(messages):
        if message.get("role") == "user":
            content = message.get("content")
            if isinstance(content, list):
                return "".join(p.get("text", "") for p in content if isinstance(p, dict))
            return str(content or "")
    return ""
