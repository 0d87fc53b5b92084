"""File helpers shared by the stages: atomic writes, JSONL rows (read with the package's
line-numbered reader), and the
command-line wrapper that turns user errors into one readable line."""

from __future__ import annotations

import json
import os
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from langchain_llmrouter.errors import LLMRouterError
from langchain_llmrouter.jsonl import iter_jsonl

__all__ = ["cli_main", "dumps_row", "iter_jsonl", "write_atomic"]


def write_atomic(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file and a rename, so a crash never
    leaves a half-written file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def dumps_row(row: dict[str, Any]) -> str:
    """One JSONL line (no ASCII escaping, so answers stay readable)."""
    return json.dumps(row, ensure_ascii=False) + "\n"


def cli_main(run: Callable[[], int]) -> int:
    """Run a stage's command; print user errors as ``error: ...`` (exit code 2) rather than
    a traceback, and Ctrl-C as a note that the run can be resumed (exit code 130)."""
    try:
        return run()
    except LLMRouterError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted; what was finished is saved, run again to resume", file=sys.stderr)
        return 130
