"""Nearest-neighbour search over stored query vectors: exact (numpy) or a FAISS index.

The nearest-neighbour routers (``knnrouter``, the similarity variant of ``elorouter``, the kNN
multi-round router) and the ``retrieval`` routing mode search through one small contract,
`VectorIndex`: ``build(vectors)``, ``search(queries, k) -> (distances, ids)``, ``add(vectors)``,
``save(directory)`` / ``load(directory, record)``. Kinds:

- ``exact``: brute force in numpy (one matrix product and a partial sort); the default, and the
  right choice up to about 100k stored vectors. Needs no FAISS.
- ``flat``: FAISS brute force (``IndexFlat``); the same neighbours as ``exact``.
- ``hnsw``: FAISS HNSW graph (``IndexHNSWFlat``, or ``IndexHNSWSQ`` with ``code="sq8"``);
  parameters ``m``, ``ef_construction``, ``ef_search``.
- ``ivf``: FAISS inverted lists (``IndexIVFFlat``, ``IndexIVFScalarQuantizer`` with
  ``code="sq8"``, ``IndexIVFPQ`` with ``code="pq<m>"``); parameters ``nlist``, ``nprobe``.
- ``auto``: ``exact`` under `AUTO_EXACT_BELOW` vectors at build time, else ``ivf`` (at 1M
  stored queries it kept recall@50 >= 0.95 under 1 ms where HNSW needed 2 ms: docs/howto/scaling.md).

Distances: ``cosine`` gives 1 - cosine similarity (vectors are unit-normalised on the way in),
``l2`` the Euclidean distance. Results are sorted nearest first; an approximate index that
finds fewer than ``k`` neighbours pads with id -1 and distance +inf. FAISS is imported only
when a FAISS kind is built or loaded (``pip install 'langchain-llmrouter[faiss]'``); it is
saved in FAISS's own file format (``faiss.write_index``), never pickled, and on load the
file's size and SHA-256 are checked against ``router.json`` before FAISS reads it.
"""

from __future__ import annotations

import hashlib
import math
import re
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, Field, field_validator

from langchain_llmrouter.errors import RouterLoadError

__all__ = [
    "AUTO_EXACT_BELOW",
    "INDEX_FILE",
    "IndexKind",
    "IndexedStoreMixin",
    "VectorIndex",
    "VectorIndexParams",
    "import_faiss",
    "smallest_k",
]

IndexKind = Literal["auto", "exact", "flat", "hnsw", "ivf"]
KINDS: tuple[str, ...] = ("auto", "exact", "flat", "hnsw", "ivf")
AUTO_EXACT_BELOW = 20_000
"""``index: auto`` searches exactly below this many stored vectors, else builds IVF."""
INDEX_FILE = "index.faiss"
"""File name of a saved FAISS index, next to ``router.json``."""
_BLOCK = 1 << 25
"""Most distances computed at once by the exact search (bounds memory for big batches)."""
_CODE = re.compile(r"^(sq8|pq\d+)$")


class VectorIndexParams(BaseModel):
    """The index hyperparameters the nearest-neighbour routers share."""

    index: IndexKind = "exact"
    """Neighbour search: ``exact`` (numpy), ``flat``, ``hnsw``, ``ivf`` (FAISS) or ``auto``."""
    hnsw_m: int = Field(default=32, ge=2, le=256)
    """HNSW: graph links per vector (more: better recall, more memory)."""
    hnsw_ef_construction: int = Field(default=80, ge=1)
    """HNSW: candidate list size while building (more: better graph, slower build)."""
    hnsw_ef_search: int = Field(default=128, ge=1)
    """HNSW: candidate list size per search (at least ``k``; more: better recall, slower)."""
    ivf_nlist: int | None = Field(default=None, ge=1)
    """IVF: number of inverted lists (None: 4 * sqrt(n), at least 39 vectors per list)."""
    ivf_nprobe: int = Field(default=32, ge=1)
    """IVF: lists visited per search (more: better recall, slower)."""
    index_code: str | None = None
    """Compressed vectors: ``sq8`` (hnsw, ivf) or ``pq<m>`` (ivf; m sub-quantizers); None: float32."""

    @field_validator("index_code")
    @classmethod
    def _check_code(cls, value: str | None) -> str | None:
        if value is not None and not _CODE.match(value):
            raise ValueError(f"index_code must be 'sq8' or 'pq<m>' (e.g. 'pq32'), not {value!r}")
        return value


def import_faiss() -> Any:
    """The ``faiss`` module, or an ImportError that names the extra to install."""
    try:
        import faiss
    except ImportError:
        raise ImportError(
            "the flat, hnsw and ivf indexes need FAISS: pip install 'langchain-llmrouter[faiss]' "
            "(or faiss-cpu); index: exact needs nothing"
        ) from None
    return faiss


def _unit(x: np.ndarray) -> np.ndarray:
    unit = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
    return unit.astype(np.float32, copy=False)


class VectorIndex:
    """k-nearest-neighbour search over stored vectors, through numpy or FAISS.

    Args:
        kind: ``exact``, ``flat``, ``hnsw``, ``ivf`` or ``auto`` (see the module docstring).
        metric: ``cosine`` (distance 1 - cosine similarity) or ``l2`` (Euclidean).
        m: HNSW links per vector.
        ef_construction: HNSW build-time candidate list.
        ef_search: HNSW search-time candidate list (raised to ``k`` when smaller).
        nlist: IVF lists (None: chosen from the number of vectors at build time).
        nprobe: IVF lists visited per search.
        code: ``sq8`` or ``pq<m>`` compressed storage; None keeps float32 vectors.
        seed: Seed of the IVF training sample.
    """

    def __init__(
        self,
        kind: str = "exact",
        metric: Literal["cosine", "l2"] = "cosine",
        *,
        m: int = 32,
        ef_construction: int = 80,
        ef_search: int = 128,
        nlist: int | None = None,
        nprobe: int = 32,
        code: str | None = None,
        seed: int = 0,
    ) -> None:
        if kind not in KINDS:
            raise ValueError(f"unknown index kind {kind!r}; valid: {', '.join(KINDS)}")
        if metric not in ("cosine", "l2"):
            raise ValueError(f"unknown metric {metric!r}; valid: cosine, l2")
        fits = kind in ("ivf", "auto") or (code == "sq8" and kind == "hnsw")
        if code is not None and (not _CODE.match(code) or not fits):
            raise ValueError(f"index code {code!r} does not apply to a {kind} index")
        self.kind = kind
        self.metric = metric
        self.m = m
        self.ef_construction = ef_construction
        self.ef_search = ef_search
        self.nlist = nlist
        self.nprobe = nprobe
        self.code = code
        self.seed = seed

    @classmethod
    def from_params(cls, params: Any, metric: Literal["cosine", "l2"]) -> VectorIndex:
        """An unbuilt index from a router's `VectorIndexParams` fields (attributes)."""
        return cls(
            params.index,
            metric,
            m=params.hnsw_m,
            ef_construction=params.hnsw_ef_construction,
            ef_search=params.hnsw_ef_search,
            nlist=params.ivf_nlist,
            nprobe=params.ivf_nprobe,
            code=params.index_code,
        )

    # --- building -------------------------------------------------------------------------

    @property
    def is_faiss(self) -> bool:
        """Whether the built index is a FAISS one (saved to its own file)."""
        return self.kind_ in ("flat", "hnsw", "ivf")

    @property
    def ntotal(self) -> int:
        """Number of stored vectors."""
        return int(self.index_.ntotal) if self.is_faiss else len(self.vectors_)

    def build(self, vectors: np.ndarray) -> VectorIndex:
        """Store ``vectors`` (n, dim) and build the index over them; returns self."""
        x = self._check(vectors, first=True)
        self.dim_ = int(x.shape[1])
        kind = self.kind
        if kind == "auto":
            kind = "exact" if len(x) < AUTO_EXACT_BELOW else "ivf"
        self.kind_ = kind
        if kind == "exact":
            self.vectors_ = np.empty((0, self.dim_), dtype=np.float32)
            self._unit = np.empty((0, self.dim_), dtype=np.float32)
            self._sq_norms = np.empty(0, dtype=np.float64)
            self._append_exact(x)
            return self
        faiss = import_faiss()
        self.index_ = self._new_faiss_index(faiss, len(x))
        if not self.index_.is_trained:  # IVF lists, scalar-quantiser ranges
            rng = np.random.default_rng(self.seed)
            n_train = min(len(x), 40 * getattr(self.index_, "nlist", 1024))
            sample = x if n_train == len(x) else x[np.sort(rng.choice(len(x), n_train, False))]
            self.index_.train(self._prepare(sample))
        self.index_.add(self._prepare(x))
        self._tune()
        return self

    def _new_faiss_index(self, faiss: Any, n: int) -> Any:
        metric = faiss.METRIC_INNER_PRODUCT if self.metric == "cosine" else faiss.METRIC_L2
        d = self.dim_
        if self.kind_ == "flat":
            return faiss.IndexFlatIP(d) if self.metric == "cosine" else faiss.IndexFlatL2(d)
        if self.kind_ == "hnsw":
            if self.code == "sq8":
                index = faiss.IndexHNSWSQ(d, faiss.ScalarQuantizer.QT_8bit, self.m, metric)
            else:
                index = faiss.IndexHNSWFlat(d, self.m, metric)
            index.hnsw.efConstruction = self.ef_construction
            return index
        nlist = self.nlist or int(max(1, min(4 * math.sqrt(n), n // 39)))
        self.nlist = nlist
        quantizer = faiss.IndexFlatIP(d) if self.metric == "cosine" else faiss.IndexFlatL2(d)
        if self.code is None:
            index = faiss.IndexIVFFlat(quantizer, d, nlist, metric)
        elif self.code == "sq8":
            index = faiss.IndexIVFScalarQuantizer(
                quantizer, d, nlist, faiss.ScalarQuantizer.QT_8bit, metric
            )
        else:
            sub = int(self.code[2:])
            if d % sub:
                raise ValueError(f"index_code {self.code!r}: {sub} does not divide dimension {d}")
            index = faiss.IndexIVFPQ(quantizer, d, nlist, sub, 8, metric)
        return index  # faiss's Python wrapper keeps `quantizer` alive with it

    def _tune(self) -> None:
        """Apply the search-time parameters to the FAISS index."""
        if self.kind_ == "hnsw":
            self.index_.hnsw.efSearch = self.ef_search
        elif self.kind_ == "ivf":
            self.index_.nprobe = min(self.nprobe, self.index_.nlist)

    def add(self, vectors: np.ndarray) -> None:
        """Append vectors without rebuilding (HNSW inserts them; IVF adds them to its lists)."""
        x = self._check(vectors)
        if len(x) == 0:
            return
        if self.kind_ == "exact":
            self._append_exact(x)
        else:
            self.index_.add(self._prepare(x))

    def _append_exact(self, x: np.ndarray) -> None:
        self.vectors_ = np.concatenate([self.vectors_, x])
        if self.metric == "cosine":
            self._unit = np.concatenate([self._unit, _unit(x)])
        else:
            self._sq_norms = np.concatenate([self._sq_norms, (x.astype(np.float64) ** 2).sum(1)])

    def _prepare(self, x: np.ndarray) -> np.ndarray:
        return np.ascontiguousarray(_unit(x) if self.metric == "cosine" else x, dtype=np.float32)

    def _check(self, vectors: np.ndarray, *, first: bool = False) -> np.ndarray:
        x = np.asarray(vectors, dtype=np.float32)
        if x.ndim != 2:
            raise ValueError(f"vectors must be a 2-D array (n, dim), got shape {x.shape}")
        if first and len(x) == 0:
            raise ValueError("cannot build an index over no vectors")
        if not first and x.shape[1] != self.dim_:
            raise ValueError(
                f"vectors have dimension {x.shape[1]} but the index holds dimension {self.dim_}"
            )
        return x

    # --- searching ------------------------------------------------------------------------

    def search(
        self, queries: np.ndarray, k: int, *, ordered: bool = True
    ) -> tuple[np.ndarray, np.ndarray]:
        """The ``k`` nearest stored vectors of each query, nearest first.

        Args:
            queries: (n, dim) query vectors.
            k: Neighbours per query (at most the number stored).
            ordered: False lets the exact search skip sorting the k found (a caller that
                only sums over them saves a few microseconds per query).

        Returns:
            (distances, ids): float32 and int64 arrays of shape (n, k); ids index the
            vectors in the order they were built and added (-1 where none was found).
        """
        x = self._check(queries)
        k = min(int(k), self.ntotal)
        if k < 1:
            raise ValueError(f"k must be >= 1 and the index non-empty (k={k}, n={self.ntotal})")
        if self.kind_ == "exact":
            return self._search_exact(x, k, ordered)
        if self.kind_ == "hnsw":
            self.index_.hnsw.efSearch = max(self.ef_search, k)
        dist, ids = self.index_.search(self._prepare(x), k)
        found = ids >= 0
        dist = 1.0 - dist if self.metric == "cosine" else np.sqrt(np.maximum(dist, 0.0))
        return np.where(found, dist, np.inf).astype(np.float32), ids.astype(np.int64)

    def _search_exact(self, x: np.ndarray, k: int, ordered: bool) -> tuple[np.ndarray, np.ndarray]:
        n_stored = len(self.vectors_)
        rows = max(1, _BLOCK // max(n_stored, 1))
        out_d = np.empty((len(x), k), dtype=np.float32)
        out_i = np.empty((len(x), k), dtype=np.int64)
        for start in range(0, len(x), rows):
            block = x[start : start + rows]
            if self.metric == "cosine":
                dist = 1.0 - _unit(block) @ self._unit.T
            else:
                sq = (block.astype(np.float64) ** 2).sum(axis=1, keepdims=True)
                dist = np.sqrt(
                    np.maximum(sq - 2.0 * (block @ self.vectors_.T) + self._sq_norms, 0.0)
                )
            if k < n_stored:
                index = smallest_k(dist, k)
            else:
                index = np.broadcast_to(np.arange(n_stored), dist.shape).copy()
            near = np.take_along_axis(dist, index, axis=1)
            if not ordered:
                out_d[start : start + rows], out_i[start : start + rows] = near, index
                continue
            order = np.argsort(near, axis=1, kind="stable")
            out_d[start : start + rows] = np.take_along_axis(near, order, axis=1)
            out_i[start : start + rows] = np.take_along_axis(index, order, axis=1)
        return out_d, out_i

    # --- saving ---------------------------------------------------------------------------

    def record(self) -> dict[str, Any]:
        """What ``router.json`` keeps about the built index (kind and parameters)."""
        return {
            "kind": self.kind_,
            "metric": self.metric,
            "dim": self.dim_,
            "ntotal": self.ntotal,
            "m": self.m,
            "ef_construction": self.ef_construction,
            "ef_search": self.ef_search,
            "nlist": self.nlist,
            "nprobe": self.nprobe,
            "code": self.code,
        }

    def save(self, directory: str | Path) -> dict[str, Any]:
        """Write a FAISS index to ``directory/index.faiss`` (FAISS's format).

        Returns:
            `record` plus the file's name, size and SHA-256, for ``router.json``.
        """
        if not self.is_faiss:
            raise ValueError("an exact index is saved as arrays by its router, not as a file")
        faiss = import_faiss()
        path = Path(directory) / INDEX_FILE
        faiss.write_index(self.index_, str(path))
        data = path.read_bytes()
        return {
            **self.record(),
            "file": INDEX_FILE,
            "bytes": len(data),
            "sha256": hashlib.sha256(data).hexdigest(),
        }

    @classmethod
    def load(cls, directory: str | Path, record: dict[str, Any]) -> VectorIndex:
        """A FAISS index saved by `save`, checked against its ``router.json`` record first.

        Raises:
            RouterLoadError: the file is missing, or its size, digest, kind, dimension or
                count differ from the record (naming the file and what differs).
        """
        try:
            kind, name = str(record["kind"]), str(record["file"])
            size, digest = int(record["bytes"]), str(record["sha256"])
            dim, ntotal = int(record["dim"]), int(record["ntotal"])
        except (KeyError, TypeError, ValueError) as exc:
            raise RouterLoadError(
                f"router.json, field 'state.index': bad or missing {exc}"
            ) from None
        if kind not in ("flat", "hnsw", "ivf") or Path(name).name != name:
            raise RouterLoadError(
                f"router.json, field 'state.index': kind {kind!r} / file {name!r} is not a saved "
                "FAISS index (kinds: flat, hnsw, ivf; a plain file name)"
            )
        path = Path(directory) / name
        try:
            if path.stat().st_size != size:
                raise RouterLoadError(
                    f"{path}: {path.stat().st_size} bytes where router.json records {size}; "
                    "the index file is damaged or from another save"
                )
            data = path.read_bytes()
        except OSError as exc:
            raise RouterLoadError(f"{path}: {exc.strerror or exc} (router.json lists it)") from None
        if hashlib.sha256(data).hexdigest() != digest:
            raise RouterLoadError(
                f"{path}: SHA-256 differs from router.json's; the index file is damaged or "
                "from another save"
            )
        faiss = import_faiss()
        try:
            index = faiss.deserialize_index(np.frombuffer(data, dtype=np.uint8))
        except RuntimeError as exc:
            raise RouterLoadError(f"{path}: FAISS cannot read it: {exc}") from None
        if index.d != dim or index.ntotal != ntotal:
            raise RouterLoadError(
                f"{path}: holds {index.ntotal} vectors of dimension {index.d}; router.json "
                f"records {ntotal} of dimension {dim}"
            )
        out = cls(
            kind,
            record.get("metric", "cosine"),
            m=int(record.get("m") or 32),
            ef_construction=int(record.get("ef_construction") or 80),
            ef_search=int(record.get("ef_search") or 128),
            nlist=record.get("nlist"),
            nprobe=int(record.get("nprobe") or 32),
            code=record.get("code"),
        )
        out.kind_, out.dim_, out.index_ = kind, dim, index
        out._tune()
        return out


class IndexedStoreMixin:
    """Saving and loading of a router's FAISS index (``index_``) next to ``router.json``.

    Mixed into the nearest-neighbour routers before their base class. ``save`` writes the
    index file first and `_index_state` puts its record in the router's ``state`` (the
    arrays stay in ``arrays.safetensors``); loading restores the scores through
    ``_set_state`` and then reads the checked index file.
    """

    index_: VectorIndex
    train_y_: np.ndarray
    _index_record: dict[str, Any] | None = None
    _pending_index: dict[str, Any] | None = None

    @property
    def train_x_(self) -> np.ndarray | None:
        """The stored training vectors of an exact index, as searched; None for FAISS."""
        index = getattr(self, "index_", None)
        return None if index is None or index.is_faiss else index.vectors_

    def _store_state(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        """For `_get_state`: the index record (FAISS) and the arrays of the store (the
        scores, and the vectors of an exact index)."""
        arrays = {"train_y": self.train_y_}
        if not self.index_.is_faiss:
            arrays["train_x"] = self.index_.vectors_
        return self._index_state(), arrays

    def _restore_index(
        self, meta: dict[str, Any], arrays: dict[str, np.ndarray], metric: Literal["cosine", "l2"]
    ) -> None:
        """For `_set_state`: rebuild an exact index from its saved vectors; a FAISS index is
        read from its checked file after (`_from_saved`)."""
        self._pending_index = meta.get("index")
        if self._pending_index is None:  # exact: the vectors are in arrays.safetensors
            self.index_ = VectorIndex("exact", metric).build(arrays["train_x"])

    def save(self, directory: str | Path) -> Path:
        """Save as the base router does, plus ``index.faiss`` for a FAISS index."""
        directory = Path(directory)
        index = getattr(self, "index_", None)
        if index is not None and index.is_faiss:
            directory.mkdir(parents=True, exist_ok=True)
            self._index_record = index.save(directory)
        else:
            (directory / INDEX_FILE).unlink(missing_ok=True)  # stale, from an earlier save
        try:
            return super().save(directory)  # type: ignore[misc]
        finally:
            self._index_record = None

    def _index_state(self) -> dict[str, Any]:
        """``{"index": record}`` for `_get_state` (empty for an exact index)."""
        if not self.index_.is_faiss:
            return {}
        if self._index_record is None:
            raise ValueError(
                f"a {self.index_.kind_} index is saved only by the router's own save() (as "
                f"{INDEX_FILE}); inside another router's state use index: exact"
            )
        return {"index": self._index_record}

    @classmethod
    def _from_saved(cls, directory: Path, document: dict[str, Any], embeddings: Any) -> Any:
        router = super()._from_saved(directory, document, embeddings)  # type: ignore[misc]
        record = router._pending_index
        if record is not None:
            router._pending_index = None
            index = VectorIndex.load(directory, record)
            stored = router._n_stored()
            if index.ntotal != stored:
                raise RouterLoadError(
                    f"{Path(directory) / INDEX_FILE}: {index.ntotal} vectors for {stored} stored "
                    "score rows"
                )
            router.index_ = index
        return router

    def _n_stored(self) -> int:
        """Rows of stored scores the index must match."""
        return len(self.train_y_)


def smallest_k(dist: np.ndarray, k: int) -> np.ndarray:
    """Column indices of each row's k smallest values (in no order); exact.

    `np.argpartition` over every column costs as much as the distance matrix itself, so
    first bound each row's k-th smallest by the k-th smallest of a quarter of its columns
    (an upper bound, since the quarter is a subset), keep the columns at or under it (a few
    times k of them), and partition only those.
    """
    n, width = dist.shape
    block = max(width // 4, 4 * k)
    if block >= width:
        return np.argpartition(dist, k - 1, axis=1)[:, :k]
    bound = np.partition(dist[:, :block], k - 1, axis=1)[:, k - 1]
    rows, cols = np.nonzero(dist <= bound[:, None])  # at least k per row
    counts = np.bincount(rows, minlength=n)
    if counts.min() < k:  # NaN distances: no bound holds
        return np.argpartition(dist, k - 1, axis=1)[:, :k]
    slot = np.arange(len(rows)) - np.repeat(np.cumsum(counts) - counts, counts)
    kept = np.full((n, int(counts.max())), np.inf, dtype=dist.dtype)
    kept[rows, slot] = dist[rows, cols]
    kept_cols = np.zeros(kept.shape, dtype=np.int64)
    kept_cols[rows, slot] = cols
    pick = np.argpartition(kept, k - 1, axis=1)[:, :k]
    return np.take_along_axis(kept_cols, pick, axis=1)
