"""Stage 3's in-flight journal: the paid calls a killed run would otherwise forget.

Beside each routing file, ``<stem>.inflight.jsonl`` gets a ``start`` line (request id, pair,
worst-case cost, start time) just before a call is sent and an ``end`` line once its row or
failure is written; both are flushed at once, so they survive a kill (not a power cut: there
is no fsync, as for the routing file). On the next start, a call started and never ended was
in flight at the kill: its worst case is added to a ``lost`` tally that ``--max-cost`` counts
as spent in every later run. The file is then compacted to the tally (and, on a close that an
error interrupts, the calls still open), so it never grows across resumes. A torn last line
is dropped with a warning: its call was never sent.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

from langchain_llmrouter.pipeline._io import dumps_row, iter_jsonl, write_atomic

PairKey = tuple[str, str]


def journal_path(routing_path: Path) -> Path:
    """The in-flight journal beside a routing file."""
    return routing_path.with_name(f"{routing_path.stem}.inflight.jsonl")


class InflightJournal:
    """The calls one split has in flight, and the tally of those that earlier kills lost."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.lost_calls = 0
        """Calls in flight at a kill, over all earlier runs (kept in the tally)."""
        self.lost_cost = 0.0
        """Their worst-case dollars."""
        self.lost_runs = 0
        """Interrupted runs that lost at least one call."""
        self.found: list[dict[str, Any]] = []
        """The ``start`` records found open at `open` and judged lost (this resume's)."""
        self.open_calls: dict[str, dict[str, Any]] = {}
        """This run's started calls not yet ended, by request id."""
        self._handle: IO[str] | None = None
        self._lost_here = False

    @property
    def found_cost(self) -> float:
        """Worst-case dollars of `found`."""
        return sum(float(r.get("worst_case_cost") or 0.0) for r in self.found)

    def open(self, finished: Callable[[dict[str, Any]], bool]) -> InflightJournal:
        """Read the journal, count its open calls as lost unless ``finished(start record)``
        says their result was written, compact it, and open it for appending."""
        stale: dict[str, dict[str, Any]] = {}
        if self.path.exists():
            size = self.path.stat().st_size
            for _, record in iter_jsonl(self.path, repair_tail=True):
                event = record.get("event")
                if event == "start":
                    stale[str(record.get("id"))] = record
                elif event == "end":
                    stale.pop(str(record.get("id")), None)
                elif event == "lost":
                    self.lost_calls = int(record.get("calls") or 0)
                    self.lost_cost = float(record.get("worst_case_cost") or 0.0)
                    self.lost_runs = int(record.get("runs") or 0)
            if self.path.stat().st_size < size:
                warnings.warn(
                    f"{self.path}: dropped a torn last line (a call killed before it was sent)",
                    UserWarning,
                    stacklevel=3,
                )
        self.found = [r for r in stale.values() if not finished(r)]
        if self.found:
            self.lost_calls += len(self.found)
            self.lost_cost += self.found_cost
            self.lost_runs += 1
        self._compact()
        self._handle = self.path.open("a", encoding="utf-8")
        return self

    def start(self, request_id: str, pair: PairKey, worst_case_cost: float) -> None:
        """Record a call about to be sent (flushed before it returns)."""
        assert self._handle is not None, "open() the journal first"
        record = {
            "event": "start",
            "id": request_id,
            "query_key": pair[0],
            "model_name": pair[1],
            "worst_case_cost": worst_case_cost,
            "started": round(time.time(), 3),
        }
        self._handle.write(dumps_row(record))
        self._handle.flush()
        self.open_calls[request_id] = record

    def end(self, request_id: str) -> None:
        """Record that a started call's result is written (no-op if it never started)."""
        if self.open_calls.pop(request_id, None) is None or self._handle is None:
            return
        self._handle.write(dumps_row({"event": "end", "id": request_id}))
        self._handle.flush()

    def lose(self, request_id: str) -> float:
        """Count a started call as lost now (its worker died with it in flight): its worst
        case joins the tally, which is written (flushed) before the call's ``end`` line, so a
        later kill keeps it. Returns that worst case (0.0 if the call never started)."""
        start = self.open_calls.get(request_id)
        if start is None or self._handle is None:
            return 0.0
        cost = float(start.get("worst_case_cost") or 0.0)
        self.lost_calls += 1
        self.lost_cost += cost
        if not self._lost_here:  # this run counts once among the runs that lost calls
            self.lost_runs += 1
            self._lost_here = True
        tally = {
            "event": "lost",
            "calls": self.lost_calls,
            "worst_case_cost": self.lost_cost,
            "runs": self.lost_runs,
        }
        self._handle.write(dumps_row(tally))
        self._handle.flush()
        self.end(request_id)
        return cost

    def close(self) -> None:
        """Compact to the tally and the calls still open, or remove the file if both are
        empty."""
        if self._handle is None:
            return
        self._handle.close()
        self._handle = None
        self._compact()

    def _compact(self) -> None:
        lines = [dumps_row(r) for r in self.open_calls.values()]
        if self.lost_calls:
            tally = {
                "event": "lost",
                "calls": self.lost_calls,
                "worst_case_cost": self.lost_cost,
                "runs": self.lost_runs,
            }
            lines.insert(0, dumps_row(tally))
        if lines:
            write_atomic(self.path, "".join(lines))
        else:
            self.path.unlink(missing_ok=True)
