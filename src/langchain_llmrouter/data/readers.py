"""Readers of routing data files: each turns a file into `Row` observations.

Three formats: LLMRouter routing JSONL (one row per (query, model) with ``query``,
``model_name`` and ``performance``, optionally ``task_name``, ``ground_truth``,
``input_tokens``/``output_tokens``/``token_num``, ``cost`` and a self-verification
confidence), RouterDC-style JSON (a list of ``{"question": ..., "scores": {model: score}}``)
and wide CSV (a prompt column and one score column per model, optionally
``verification_score:<model>`` columns). Malformed input raises `DataFormatError` naming the
file, the line and the field. Aligning the rows into matrices and pricing them is
`langchain_llmrouter.data.dataset`'s job.
"""

from __future__ import annotations

import csv
import io
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from langchain_llmrouter.candidates import MAX_TOKENS, estimate_input_tokens
from langchain_llmrouter.errors import DataFormatError
from langchain_llmrouter.jsonl import iter_jsonl, read_text

DataFormat = Literal["auto", "jsonl", "routerdc", "csv"]
_PROMPT_COLUMNS = ("prompt", "query", "question")
VERIFICATION_FIELD = "verification_score"
"""Row field (JSONL) / column prefix (CSV, ``verification_score:<model>``) of a model's
self-verification confidence in its answer."""
_VERIFICATION_ALIASES = (VERIFICATION_FIELD, "p_ver_slm")

SCORE_RANGE = (0.0, 1.0)
"""Range of ``performance`` and RouterDC/CSV scores: every task metric scores in [0, 1]
(`langchain_llmrouter.evaluation.task_metrics`), and the routers compare it with cost."""
TOKEN_RANGE = (0.0, float(MAX_TOKENS))
"""Range of ``input_tokens``, ``output_tokens`` and ``token_num``."""
MAX_COST = 10_000.0
"""Highest ``cost`` of one call accepted, in dollars (a larger one is a unit mix-up)."""
COST_RANGE = (0.0, MAX_COST)


@dataclass
class Row:
    """One (query, model) observation as read from a file."""

    query: str
    model: str
    performance: float
    task: str | None = None
    ground_truth: Any = None
    input_tokens: float | None = None
    output_tokens: float | None = None
    cost: float | None = None
    verification: float | None = None


def read_rows(path: Path, format: DataFormat = "auto") -> list[Row]:
    """The observations in a routing data file, in file order.

    Args:
        path: A ``.jsonl`` (LLMRouter), ``.json`` (RouterDC) or ``.csv`` (wide) file.
        format: Force a format instead of guessing from the suffix.

    Raises:
        DataFormatError: naming the file, line and field of malformed input.
    """
    fmt = format if format != "auto" else _guess_format(path)
    reader = {"jsonl": _read_jsonl, "routerdc": _read_routerdc, "csv": _read_csv}[fmt]
    return reader(path)


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


def _number(
    value: Any,
    *,
    path: Path,
    line: int | None,
    field: str,
    required: bool = True,
    bounds: tuple[float, float] | None = None,
) -> float | None:
    """A finite number (within ``bounds``, inclusive, when given), or None when optional."""
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
    if bounds is not None and not bounds[0] <= number <= bounds[1]:
        raise DataFormatError(
            f"expected a number in [{bounds[0]:g}, {bounds[1]:g}], got {value!r}",
            path=path,
            line=line,
            field=field,
        )
    return number


def _text(value: Any, *, path: Path, line: int | None, field: str) -> str:
    if not isinstance(value, str) or not value.strip():
        got = "missing" if value is None else f"{type(value).__name__} {value!r:.40}"
        raise DataFormatError(
            f"expected a non-empty string, got {got}", path=path, line=line, field=field
        )
    return value


def _read_jsonl(path: Path) -> list[Row]:
    return [_jsonl_row(rec, path=path, line=number) for number, rec in iter_jsonl(path)]


def _jsonl_row(rec: dict[str, Any], *, path: Path, line: int) -> Row:
    """One line of LLMRouter's JSONL routing data, checked field by field."""

    def field_number(
        name: str, bounds: tuple[float, float], *, required: bool = False
    ) -> float | None:
        return _number(
            rec.get(name), path=path, line=line, field=name, required=required, bounds=bounds
        )

    input_tokens = field_number("input_tokens", TOKEN_RANGE)
    output_tokens = field_number("output_tokens", TOKEN_RANGE)
    total = field_number("token_num", TOKEN_RANGE)
    if input_tokens is None and output_tokens is None and total is not None:
        # Only a total: split it as estimated prompt tokens + the rest.
        input_tokens = float(min(total, estimate_input_tokens(str(rec.get("query", "")))))
        output_tokens = total - input_tokens
    return Row(
        query=_text(rec.get("query"), path=path, line=line, field="query"),
        model=_text(rec.get("model_name"), path=path, line=line, field="model_name"),
        performance=field_number("performance", SCORE_RANGE, required=True),  # type: ignore[arg-type]
        task=rec.get("task_name") or None,
        ground_truth=rec.get("ground_truth"),
        input_tokens=input_tokens,
        output_tokens=output_tokens,
        cost=field_number("cost", COST_RANGE),
        verification=_verification(rec, path=path, line=line),
    )


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


def _read_routerdc(path: Path) -> list[Row]:
    text = read_text(path)
    try:
        records = json.loads(text)
    except json.JSONDecodeError as exc:
        raise DataFormatError(f"invalid JSON: {exc.msg}", path=path, line=exc.lineno) from None
    if not isinstance(records, list):
        raise DataFormatError(
            "expected a JSON list of {question, scores} records", path=path, line=1
        )
    rows: list[Row] = []
    for i, rec in enumerate(records):
        if _routerdc_record_ok(rec):
            query, scores = rec.get("question", rec.get("query")), rec["scores"]
            task = rec.get("task_name") or rec.get("task") or rec.get("dataset")
            rows.extend(
                Row(query=query, model=m, performance=float(v), task=task)
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
            value = _number(
                score, path=path, line=line, field=f"{where}.scores.{model}", bounds=SCORE_RANGE
            )
            rows.append(Row(query=query, model=model, performance=float(value or 0.0), task=task))
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
        isinstance(v, int | float)
        and not isinstance(v, bool)
        and SCORE_RANGE[0] <= v <= SCORE_RANGE[1]  # False for NaN too
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


def _read_csv(path: Path) -> list[Row]:
    with io.StringIO(read_text(path), newline="") as handle:
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
        rows: list[Row] = []
        last_line = reader.line_num
        for rec in reader:
            # A quoted prompt may span lines: report the line the record starts on.
            number, last_line = last_line + 1, reader.line_num
            query = _text(rec.get(prompt_col), path=path, line=number, field=prompt_col)
            task = rec.get(task_col) if task_col else None
            for model in models:
                value = _number(
                    rec.get(model),
                    path=path,
                    line=number,
                    field=model,
                    required=False,
                    bounds=SCORE_RANGE,
                )
                if value is not None:
                    ver_col = verification_cols.get(model)
                    verification = (
                        _confidence(rec.get(ver_col), path=path, line=number, field=ver_col)
                        if ver_col
                        else None
                    )
                    rows.append(
                        Row(
                            query=query,
                            model=model,
                            performance=value,
                            task=task or None,
                            verification=verification,
                        )
                    )
    return rows
