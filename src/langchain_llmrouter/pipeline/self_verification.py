"""Self-verification results for AutoMix's training data (``verification_score``).

`add_self_verification` runs AutoMix's verify step (the graph's prompt and parsing, from
`langchain_llmrouter.graphs.automix`) over routing-data rows that hold a model's
``response``, so `langchain_llmrouter.graphs.automix_router.AutoMixRouter` can be trained
on them.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from langchain_core.runnables.config import get_executor_for_config

from langchain_llmrouter.candidates import CandidatePool
from langchain_llmrouter.errors import DataFormatError
from langchain_llmrouter.graphs._automix_verify import (
    VERIFY_MAX_TOKENS,
    VerifyParams,
    verify_answer,
)
from langchain_llmrouter.graphs._common import candidate_ref

__all__ = ["add_self_verification"]


def _read_rows(path: Path) -> list[dict[str, Any]]:
    rows = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise DataFormatError(f"invalid JSON: {exc.msg}", path=path, line=number) from None
        if not isinstance(row, dict):
            raise DataFormatError("expected a JSON object per line", path=path, line=number)
        rows.append(row)
    return rows


def add_self_verification(
    rows: Iterable[Mapping[str, Any]] | str | Path,
    candidates: CandidatePool,
    *,
    samples: int = 4,
    temperature: float = 1.0,
    max_tokens: int = VERIFY_MAX_TOKENS,
    models: Sequence[str] | None = None,
    output: str | Path | None = None,
    max_concurrency: int = 4,
) -> list[dict[str, Any]]:
    """Add ``verification_score`` to routing-data rows by running AutoMix's verify step.

    Every row (LLMRouter routing JSONL: ``query``, ``model_name``, ``response``, ...) with a
    non-empty ``response`` is verified ``samples`` times by its own model, with the graph's
    prompt and parsing; rows without a response are kept unchanged. Not resumable: an
    interrupted run starts again.

    Args:
        rows: The rows, or a JSONL file of them.
        candidates: The pool that calls the models (``model_name`` must be in it).
        samples: Verifications per row (k; train with the same ``verify_samples``).
        temperature: Sampling temperature of the verifications.
        max_tokens: Output-token cap of one verification.
        models: Verify only rows of these candidates (e.g. all but the cascade's last).
        output: Write the rows here as JSONL.
        max_concurrency: Rows verified at the same time.

    Returns:
        The rows, with ``verification_score`` where verified.

    Raises:
        DataFormatError: a row to verify has no ``query`` or ``model_name`` (names the line).
        UnknownCandidateError: a row's model is not in the pool.
    """
    source = Path(rows) if isinstance(rows, str | Path) else None
    items = _read_rows(Path(rows)) if isinstance(rows, str | Path) else [dict(r) for r in rows]
    todo: list[dict[str, Any]] = []
    for number, row in enumerate(items, start=1):
        if not isinstance(row.get("response"), str) or not row["response"].strip():
            continue
        for key in ("query", "model_name"):
            if not isinstance(row.get(key), str) or not row[key].strip():
                raise DataFormatError(
                    "expected a non-empty string", path=source, line=number, field=key
                )
        if models is None or row["model_name"] in models:
            candidates[row["model_name"]]  # unknown names list the valid ones
            todo.append(row)
    params = VerifyParams(samples, temperature, max_tokens)

    def run(row: dict[str, Any]) -> None:
        ref = candidate_ref(candidates, row["model_name"])
        row["verification_score"] = verify_answer(ref, row["query"], row["response"], params)[0]

    with get_executor_for_config({"max_concurrency": max_concurrency}) as executor:
        list(executor.map(run, todo))
    if output is not None:
        lines = [json.dumps(row, ensure_ascii=False) + "\n" for row in items]
        Path(output).write_text("".join(lines), encoding="utf-8")
    return items
