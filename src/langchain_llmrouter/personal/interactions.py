"""Per-user interactions: the `Interaction` record and readers/writers of the peers' formats.

Two formats (``PEERS.md`` §1.15–1.16):

* **GMTRouter JSONL**: one interaction per line, ``{"judge": user, "model": ..., "question_id":
  ..., "turn": n, "conversation": [{"query", "query_emb"?, "response"?, "rating"}, ...],
  "model_emb"?, "encoder"?}``. The last element of ``conversation`` is the rated exchange;
  earlier ones are the conversation so far (`Interaction.history`). This package also writes
  an optional ``"task"`` key. `read_gmt_jsonl` and `write_gmt_jsonl` round-trip exactly.
* **PersonalizedRouter CSV**: columns ``query``, ``llm``, ``query_embedding`` (a vector
  string), ``effect`` (quality in [0, 1]), optionally ``task_description_embedding``,
  ``cost``, ``performance_preference`` and ``best_llm``; users are implicit (user-major row
  blocks) unless a ``user_id`` column names them. `read_personalized_csv` reads it.

Malformed input raises `DataFormatError` naming the file, the line and the field; unknown
fields are an error that lists them all (or are ignored with ``extra="ignore"``).
"""

from __future__ import annotations

import csv
import hashlib
import json
import math
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictInt, StrictStr, ValidationError

from langchain_llmrouter.errors import DataFormatError
from langchain_llmrouter.jsonl import iter_jsonl

Rating = Annotated[float, Field(ge=0.0, le=5.0, allow_inf_nan=False)]
"""A rating on the 0..5 scale."""
Vector = Annotated[list[Annotated[float, Field(allow_inf_nan=False)]], Field(min_length=1)]
"""A non-empty list of finite floats."""
ExtraFields = Literal["error", "ignore"]


class Exchange(BaseModel):
    """An earlier exchange of a multi-turn conversation (context of an `Interaction`)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    query: str
    """What the user asked."""
    response: str | None = None
    """The answer, where the data has it."""
    rating: Rating
    """The user's rating of the answer, 0..5."""
    embedding: list[float] | None = None
    """The query's embedding, where the data has it."""


class Interaction(BaseModel):
    """One user's rating of one candidate's answer to one query.

    Several interactions that share ``(user_id, question_id, turn)`` but differ in ``model``
    are the same question answered by several candidates: the pairs GMTRouter trains on.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    user_id: str = Field(min_length=1)
    """The user (GMTRouter's ``judge``)."""
    model: str = Field(min_length=1)
    """The candidate that answered."""
    question_id: str = Field(min_length=1)
    """The question; with ``user_id`` it names a session."""
    turn: int = Field(default=1, ge=1)
    """1-based turn of the conversation."""
    query: str
    """What the user asked at this turn."""
    response: str | None = None
    """The candidate's answer, where the data has it."""
    rating: Rating
    """The user's rating of the answer, 0..5."""
    embedding: list[float] | None = None
    """The query's embedding (``query_emb``); None to let a featuriser compute it."""
    task: str | None = None
    """The query's task or task cluster, where known."""
    model_embedding: list[float] | None = None
    """The candidate's embedding (``model_emb``), where the data has it."""
    encoder: str | None = None
    """Name of the encoder that made the embeddings, where the data says."""
    history: tuple[Exchange, ...] = ()
    """Earlier exchanges of the conversation, oldest first."""


def question_id_of(query: str, task: str | None = None) -> str:
    """A stable id for a query: the first 12 hex digits of SHA-1 over ``task`` and ``query``."""
    return hashlib.sha1(f"{task or ''}\x00{query}".encode()).hexdigest()[:12]


# --- GMTRouter JSONL -------------------------------------------------------------------------


class _GMTExchange(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    query: StrictStr
    query_emb: Vector | None = None
    response: StrictStr | None = None
    rating: Rating


class _GMTLine(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    judge: Annotated[StrictStr, Field(min_length=1)]
    model: Annotated[StrictStr, Field(min_length=1)]
    question_id: Annotated[StrictStr, Field(min_length=1)] | StrictInt
    turn: Annotated[StrictInt, Field(ge=1)]
    conversation: Annotated[list[_GMTExchange], Field(min_length=1)]
    model_emb: Vector | None = None
    encoder: StrictStr | None = None
    task: StrictStr | None = None


def _field_path(loc: tuple[int | str, ...]) -> str:
    """Pydantic's error location as a dotted path: ``conversation[0].rating``."""
    parts: list[str] = []
    for item in loc:
        if isinstance(item, int):
            parts.append(f"[{item}]")
        elif item in ("str", "int", "constrained-str") or "[" in item:
            continue  # the branch names of a union, not a field
        else:
            parts.append(f".{item}" if parts else item)
    return "".join(parts)


def _located(exc: ValidationError, *, path: Path, line: int) -> DataFormatError:
    """One `DataFormatError` for a validation failure: all unknown fields, else the first."""
    errors = exc.errors()
    unknown = [_field_path(e["loc"]) for e in errors if e["type"] == "extra_forbidden"]
    if unknown:
        return DataFormatError(
            f"unknown field(s): {', '.join(unknown)}", path=path, line=line, field=unknown[0]
        )
    first = errors[0]
    field = _field_path(first["loc"])
    if first["type"] == "missing":
        return DataFormatError("missing value", path=path, line=line, field=field)
    got = first.get("input")
    return DataFormatError(f"{first['msg']} (got {got!r:.60})", path=path, line=line, field=field)


def _known_only(record: dict[str, Any], model: type[BaseModel]) -> dict[str, Any]:
    """``record`` without the keys ``model`` does not know (for ``extra="ignore"``)."""
    known = {k: v for k, v in record.items() if k in model.model_fields}
    if isinstance(known.get("conversation"), list):
        known["conversation"] = [
            _known_only(e, _GMTExchange) if isinstance(e, dict) else e
            for e in known["conversation"]
        ]
    return known


def read_gmt_jsonl(path: str | Path, *, extra: ExtraFields = "error") -> list[Interaction]:
    """Read GMTRouter's interaction JSONL, one `Interaction` per line, in file order.

    Args:
        path: The ``.jsonl`` file.
        extra: ``"error"`` (default) rejects unknown fields, listing them; ``"ignore"``
            skips them.

    Raises:
        DataFormatError: naming the file, line and field (e.g. ``conversation[0].rating``)
            of malformed input.
    """
    path = Path(path)
    if not path.is_file():
        raise DataFormatError("interactions file not found", path=path)
    interactions = []
    for number, record in iter_jsonl(path):
        if extra == "ignore":
            record = _known_only(record, _GMTLine)
        try:
            line = _GMTLine.model_validate(record)
        except ValidationError as exc:
            raise _located(exc, path=path, line=number) from None
        *earlier, last = line.conversation
        interactions.append(
            Interaction(
                user_id=line.judge,
                model=line.model,
                question_id=str(line.question_id),
                turn=line.turn,
                query=last.query,
                response=last.response,
                rating=last.rating,
                embedding=last.query_emb,
                task=line.task,
                model_embedding=line.model_emb,
                encoder=line.encoder,
                history=tuple(
                    Exchange(
                        query=e.query, response=e.response, rating=e.rating, embedding=e.query_emb
                    )
                    for e in earlier
                ),
            )
        )
    return interactions


def _number(value: float) -> float | int:
    """Whole ratings as integers (``4``, not ``4.0``), as rating scales write them."""
    return int(value) if float(value).is_integer() else value


def _exchange_json(
    query: str, embedding: list[float] | None, response: str | None, rating: float
) -> dict[str, Any]:
    out: dict[str, Any] = {"query": query}
    if embedding is not None:
        out["query_emb"] = embedding
    if response is not None:
        out["response"] = response
    out["rating"] = _number(rating)
    return out


def gmt_record(interaction: Interaction) -> dict[str, Any]:
    """The GMTRouter JSON object of one interaction (optional keys only where set)."""
    conversation = [
        _exchange_json(e.query, e.embedding, e.response, e.rating) for e in interaction.history
    ]
    conversation.append(
        _exchange_json(
            interaction.query, interaction.embedding, interaction.response, interaction.rating
        )
    )
    record: dict[str, Any] = {
        "judge": interaction.user_id,
        "model": interaction.model,
        "question_id": interaction.question_id,
        "turn": interaction.turn,
        "conversation": conversation,
    }
    if interaction.model_embedding is not None:
        record["model_emb"] = interaction.model_embedding
    if interaction.encoder is not None:
        record["encoder"] = interaction.encoder
    if interaction.task is not None:
        record["task"] = interaction.task
    return record


def write_gmt_jsonl(path: str | Path, interactions: Iterable[Interaction]) -> Path:
    """Write interactions as GMTRouter JSONL (one line each, UTF-8); returns the path.

    ``read_gmt_jsonl(write_gmt_jsonl(p, xs)) == xs``, and rewriting a file read from this
    writer gives the same bytes. The parent folder is created if needed.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8", newline="\n") as handle:
        for interaction in interactions:
            handle.write(json.dumps(gmt_record(interaction), ensure_ascii=False) + "\n")
    return path


# --- PersonalizedRouter CSV ------------------------------------------------------------------

_CSV_REQUIRED = ("query", "llm", "effect")
_CSV_OPTIONAL = (
    "query_embedding",
    "task_description_embedding",
    "cost",
    "performance_preference",
    "best_llm",
    "user_id",
    "task",
    "task_name",
    "",  # the unnamed index column pandas writes
)
_VECTOR_SPLIT = re.compile(r"[,\s]+")


def _vector(text: str, *, path: Path, line: int, field: str) -> list[float] | None:
    """A vector string: ``[0.1, 0.2]``, ``[0.1 0.2]`` (numpy's print) or ``0.1,0.2``."""
    body = text.strip().strip("[]()").strip()
    if not body:
        return None
    try:
        values = [float(v) for v in _VECTOR_SPLIT.split(body) if v]
    except ValueError:
        raise DataFormatError(
            f"expected a vector of numbers, got {text!r:.60}", path=path, line=line, field=field
        ) from None
    if not all(math.isfinite(v) for v in values):
        raise DataFormatError("expected finite numbers", path=path, line=line, field=field)
    return values


def _csv_number(
    text: str | None, *, path: Path, line: int, field: str, low: float, high: float
) -> float | None:
    if text is None or not text.strip():
        return None
    try:
        value = float(text)
    except ValueError:
        raise DataFormatError(
            f"expected a number, got {text!r:.40}", path=path, line=line, field=field
        ) from None
    if not (math.isfinite(value) and low <= value <= high):
        raise DataFormatError(
            f"expected a number in [{low:g}, {high:g}], got {text!r:.40}",
            path=path,
            line=line,
            field=field,
        )
    return value


def read_personalized_csv(
    path: str | Path,
    *,
    user_num: int | None = None,
    rating: Literal["auto", "effect", "utility"] = "auto",
    extra: ExtraFields = "error",
) -> list[Interaction]:
    """Read PersonalizedRouter's CSV: one `Interaction` per (user, query, LLM) row.

    Users come from a ``user_id`` column where there is one; else, as in PersonalizedRouter,
    the rows are ``user_num`` equal user-major blocks (user 0's rows first), and the users are
    named ``"0"``, ``"1"``, .... The question id is `question_id_of` the query.

    Args:
        path: The ``.csv`` file.
        user_num: Number of users, for a file without a ``user_id`` column.
        rating: How the 0..5 rating is made: ``"effect"`` is ``5 * effect``; ``"utility"``
            is ``5 * (pref * effect + (1 - pref) * (1 - cost))``, the user's trade-off as
            PersonalizedRouter scores it (``performance_preference`` and ``cost`` in [0, 1]
            needed on every row); ``"auto"`` uses the utility where a row has both.
        extra: ``"error"`` (default) rejects unknown columns, listing them; ``"ignore"``
            skips them.

    Raises:
        DataFormatError: naming the file, line and column of malformed input.
    """
    path = Path(path)
    if not path.is_file():
        raise DataFormatError("interactions file not found", path=path)
    with path.open(newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        header = list(reader.fieldnames or [])
        missing = [c for c in _CSV_REQUIRED if c not in header]
        if missing:
            raise DataFormatError(
                f"missing column(s): {', '.join(missing)} (header: {', '.join(header)})",
                path=path,
                line=1,
                field=missing[0],
            )
        unknown = [c for c in header if c not in _CSV_REQUIRED + _CSV_OPTIONAL]
        if unknown and extra == "error":
            raise DataFormatError(
                f"unknown column(s): {', '.join(unknown)}", path=path, line=1, field=unknown[0]
            )
        has_users = "user_id" in header
        if not has_users and (user_num is None or user_num < 1):
            raise DataFormatError(
                "no user_id column: pass user_num (the file holds user-major blocks of rows)",
                path=path,
                line=1,
                field="user_id",
            )
        rows = [(reader.line_num, row) for row in reader]
    if not rows:
        raise DataFormatError("no rows", path=path)
    if not has_users and len(rows) % user_num:  # type: ignore[operator]
        raise DataFormatError(
            f"{len(rows)} rows do not split into {user_num} equal user blocks",
            path=path,
            field="user_id",
        )
    block = len(rows) // (user_num or 1)
    interactions = []
    for position, (line, row) in enumerate(rows):
        if None in row:  # more cells than header columns
            raise DataFormatError("more cells than columns", path=path, line=line)
        text = {c: row.get(c) or "" for c in _CSV_REQUIRED}
        for column in ("query", "llm"):
            if not text[column].strip():
                raise DataFormatError("missing value", path=path, line=line, field=column)
        effect = _csv_number(text["effect"], path=path, line=line, field="effect", low=0, high=1)
        if effect is None:
            raise DataFormatError("missing value", path=path, line=line, field="effect")
        pref = _csv_number(
            row.get("performance_preference"),
            path=path,
            line=line,
            field="performance_preference",
            low=0,
            high=1,
        )
        cost = _csv_number(row.get("cost"), path=path, line=line, field="cost", low=0, high=1)
        use_utility = rating == "utility" or (
            rating == "auto" and pref is not None and cost is not None
        )
        if use_utility:
            if pref is None or cost is None:
                field = "performance_preference" if pref is None else "cost"
                raise DataFormatError(
                    "missing value (rating='utility')", path=path, line=line, field=field
                )
            value = 5.0 * (pref * effect + (1.0 - pref) * (1.0 - cost))
        else:
            value = 5.0 * effect
        user = (row.get("user_id") or "").strip() if has_users else str(position // block)
        if not user:
            raise DataFormatError("missing value", path=path, line=line, field="user_id")
        task = (row.get("task") or row.get("task_name") or "").strip() or None
        query = text["query"]
        interactions.append(
            Interaction(
                user_id=user,
                model=text["llm"].strip(),
                question_id=question_id_of(query, task),
                query=query,
                rating=min(5.0, max(0.0, value)),
                embedding=_vector(
                    row.get("query_embedding") or "",
                    path=path,
                    line=line,
                    field="query_embedding",
                ),
                task=task,
            )
        )
    return interactions
