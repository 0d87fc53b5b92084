"""The feedback store's schema: its two tables, the records they read back as, and the engine.

`FeedbackStore` (`langchain_llmrouter.personal.feedback`) is the API; this module holds what it
is built on: the SQLAlchemy Core tables ``decisions`` and ``feedback``, the `DecisionRecord` and
`FeedbackRecord` rows, the argument checks, and `create_engine`, which sets SQLite up for
concurrent writers (WAL, busy timeout, ``BEGIN IMMEDIATE`` on request).
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import URL, Connection, Engine
from sqlalchemy.exc import OperationalError
from sqlalchemy.pool import StaticPool

from langchain_llmrouter.errors import InvalidOptionError, LLMRouterError
from langchain_llmrouter.personal.interactions import Interaction

DEFAULT_URL = "sqlite:///llmrouter-feedback.db"
"""The default store: a SQLite file in the working directory."""

IMMEDIATE = "llmrouter_begin_immediate"
"""Execution option that makes the SQLite ``begin`` hook take the write lock up front."""

metadata = sa.MetaData()

decisions_table = sa.Table(
    "decisions",
    metadata,
    sa.Column("id", sa.String(255), primary_key=True),
    sa.Column("user_id", sa.String(255), nullable=True, index=True),
    sa.Column("query", sa.Text, nullable=False),
    sa.Column("model", sa.String(255), nullable=False),
    sa.Column("router", sa.String(255), nullable=False),
    sa.Column("task", sa.String(255), nullable=True),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
)

feedback_table = sa.Table(
    "feedback",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("decision_id", sa.String(255), nullable=True, index=True),
    sa.Column("user_id", sa.String(255), nullable=False),
    sa.Column("model", sa.String(255), nullable=False),
    sa.Column("query", sa.Text, nullable=False),
    sa.Column("question_id", sa.String(255), nullable=False),
    sa.Column("turn", sa.Integer, nullable=False, default=1),
    sa.Column("task", sa.String(255), nullable=True),
    sa.Column("response", sa.Text, nullable=True),
    sa.Column("rating", sa.Float, nullable=False),
    sa.Column("score", sa.Float, nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Index("ix_feedback_user_id_id", "user_id", "id"),
    # AUTOINCREMENT: SQLite never reuses an id, even the largest one after a delete.
    sqlite_autoincrement=True,
)


class UnknownDecisionError(LLMRouterError, KeyError):
    """Feedback names a decision (run id) that the store has no record of."""

    def __init__(self, decision_id: str) -> None:
        self.decision_id = decision_id
        super().__init__(
            f"unknown decision {decision_id!r}: no routing decision was recorded under this "
            "id (record_decision must run before feedback on it, against the same database)"
        )

    def __str__(self) -> str:  # KeyError would otherwise quote the whole message
        return str(self.args[0])


@dataclass(frozen=True, slots=True)
class DecisionRecord:
    """One routing decision: which candidate answered which query, for whom.

    Attributes:
        id: The decision's id (the LangChain run id or the response id).
        user_id: The user it was routed for, if known.
        query: The query that was routed.
        model: The candidate that answered.
        router: The router that chose it.
        task: The query's task, where known.
        created_at: When it was recorded (UTC).
    """

    id: str
    user_id: str | None
    query: str
    model: str
    router: str
    task: str | None
    created_at: datetime


@dataclass(frozen=True, slots=True)
class FeedbackRecord:
    """One stored rating.

    Attributes:
        id: Autoincrement id; increases with every write, so it serves as a cursor.
        decision_id: The decision it rates, or None for an imported `Interaction`.
        user_id: Who rated.
        model: The candidate that answered.
        query: What the user asked.
        question_id: `question_id_of` the query and task (or the imported interaction's).
        turn: 1-based turn of the conversation.
        task: The query's task, where known.
        response: The answer, where stored.
        rating: The rating on the 0..5 scale (``5 * score``).
        score: The rating on the 0..1 scale.
        created_at: When it was stored (UTC).
    """

    id: int
    decision_id: str | None
    user_id: str
    model: str
    query: str
    question_id: str
    turn: int
    task: str | None
    response: str | None
    rating: float
    score: float
    created_at: datetime

    def to_interaction(self) -> Interaction:
        """This rating as an `Interaction` (no embeddings: a featuriser computes them)."""
        return Interaction(
            user_id=self.user_id,
            model=self.model,
            question_id=self.question_id,
            turn=self.turn,
            query=self.query,
            response=self.response,
            rating=self.rating,
            task=self.task,
        )


def utc(value: datetime) -> datetime:
    """A timestamp read back from the database, as an aware UTC datetime."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def decision_record(row: sa.Row[Any]) -> DecisionRecord:
    m = row._mapping
    return DecisionRecord(
        id=m["id"],
        user_id=m["user_id"],
        query=m["query"],
        model=m["model"],
        router=m["router"],
        task=m["task"],
        created_at=utc(m["created_at"]),
    )


def feedback_record(row: sa.Row[Any]) -> FeedbackRecord:
    m = row._mapping
    return FeedbackRecord(
        id=int(m["id"]),
        decision_id=m["decision_id"],
        user_id=m["user_id"],
        model=m["model"],
        query=m["query"],
        question_id=m["question_id"],
        turn=int(m["turn"]),
        task=m["task"],
        response=m["response"],
        rating=float(m["rating"]),
        score=float(m["score"]),
        created_at=utc(m["created_at"]),
    )


def check_score(score: object) -> float:
    if isinstance(score, numbers.Real):
        value = float(score)
        if math.isfinite(value) and 0.0 <= value <= 1.0:
            return value
    raise InvalidOptionError(
        f"score must be a finite number in [0, 1] (thumbs up = 1.0, down = 0.0), got {score!r}"
    )


def check_name(what: str, value: object) -> str:
    if not isinstance(value, str) or not value:
        raise InvalidOptionError(f"{what} must be a non-empty string, got {value!r}")
    return value


def is_locked(exc: OperationalError) -> bool:
    """Whether ``exc`` is SQLite's transient ``database is locked`` / ``busy``."""
    message = str(exc.orig).lower()
    return "locked" in message or "busy" in message


def as_url(url: str | Path | URL) -> URL:
    """A SQLAlchemy URL; a `Path` or a string without ``://`` is a SQLite file."""
    if isinstance(url, URL):
        return url
    if isinstance(url, Path) or "://" not in url:
        return URL.create("sqlite", database=str(Path(url).expanduser()))
    return sa.make_url(url)


def create_engine(url: URL, *, busy_timeout: float, echo: bool = False) -> Engine:
    """A SQLAlchemy engine for ``url``; on SQLite, set up for concurrent writers.

    SQLite connections get ``busy_timeout`` (seconds), WAL (files only), and SQLAlchemy's own
    ``BEGIN``, which becomes ``BEGIN IMMEDIATE`` (the write lock up front) on connections with
    the `IMMEDIATE` execution option. ``sqlite://`` is one shared in-memory connection
    (``StaticPool``); a SQLite file's folder is created.
    """
    sqlite = url.get_backend_name() == "sqlite"
    memory = sqlite and url.database in (None, "", ":memory:")
    kwargs: dict[str, Any] = {"echo": echo}
    if sqlite:
        kwargs["connect_args"] = {"check_same_thread": False, "timeout": busy_timeout}
        if memory:
            kwargs["poolclass"] = StaticPool
        elif url.database and not url.query.get("uri"):
            Path(url.database).expanduser().parent.mkdir(parents=True, exist_ok=True)
    engine = sa.create_engine(url, **kwargs)
    if sqlite:
        busy_ms = int(busy_timeout * 1000)

        @sa.event.listens_for(engine, "connect")
        def _on_connect(dbapi_connection: Any, _record: Any) -> None:
            # SQLAlchemy emits BEGIN itself (below): sqlite3's own would skip SELECTs and
            # could not take the write lock up front.
            dbapi_connection.isolation_level = None
            cursor = dbapi_connection.cursor()
            try:
                cursor.execute(f"PRAGMA busy_timeout = {busy_ms}")
                if not memory:
                    cursor.execute("PRAGMA journal_mode = WAL")
            finally:
                cursor.close()

        @sa.event.listens_for(engine, "begin")
        def _on_begin(conn: Connection) -> None:
            immediate = conn.get_execution_options().get(IMMEDIATE, False)
            conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")

    return engine
