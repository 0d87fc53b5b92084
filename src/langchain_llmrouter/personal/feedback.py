"""The feedback store: routing decisions and users' ratings of them, in one shared database.

`FeedbackStore` keeps two tables with SQLAlchemy Core: ``decisions`` (which candidate answered
which query, keyed by the LangChain run id) and ``feedback`` (append-only ratings, whose
autoincrement id is a cursor). SQLite by default (WAL, busy timeout, ``BEGIN IMMEDIATE``
writes retried with backoff while locked, so concurrent threads and processes lose
nothing); any SQLAlchemy URL by configuration. Stored feedback reads back as `Interaction`
records, for `PersonalRouter.observe` and ``llmrouter train``.
"""

from __future__ import annotations

import asyncio
import math
import os
import random
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Any, Self, TypeVar

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import URL, Connection, Engine
from sqlalchemy.exc import IntegrityError, OperationalError

from langchain_llmrouter.errors import InvalidOptionError
from langchain_llmrouter.personal.feedback_schema import (
    DEFAULT_URL,
    IMMEDIATE,
    DecisionRecord,
    FeedbackRecord,
    UnknownDecisionError,
    as_url,
    check_name,
    check_score,
    create_engine,
    decision_record,
    decisions_table,
    feedback_record,
    feedback_table,
    is_locked,
    metadata,
)
from langchain_llmrouter.personal.interactions import Interaction, question_id_of

__all__ = [
    "DEFAULT_URL",
    "DecisionRecord",
    "FeedbackRecord",
    "FeedbackStore",
    "UnknownDecisionError",
]

_T = TypeVar("_T")


class FeedbackStore:
    """Routing decisions and users' ratings, shared by every worker that opens the database.

    Writes (`record_decision`, `add_feedback`, `add_interaction`) are each one transaction;
    on SQLite they take the write lock up front (``BEGIN IMMEDIATE``), wait up to
    ``busy_timeout`` for it, and are retried with exponential backoff while the database is
    locked, up to ``retries`` times. Feedback is append-only: rating a decision twice
    stores both ratings (readers that want one per decision keep the last).

    The constructor parses the URL but does no I/O: the engine is created, a SQLite file's
    folder made and the tables created (``metadata.create_all``) on first use. A store is
    safe to share between threads; after a fork the child opens its own connections.

    ``sqlite://`` (or ``sqlite:///:memory:``) is an in-memory database private to this
    store: one connection (``StaticPool``) that the store's operations take in turn.

    On a server database (PostgreSQL, ...) concurrent writers may commit feedback ids out
    of order, so a reader that polls `feedback_since` should re-read a short window before
    its cursor; on SQLite writes are serialised and ids become visible in order.

    Example:
        >>> store = FeedbackStore("sqlite://")
        >>> store.record_decision("run-1", query="2+2?", model="small", router="knn", user_id="u1")
        True
        >>> store.add_feedback("run-1", 1.0).rating
        5.0
        >>> store.interactions("u1")[0].model
        'small'
    """

    def __init__(
        self,
        url: str | Path | URL = DEFAULT_URL,
        *,
        busy_timeout: float = 30.0,
        retries: int = 8,
        echo: bool = False,
    ) -> None:
        """Describe a store; nothing is opened until first use.

        Args:
            url: A SQLAlchemy URL (``sqlite:///feedback.db``, ``postgresql+psycopg://...``)
                or a path to a SQLite file.
            busy_timeout: Seconds a SQLite write waits for another writer's lock.
            retries: Times a write is retried while SQLite reports the database locked.
            echo: Log every SQL statement (SQLAlchemy's ``echo``).

        Raises:
            InvalidOptionError: ``busy_timeout`` or ``retries`` is negative.
            sqlalchemy.exc.ArgumentError: ``url`` is not a valid URL.
        """
        if not (math.isfinite(busy_timeout) and busy_timeout >= 0):
            raise InvalidOptionError(f"busy_timeout must be >= 0 seconds, got {busy_timeout!r}")
        if retries < 0:
            raise InvalidOptionError(f"retries must be >= 0, got {retries!r}")
        self.url = as_url(url)
        self.busy_timeout = busy_timeout
        self.retries = retries
        self.echo = echo
        self._sqlite = self.url.get_backend_name() == "sqlite"
        self._memory = self._sqlite and self.url.database in (None, "", ":memory:")
        self._engine: Engine | None = None
        self._pid = os.getpid()
        self._closed = False
        self._init_lock = threading.Lock()
        # An in-memory database is one shared connection: its users take turns.
        self._memory_lock = threading.RLock()

    def __repr__(self) -> str:
        return f"FeedbackStore({self.url.render_as_string(hide_password=True)!r})"

    # --- engine --------------------------------------------------------------------------

    def _get_engine(self) -> Engine:
        if self._closed:
            raise RuntimeError(f"{self!r} is closed")
        engine = self._engine
        if engine is not None and self._pid == os.getpid():
            return engine
        with self._init_lock:
            if self._closed:
                raise RuntimeError(f"{self!r} is closed")
            if self._engine is not None and self._pid != os.getpid():
                # A forked child must not use the parent's pooled connections.
                self._engine.dispose(close=False)
                self._pid = os.getpid()
            if self._engine is None:
                engine = create_engine(self.url, busy_timeout=self.busy_timeout, echo=self.echo)
                try:
                    self._retrying(engine, lambda conn: metadata.create_all(conn))
                except BaseException:
                    engine.dispose()
                    raise
                self._engine = engine
            return self._engine

    @contextmanager
    def _serialised(self) -> Iterator[None]:
        if self._memory:
            with self._memory_lock:
                yield
        else:
            yield

    def _retrying(self, engine: Engine, work: Callable[[Connection], _T]) -> _T:
        """Run ``work`` in one write transaction, retried with backoff while SQLite is locked."""
        delay = 0.05
        for attempt in range(self.retries + 1):
            try:
                with self._serialised(), engine.connect() as conn:
                    conn.execution_options(**{IMMEDIATE: True})
                    with conn.begin():
                        return work(conn)
            except OperationalError as exc:
                if not (self._sqlite and is_locked(exc)) or attempt == self.retries:
                    raise
            time.sleep(delay * (0.5 + random.random()))
            delay = min(delay * 2, 2.0)
        raise AssertionError("unreachable")  # pragma: no cover

    def _write(self, work: Callable[[Connection], _T]) -> _T:
        return self._retrying(self._get_engine(), work)

    def _read(self, work: Callable[[Connection], _T]) -> _T:
        engine = self._get_engine()
        with self._serialised(), engine.connect() as conn:
            return work(conn)

    def close(self) -> None:
        """Close the store's connections; using it afterwards raises `RuntimeError`."""
        with self._init_lock:
            self._closed = True
            if self._engine is not None:
                self._engine.dispose()
                self._engine = None

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    # --- writes --------------------------------------------------------------------------

    def record_decision(
        self,
        decision_id: str,
        *,
        query: str,
        model: str,
        router: str,
        user_id: str | None = None,
        task: str | None = None,
    ) -> bool:
        """Record which candidate answered ``query``, so feedback on ``decision_id`` can find it.

        Idempotent: recording an id that is already stored changes nothing (the first
        record wins).

        Args:
            decision_id: The LangChain run id (or response id) the user will rate.
            query: The routed query.
            model: The candidate that answered.
            router: The router's name.
            user_id: The user it was routed for, if known.
            task: The query's task, where known (part of the question id).

        Returns:
            True if the decision was stored now, False if the id was already there.

        Raises:
            InvalidOptionError: An id, model, router or user id is empty or not a string.
        """
        check_name("decision_id", decision_id)
        check_name("model", model)
        check_name("router", router)
        if user_id is not None:
            check_name("user_id", user_id)
        if not isinstance(query, str):
            raise InvalidOptionError(f"query must be a string, got {query!r:.60}")
        values = {
            "id": decision_id,
            "user_id": user_id,
            "query": query,
            "model": model,
            "router": router,
            "task": task,
            "created_at": datetime.now(UTC),
        }

        def work(conn: Connection) -> bool:
            dialect = conn.dialect.name
            if dialect in ("sqlite", "postgresql"):
                module: Any = sqlite if dialect == "sqlite" else postgresql
                statement = module.insert(decisions_table).values(values)
                return bool(conn.execute(statement.on_conflict_do_nothing()).rowcount)
            exists = conn.execute(
                sa.select(decisions_table.c.id).where(decisions_table.c.id == decision_id)
            ).first()
            if exists is not None:
                return False
            conn.execute(decisions_table.insert().values(values))
            return True

        try:
            return self._write(work)
        except IntegrityError:  # another writer inserted the same id in between
            if self.decision(decision_id) is None:
                raise
            return False

    def add_feedback(
        self, decision_id: str, score: float, *, user_id: str | None = None
    ) -> FeedbackRecord:
        """Store a user's rating of a recorded decision.

        Args:
            decision_id: The id given to `record_decision`.
            score: The rating in [0, 1] (thumbs up = 1.0, down = 0.0); stored as
                ``rating = 5 * score`` on the `Interaction` scale.
            user_id: Who rates; defaults to the decision's user. If both are set they must
                agree (a user rates only answers routed for them).

        Returns:
            The stored record.

        Raises:
            UnknownDecisionError: No decision is recorded under ``decision_id``.
            InvalidOptionError: ``score`` is not a finite number in [0, 1]; or no user id is
                known (none given, none recorded); or the given one is not the decision's.
        """
        value = check_score(score)
        check_name("decision_id", decision_id)
        if user_id is not None:
            check_name("user_id", user_id)

        def work(conn: Connection) -> FeedbackRecord:
            row = conn.execute(
                sa.select(decisions_table).where(decisions_table.c.id == decision_id)
            ).first()
            if row is None:
                raise UnknownDecisionError(decision_id)
            decision = decision_record(row)
            user = user_id if user_id is not None else decision.user_id
            if user is None:
                raise InvalidOptionError(
                    f"decision {decision_id!r} was recorded without a user: pass user_id="
                )
            if decision.user_id is not None and user != decision.user_id:
                raise InvalidOptionError(
                    f"decision {decision_id!r} was routed for user {decision.user_id!r}, "
                    f"not {user!r}"
                )
            return self._insert_feedback(
                conn,
                decision_id=decision_id,
                user_id=user,
                model=decision.model,
                query=decision.query,
                question_id=question_id_of(decision.query, decision.task),
                turn=1,
                task=decision.task,
                response=None,
                score=value,
            )

        return self._write(work)

    def add_interaction(self, interaction: Interaction) -> FeedbackRecord:
        """Store a rating that did not come from a recorded decision (e.g. imported data).

        Embeddings and the conversation history are not stored.

        Args:
            interaction: The rated interaction.

        Returns:
            The stored record (``decision_id`` None, ``score = rating / 5``).
        """
        if not isinstance(interaction, Interaction):
            raise InvalidOptionError(f"expected an Interaction, got {type(interaction).__name__}")

        def work(conn: Connection) -> FeedbackRecord:
            return self._insert_feedback(
                conn,
                decision_id=None,
                user_id=interaction.user_id,
                model=interaction.model,
                query=interaction.query,
                question_id=interaction.question_id,
                turn=interaction.turn,
                task=interaction.task,
                response=interaction.response,
                score=interaction.rating / 5.0,
            )

        return self._write(work)

    @staticmethod
    def _insert_feedback(
        conn: Connection,
        *,
        decision_id: str | None,
        user_id: str,
        model: str,
        query: str,
        question_id: str,
        turn: int,
        task: str | None,
        response: str | None,
        score: float,
    ) -> FeedbackRecord:
        values: dict[str, Any] = {
            "decision_id": decision_id,
            "user_id": user_id,
            "model": model,
            "query": query,
            "question_id": question_id,
            "turn": turn,
            "task": task,
            "response": response,
            "rating": 5.0 * score,
            "score": score,
            "created_at": datetime.now(UTC),
        }
        result = conn.execute(feedback_table.insert().values(values))
        key = result.inserted_primary_key
        if key is None or key[0] is None:  # pragma: no cover - every supported backend has it
            raise RuntimeError("the database did not return the new feedback id")
        return FeedbackRecord(id=int(key[0]), **values)

    # --- reads ---------------------------------------------------------------------------

    def decision(self, decision_id: str) -> DecisionRecord | None:
        """The decision recorded under ``decision_id``, or None."""
        row = self._read(
            lambda conn: conn.execute(
                sa.select(decisions_table).where(decisions_table.c.id == decision_id)
            ).first()
        )
        return None if row is None else decision_record(row)

    def feedback_since(
        self, user_id: str | None = None, after_id: int = 0, *, limit: int | None = None
    ) -> list[FeedbackRecord]:
        """Stored ratings with ids above ``after_id``, oldest first.

        Args:
            user_id: One user's ratings; None for everyone's.
            after_id: The cursor: the largest id already seen (0 for all).
            limit: At most this many records (the next page starts after the last id).
        """
        table = feedback_table
        statement = sa.select(table).where(table.c.id > after_id).order_by(table.c.id)
        if user_id is not None:
            statement = statement.where(table.c.user_id == user_id)
        if limit is not None:
            statement = statement.limit(limit)
        rows = self._read(lambda conn: conn.execute(statement).all())
        return [feedback_record(row) for row in rows]

    def interactions(
        self, user_id: str | None = None, after_id: int = 0, *, limit: int | None = None
    ) -> list[Interaction]:
        """`feedback_since` as `Interaction` records (for ``observe`` and training)."""
        return [r.to_interaction() for r in self.feedback_since(user_id, after_id, limit=limit)]

    def last_id(self, user_id: str | None = None) -> int:
        """The largest feedback id (of ``user_id``'s, or of all), 0 when there is none."""
        # ORDER BY id DESC LIMIT 1 reads one entry of the (user_id, id) index or the key.
        statement = sa.select(feedback_table.c.id).order_by(feedback_table.c.id.desc()).limit(1)
        if user_id is not None:
            statement = statement.where(feedback_table.c.user_id == user_id)
        return int(self._read(lambda conn: conn.execute(statement).scalar()) or 0)

    def users(self) -> list[str]:
        """The users with stored feedback, sorted."""
        statement = (
            sa.select(feedback_table.c.user_id).distinct().order_by(feedback_table.c.user_id)
        )
        return list(self._read(lambda conn: conn.execute(statement).scalars().all()))

    def count(self, user_id: str | None = None) -> int:
        """The number of stored ratings (of ``user_id``, or of all)."""
        statement = sa.select(sa.func.count()).select_from(feedback_table)
        if user_id is not None:
            statement = statement.where(feedback_table.c.user_id == user_id)
        return int(self._read(lambda conn: conn.execute(statement).scalar()) or 0)

    # --- async ---------------------------------------------------------------------------

    async def arecord_decision(
        self,
        decision_id: str,
        *,
        query: str,
        model: str,
        router: str,
        user_id: str | None = None,
        task: str | None = None,
    ) -> bool:
        """`record_decision` in a worker thread."""
        return await asyncio.to_thread(
            self.record_decision,
            decision_id,
            query=query,
            model=model,
            router=router,
            user_id=user_id,
            task=task,
        )

    async def aadd_feedback(
        self, decision_id: str, score: float, *, user_id: str | None = None
    ) -> FeedbackRecord:
        """`add_feedback` in a worker thread."""
        return await asyncio.to_thread(self.add_feedback, decision_id, score, user_id=user_id)

    async def aadd_interaction(self, interaction: Interaction) -> FeedbackRecord:
        """`add_interaction` in a worker thread."""
        return await asyncio.to_thread(self.add_interaction, interaction)

    async def adecision(self, decision_id: str) -> DecisionRecord | None:
        """`decision` in a worker thread."""
        return await asyncio.to_thread(self.decision, decision_id)

    async def afeedback_since(
        self, user_id: str | None = None, after_id: int = 0, *, limit: int | None = None
    ) -> list[FeedbackRecord]:
        """`feedback_since` in a worker thread."""
        return await asyncio.to_thread(self.feedback_since, user_id, after_id, limit=limit)

    async def ainteractions(
        self, user_id: str | None = None, after_id: int = 0, *, limit: int | None = None
    ) -> list[Interaction]:
        """`interactions` in a worker thread."""
        return await asyncio.to_thread(self.interactions, user_id, after_id, limit=limit)

    async def alast_id(self, user_id: str | None = None) -> int:
        """`last_id` in a worker thread."""
        return await asyncio.to_thread(self.last_id, user_id)
