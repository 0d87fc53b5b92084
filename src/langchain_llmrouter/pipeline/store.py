"""Where stage 3's results live, and how a run picks up where the last one stopped.

Each split has two append-only JSONL files:

* the routing data (``data_path.routing_data_<split>``): one finished, scored row per
  (query, candidate) pair — the file routers train on;
* ``<routing file stem>.failures.jsonl``: one record per failed attempt, with the error.
  Failed pairs are not in the routing file, so the next run calls them again. A failure
  in *scoring* keeps the paid response, so the next run re-scores it without calling.

Rows are flushed one line at a time as they arrive, so a killed run loses only the calls in
flight (journalled: `langchain_llmrouter.pipeline.journal`); a line it cut short is dropped.
"""

from __future__ import annotations

import hashlib
import json
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import IO, Any

from langchain_llmrouter.pipeline._io import dumps_row, iter_jsonl, write_atomic
from langchain_llmrouter.pipeline.journal import InflightJournal, journal_path

PairKey = tuple[str, str]
"""(query key, candidate name)."""


def query_key(row: Mapping[str, Any]) -> str:
    """A stable id of a query: a hash of its task name, text and ground truth."""
    payload = json.dumps(
        [row.get("task_name"), row.get("query"), row.get("ground_truth")],
        ensure_ascii=False,
        sort_keys=True,
        default=str,
    )
    return hashlib.sha1(payload.encode("utf-8")).hexdigest()[:20]


def pair_key(row: Mapping[str, Any]) -> PairKey:
    """The (query, candidate) pair a routing or failure row belongs to."""
    return query_key(row), str(row.get("model_name"))


def failures_path(routing_path: Path) -> Path:
    """The failure log beside a routing file."""
    return routing_path.with_name(f"{routing_path.stem}.failures.jsonl")


class SplitStore:
    """The routing file and failure log of one split."""

    def __init__(self, routing_path: Path) -> None:
        self.path = routing_path
        self.failures_path = failures_path(routing_path)
        self.done: dict[PairKey, dict[str, Any]] = {}
        """Finished rows by pair, as read at `open` and added since."""
        self.unscored: dict[PairKey, dict[str, Any]] = {}
        """Pairs whose paid response failed to score, with that response."""
        self.spent = 0.0
        """Dollars of the finished rows plus the paid-but-unscored responses."""
        self.inflight = InflightJournal(journal_path(routing_path))
        """Calls sent and not yet written, and those earlier kills lost."""
        self._failed_ids: set[str] = set()
        self._rows: IO[str] | None = None
        self._failures: IO[str] | None = None

    def open(self) -> SplitStore:
        """Read what earlier runs wrote and open both files for appending."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if self.path.exists():
            for _, row in iter_jsonl(self.path, repair_tail=True):
                self.done.setdefault(pair_key(row), row)
        if self.failures_path.exists():
            for _, record in iter_jsonl(self.failures_path, repair_tail=True):
                if record.get("request_id") is not None:
                    self._failed_ids.add(str(record["request_id"]))
                key = pair_key(record)
                if record.get("stage") == "score" and record.get("response") is not None:
                    self.unscored[key] = record
                else:
                    self.unscored.pop(key, None)
        for key in self.done:
            self.unscored.pop(key, None)
        self._recount()
        self.inflight.open(self._written)
        self._failed_ids.clear()
        self._rows = self.path.open("a", encoding="utf-8")
        self._failures = self.failures_path.open("a", encoding="utf-8")
        return self

    def _written(self, start: Mapping[str, Any]) -> bool:
        """Whether a journalled call's result reached the routing file or failure log (the
        kill came between writing it and ending its journal entry)."""
        pair = (str(start.get("query_key")), str(start.get("model_name")))
        return pair in self.done or str(start.get("id")) in self._failed_ids

    def close(self) -> None:
        """Close both files and compact the journal."""
        for handle in (self._rows, self._failures):
            if handle is not None:
                handle.close()
        self._rows = self._failures = None
        self.inflight.close()

    def add(self, row: dict[str, Any]) -> None:
        """Append a finished row (flushed at once)."""
        assert self._rows is not None, "open() the store first"
        self._rows.write(dumps_row(row))
        self._rows.flush()
        key = pair_key(row)
        self.spent -= _cost(self.unscored.pop(key, None)) + _cost(self.done.get(key))
        self.done[key] = row
        self.spent += _cost(row)

    def add_failure(self, record: dict[str, Any]) -> None:
        """Append a failure record (flushed at once)."""
        assert self._failures is not None, "open() the store first"
        self._failures.write(dumps_row(record))
        self._failures.flush()
        if record.get("stage") == "score" and record.get("response") is not None:
            key = pair_key(record)
            self.spent += _cost(record) - _cost(self.unscored.get(key))
            self.unscored[key] = record

    def _recount(self) -> None:
        self.spent = sum(_cost(r) for r in [*self.done.values(), *self.unscored.values()])

    def rewrite(self, rows: list[dict[str, Any]]) -> None:
        """Replace the routing file's rows (used to fix embedding ids); atomic."""
        reopen = self._rows is not None
        if self._rows is not None:
            self._rows.close()
            self._rows = None
        write_atomic(self.path, "".join(dumps_row(r) for r in rows))
        self.done = {pair_key(r): r for r in rows}
        self._recount()
        if reopen:
            self._rows = self.path.open("a", encoding="utf-8")

    def sync_embedding_ids(self, ids: Mapping[str, int]) -> None:
        """Give every row the embedding id of its query in the current query files.

        The ids number the unique queries of the query files, so they change when the query
        files do; rows of queries no longer there keep their data with ``embedding_id`` null.
        """
        rows = list(self.done.values())
        orphans = 0
        changed = False
        for row in rows:
            new = ids.get(query_key(row))
            orphans += new is None
            if row.get("embedding_id") != new:
                row["embedding_id"] = new
                changed = True
        if orphans:
            warnings.warn(
                f"{self.path}: {orphans} rows are for queries no longer in the query files; "
                "they are kept, with embedding_id null",
                UserWarning,
                stacklevel=2,
            )
        if changed:
            self.rewrite(rows)


def _cost(row: Mapping[str, Any] | None) -> float:
    return float((row or {}).get("cost") or 0.0)
