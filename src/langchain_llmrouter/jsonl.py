"""Reading text and JSONL files with errors that name the file and the line."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from langchain_llmrouter.errors import DataFormatError


def decode_utf8(data: bytes, *, path: Path, error: type[DataFormatError] = DataFormatError) -> str:
    """``data`` decoded as UTF-8.

    Raises:
        DataFormatError: (or ``error``) naming the file, the line and the offset of the first
            bad byte.
    """
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise error(
            f"expected UTF-8 text, got byte 0x{data[exc.start]:02x} at offset {exc.start}",
            path=path,
            line=line,
        ) from None


def read_text(
    path: Path, *, what: str = "file", error: type[DataFormatError] = DataFormatError
) -> str:
    """The UTF-8 text of a file.

    Args:
        path: The file.
        what: What the file is, in messages (``"YAML config file"``).
        error: The error to raise (`DataFormatError` or a subclass such as `ConfigError`).

    Raises:
        DataFormatError: (or ``error``) the file is missing, a directory, unreadable or not
            UTF-8.
    """
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise error(f"{what} not found", path=path) from None
    except IsADirectoryError:
        raise error(f"expected a {what}, got a directory", path=path) from None
    except OSError as exc:
        raise error(f"cannot read the {what}: {exc.strerror}", path=path) from None
    return decode_utf8(data, path=path, error=error)


def iter_jsonl(path: Path, *, repair_tail: bool = False) -> Iterator[tuple[int, dict[str, Any]]]:
    """Yield ``(line number, object)`` for each non-empty line of a JSONL file.

    Args:
        path: The file.
        repair_tail: Cut off a last line that a killed writer left unfinished (no newline
            and not valid JSON) instead of raising. Only for files this pipeline appends to.

    Raises:
        DataFormatError: naming the file and line of a malformed line.
    """
    try:
        with path.open("rb") as handle:
            data = handle.read()
    except FileNotFoundError:
        raise DataFormatError("file not found", path=path) from None
    except IsADirectoryError:
        raise DataFormatError("expected a JSONL file, got a directory", path=path) from None
    if repair_tail and data and not data.endswith(b"\n"):
        head, _, tail = data.rpartition(b"\n")
        try:
            json.loads(tail)
        except ValueError:
            # A writer killed mid-line: the row was never finished, so drop it.
            with path.open("r+b") as handle:
                handle.truncate(len(head) + (1 if head else 0))
            data = data[: len(head) + (1 if head else 0)]
        else:
            # A whole last row without its newline: end the line, so an append starts anew.
            with path.open("ab") as handle:
                handle.write(b"\n")
    # Split on "\n" only: str.splitlines would also split inside strings at U+2028 and the
    # like, which JSON writers leave unescaped.
    for number, raw in enumerate(decode_utf8(data, path=path).split("\n"), start=1):
        if not raw.strip():
            continue
        try:
            record = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise DataFormatError(
                f"invalid JSON: {exc.msg} (column {exc.colno})", path=path, line=number
            ) from None
        if not isinstance(record, dict):
            raise DataFormatError("expected a JSON object per line", path=path, line=number)
        yield number, record
