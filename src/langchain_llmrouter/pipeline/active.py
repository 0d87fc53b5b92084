"""Stage 3's active mode: routing data at a fraction of the calls.

Instead of calling every (training query, candidate) pair, the active mode (``calls.strategy:
active``) calls them in rounds. A seed round calls a random share of the budget; then each
round fits a quick router on the pairs known so far (Bayesian ridge or kNN on the query
embeddings, ``calls.active_model``) and calls the pairs whose score is worth most to routing:
the expected improvement in the quality of the query's chosen candidate if that pair's score
were known (the knowledge gradient of one Gaussian draw: large when the pair is uncertain and
close to the query's best, zero when another candidate already scored 1). ``active_model:
design`` instead never looks at a score: it calls the pairs that most lower the candidates'
predictive variance over all queries (`langchain_llmrouter.pipeline.design`). With
``budget_dollars`` the value is per worst-case dollar. The test split is still called in full,
since it is what the trained router is judged on.

Resumable like the rest of stage 3: every pair in the routing file counts as known (and
against ``budget_pairs``), and each round's pairs are appended to ``<routing
stem>.active.jsonl`` before they are called, so a killed run first finishes its last round and
then chooses exactly what an uninterrupted run would have chosen (given the same scores).

Three layers: `langchain_llmrouter.pipeline.pair_value` values each unknown pair (or
`langchain_llmrouter.pipeline.design` picks them);
`choose_pairs` picks a round from those values on matrices (embeddings, known scores, costs)
and knows nothing of files; `ActivePlan` ties it to a split's rows, candidates and
`SplitStore`, and is what stage 3 (or another engine) asks for the next batch:
``plan.next_pairs()`` until it returns nothing.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import IO, Any

import numpy as np

from langchain_llmrouter.candidates import CandidatePool
from langchain_llmrouter.pipeline._io import dumps_row, iter_jsonl
from langchain_llmrouter.pipeline.calling import worst_case_cost
from langchain_llmrouter.pipeline.config import PipelineConfig
from langchain_llmrouter.pipeline.design import design_pairs
from langchain_llmrouter.pipeline.pair_value import PAIR_VALUES, reduce_features
from langchain_llmrouter.pipeline.store import PairKey, SplitStore, query_key
from langchain_llmrouter.pipeline.tasks import render_messages

Pair = tuple[int, int]
"""(query index, candidate index) in the matrices."""

CHOOSERS = ("design", *PAIR_VALUES)
"""``calls.active_model`` values: the label-free design (`design_pairs`), then the
value-of-information choosers (`PAIR_VALUES`)."""


def choose_pairs(
    features: np.ndarray,
    known: np.ndarray,
    cost: np.ndarray,
    *,
    size: int,
    pairs_left: int,
    dollars_left: float | None,
    model: str = "ridge",
    exclude: np.ndarray | None = None,
) -> list[Pair]:
    """The next round: the most valuable unknown pairs, at most one per query while there are
    enough queries, within the pair and dollar budgets left (``design``: the pairs that most
    lower the routers' uncertainty, never looking at a score; `design_pairs`).

    Args:
        features: Query features, shape (n, d) (`reduce_features`).
        known: Known scores, shape (n, m), NaN where unknown.
        cost: Each pair's worst-case dollars, shape (n, m) (used with ``dollars_left``).
        size: Pairs in the round (at most).
        pairs_left: Pairs the budget still allows.
        dollars_left: Dollars the budget still allows (None: no dollar budget; the value is
            then per pair, otherwise per dollar).
        model: ``design``, ``ridge`` or ``knn`` (`CHOOSERS`).
        exclude: Pairs not to choose (already chosen, or failed), boolean (n, m).

    Returns:
        The chosen (query, candidate) index pairs, best first; deterministic.
    """
    if model not in CHOOSERS:
        raise ValueError(f"unknown active model {model!r}; valid: {', '.join(CHOOSERS)}")
    limit = min(size, pairs_left)
    if limit <= 0 or not np.isnan(known).any():
        return []
    if model == "design":
        taken = ~np.isnan(known) if exclude is None else ~np.isnan(known) | exclude
        return design_pairs(features, taken, cost, size=limit, dollars_left=dollars_left)
    value = PAIR_VALUES[model](features, known)
    if exclude is not None:
        value = np.where(exclude, -np.inf, value)
    if dollars_left is not None:
        value = np.where(np.isfinite(value), value / np.maximum(cost, 1e-12), value)
    flat = value.ravel()
    ties = np.random.default_rng(0).permutation(flat.size)  # equal values: a fixed shuffle
    order = np.lexsort((ties, -flat))
    order = order[np.isfinite(flat[order])]
    chosen: dict[Pair, None] = {}
    seen: set[int] = set()
    spend = 0.0
    m = known.shape[1]
    for spread in (True, False):  # first one pair per query, then fill the round
        for index in order:
            if len(chosen) >= limit:
                return list(chosen)
            i, j = divmod(int(index), m)
            if (spread and i in seen) or (i, j) in chosen:
                continue
            if dollars_left is not None and spend + cost[i, j] > dollars_left:
                continue
            chosen[(i, j)] = None
            seen.add(i)
            spend += float(cost[i, j])
    return list(chosen)


def seed_pairs(
    n: int,
    m: int,
    count: int,
    *,
    seed: int,
    exclude: np.ndarray,
    cost: np.ndarray | None = None,
    dollars_left: float | None = None,
) -> list[Pair]:
    """``count`` random unknown pairs (a permutation from ``seed``), within the dollars left."""
    order = np.random.default_rng(seed).permutation(n * m)
    chosen: list[Pair] = []
    spend = 0.0
    for index in order:
        if len(chosen) >= count:
            break
        i, j = divmod(int(index), m)
        if exclude[i, j]:
            continue
        if dollars_left is not None and cost is not None:
            if spend + cost[i, j] > dollars_left:
                continue
            spend += float(cost[i, j])
        chosen.append((i, j))
    return chosen


def next_round(
    features: np.ndarray,
    known: np.ndarray,
    cost: np.ndarray,
    pending: np.ndarray,
    *,
    budget_pairs: int,
    budget_dollars: float | None,
    seed_count: int,
    seed: int,
    batch_size: int,
    model: str = "ridge",
) -> list[Pair]:
    """The next round of pairs given what is known: random ones until ``seed_count`` pairs
    are known or chosen, then `choose_pairs`; empty when a budget is spent or no pair is left.
    Deterministic given its arguments, so any engine can call it between rounds.

    Args:
        features: Query features, shape (n, d) (`reduce_features`).
        known: Known scores, shape (n, m), NaN where unknown.
        cost: Recorded dollars of the known pairs, worst case of the others, shape (n, m).
        pending: Pairs chosen earlier and not known yet (they count against the budgets).
        budget_pairs: Pairs to hold at most, known and pending together.
        budget_dollars: Dollars at most, recorded plus pending worst case (None: no bound).
        seed_count: Pairs of the random seed round.
        seed: Seed of the random round.
        batch_size: Pairs per chosen round.
        model: The chooser (`CHOOSERS`).
    """
    is_known = ~np.isnan(known)
    taken = is_known | pending
    pairs_left = budget_pairs - int(taken.sum())
    dollars_left = None
    if budget_dollars is not None:
        dollars_left = budget_dollars - float(np.where(taken, cost, 0.0).sum())
        if dollars_left <= 0:
            return []
    if pairs_left <= 0:
        return []
    if int(taken.sum()) < seed_count or not is_known.any():
        count = min(pairs_left, max(seed_count - int(taken.sum()), 1))
        n, m = known.shape
        return seed_pairs(
            n, m, count, seed=seed, exclude=taken, cost=cost, dollars_left=dollars_left
        )
    return choose_pairs(
        features,
        known,
        cost,
        size=batch_size,
        pairs_left=pairs_left,
        dollars_left=dollars_left,
        model=model,
        exclude=taken,
    )


# --- stage 3's view -----------------------------------------------------------------------------


def plan_path(routing_path: Path) -> Path:
    """The round log beside a routing file."""
    return routing_path.with_name(f"{routing_path.stem}.active.jsonl")


class ActivePlan:
    """The training split's pairs in active mode: which to call next, given the store.

    Args:
        config: The pipeline config (``calls`` holds the budget and knobs).
        rows: The split's query rows in scope.
        models: The candidates in scope.
        store: The split's open store; its ``done`` rows are the known pairs.
        pool: The candidates (prices for the worst-case cost of a call).
        features: Query embeddings, shape (len(rows), d); default: the config's embedder.
    """

    def __init__(
        self,
        config: PipelineConfig,
        rows: Sequence[Mapping[str, Any]],
        models: Sequence[str],
        store: SplitStore,
        pool: CandidatePool,
        *,
        features: np.ndarray | None = None,
    ) -> None:
        calls = config.calls
        unique = {query_key(r): r for r in reversed(rows)}  # a repeated query: its first row
        self.keys = list(dict.fromkeys(query_key(r) for r in rows))
        self.rows = [unique[k] for k in self.keys]
        self.models, self.store = list(models), store
        self.total = len(self.rows) * len(self.models)
        budget = calls.budget_pairs
        if isinstance(budget, float):
            budget = max(1, round(budget * self.total))
        self.budget_pairs = min(budget if budget is not None else self.total, self.total)
        self.budget_dollars = calls.budget_dollars
        self.seed_share, self.batch_size = calls.active_seed_share, calls.active_batch_size
        self.model, self.seed = calls.active_model, config.queries.random_seed
        self.cost = np.array(
            [
                [
                    worst_case_cost(pool[m], render_messages(dict(r)), calls.max_tokens)
                    for m in models
                ]
                for r in self.rows
            ]
        ).reshape(len(self.rows), len(self.models))
        if features is None:
            from langchain_llmrouter.embeddings import embed_texts

            texts = [str(r.get("query", "")) for r in self.rows]
            features = embed_texts(texts, config.build_embeddings()) if texts else np.zeros((0, 1))
        self.features = reduce_features(features)
        self.path = plan_path(store.path)
        self.rounds: list[list[PairKey]] = []
        if self.path.exists():
            self.rounds = [
                [(str(q), str(m)) for q, m in record["pairs"]]
                for _, record in iter_jsonl(self.path, repair_tail=True)
            ]
        self.target = self.budget_pairs
        """Pairs in scope for the run's summary (set by stage 3)."""
        self.handed_out: set[PairKey] = set()
        """Pairs given to the engine by this run (one not in the store afterwards failed)."""
        self._log: IO[str] | None = None
        self._pairs: dict[PairKey, Pair] | None = None

    # -- state read from the store

    def _index(self) -> dict[PairKey, Pair]:
        if self._pairs is None:
            self._pairs = {
                (k, m): (i, j) for i, k in enumerate(self.keys) for j, m in enumerate(self.models)
            }
        return self._pairs

    def known(self) -> tuple[np.ndarray, np.ndarray]:
        """Known scores (NaN where unknown) and each pair's cost: recorded if known, worst
        case otherwise."""
        scores = np.full(self.cost.shape, np.nan)
        cost = self.cost.copy()
        for (key, model), (i, j) in self._index().items():
            row = self.store.done.get((key, model))
            if row is not None and row.get("performance") is not None:
                scores[i, j] = float(row["performance"])
                cost[i, j] = float(row.get("cost") or 0.0)
        return scores, cost

    def planned(self) -> set[PairKey]:
        """Every pair a round has chosen (called or not)."""
        return {pair for round_ in self.rounds for pair in round_}

    def pending(self) -> list[PairKey]:
        """Chosen pairs not in the store yet, in round order."""
        out: list[PairKey] = []
        seen: set[PairKey] = set()
        for round_ in self.rounds:
            for pair in round_:
                if pair not in self.store.done and pair not in seen:
                    seen.add(pair)
                    out.append(pair)
        return out

    def held(self) -> int:
        """Pairs known or chosen (what counts against ``budget_pairs``)."""
        index = self._index()
        return len({p for p in [*self.store.done, *self.planned()] if p in index})

    # -- the next batch

    def next_pairs(self) -> list[tuple[dict[str, Any], str]]:
        """The next pairs to call as (query row, candidate): first the chosen pairs not in
        the store (a killed run's last round) that this run has not tried, else a new round
        (logged before it is returned); empty when the budget is spent or nothing is left."""
        index = self._index()
        retry = [p for p in self.pending() if p in index and p not in self.handed_out]
        batch = retry or self._new_round(index)
        self.handed_out.update(batch)
        return [(dict(self.rows[index[p][0]]), p[1]) for p in batch]

    def _new_round(self, index: Mapping[PairKey, Pair]) -> list[PairKey]:
        scores, cost = self.known()
        pending = np.zeros(scores.shape, dtype=bool)
        for pair in self.pending():
            if pair in index:
                pending[index[pair]] = True
        chosen = next_round(
            self.features,
            scores,
            cost,
            pending,
            budget_pairs=self.budget_pairs,
            budget_dollars=self.budget_dollars,
            seed_count=self._seed_target(),
            seed=self.seed,
            batch_size=self.batch_size,
            model=self.model,
        )
        keys = [(self.keys[i], self.models[j]) for i, j in chosen]
        if keys:
            self._append_round(keys)
        return keys

    def _seed_target(self) -> int:
        if self.budget_dollars is not None and self.cost.size:
            affordable = int(self.budget_dollars / max(float(self.cost.mean()), 1e-12))
            target = min(self.budget_pairs, affordable)
        else:
            target = self.budget_pairs
        return max(1, round(self.seed_share * target))

    def _append_round(self, keys: list[PairKey]) -> None:
        if self._log is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._log = self.path.open("a", encoding="utf-8")
        record = {"round": len(self.rounds), "pairs": [list(k) for k in keys]}
        self._log.write(dumps_row(record))
        self._log.flush()
        self.rounds.append(keys)

    def close(self) -> None:
        """Close the round log."""
        if self._log is not None:
            self._log.close()
            self._log = None

    def describe(self) -> str:
        """One line for the report: pairs held out of all, and the budget."""
        held = len([p for p in self.store.done if p in self._index()])
        share = held / self.total if self.total else 0.0
        budget = f"{self.budget_pairs} pairs"
        if self.budget_dollars is not None:
            budget += f", ${self.budget_dollars:.4f}"
        return (
            f"active: {held}/{self.total} training pairs called ({share:.1%}; budget {budget}; "
            f"{len(self.rounds)} rounds, log {self.path.name})"
        )
