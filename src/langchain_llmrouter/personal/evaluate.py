"""Measuring personalised routers: pairwise accuracy and AUC, per-user utility, the benchmark data.

`preference_pairs` finds the same-question pairs of a set of interactions (ties skipped);
`pairwise_metrics` scores a router on them, with each user's state or the population's.
`utility` asks the planted users of a simulation how much they like each router's choices.
`simulated_benchmark` builds the benchmark of ``benchmarks/personalised.py``: one population of
simulated users rating answers to routerdc_train queries (training) and, separately, to
routerdc_test queries (testing), with the same users' tastes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from langchain_llmrouter.personal.interactions import Interaction
from langchain_llmrouter.personal.simulate import (
    Strategy,
    UserPopulation,
    make_population,
    simulate_users,
    task_clusters,
)

if TYPE_CHECKING:
    from langchain_llmrouter.candidates import LLMCandidate
    from langchain_llmrouter.data import RoutingDataset
    from langchain_llmrouter.routers.base import BaseRouter


def preference_pairs(interactions: Sequence[Interaction]) -> list[tuple[int, int]]:
    """(winner, loser) positions of every pair of interactions by the same user on the same
    question and turn whose ratings differ (ties are skipped)."""
    groups: dict[tuple[str, str, int], list[int]] = {}
    for k, x in enumerate(interactions):
        groups.setdefault((x.user_id, x.question_id, x.turn), []).append(k)
    pairs = []
    for members in groups.values():
        for a_pos, a in enumerate(members):
            for b in members[a_pos + 1 :]:
                ra, rb = interactions[a].rating, interactions[b].rating
                if ra != rb:
                    pairs.append((a, b) if ra > rb else (b, a))
    return pairs


def interaction_scores(
    router: BaseRouter,
    interactions: Sequence[Interaction],
    *,
    personalised: bool = True,
    query_embeddings: np.ndarray | None = None,
) -> np.ndarray:
    """The router's predicted preference for each interaction's candidate on its query: for
    its user where ``personalised`` (a personalised router that knows the user), else the
    population's."""
    queries = [x.query for x in interactions]
    if query_embeddings is None and router.uses_embeddings:
        unique = sorted(set(queries))
        vectors = router.embed_queries(unique)
        position = {q: k for k, q in enumerate(unique)}
        query_embeddings = vectors[[position[q] for q in queries]]
    columns = {name: j for j, name in enumerate(router.candidates_)}
    out = np.empty(len(interactions))
    by_user: dict[str | None, list[int]] = {}
    for k, x in enumerate(interactions):
        by_user.setdefault(x.user_id if personalised else None, []).append(k)
    for user, ks in by_user.items():
        embedded = None if query_embeddings is None else query_embeddings[ks]
        texts = [queries[k] for k in ks]
        if user is not None and getattr(router, "personal", False):
            scores = router.predict_quality(  # type: ignore[call-arg]
                texts, query_embeddings=embedded, user_id=user
            )
        else:
            scores = router.predict_quality(texts, query_embeddings=embedded)
        for row, k in enumerate(ks):
            out[k] = scores[row, columns[interactions[k].model]]
    return out


def population_dataset(
    interactions: Sequence[Interaction], candidates: Sequence[LLMCandidate]
) -> RoutingDataset:
    """The interactions as routing data for a non-personalised router: one row per distinct
    query, each candidate's mean rating over every user who rated it (÷ 5; NaN where none)."""
    from langchain_llmrouter.data import RoutingDataset

    names = [c.name for c in candidates]
    column = {n: j for j, n in enumerate(names)}
    rows: dict[str, int] = {}
    for x in interactions:
        rows.setdefault(x.query, len(rows))
    total = np.zeros((len(rows), len(names)))
    count = np.zeros_like(total)
    for x in interactions:
        total[rows[x.query], column[x.model]] += x.rating / 5.0
        count[rows[x.query], column[x.model]] += 1
    with np.errstate(invalid="ignore"):
        performance = np.where(count > 0, total / np.maximum(count, 1), np.nan)
    return RoutingDataset(
        queries=list(rows),
        candidates=names,
        performance=performance,
        cost=np.full_like(performance, np.nan),
        candidate_specs={c.name: c for c in candidates},
    )


@dataclass(frozen=True)
class PairMetrics:
    """Pairwise accuracy (ties in the prediction count half) and AUC (winners' scores labelled
    1, losers' 0, pooled, as GMTRouter's objective) over ``n_pairs`` same-question pairs."""

    accuracy: float
    auc: float
    n_pairs: int


def pairwise_metrics(
    router: BaseRouter,
    interactions: Sequence[Interaction],
    *,
    personalised: bool = True,
    query_embeddings: np.ndarray | None = None,
) -> PairMetrics:
    """`PairMetrics` of ``router`` on the preference pairs of ``interactions``."""
    from sklearn.metrics import roc_auc_score

    pairs = preference_pairs(interactions)
    if not pairs:
        raise ValueError("no preference pairs: every same-question pair is a tie")
    scores = interaction_scores(
        router, interactions, personalised=personalised, query_embeddings=query_embeddings
    )
    win = scores[[a for a, _ in pairs]]
    lose = scores[[b for _, b in pairs]]
    accuracy = float(np.mean((win > lose) + 0.5 * (win == lose)))
    labels = np.r_[np.ones(len(pairs)), np.zeros(len(pairs))]
    auc = float(roc_auc_score(labels, np.r_[win, lose]))
    return PairMetrics(accuracy=accuracy, auc=auc, n_pairs=len(pairs))


def utility(
    router: BaseRouter,
    population: UserPopulation,
    users: Sequence[str],
    queries: Sequence[int],
    texts: Sequence[str],
    *,
    personalised: bool = True,
    query_embeddings: np.ndarray | None = None,
) -> np.ndarray:
    """Each (user, query)'s noise-free rating (0..5) of the candidate ``router`` chooses.

    Args:
        router: Any router over the population's candidates.
        population: The planted users (`make_population`).
        users: User id of each row.
        queries: Row index into the population's dataset of each row.
        texts: Query text of each row.
        personalised: Route with each row's ``user_id`` (else for nobody).
        query_embeddings: The rows' query embeddings, if already computed.
    """
    if query_embeddings is None and router.uses_embeddings:
        query_embeddings = router.embed_queries(list(texts))
    index = {u: k for k, u in enumerate(population.user_ids)}
    columns = {name: j for j, name in enumerate(population.candidates)}
    rows: dict[str | None, list[int]] = {}
    for r, user in enumerate(users):
        rows.setdefault(user if personalised else None, []).append(r)
    out = np.empty(len(users))
    for asker, rs in rows.items():
        embedded = None if query_embeddings is None else query_embeddings[rs]
        decisions = router.route_batch(
            [texts[r] for r in rs], query_embeddings=embedded, user_id=asker
        )
        for r, decision in zip(rs, decisions, strict=True):
            ratings = population.expected_rating(index[users[r]], queries[r])
            out[r] = ratings[columns[decision.model]]
    return out


def oracle_utility(
    population: UserPopulation, users: Sequence[str], queries: Sequence[int]
) -> np.ndarray:
    """Each (user, query)'s best noise-free rating over the candidates with a score."""
    index = {u: k for k, u in enumerate(population.user_ids)}
    return np.array(
        [
            np.nanmax(population.expected_rating(index[u], q))
            for u, q in zip(users, queries, strict=True)
        ]
    )


@dataclass
class SimulatedBenchmark:
    """Simulated users over real per-model scores, with users and queries split.

    Attributes:
        dataset: The routerdc_train rows followed by the routerdc_test rows.
        population: The planted users (over ``dataset``).
        candidates: The candidates with scores (prices and descriptions).
        train: Every user's ratings of answers to routerdc_train queries.
        test: The same users' ratings of answers to routerdc_test queries.
        n_train_queries: Rows of ``dataset`` from routerdc_train (the rest are the test's).
    """

    dataset: RoutingDataset
    population: UserPopulation
    candidates: list[LLMCandidate]
    train: list[Interaction]
    test: list[Interaction]
    n_train_queries: int

    def rows(
        self, interactions: Sequence[Interaction] | Sequence[str], *, test: bool = True
    ) -> list[int]:
        """Each interaction's (or query text's) row in ``dataset``, on the test side or the
        training side."""
        lookup: dict[str, int] = {}
        span = (
            range(self.n_train_queries, len(self.dataset)) if test else range(self.n_train_queries)
        )
        for i in span:
            lookup.setdefault(self.dataset.queries[i], i)
        return [lookup[x if isinstance(x, str) else x.query] for x in interactions]


def _concat(first: RoutingDataset, second: RoutingDataset) -> RoutingDataset:
    from langchain_llmrouter.data import RoutingDataset

    return RoutingDataset(
        queries=[*first.queries, *second.queries],
        candidates=list(first.candidates),
        performance=np.vstack([first.performance, second.performance]),
        cost=np.vstack([first.cost, second.cost]),
        task_names=[*first.task_names, *second.task_names],
        source=first.source,
        candidate_specs=dict(first.candidate_specs),
    )


def _only(dataset: RoutingDataset, rows: np.ndarray) -> RoutingDataset:
    """The dataset with every score outside ``rows`` hidden (NaN), so no user is asked them."""
    from langchain_llmrouter.data import RoutingDataset

    keep = np.zeros(len(dataset), dtype=bool)
    keep[rows] = True
    return RoutingDataset(
        queries=list(dataset.queries),
        candidates=list(dataset.candidates),
        performance=np.where(keep[:, None], dataset.performance, np.nan),
        cost=np.array(dataset.cost),
        task_names=list(dataset.task_names),
        source=dataset.source,
        candidate_specs=dict(dataset.candidate_specs),
    )


def simulated_benchmark(
    data_dir: str | Path,
    *,
    strategy: Strategy,
    n_users: int = 200,
    seed: int = 0,
    test_interactions: int = 30,
    **options: Any,
) -> SimulatedBenchmark:
    """Simulated users over routerdc_train (training) and routerdc_test (testing).

    The population (each user's preference or tastes, and the task clusters) is drawn once
    over both files, so a user's tastes are the same on either side; training users rate
    10–60 answers to training queries, and ``test_interactions`` answers to test queries.

    Args:
        data_dir: A folder with ``default_llm.json``, ``routerdc_train.json`` and
            ``routerdc_test.json`` (``../shared/data/llmrouter_example``).
        strategy: ``"cost_quality"`` or ``"hidden_taste"``.
        n_users: Number of users.
        seed: Seed of the users and of their questions.
        test_interactions: Rated answers per user on the test side.
        **options: Other `SimulationConfig` fields.
    """
    from langchain_llmrouter.candidates import CandidatePool
    from langchain_llmrouter.data import RoutingDataset

    data_dir = Path(data_dir)
    pool = CandidatePool.from_json(data_dir / "default_llm.json")
    train = RoutingDataset.from_file(data_dir / "routerdc_train.json", candidates=pool)
    test = RoutingDataset.from_file(data_dir / "routerdc_test.json", candidates=pool)
    both = _concat(train, test)
    n_clusters = int(options.get("n_clusters", 8))
    clusters = task_clusters(both, n_clusters=n_clusters, seed=seed)
    common: dict[str, Any] = {
        "strategy": strategy,
        "n_users": n_users,
        "seed": seed,
        "clusters": clusters,
    }
    population = make_population(both, **common, **options)
    train_rows = np.arange(len(train))
    test_rows = np.arange(len(train), len(both))
    train_side = simulate_users(_only(both, train_rows), **common, **options)
    test_side = simulate_users(
        _only(both, test_rows),
        **common,
        min_interactions=test_interactions,
        max_interactions=test_interactions,
        **options,
    )
    return SimulatedBenchmark(
        dataset=both,
        population=population,
        candidates=both.candidate_info(),
        train=train_side,
        test=test_side,
        n_train_queries=len(train),
    )


@dataclass
class OnlineFeedback:
    """A new user's session: ``n_feedback`` rated answers, then ``n_after`` more queries.

    Attributes:
        user_id: The user (unknown to the router before the session).
        rows: Dataset rows of the queries asked after the feedback.
        chosen: The candidate that answered each of those queries.
        utility: The user's noise-free rating (0..5) of each of those answers.
        ratings: The ratings the user gave during the feedback part (0..5).
    """

    user_id: str
    rows: list[int]
    chosen: list[str]
    utility: np.ndarray
    ratings: list[float]


def online_session(
    llm: Any,
    population: UserPopulation,
    user_id: str,
    rows: Sequence[int],
    texts: Sequence[str],
    *,
    n_feedback: int = 10,
    rng: np.random.Generator,
) -> OnlineFeedback:
    """Play a simulated user through a `RouterChatModel`: ask the first ``n_feedback`` queries,
    rate each answer as the user would (noisy, rounded) with ``llm.feedback``, then ask the
    rest and record how much the user likes each answer.

    Args:
        llm: A `RouterChatModel` whose candidates answer (a local server in tests).
        population: The planted users.
        user_id: One of the population's users.
        rows: Dataset rows of the queries, in the order asked.
        texts: The queries' texts.
        n_feedback: Answers rated before the measured part.
        rng: Noise of the user's ratings.
    """
    user = population.user_ids.index(user_id)
    column = {name: j for j, name in enumerate(population.candidates)}
    ratings: list[float] = []
    for row, text in zip(rows[:n_feedback], texts[:n_feedback], strict=True):
        answer = llm.invoke(text, user_id=user_id)
        model = answer.response_metadata["routing"]["model"]
        rating = population.rate(user, row, np.array([column[model]]), rng)[0]
        llm.feedback(answer, rating / 5.0, user_id=user_id)
        ratings.append(rating)
    chosen: list[str] = []
    gained = []
    for row, text in zip(rows[n_feedback:], texts[n_feedback:], strict=True):
        answer = llm.invoke(text, user_id=user_id)
        model = answer.response_metadata["routing"]["model"]
        chosen.append(model)
        gained.append(population.expected_rating(user, row)[column[model]])
    return OnlineFeedback(
        user_id=user_id,
        rows=list(rows[n_feedback:]),
        chosen=chosen,
        utility=np.array(gained),
        ratings=ratings,
    )
