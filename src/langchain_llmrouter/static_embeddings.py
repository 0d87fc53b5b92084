"""A static featuriser distilled from the bundled MiniLM: one vector per token, pooled.

`StaticEmbeddings` encodes a query with the MiniLM tokenizer (the Rust ``tokenizers``
library) and a table lookup in numpy, with no torch in the process. The table is made
once from the bundled all-MiniLM-L6-v2 (`distill_static_table`): every vocabulary token is
passed through the model on its own, the outputs are centred and rotated by PCA, and each
token's vector is weighted by how rare its id suggests it is. The table is stored as
safetensors in the cache, so later processes only read it.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Sequence
from itertools import chain
from pathlib import Path
from typing import Any

import numpy as np
from langchain_core.embeddings import Embeddings

from langchain_llmrouter.embeddings import STATIC_EMBEDDING_MODEL as STATIC_NAME
from langchain_llmrouter.embeddings import bundled_minilm_path, default_cache_dir

__all__ = ["STATIC_NAME", "StaticEmbeddings", "build_static_table", "distill_static_table"]
_FORMAT_VERSION = 1
_MAX_TOKENS = 256  # MiniLM's own limit: the two featurisers see the same text
# BERT's uncased pre-tokenisation of ASCII text: runs of letters and digits, and every other
# non-space character on its own (all ASCII symbols count as punctuation).
_ASCII_WORD = re.compile(r"[a-z0-9]+|[^\sa-z0-9]")
# Control characters its normaliser deletes (tab, newline and return become spaces instead).
_ASCII_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_WORD_CACHE_LIMIT = 200_000


def distill_static_table(
    model_path: str | Path | None = None,
    *,
    batch_size: int = 512,
    pca_dims: int | None = None,
) -> tuple[np.ndarray, dict[str, Any]]:
    """Make the token table from a sentence-transformers model (needs torch, once).

    Args:
        model_path: A local sentence-transformers model; default the bundled MiniLM.
        batch_size: Tokens per forward pass.
        pca_dims: Keep this many principal components (None: all of them).

    Returns:
        ``(table, meta)``: float32 (vocabulary size, dims) and a JSON-able description.
    """
    import torch
    from sentence_transformers import SentenceTransformer

    path = Path(model_path) if model_path is not None else bundled_minilm_path()
    model = SentenceTransformer(str(path), device="cpu")
    tokenizer = model.tokenizer
    vocab_size = len(tokenizer)
    cls_id, sep_id = tokenizer.cls_token_id, tokenizer.sep_token_id
    rows = []
    with torch.inference_mode():
        for start in range(0, vocab_size, batch_size):
            ids = torch.arange(start, min(start + batch_size, vocab_size))
            # Each token on its own, between the markers the model was trained with; the
            # mean pooling of the sentence model then covers the three positions.
            batch = torch.stack(
                [torch.full_like(ids, cls_id), ids, torch.full_like(ids, sep_id)], dim=1
            )
            features = {"input_ids": batch, "attention_mask": torch.ones_like(batch)}
            out = model.forward(features)
            rows.append(out["token_embeddings"][:, 1, :].float().numpy())
    table = np.concatenate(rows).astype(np.float64)
    table -= table.mean(axis=0, keepdims=True)
    # PCA rotation (decorrelates the dimensions, which mean pooling otherwise blurs); the
    # sign of each axis is fixed so the table is the same on every machine.
    _, _, vt = np.linalg.svd(table, full_matrices=False)
    vt *= np.where(vt[np.arange(len(vt)), np.abs(vt).argmax(axis=1)] < 0, -1.0, 1.0)[:, None]
    if pca_dims is not None:
        vt = vt[:pca_dims]
    table = table @ vt.T
    # Zipf weighting: WordPiece ids rise roughly with rarity, and rarer tokens say more
    # about a query, so a token's weight grows with the log of its id.
    weights = np.log1p(np.arange(vocab_size, dtype=np.float64))
    table *= weights[:, None]
    meta = {
        "format": "langchain-llmrouter/static-embeddings",
        "version": _FORMAT_VERSION,
        "name": STATIC_NAME,
        "source": path.name if model_path is not None else "all-MiniLM-L6-v2 (bundled)",
        "vocab_size": vocab_size,
        "dims": int(table.shape[1]),
        "special_ids": sorted(int(i) for i in tokenizer.all_special_ids),
    }
    return table.astype(np.float32), meta


def build_static_table(directory: str | Path, *, model_path: str | Path | None = None) -> Path:
    """Distil the table into ``directory`` (``table.safetensors``, ``meta.json`` and the
    tokenizer), written atomically; return the directory."""
    import shutil
    import tempfile

    from safetensors.numpy import save_file

    directory = Path(directory)
    directory.parent.mkdir(parents=True, exist_ok=True)
    table, meta = distill_static_table(model_path)
    source = Path(model_path) if model_path is not None else bundled_minilm_path()
    staging = Path(tempfile.mkdtemp(prefix=".static-", dir=directory.parent))
    try:
        save_file({"table": table}, str(staging / "table.safetensors"))
        (staging / "meta.json").write_text(json.dumps(meta, indent=2), encoding="utf-8")
        shutil.copy(source / "tokenizer.json", staging / "tokenizer.json")
        if directory.exists():  # another process finished first: keep its table
            shutil.rmtree(staging)
        else:
            staging.rename(directory)
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
    return directory


class _WordPieces:
    """Token ids of ASCII text word by word, from a cache of the tokenizer's own answers.

    BERT's uncased normaliser and pre-tokeniser do little to ASCII text (lower case, drop
    control characters, split at spaces and symbols), and WordPiece then encodes each word
    on its own, so a word's ids never depend on its neighbours. Caching them per word
    skips most of the tokenizer's per-call cost, which on one query is most of the
    featuriser's time. The cache starts with the vocabulary's whole words, asks the
    tokenizer for the rest (in one batch), and starts over past `_WORD_CACHE_LIMIT` words;
    other text, and any tokenizer that is not BERT's uncased WordPiece, goes to the
    tokenizer whole. Tests compare the two on every query of the example data.
    """

    def __init__(self, tokenizer: Any) -> None:
        self.tokenizer = tokenizer
        spec = json.loads(tokenizer.to_str())
        normalizer, pre, model = (
            spec.get("normalizer") or {},
            spec.get("pre_tokenizer"),
            spec["model"],
        )
        self.enabled = (
            normalizer.get("type") == "BertNormalizer"
            and normalizer.get("lowercase") is True
            and normalizer.get("clean_text") is True
            and (pre or {}).get("type") == "BertPreTokenizer"
            and model.get("type") == "WordPiece"
        )
        # Special tokens written out in the text ("[SEP]") are matched before normalising.
        self._added = [
            (token.content, token.normalized)
            for token in tokenizer.get_added_tokens_decoder().values()
        ]
        vocab = tokenizer.get_vocab()
        self._seed = {w: [i] for w, i in vocab.items() if _ASCII_WORD.fullmatch(w)}
        self._words = dict(self._seed)

    def encode(self, texts: Sequence[str]) -> list[list[int]]:
        """Each text's token ids, without special tokens, truncated to `_MAX_TOKENS`."""
        split: list[list[str] | None] = []
        for text in texts:
            if self.enabled and text.isascii() and not self._has_added_token(text):
                text = _ASCII_CONTROL.sub("", text.lower())
                split.append(_ASCII_WORD.findall(text))
            else:
                split.append(None)
        words = self._words
        seen = set().union(*(ws for ws in split if ws is not None))
        missing = [w for w in seen if w not in words]  # (not `- words.keys()`: it copies them)
        if missing:
            if len(words) + len(missing) > _WORD_CACHE_LIMIT:
                words = self._words = dict(self._seed)
            new = sorted(missing)
            words.update(zip(new, self._batch(new), strict=True))
        others = [text for text, ws in zip(texts, split, strict=True) if ws is None]
        whole = iter(self._batch(others) if others else ())
        lookup = words.__getitem__
        return [
            next(whole) if ws is None else list(chain.from_iterable(map(lookup, ws)))[:_MAX_TOKENS]
            for ws in split
        ]

    def _has_added_token(self, text: str) -> bool:
        lowered = text.lower()
        return any(
            content in text or (normalized and content.lower() in lowered)
            for content, normalized in self._added
        )

    def _batch(self, texts: list[str]) -> list[list[int]]:
        # Only the ids are needed: `encode_batch_fast` skips the character offsets.
        encode = getattr(self.tokenizer, "encode_batch_fast", self.tokenizer.encode_batch)
        return [encoding.ids for encoding in encode(texts, add_special_tokens=False)]


class StaticEmbeddings(Embeddings):
    """Static token vectors distilled from the bundled MiniLM; encodes with numpy alone.

    The table is built at first use into ``<cache>/static/static-minilm-l6-v2`` (about half a
    minute on two cores, with torch) and read from there afterwards without torch.
    """

    def __init__(self, *, path: str | Path | None = None) -> None:
        """Args:
        path: A directory made by `build_static_table`; default the cache's, built on use.
        """
        self.path = Path(path) if path is not None else None
        self._lock = threading.Lock()
        self._table: np.ndarray | None = None
        self._tokenizer: Any = None
        self._special: np.ndarray | None = None

    @property
    def name(self) -> str:
        """Identifier used for cache keys and saved routers."""
        return STATIC_NAME if self.path is None else f"static:{self.path}"

    def _directory(self) -> Path:
        if self.path is not None:
            return self.path
        directory = default_cache_dir() / "static" / STATIC_NAME
        if not (directory / "meta.json").is_file():
            build_static_table(directory)
        return directory

    def _load(self) -> tuple[np.ndarray, Any, np.ndarray]:
        with self._lock:
            if self._table is None:
                from safetensors.numpy import load_file
                from tokenizers import Tokenizer

                directory = self._directory()
                meta = json.loads((directory / "meta.json").read_text(encoding="utf-8"))
                table = load_file(str(directory / "table.safetensors"))["table"]
                if table.shape != (meta["vocab_size"], meta["dims"]):
                    raise ValueError(
                        f"{directory}: table.safetensors has shape {table.shape}, meta.json "
                        f"says ({meta['vocab_size']}, {meta['dims']})"
                    )
                tokenizer = Tokenizer.from_file(str(directory / "tokenizer.json"))
                tokenizer.no_padding()
                tokenizer.enable_truncation(_MAX_TOKENS)
                pieces = _WordPieces(tokenizer)
                special = np.zeros(len(table), dtype=bool)
                special[np.asarray(meta["special_ids"], dtype=np.int64)] = True
                self._special = special
                self._tokenizer, self._table = pieces, table
            assert self._special is not None
            return self._table, self._tokenizer, self._special

    def embed_array(self, texts: Sequence[str]) -> np.ndarray:
        """Embed texts into a unit-normalised float32 array of shape (len(texts), dims)."""
        table, tokenizer, special = self._load()
        out = np.zeros((len(texts), table.shape[1]), dtype=np.float32)
        if not texts:
            return out
        # A lone surrogate (invalid UTF-8) becomes U+FFFD instead of failing the tokenizer.
        cleaned = [t.encode("utf-8", "replace").decode("utf-8") for t in texts]
        for i, row in enumerate(tokenizer.encode(cleaned)):
            ids = np.asarray(row, dtype=np.int64)
            ids = ids[~special[ids]]
            if len(ids):  # a query's rows stay in cache: faster than one batch-wide gather
                out[i] = table.take(ids, axis=0).mean(axis=0)
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        return out / np.maximum(norms, 1e-12)

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        """Embed a list of texts."""
        return self.embed_array(texts).tolist()

    def embed_query(self, text: str) -> list[float]:
        """Embed one text."""
        return self.embed_array([text])[0].tolist()
