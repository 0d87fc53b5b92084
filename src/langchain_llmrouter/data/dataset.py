"""Routing data: `RoutingDataset`, queries × candidates matrices of quality and cost.

`RoutingDataset.from_file` reads any of the formats `langchain_llmrouter.data.readers`
knows (LLMRouter JSONL, RouterDC JSON, wide CSV) into the same aligned matrices: one row per
distinct (query, task), one column per candidate in the pool's order, duplicate
observations averaged. Cost of a (query, model) pair = (input tokens × input price + output
tokens × output price) / 1e6 dollars, from the data's token counts where present, else
``ceil(len(query)/4)`` input and 200 output tokens (``BENCHMARK.md``). Self-verification
confidences (AutoMix), where the data has them, fill `RoutingDataset.verification`. The
views (`~RoutingDataset.subset`, `~RoutingDataset.split`, ...) return new datasets.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from langchain_llmrouter.candidates import (
    DEFAULT_OUTPUT_TOKENS,
    CandidatePool,
    LLMCandidate,
    estimate_input_tokens,
)
from langchain_llmrouter.data.readers import DataFormat, Row, read_rows
from langchain_llmrouter.errors import CandidateMismatchError, DataFormatError

if TYPE_CHECKING:
    from langchain_core.embeddings import Embeddings

logger = logging.getLogger(__name__)


@dataclass
class RoutingDataset:
    """Aligned matrices of candidate quality and cost over a set of queries.

    Attributes:
        queries: Query texts, one per row.
        candidates: Candidate names, one per column.
        performance: (n_queries, n_candidates) quality in [0, 1]; NaN where unknown.
        cost: (n_queries, n_candidates) dollars per call; NaN where unknown.
        task_names: Task of each query, or None where the data does not say.
        ground_truths: Ground truth of each query where known.
        source: The file read, for messages.
        missing_candidates: Pool candidates that have no data in this file.
        candidate_specs: Prices and sizes of the columns' candidates (from the pool).
        verification: (n_queries, n_candidates) self-verification confidence in [0, 1]
            (NaN where missing), or None when the data has none (see AutoMix).
    """

    queries: list[str]
    candidates: list[str]
    performance: np.ndarray
    cost: np.ndarray
    task_names: list[str | None] = field(default_factory=list)
    ground_truths: list[Any] = field(default_factory=list)
    source: str | None = None
    missing_candidates: list[str] = field(default_factory=list)
    candidate_specs: dict[str, LLMCandidate] = field(default_factory=dict)
    verification: np.ndarray | None = None

    def __post_init__(self) -> None:
        n, m = len(self.queries), len(self.candidates)
        for name in ("performance", "cost", "verification"):
            if getattr(self, name) is None:
                continue
            arr = np.asarray(getattr(self, name), dtype=np.float64)
            if arr.shape != (n, m):
                raise ValueError(f"{name} has shape {arr.shape}, expected ({n}, {m})")
            setattr(self, name, arr)
        if not self.task_names:
            self.task_names = [None] * n
        if not self.ground_truths:
            self.ground_truths = [None] * n
        if len(self.task_names) != n or len(self.ground_truths) != n:
            raise ValueError("task_names and ground_truths must have one entry per query")

    # --- readers --------------------------------------------------------------------------

    @classmethod
    def from_file(
        cls,
        path: str | Path,
        *,
        candidates: CandidatePool | None = None,
        format: DataFormat = "auto",
        unknown_candidates: Literal["error", "drop"] = "error",
        output_tokens: int = DEFAULT_OUTPUT_TOKENS,
    ) -> RoutingDataset:
        """Read routing data from a file.

        Args:
            path: A ``.jsonl`` (LLMRouter), ``.json`` (RouterDC) or ``.csv`` (wide) file.
            candidates: The pool; needed for prices (costs are NaN without it) and to
                check that the data's candidates exist.
            format: Force a format instead of guessing from the suffix.
            unknown_candidates: What to do with data candidates missing from the pool:
                ``"error"`` raises `CandidateMismatchError`; ``"drop"`` drops them
                with a warning.
            output_tokens: Output tokens assumed where the data has no counts.

        Raises:
            DataFormatError: naming the file, line and field of malformed input.
            CandidateMismatchError: when the data has candidates the pool lacks.
        """
        path = Path(path)
        if not path.exists():
            raise DataFormatError("routing data file not found", path=path)
        rows = read_rows(path, format)
        if not rows:
            raise DataFormatError("no routing records found", path=path)
        return cls._from_rows(
            rows,
            path=path,
            pool=candidates,
            unknown_candidates=unknown_candidates,
            output_tokens=output_tokens,
        )

    @classmethod
    def _from_rows(
        cls,
        rows: list[Row],
        *,
        path: Path,
        pool: CandidatePool | None,
        unknown_candidates: str,
        output_tokens: int,
    ) -> RoutingDataset:
        data_models = list(dict.fromkeys(r.model for r in rows))
        missing: list[str] = []
        if pool is not None:
            unknown = [m for m in data_models if m not in pool]
            if unknown:
                if unknown_candidates != "drop":
                    raise CandidateMismatchError(path, unknown, pool.names)
                logger.warning(
                    "%s: dropping candidates not in the pool: %s", path, ", ".join(unknown)
                )
                rows = [r for r in rows if r.model in pool]
            missing = [m for m in pool.names if m not in data_models]
            if missing:
                logger.info("%s: pool candidates with no data here: %s", path, ", ".join(missing))
            # Pool order keeps columns stable across train and test files.
            models = [m for m in pool.names if m in data_models]
        else:
            models = data_models
        col = {m: j for j, m in enumerate(models)}
        query_index: dict[tuple[str, str | None], int] = {}
        queries: list[str] = []
        tasks: list[str | None] = []
        truths: list[Any] = []
        for r in rows:
            key = (r.query, r.task)
            if key not in query_index:
                query_index[key] = len(queries)
                queries.append(r.query)
                tasks.append(r.task)
                truths.append(r.ground_truth)
        n, m = len(queries), len(models)
        perf_sum = np.zeros((n, m))
        perf_count = np.zeros((n, m))
        cost = np.full((n, m), np.nan)
        ver_sum = np.zeros((n, m))
        ver_count = np.zeros((n, m))
        for r in rows:
            i, j = query_index[(r.query, r.task)], col[r.model]
            perf_sum[i, j] += r.performance
            perf_count[i, j] += 1
            if r.verification is not None:
                ver_sum[i, j] += r.verification
                ver_count[i, j] += 1
            if pool is not None:
                cost[i, j] = _row_cost(r, pool, output_tokens)
            elif r.cost is not None:
                cost[i, j] = r.cost
        with np.errstate(invalid="ignore"):
            # Duplicate (query, model) rows are averaged.
            performance = np.where(perf_count > 0, perf_sum / np.maximum(perf_count, 1), np.nan)
            verification = np.where(ver_count > 0, ver_sum / np.maximum(ver_count, 1), np.nan)
        return cls(
            queries=queries,
            candidates=models,
            performance=performance,
            cost=cost,
            task_names=tasks,
            ground_truths=truths,
            source=str(path),
            missing_candidates=missing,
            candidate_specs={m: pool[m] for m in models} if pool is not None else {},
            verification=verification if ver_count.any() else None,
        )

    # --- views ----------------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self.queries)

    def subset(self, index: Sequence[int] | np.ndarray) -> RoutingDataset:
        """The rows at ``index`` (a list of positions or a boolean mask)."""
        idx = np.asarray(index)
        if idx.dtype == bool:
            idx = np.flatnonzero(idx)
        return RoutingDataset(
            queries=[self.queries[i] for i in idx],
            candidates=list(self.candidates),
            performance=self.performance[idx],
            cost=self.cost[idx],
            task_names=[self.task_names[i] for i in idx],
            ground_truths=[self.ground_truths[i] for i in idx],
            source=self.source,
            missing_candidates=list(self.missing_candidates),
            candidate_specs=dict(self.candidate_specs),
            verification=None if self.verification is None else self.verification[idx],
        )

    def head(self, n: int) -> RoutingDataset:
        """The first ``n`` queries."""
        return self.subset(np.arange(min(n, len(self))))

    def split(
        self, test_size: float = 0.2, *, random_state: int | None = 0
    ) -> tuple[RoutingDataset, RoutingDataset]:
        """A random (train, test) split by query."""
        if not 0 < test_size < 1:
            raise ValueError(f"test_size must be in (0, 1), got {test_size}")
        order = np.random.default_rng(random_state).permutation(len(self))
        n_test = max(1, round(test_size * len(self)))
        return self.subset(np.sort(order[n_test:])), self.subset(np.sort(order[:n_test]))

    def select_candidates(self, names: Sequence[str]) -> RoutingDataset:
        """The same queries restricted to ``names`` (in that order)."""
        cols = [self.candidates.index(n) for n in names]
        return RoutingDataset(
            queries=list(self.queries),
            candidates=list(names),
            performance=self.performance[:, cols],
            cost=self.cost[:, cols],
            task_names=list(self.task_names),
            ground_truths=list(self.ground_truths),
            source=self.source,
            candidate_specs={
                n: self.candidate_specs[n] for n in names if n in self.candidate_specs
            },
            verification=None if self.verification is None else self.verification[:, cols],
        )

    def novel_mask(self, other: RoutingDataset) -> np.ndarray:
        """True for queries that do not appear word for word in ``other``."""
        seen = set(other.queries)
        return np.array([q not in seen for q in self.queries], dtype=bool)

    def mean_performance(self) -> dict[str, float]:
        """Mean quality of each candidate (ignoring missing scores)."""
        with np.errstate(invalid="ignore"):
            means = np.nanmean(self.performance, axis=0)
        return dict(zip(self.candidates, means.tolist(), strict=True))

    def best_single(self) -> str:
        """The candidate with the highest mean quality."""
        means = self.mean_performance()
        return max(
            self.candidates,
            key=lambda c: (np.nan_to_num(means[c], nan=-1.0), -self.candidates.index(c)),
        )

    def candidate_info(self) -> list[LLMCandidate]:
        """Descriptions of the columns' candidates (prices and sizes from the pool the data
        was read with; a bare name with zero prices where there was none)."""
        return [
            self.candidate_specs.get(n) or LLMCandidate(name=n, model=n) for n in self.candidates
        ]

    def embed(self, embeddings: Embeddings | None = None) -> np.ndarray:
        """Embed the queries (cached on disk with the default embedder).

        Returns:
            A float32 array of shape (n_queries, dim).
        """
        from langchain_llmrouter.embeddings import embed_texts

        return embed_texts(self.queries, embeddings)


def _row_cost(row: Row, pool: CandidatePool, output_tokens: int) -> float:
    if row.cost is not None:
        return row.cost
    cand = pool[row.model]
    tin = row.input_tokens if row.input_tokens is not None else estimate_input_tokens(row.query)
    tout = row.output_tokens if row.output_tokens is not None else output_tokens
    return cand.estimate_cost(tin, tout)
