"""`FeedbackStore`: decisions and ratings in a shared database, read back as interactions."""

from __future__ import annotations

import math
import multiprocessing
import sqlite3
import subprocess
import sys
import threading
from datetime import UTC
from pathlib import Path

import pytest
from sqlalchemy.exc import OperationalError

from langchain_llmrouter.errors import InvalidOptionError, LLMRouterError
from langchain_llmrouter.personal.feedback import (
    FeedbackRecord,
    FeedbackStore,
    UnknownDecisionError,
)
from langchain_llmrouter.personal.interactions import Interaction, question_id_of


@pytest.fixture
def store(tmp_path: Path):
    with FeedbackStore(tmp_path / "feedback.db") as s:
        yield s


def _decide(store: FeedbackStore, run_id: str, user: str | None = "u1", **kw) -> None:
    store.record_decision(
        run_id, query=kw.get("query", f"q of {run_id}"), model="small", router="knn", user_id=user
    )


# --- round trip ----------------------------------------------------------------------------


def test_round_trip_decision_feedback_interactions(store: FeedbackStore) -> None:
    assert store.record_decision(
        "run-1", query="What is 2+2?", model="gpt-small", router="knn", user_id="alice", task="math"
    )
    decision = store.decision("run-1")
    assert decision is not None
    assert (decision.user_id, decision.model, decision.router, decision.task) == (
        "alice",
        "gpt-small",
        "knn",
        "math",
    )
    assert decision.created_at.tzinfo is UTC

    record = store.add_feedback("run-1", 0.8)
    assert isinstance(record, FeedbackRecord)
    assert (record.id, record.decision_id, record.user_id) == (1, "run-1", "alice")
    assert record.rating == pytest.approx(4.0) and record.score == pytest.approx(0.8)
    assert store.feedback_since(None) == [record]  # what is read is what was returned

    (interaction,) = store.interactions("alice")
    assert interaction == Interaction(
        user_id="alice",
        model="gpt-small",
        question_id=question_id_of("What is 2+2?", "math"),
        query="What is 2+2?",
        rating=4.0,
        task="math",
    )
    assert record.to_interaction() == interaction
    assert store.count() == 1 and store.users() == ["alice"]
    assert store.decision("nope") is None


def test_thumbs_up_and_down_are_five_and_zero(store: FeedbackStore) -> None:
    _decide(store, "a")
    _decide(store, "b")
    assert store.add_feedback("a", 1.0).rating == 5.0
    assert store.add_feedback("b", 0).rating == 0.0
    assert store.add_feedback("a", True).rating == 5.0  # a bool is a thumb too
    assert [r.decision_id for r in store.feedback_since("u1")] == ["a", "b", "a"]


def test_add_interaction_stores_an_imported_rating(store: FeedbackStore) -> None:
    given = Interaction(
        user_id="bob", model="big", question_id="q7", turn=3, query="hi", response="hello", rating=2
    )
    record = store.add_interaction(given)
    assert record.decision_id is None and record.score == pytest.approx(0.4)
    assert store.interactions("bob") == [given]


# --- errors --------------------------------------------------------------------------------


def test_unknown_decision_error_names_the_id(store: FeedbackStore) -> None:
    with pytest.raises(UnknownDecisionError, match="run-404") as info:
        store.add_feedback("run-404", 1.0, user_id="u1")
    assert isinstance(info.value, KeyError) and isinstance(info.value, LLMRouterError)
    assert info.value.decision_id == "run-404"
    assert str(info.value).startswith("unknown decision 'run-404'")
    assert store.count() == 0


@pytest.mark.parametrize("score", [-0.01, 1.01, math.nan, math.inf, -math.inf, "1", None, 5])
def test_score_out_of_range_or_not_a_number_is_refused(store: FeedbackStore, score) -> None:
    _decide(store, "a")
    with pytest.raises(InvalidOptionError, match="score must be a finite number in \\[0, 1\\]"):
        store.add_feedback("a", score)
    assert store.count() == 0


def test_user_id_comes_from_the_decision_or_is_given(store: FeedbackStore) -> None:
    _decide(store, "mine", user="u1")
    _decide(store, "anon", user=None)
    assert store.add_feedback("mine", 1.0).user_id == "u1"
    assert store.add_feedback("mine", 1.0, user_id="u1").user_id == "u1"
    assert store.add_feedback("anon", 0.5, user_id="u2").user_id == "u2"
    with pytest.raises(InvalidOptionError, match="'anon' was recorded without a user"):
        store.add_feedback("anon", 0.5)
    with pytest.raises(InvalidOptionError, match="routed for user 'u1', not 'u2'"):
        store.add_feedback("mine", 0.5, user_id="u2")
    assert store.count() == 3


def test_bad_names_are_refused(store: FeedbackStore) -> None:
    with pytest.raises(InvalidOptionError, match="decision_id"):
        store.record_decision("", query="q", model="m", router="r")
    with pytest.raises(InvalidOptionError, match="model"):
        store.record_decision("a", query="q", model="", router="r")
    with pytest.raises(InvalidOptionError, match="user_id"):
        store.add_feedback("a", 1.0, user_id="")


def test_record_decision_is_idempotent(store: FeedbackStore) -> None:
    assert store.record_decision("a", query="first", model="m1", router="r", user_id="u1")
    assert not store.record_decision("a", query="second", model="m2", router="r", user_id="u2")
    decision = store.decision("a")
    assert decision is not None and (decision.query, decision.model) == ("first", "m1")


# --- cursors -------------------------------------------------------------------------------


def test_last_id_and_feedback_since_are_per_user_cursors(store: FeedbackStore) -> None:
    assert store.last_id() == 0 and store.last_id("u1") == 0 and store.feedback_since("u1") == []
    for i, user in enumerate(["u1", "u2", "u1", "u3", "u1"]):
        _decide(store, f"r{i}", user=user)
        store.add_feedback(f"r{i}", 0.5)
    assert store.last_id() == 5
    assert (store.last_id("u1"), store.last_id("u2"), store.last_id("u3")) == (5, 2, 4)
    assert store.last_id("nobody") == 0

    assert [r.id for r in store.feedback_since("u1")] == [1, 3, 5]
    assert [r.id for r in store.feedback_since("u1", after_id=1)] == [3, 5]
    assert [r.id for r in store.feedback_since("u1", after_id=3, limit=1)] == [5]
    assert store.feedback_since("u1", after_id=5) == []
    assert [r.id for r in store.feedback_since(None, after_id=2)] == [3, 4, 5]
    assert [i.user_id for i in store.interactions(None, after_id=3)] == ["u3", "u1"]

    # a worker catching up: everything after its cursor, then the cursor moves
    cursor = store.last_id("u2")
    _decide(store, "r5", user="u2")
    store.add_feedback("r5", 1.0)
    assert [r.decision_id for r in store.feedback_since("u2", cursor)] == ["r5"]
    assert store.count() == 6 and store.count("u1") == 3
    assert store.users() == ["u1", "u2", "u3"]


# --- URLs, files, in-memory ----------------------------------------------------------------


def test_url_and_bare_path_open_the_same_file(tmp_path: Path) -> None:
    path = tmp_path / "nested" / "dir" / "fb.db"
    with FeedbackStore(f"sqlite:///{path}") as by_url:
        _decide(by_url, "a")
        by_url.add_feedback("a", 1.0)
    assert path.is_file()  # the folder was made
    with FeedbackStore(str(path)) as by_str, FeedbackStore(path) as by_path:
        assert by_str.count() == by_path.count() == 1
    assert sqlite3.connect(path).execute("PRAGMA journal_mode").fetchone() == ("wal",)


def test_constructor_does_no_io_until_first_use(tmp_path: Path) -> None:
    path = tmp_path / "lazy" / "fb.db"
    store = FeedbackStore(path)
    assert not path.parent.exists()
    assert store.count() == 0 and path.is_file()
    store.close()
    with pytest.raises(RuntimeError, match="closed"):
        store.count()


def test_a_second_store_on_the_same_file_sees_the_first_ones_writes(tmp_path: Path) -> None:
    path = tmp_path / "shared.db"
    with FeedbackStore(path) as first, FeedbackStore(path) as second:
        assert second.last_id() == 0
        _decide(first, "a")
        assert second.decision("a") is not None
        first.add_feedback("a", 0.25)
        assert [r.rating for r in second.feedback_since("u1")] == [1.25]
        second.add_feedback("a", 1.0)  # and the other way round
        assert first.last_id("u1") == 2


@pytest.mark.parametrize("url", ["sqlite://", "sqlite:///:memory:"])
def test_in_memory_store_works_across_threads_and_is_private(url: str) -> None:
    with FeedbackStore(url) as store, FeedbackStore(url) as other:

        def write(t: int) -> None:
            for i in range(20):
                store.add_interaction(_interaction(f"t{t}", i))

        threads = [threading.Thread(target=write, args=(t,)) for t in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert store.count() == 80
        assert other.count() == 0  # each in-memory store is its own database


def test_repr_hides_the_password() -> None:
    store = FeedbackStore("postgresql://me:secret@db.example/feedback")
    assert "secret" not in repr(store) and "db.example" in repr(store)  # no connection made


def test_importing_the_package_does_not_import_sqlalchemy() -> None:
    code = "import sys, langchain_llmrouter; print('sqlalchemy' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


# --- concurrency ---------------------------------------------------------------------------


def _interaction(writer: str, i: int) -> Interaction:
    return Interaction(
        user_id=f"user-{writer}", model="m", question_id=f"{writer}:{i}", query=f"{i}", rating=3
    )


def _decide_and_rate(store: FeedbackStore, writer: str, i: int) -> None:
    run_id = f"{writer}:{i}"
    store.record_decision(run_id, query=f"{i}", model="m", router="r", user_id=f"user-{writer}")
    store.add_feedback(run_id, (i % 5) / 4)


def _assert_all_present(store: FeedbackStore, writers: list[str], n: int) -> None:
    records = store.feedback_since(None)
    assert store.count() == len(records) == len(writers) * n
    assert [r.id for r in records] == sorted({r.id for r in records})  # unique and ordered
    seen = {r.decision_id or r.question_id for r in records}
    assert seen == {f"{w}:{i}" for w in writers for i in range(n)}


def test_concurrent_threads_lose_nothing(store: FeedbackStore) -> None:
    writers, n = [f"t{t}" for t in range(8)], 50
    start, errors = threading.Barrier(len(writers)), []

    def work(writer: str) -> None:
        try:
            start.wait()
            for i in range(n):
                _decide_and_rate(store, writer, i)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(w,)) for w in writers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    _assert_all_present(store, writers, n)


def _process_writer(path: str, writer: str, n: int, go) -> None:
    go.wait(30)
    with FeedbackStore(path) as store:
        for i in range(n):
            _decide_and_rate(store, writer, i)


def test_concurrent_processes_lose_nothing(tmp_path: Path) -> None:
    path = str(tmp_path / "shared.db")
    writers, n = [f"p{p}" for p in range(4)], 50
    context = multiprocessing.get_context("spawn")
    go = context.Event()
    processes = [
        context.Process(target=_process_writer, args=(path, w, n, go), daemon=True) for w in writers
    ]
    for process in processes:
        process.start()
    go.set()
    for process in processes:
        process.join(120)
    assert [p.exitcode for p in processes] == [0] * len(writers)
    with FeedbackStore(path) as store:
        _assert_all_present(store, writers, n)


def test_a_locked_database_is_retried_with_backoff(tmp_path: Path) -> None:
    path = tmp_path / "locked.db"
    with FeedbackStore(path, busy_timeout=0.05) as store:
        _decide(store, "a")
        holder = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        holder.execute("BEGIN IMMEDIATE")  # another writer holds the lock ...
        releaser = threading.Timer(0.4, holder.execute, args=("COMMIT",))
        releaser.start()  # ... for 0.4 s, longer than the busy timeout
        try:
            assert store.add_feedback("a", 1.0).id == 1
        finally:
            releaser.join()
            holder.close()

    with FeedbackStore(path, busy_timeout=0.05, retries=0) as impatient:
        holder = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        holder.execute("BEGIN IMMEDIATE")
        try:
            with pytest.raises(OperationalError, match="locked"):
                impatient.add_feedback("a", 1.0)
        finally:
            holder.execute("COMMIT")
            holder.close()
        assert impatient.count() == 1  # the refused write left nothing behind


# --- async ---------------------------------------------------------------------------------


async def test_async_methods(store: FeedbackStore) -> None:
    assert await store.arecord_decision("a", query="q", model="m", router="r", user_id="u1")
    assert (await store.adecision("a")) is not None
    record = await store.aadd_feedback("a", 0.5)
    imported = await store.aadd_interaction(_interaction("x", 0))
    assert await store.alast_id() == imported.id == record.id + 1
    assert [r.id for r in await store.afeedback_since("u1")] == [record.id]
    assert [i.user_id for i in await store.ainteractions(None)] == ["u1", "user-x"]
