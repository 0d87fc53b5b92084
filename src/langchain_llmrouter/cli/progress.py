"""Progress on stderr while the CLI embeds queries: a bar on a terminal, log lines otherwise."""

from __future__ import annotations

import sys
import time
from collections.abc import Sequence
from typing import Any, TextIO

import numpy as np
from langchain_core.embeddings import Embeddings

CHUNK = 256
"""Texts embedded between two progress updates (a few forward passes; about a second on
two CPU cores with MiniLM)."""
LOG_EVERY_S = 10.0
"""Seconds between two progress lines when stderr is not a terminal (a log file, CI)."""


class ProgressEmbeddings(Embeddings):
    """Wraps an embedder and reports progress while it embeds, chunk by chunk.

    It keeps the wrapped embedder's name, so cache keys and saved routers are the same as
    without it. Only the texts missing from the disk cache reach it, so a second run with
    the same data shows nothing but a line that says the vectors came from the cache.
    """

    def __init__(
        self,
        embeddings: Embeddings,
        *,
        label: str = "queries",
        stream: TextIO | None = None,
        chunk: int | None = None,
    ) -> None:
        """Wrap ``embeddings``.

        Args:
            embeddings: The embedder that does the work.
            label: What is embedded, for the messages ("queries").
            stream: Where progress goes (default ``sys.stderr`` at the time of the call).
            chunk: Texts per update (default `CHUNK`).
        """
        from langchain_llmrouter.embeddings import embedding_name

        self.embeddings = embeddings
        self.name = embedding_name(embeddings)
        self.label = label
        self.stream = stream
        self.chunk = chunk or CHUNK
        self.embedded = 0
        """Texts this wrapper embedded (0: all came from the cache)."""

    def embed_array(self, texts: Sequence[str]) -> np.ndarray:
        """Embed ``texts`` in chunks, reporting after each one."""
        from langchain_llmrouter.embeddings import _embed

        stream = self.stream or sys.stderr
        bar = _isatty(stream)
        total, start, last_log = len(texts), time.perf_counter(), 0.0
        print(f"embedding {total:,} {self.label} with {self.name}", file=stream, flush=True)
        parts: list[np.ndarray] = []
        for begin in range(0, total, self.chunk):
            parts.append(_embed(self.embeddings, texts[begin : begin + self.chunk]))
            done, elapsed = min(begin + self.chunk, total), time.perf_counter() - start
            line = _status(done, total, elapsed)
            if bar:
                # One line rewritten in place; padded so a shorter line erases a longer one.
                stream.write(f"\r  {_bar(done, total)} {line:<48}")
                stream.flush()
            elif done < total and elapsed - last_log >= LOG_EVERY_S:
                print(f"  {line}", file=stream, flush=True)
                last_log = elapsed
        if bar:
            stream.write("\n")
        seconds = time.perf_counter() - start
        rate = total / seconds if seconds > 0 else 0.0
        print(
            f"embedded {total:,} {self.label} in {seconds:.1f} s ({rate:,.0f}/s)",
            file=stream,
            flush=True,
        )
        self.embedded += total
        return np.concatenate(parts) if parts else np.zeros((0, 0), dtype=np.float32)

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        """Embed a list of texts, with progress."""
        return self.embed_array(texts).tolist()

    def embed_query(self, text: str) -> list[float]:
        """Embed one text (no progress: too quick to show)."""
        return self.embeddings.embed_query(text)


def _isatty(stream: Any) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):  # no isatty, or a closed stream
        return False


def _status(done: int, total: int, elapsed: float) -> str:
    """``1,024/5,608 (18%), 12 s, about 54 s left``."""
    left = elapsed / done * (total - done) if done else 0.0
    tail = f", about {left:.0f} s left" if done < total else ""
    return f"{done:,}/{total:,} ({100 * done // max(total, 1)}%), {elapsed:.0f} s{tail}"


def _bar(done: int, total: int, width: int = 30) -> str:
    filled = width * done // max(total, 1)
    return "[" + "#" * filled + "." * (width - filled) + "]"
