"""Routing data: queries × candidates matrices of quality and cost.

`RoutingDataset` reads three formats into the same aligned matrices:

* LLMRouter routing JSONL: one row per (query, model) with ``query``,
  ``model_name`` and ``performance`` (optionally ``task_name``, ``ground_truth``,
  ``input_tokens``/``output_tokens``/``token_num``);
* RouterDC-style JSON: a list of ``{"question": ..., "scores": {model: score}}``;
* wide CSV: a prompt column and one score column per model.

Cost of a (query, model) pair = (input tokens × input price + output tokens ×
output price) / 1e6 dollars, from the data's token counts where present, else
``ceil(len(query)/4)`` input and 200 output tokens (``BENCHMARK.md``).

Self-verification results (AutoMix) are optional: a JSONL row's ``verification_score``
(LLMRouter AutoMix's ``p_ver_slm`` is accepted in its place), or a wide CSV's
``verification_score:<model>`` columns, give the model's confidence in [0, 1] that its own
answer to the query is correct; they fill `RoutingDataset.verification`.
"""

from __future__ import annotations

import csv
import json
import logging
import math
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
from langchain_llmrouter.errors import CandidateMismatchError, DataFormatError
from langchain_llmrouter.jsonl import iter_jsonl

if TYPE_CHECKING:
    from langchain_core.embeddings import Embeddings

logger = logging.getLogger(__name__)

DataFormat = Literal["auto", "jsonl", "routerdc", "csv"]
_PROMPT_COLUMNS = ("prompt", "query", "question")
VERIFICATION_FIELD = "verification_score"
"""Row field (JSONL) / column prefix (CSV, ``verification_score:<model>``) of a model's
self-verification confidence in its answer."""
_VERIFICATION_ALIASES = (VERIFICATION_FIELD, "p_ver_slm")


@dataclass
class _Row:
    """One (query, model) observation while reading."""

    query: str
    model: str
    performance: float
    task: str | None = None
    ground_truth: Any = None
    input_tokens: float | None = None
    output_tokens: float | None = None
    cost: float | None = None
    verification: float | None = None


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
        fmt = format if format != "auto" else _guess_format(path)
        reader = {"jsonl": _read_jsonl, "routerdc": _read_routerdc, "csv": _read_csv}[fmt]
        rows = reader(path)
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
        rows: list[_Row],
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


def _guess_format(path: Path) -> DataFormat:
    suffix = path.suffix.lower()
    if suffix == ".jsonl":
        return "jsonl"
    if suffix == ".csv":
        return "csv"
    if suffix == ".json":
        return "routerdc"
    raise DataFormatError(
        f"cannot tell the format from the suffix {suffix!r}; use .jsonl (LLMRouter), "
        ".json (RouterDC) or .csv (wide), or pass format=",
        path=path,
    )


def _row_cost(row: _Row, pool: CandidatePool, output_tokens: int) -> float:
    if row.cost is not None:
        return row.cost
    cand = pool[row.model]
    tin = row.input_tokens if row.input_tokens is not None else estimate_input_tokens(row.query)
    tout = row.output_tokens if row.output_tokens is not None else output_tokens
    return cand.estimate_cost(tin, tout)


def _number(
    value: Any, *, path: Path, line: int | None, field: str, required: bool = True
) -> float | None:
    if value is None or value == "":
        if required:
            raise DataFormatError("missing value", path=path, line=line, field=field)
        return None
    if isinstance(value, bool):
        raise DataFormatError(
            f"expected a number, got {value!r}", path=path, line=line, field=field
        )
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise DataFormatError(
            f"expected a number, got {value!r}", path=path, line=line, field=field
        ) from None
    if not math.isfinite(number):
        raise DataFormatError(
            f"expected a finite number, got {value!r}", path=path, line=line, field=field
        )
    return number


def _text(value: Any, *, path: Path, line: int | None, field: str) -> str:
    if not isinstance(value, str) or not value.strip():
        got = "missing" if value is None else f"{type(value).__name__} {value!r:.40}"
        raise DataFormatError(
            f"expected a non-empty string, got {got}", path=path, line=line, field=field
        )
    return value


def _read_jsonl(path: Path) -> list[_Row]:
    rows = []
    for number, rec in iter_jsonl(path):
        input_tokens = _number(
            rec.get("input_tokens"),
            path=path,
            line=number,
            field="input_tokens",
            required=False,
        )
        output_tokens = _number(
            rec.get("output_tokens"),
            path=path,
            line=number,
            field="output_tokens",
            required=False,
        )
        total = _number(
            rec.get("token_num"), path=path, line=number, field="token_num", required=False
        )
        if input_tokens is None and output_tokens is None and total is not None:
            # Only a total: split it as estimated prompt tokens + the rest.
            input_tokens = float(min(total, estimate_input_tokens(str(rec.get("query", "")))))
            output_tokens = total - input_tokens
        rows.append(
            _Row(
                query=_text(rec.get("query"), path=path, line=number, field="query"),
                model=_text(rec.get("model_name"), path=path, line=number, field="model_name"),
                performance=_number(
                    rec.get("performance"), path=path, line=number, field="performance"
                ),  # type: ignore[arg-type]
                task=rec.get("task_name") or None,
                ground_truth=rec.get("ground_truth"),
                input_tokens=input_tokens,
                output_tokens=output_tokens,
                cost=_number(rec.get("cost"), path=path, line=number, field="cost", required=False),
                verification=_verification(rec, path=path, line=number),
            )
        )
    return rows


def _confidence(value: Any, *, path: Path, line: int | None, field: str) -> float | None:
    """A verification confidence: a number in [0, 1], or None when missing."""
    number = _number(value, path=path, line=line, field=field, required=False)
    if number is not None and not 0.0 <= number <= 1.0:
        raise DataFormatError(
            f"expected a confidence in [0, 1], got {value!r}", path=path, line=line, field=field
        )
    return number


def _verification(rec: dict[str, Any], *, path: Path, line: int) -> float | None:
    """The row's self-verification confidence (``verification_score``, else ``p_ver_slm``)."""
    for key in _VERIFICATION_ALIASES:
        if rec.get(key) is not None:
            return _confidence(rec[key], path=path, line=line, field=key)
    return None


def _read_routerdc(path: Path) -> list[_Row]:
    text = path.read_text(encoding="utf-8")
    try:
        records = json.loads(text)
    except json.JSONDecodeError as exc:
        raise DataFormatError(f"invalid JSON: {exc.msg}", path=path, line=exc.lineno) from None
    if not isinstance(records, list):
        raise DataFormatError(
            "expected a JSON list of {question, scores} records", path=path, line=1
        )
    rows: list[_Row] = []
    for i, rec in enumerate(records):
        if _routerdc_record_ok(rec):
            query, scores = rec.get("question", rec.get("query")), rec["scores"]
            task = rec.get("task_name") or rec.get("task") or rec.get("dataset")
            rows.extend(
                _Row(query=query, model=m, performance=float(v), task=task)
                for m, v in scores.items()
            )
            continue
        # Slow path, only for a bad record: find its line to say where it is.
        line_starts = _record_lines(text)
        line = line_starts[i] if i < len(line_starts) else None
        where = f"[{i}]"
        if not isinstance(rec, dict):
            raise DataFormatError("expected an object", path=path, line=line, field=where)
        query = _text(
            rec.get("question", rec.get("query")), path=path, line=line, field=f"{where}.question"
        )
        scores = rec.get("scores")
        if not isinstance(scores, dict) or not scores:
            raise DataFormatError(
                "expected a non-empty object of model scores",
                path=path,
                line=line,
                field=f"{where}.scores",
            )
        # Valid after all (e.g. scores written as numeric strings): keep it.
        task = rec.get("task_name") or rec.get("task") or rec.get("dataset")
        for model, score in scores.items():
            value = _number(score, path=path, line=line, field=f"{where}.scores.{model}")
            rows.append(_Row(query=query, model=model, performance=float(value or 0.0), task=task))
    return rows


def _routerdc_record_ok(rec: Any) -> bool:
    if not isinstance(rec, dict):
        return False
    query, scores = rec.get("question", rec.get("query")), rec.get("scores")
    if (
        not isinstance(query, str)
        or not query.strip()
        or not isinstance(scores, dict)
        or not scores
    ):
        return False
    return all(
        isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)
        for v in scores.values()
    )


def _record_lines(text: str) -> list[int]:
    """The 1-based line on which each top-level value of a JSON list starts."""
    lines = []
    depth = 0
    line = 1
    in_string = escape = expecting = False
    for ch in text:
        if ch == "\n":
            line += 1
        if in_string:
            if escape:
                escape = False
            elif ch == "\\":
                escape = True
            elif ch == '"':
                in_string = False
            continue
        if depth == 1 and expecting and not ch.isspace() and ch not in ",]":
            lines.append(line)
            expecting = False
        if ch == '"':
            in_string = True
        elif ch in "[{":
            depth += 1
            expecting = depth == 1
        elif ch in "]}":
            depth -= 1
        elif ch == "," and depth == 1:
            expecting = True
    return lines


def _read_csv(path: Path) -> list[_Row]:
    with path.open(encoding="utf-8", newline="") as handle:
        reader = csv.DictReader(handle)
        header = reader.fieldnames or []
        prompt_col = next((c for c in header if c.lower() in _PROMPT_COLUMNS), None)
        if prompt_col is None:
            raise DataFormatError(
                f"no prompt column; expected one of {', '.join(_PROMPT_COLUMNS)}", path=path, line=1
            )
        task_col = next((c for c in header if c.lower() in ("task", "task_name")), None)
        prefix = f"{VERIFICATION_FIELD}:"
        verification_cols = {c[len(prefix) :]: c for c in header if c.startswith(prefix)}
        skip = {prompt_col, task_col, "", None, *verification_cols.values()} | {
            c for c in header if c.lower() in ("id", "ground_truth", "cluster_id")
        }
        models = [c for c in header if c not in skip]
        stray = sorted(set(verification_cols) - set(models))
        if stray:
            raise DataFormatError(
                f"verification column for {stray[0]!r}, which has no score column",
                path=path,
                line=1,
                field=verification_cols[stray[0]],
            )
        if not models:
            raise DataFormatError(
                "no score columns (one per model) next to the prompt column", path=path, line=1
            )
        rows: list[_Row] = []
        last_line = reader.line_num
        for rec in reader:
            # A quoted prompt may span lines: report the line the record starts on.
            number, last_line = last_line + 1, reader.line_num
            query = _text(rec.get(prompt_col), path=path, line=number, field=prompt_col)
            task = rec.get(task_col) if task_col else None
            for model in models:
                value = _number(rec.get(model), path=path, line=number, field=model, required=False)
                if value is not None:
                    ver_col = verification_cols.get(model)
                    verification = (
                        _confidence(rec.get(ver_col), path=path, line=number, field=ver_col)
                        if ver_col
                        else None
                    )
                    rows.append(
                        _Row(
                            query=query,
                            model=model,
                            performance=value,
                            task=task or None,
                            verification=verification,
                        )
                    )
    return rows
