"""Simulated users over real per-model scores, and the new-user split.

Real per-user preference data cannot be downloaded here, so, as GMTRouter and
PersonalizedRouter do in their papers, users are simulated over a routing dataset's real
quality and cost matrices. Two strategies:

* ``"cost_quality"``: user *u* has a cost–quality preference ``p_u`` (uniform in
  ``preference_range``). Their utility of candidate *m* on query *q* is
  ``p_u · quality − (1 − p_u) · normalised cost``, where the cost is normalised over the query's
  candidates (the cheapest 0, the dearest 1). Shifted by ``1 − p_u`` it lies in [0, 1]; the
  rating is 5 × that, plus Gaussian noise (``noise``), clipped to 0..5 and rounded to
  ``rating_step``. A user with ``p`` near 1 rates by quality alone, one near 0 by price alone.
* ``"hidden_taste"``: the population rates an answer ``3 + quality_spread · (2·quality − 1)``
  (1.5 for a wrong answer and 4.5 for a right one by default). Each user has hidden tastes that
  shift this: one offset per task cluster (``N(0, task_taste²)``) and one per candidate
  (``N(0, model_taste²)``); with noise ``N(0, noise²)`` the sum is rounded to an integer 1..5.

Each user asks ``min_interactions``..``max_interactions`` rated answers' worth of distinct
queries; each query is answered by ``models_per_query`` candidates (at least two where the
user has room), every answer rated: the same-question pairs (ties included) that pairwise
training needs. `make_population` rebuilds the planted users (the same seed gives the same
users whatever the interaction options), for oracle evaluation. `split_users` keeps a share
of users out of training and reveals the first *k* interactions of each.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from langchain_llmrouter.errors import DataFormatError, InvalidOptionError
from langchain_llmrouter.personal.interactions import (
    Interaction,
    question_id_of,
    write_gmt_jsonl,
)

if TYPE_CHECKING:
    from langchain_llmrouter.data import RoutingDataset

Strategy = Literal["cost_quality", "hidden_taste"]
_DEFAULT_NOISE = {"cost_quality": 0.25, "hidden_taste": 0.5}


class SimulationConfig(BaseModel):
    """Every knob of the simulation; unknown names are an error."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    strategy: Strategy
    """``"cost_quality"`` (a preference ``p`` between quality and cost per user) or
    ``"hidden_taste"`` (hidden per-cluster and per-candidate offsets per user)."""
    n_users: int = Field(default=200, ge=1)
    """Number of users."""
    min_interactions: int = Field(default=10, ge=1)
    """Fewest rated answers per user."""
    max_interactions: int = Field(default=60, ge=1)
    """Most rated answers per user."""
    models_per_query: tuple[int, int] = (2, 3)
    """Least and most candidates whose answers a user rates per query."""
    seed: int = 0
    """Seed of everything random: the same seed and options give the same interactions."""
    noise: float | None = Field(default=None, ge=0.0)
    """Standard deviation of the per-rating noise (None: 0.25 for cost_quality, 0.5 for
    hidden_taste)."""
    preference_range: tuple[float, float] = (0.0, 1.0)
    """cost_quality: users' ``p`` is uniform in this range (within [0, 1])."""
    rating_step: float = Field(default=0.5, gt=0.0, le=5.0)
    """cost_quality: ratings are rounded to multiples of this."""
    quality_spread: float = Field(default=1.5, ge=0.0)
    """hidden_taste: the population's rating is ``3 ± quality_spread`` for a right / wrong
    answer."""
    task_taste: float = Field(default=0.75, ge=0.0)
    """hidden_taste: standard deviation of a user's offset per task cluster."""
    model_taste: float = Field(default=1.0, ge=0.0)
    """hidden_taste: standard deviation of a user's offset per candidate."""
    n_clusters: int = Field(default=8, ge=1)
    """hidden_taste: task clusters when the data has no task names (k-means over the
    candidates' score profiles)."""

    @model_validator(mode="after")
    def _check_ranges(self) -> SimulationConfig:
        if self.min_interactions > self.max_interactions:
            raise ValueError("min_interactions must not exceed max_interactions")
        low, high = self.models_per_query
        if not 1 <= low <= high:
            raise ValueError("models_per_query must be (low, high) with 1 <= low <= high")
        p_low, p_high = self.preference_range
        if not 0.0 <= p_low <= p_high <= 1.0:
            raise ValueError("preference_range must be (low, high) within [0, 1]")
        return self

    @property
    def noise_sd(self) -> float:
        """The noise in use: ``noise``, or the strategy's default."""
        return _DEFAULT_NOISE[self.strategy] if self.noise is None else self.noise


def _config(**options: Any) -> SimulationConfig:
    try:
        return SimulationConfig(**options)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise InvalidOptionError(
            f"simulation option {where or '(config)'}: {first['msg']}".replace("Value error, ", "")
        ) from None


@dataclass
class UserPopulation:
    """The planted users of a simulation and their noise-free ratings.

    Attributes:
        config: The simulation's options.
        candidates: Candidate names (the dataset's columns).
        user_ids: One id per user (``user000``, ...).
        clusters: Task cluster of each query of the dataset.
        preference: (n_users,) each user's ``p`` (cost_quality; empty for hidden_taste).
        task_taste: (n_users, n_clusters) offsets per cluster (hidden_taste; else zeros).
        cluster_names: Column names of ``task_taste``.
        model_taste: (n_users, n_candidates) offsets per candidate (hidden_taste; else zeros).
        quality: (n_queries, n_candidates) quality clipped to [0, 1] (NaN where unknown).
        norm_cost: (n_queries, n_candidates) cost normalised per query (NaN where unknown).
    """

    config: SimulationConfig
    candidates: list[str]
    user_ids: list[str]
    clusters: list[str]
    preference: np.ndarray
    task_taste: np.ndarray
    cluster_names: list[str]
    model_taste: np.ndarray
    quality: np.ndarray
    norm_cost: np.ndarray
    _cluster_index: np.ndarray = field(repr=False, default_factory=lambda: np.zeros(0, int))

    def expected_rating(self, user: int, query: int) -> np.ndarray:
        """The user's noise-free, unrounded rating of every candidate on a query (NaN where
        the data has no score): the utility a per-user oracle maximises."""
        q = self.quality[query]
        if self.config.strategy == "cost_quality":
            p = self.preference[user]
            return 5.0 * (p * q + (1.0 - p) * (1.0 - self.norm_cost[query]))
        base = 3.0 + self.config.quality_spread * (2.0 * q - 1.0)
        return base + self.task_taste[user, self._cluster_index[query]] + self.model_taste[user]

    def rate(
        self, user: int, query: int, models: np.ndarray, rng: np.random.Generator
    ) -> list[float]:
        """Noisy, rounded ratings of ``models`` (column indices) as the user gives them."""
        mean = self.expected_rating(user, query)[models]
        raw = mean + rng.normal(0.0, self.config.noise_sd, size=len(models))
        if self.config.strategy == "cost_quality":
            step = self.config.rating_step
            return [float(v) for v in np.clip(np.round(np.clip(raw, 0, 5) / step) * step, 0, 5)]
        return [float(v) for v in np.clip(np.round(raw), 1, 5)]

    def profiles(self) -> list[dict[str, Any]]:
        """Each user's planted parameters, as JSON-ready dicts."""
        out = []
        for u, user_id in enumerate(self.user_ids):
            if self.config.strategy == "cost_quality":
                out.append({"user_id": user_id, "preference": float(self.preference[u])})
            else:
                out.append(
                    {
                        "user_id": user_id,
                        "task_taste": dict(
                            zip(self.cluster_names, self.task_taste[u].tolist(), strict=True)
                        ),
                        "model_taste": dict(
                            zip(self.candidates, self.model_taste[u].tolist(), strict=True)
                        ),
                    }
                )
        return out


def _kmeans(points: np.ndarray, k: int, rng: np.random.Generator, iters: int = 25) -> np.ndarray:
    """Cluster labels of ``points`` by Lloyd's k-means with k-means++ seeding."""
    k = min(k, len(points))
    centres = [points[rng.integers(len(points))]]
    for _ in range(1, k):
        d2 = np.min(((points[:, None, :] - np.array(centres)[None]) ** 2).sum(-1), axis=1)
        total = d2.sum()
        pick = rng.integers(len(points)) if total <= 0 else rng.choice(len(points), p=d2 / total)
        centres.append(points[pick])
    centre = np.array(centres)
    labels = np.zeros(len(points), dtype=int)
    for _ in range(iters):
        labels = ((points[:, None, :] - centre[None]) ** 2).sum(-1).argmin(axis=1)
        for c in range(k):
            members = points[labels == c]
            if len(members):
                centre[c] = members.mean(axis=0)
    return labels


def _clusters(
    dataset: RoutingDataset, n_clusters: int, given: Sequence[str] | None, seed: int
) -> list[str]:
    if given is not None:
        if len(given) != len(dataset):
            raise InvalidOptionError(
                f"clusters has {len(given)} entries for {len(dataset)} queries"
            )
        return [str(c) for c in given]
    if all(t is not None for t in dataset.task_names):
        return [str(t) for t in dataset.task_names]
    perf = np.array(dataset.performance, dtype=float)
    with np.errstate(invalid="ignore"):
        fill = np.nan_to_num(np.nanmean(perf, axis=0), nan=0.0)
    perf = np.where(np.isnan(perf), fill, perf)
    labels = _kmeans(perf, n_clusters, np.random.default_rng([seed, 2]))
    return [f"cluster{label}" for label in labels]


def task_clusters(dataset: RoutingDataset, *, n_clusters: int = 8, seed: int = 0) -> list[str]:
    """The task cluster of each query as the simulation draws them: the data's task names,
    else k-means over the candidates' score profiles. Pass them as ``clusters=`` to simulate
    the same users over parts of the data."""
    return _clusters(dataset, n_clusters, None, seed)


def _norm_cost(cost: np.ndarray) -> np.ndarray:
    """Cost min–max normalised over each query's candidates (0 where they all cost the same)."""
    with np.errstate(invalid="ignore"):
        low = np.nanmin(np.where(np.isnan(cost), np.inf, cost), axis=1, keepdims=True)
        high = np.nanmax(np.where(np.isnan(cost), -np.inf, cost), axis=1, keepdims=True)
        span = high - low
        out = np.where(span > 0, (cost - low) / np.where(span > 0, span, 1.0), 0.0)
    return np.where(np.isnan(cost), np.nan, out)


def make_population(
    dataset: RoutingDataset,
    *,
    strategy: Strategy,
    n_users: int = 200,
    seed: int = 0,
    clusters: Sequence[str] | None = None,
    **options: Any,
) -> UserPopulation:
    """The planted users of `simulate_users` with the same ``strategy``, ``n_users``,
    ``seed`` and taste options (the interaction counts do not change them).

    Args:
        dataset: Routing data with per-model scores (and costs, for cost_quality).
        strategy: ``"cost_quality"`` or ``"hidden_taste"`` (see the module docstring).
        n_users: Number of users.
        seed: Seed.
        clusters: Task cluster of each query (default: the data's task names, else k-means
            over the score profiles).
        **options: Other `SimulationConfig` fields.

    Raises:
        InvalidOptionError: an unknown or out-of-range option.
        DataFormatError: cost_quality on data without costs.
    """
    config = _config(strategy=strategy, n_users=n_users, seed=seed, **options)
    return _population(dataset, config, clusters)


def _population(
    dataset: RoutingDataset, config: SimulationConfig, clusters: Sequence[str] | None
) -> UserPopulation:
    n_users, n_models = config.n_users, len(dataset.candidates)
    rng = np.random.default_rng([config.seed, 0])
    quality = np.clip(np.asarray(dataset.performance, dtype=float), 0.0, 1.0)
    norm_cost = _norm_cost(np.asarray(dataset.cost, dtype=float))
    if config.strategy == "cost_quality" and np.isnan(dataset.cost).all():
        raise DataFormatError(
            "the cost_quality strategy needs costs: read the data with the candidates' prices "
            "(RoutingDataset.from_file(..., candidates=pool), or --llm-data)",
            path=dataset.source,
            field="cost",
        )
    labels = _clusters(dataset, config.n_clusters, clusters, config.seed)
    names = sorted(set(labels))
    index = np.array([names.index(c) for c in labels], dtype=int)
    width = len(str(n_users - 1))
    if config.strategy == "cost_quality":
        preference = rng.uniform(*config.preference_range, size=n_users)
        task_taste = np.zeros((n_users, len(names)))
        model_taste = np.zeros((n_users, n_models))
    else:
        preference = np.zeros(0)
        task_taste = rng.normal(0.0, config.task_taste, size=(n_users, len(names)))
        model_taste = rng.normal(0.0, config.model_taste, size=(n_users, n_models))
    return UserPopulation(
        config=config,
        candidates=list(dataset.candidates),
        user_ids=[f"user{u:0{max(width, 3)}d}" for u in range(n_users)],
        clusters=labels,
        preference=preference,
        task_taste=task_taste,
        cluster_names=names,
        model_taste=model_taste,
        quality=quality,
        norm_cost=norm_cost,
        _cluster_index=index,
    )


def simulate_users(
    dataset: RoutingDataset,
    *,
    strategy: Strategy,
    n_users: int = 200,
    min_interactions: int = 10,
    max_interactions: int = 60,
    seed: int = 0,
    models_per_query: tuple[int, int] = (2, 3),
    clusters: Sequence[str] | None = None,
    **options: Any,
) -> list[Interaction]:
    """Simulated users' ratings of candidates' answers to the dataset's queries.

    Each user gets a number of rated answers drawn uniformly from
    ``min_interactions..max_interactions``, spread over distinct queries drawn at random; each
    query is answered by ``models_per_query`` distinct candidates with a known score, and the
    user rates every answer (see the module docstring for how). Interactions come user by
    user, query by query (``turn`` 1, no response text, no embeddings), with ``task`` the
    query's task cluster. Deterministic for a given seed and options.

    Args:
        dataset: Routing data with per-model scores (and costs, for cost_quality), e.g.
            ``RoutingDataset.from_file("routerdc_train.json", candidates=pool)``.
        strategy: ``"cost_quality"`` or ``"hidden_taste"``.
        n_users: Number of users.
        min_interactions: Fewest rated answers per user.
        max_interactions: Most rated answers per user.
        seed: Seed of everything random.
        models_per_query: Least and most candidates rated per query.
        clusters: Task cluster of each query (see `make_population`).
        **options: Other `SimulationConfig` fields (``noise``, ``preference_range``,
            ``rating_step``, ``quality_spread``, ``task_taste``, ``model_taste``,
            ``n_clusters``).

    Raises:
        InvalidOptionError: an unknown or out-of-range option, or too few usable queries.
        DataFormatError: cost_quality on data without costs.
    """
    config = _config(
        strategy=strategy,
        n_users=n_users,
        min_interactions=min_interactions,
        max_interactions=max_interactions,
        seed=seed,
        models_per_query=models_per_query,
        **options,
    )
    population = _population(dataset, config, clusters)
    usable = ~np.isnan(population.quality)
    if strategy == "cost_quality":
        usable &= ~np.isnan(population.norm_cost)
    per_query = [np.flatnonzero(row) for row in usable]
    queries = np.array([i for i, models in enumerate(per_query) if len(models) >= 2], dtype=int)
    low, high = config.models_per_query
    if len(queries) * high < max_interactions or len(queries) == 0:
        raise InvalidOptionError(
            f"{len(queries)} queries have scores for two or more candidates: too few for "
            f"{max_interactions} interactions per user at most {high} per query"
        )
    qids = [question_id_of(q, t) for q, t in zip(dataset.queries, dataset.task_names, strict=True)]
    rng = np.random.default_rng([config.seed, 1])
    out: list[Interaction] = []
    for u, user_id in enumerate(population.user_ids):
        remaining = int(rng.integers(min_interactions, max_interactions + 1))
        for i in rng.permutation(queries):
            if remaining <= 0:
                break
            available = per_query[i]
            m = min(int(rng.integers(low, high + 1)), len(available), remaining)
            if remaining - m == 1:  # leave no lone answer at the end: take it now or leave two
                m = m + 1 if m + 1 <= min(high, len(available)) else max(m - 1, 1)
            models = rng.choice(available, size=m, replace=False)
            ratings = population.rate(u, int(i), models, rng)
            for j, rating in zip(models, ratings, strict=True):
                out.append(
                    Interaction(
                        user_id=user_id,
                        model=dataset.candidates[int(j)],
                        question_id=qids[i],
                        query=dataset.queries[i],
                        rating=rating,
                        task=population.clusters[i],
                    )
                )
            remaining -= m
        if remaining > 0:
            raise InvalidOptionError(
                f"ran out of queries for {user_id}: the data has too few usable queries"
            )
    return out


@dataclass
class UserSplit:
    """Users split for the new-user (inductive) evaluation.

    Attributes:
        train: Interactions of the training users.
        train_users: Training users, in order of first appearance.
        new_users: Users kept out of training.
        revealed: For each k, the first k interactions of every new user.
        held_out: For each k, the rest of every new user's interactions.
    """

    train: list[Interaction]
    train_users: list[str]
    new_users: list[str]
    revealed: dict[int, list[Interaction]]
    held_out: dict[int, list[Interaction]]

    def write(self, directory: str | Path) -> list[Path]:
        """Write ``train.jsonl``, ``new_k{k}_revealed.jsonl``, ``new_k{k}_held_out.jsonl``
        (GMTRouter JSONL) and ``split.json`` (the users and counts); returns the paths."""
        directory = Path(directory)
        paths = [write_gmt_jsonl(directory / "train.jsonl", self.train)]
        for k in sorted(self.revealed):
            paths.append(write_gmt_jsonl(directory / f"new_k{k}_revealed.jsonl", self.revealed[k]))
            paths.append(write_gmt_jsonl(directory / f"new_k{k}_held_out.jsonl", self.held_out[k]))
        manifest = {
            "train_users": self.train_users,
            "new_users": self.new_users,
            "reveal": sorted(self.revealed),
            "counts": {
                "train": len(self.train),
                **{f"new_k{k}_revealed": len(v) for k, v in sorted(self.revealed.items())},
                **{f"new_k{k}_held_out": len(v) for k, v in sorted(self.held_out.items())},
            },
        }
        manifest_path = directory / "split.json"
        manifest_path.write_text(json.dumps(manifest, indent=1) + "\n", encoding="utf-8")
        return [*paths, manifest_path]


def split_users(
    interactions: Sequence[Interaction],
    *,
    new_user_fraction: float = 0.2,
    reveal: Sequence[int] = (5, 10, 20),
    min_held_out: int = 5,
    seed: int = 0,
) -> UserSplit:
    """Keep a random share of users out of training; reveal the first k of each one's
    interactions (file order) and hold out the rest.

    New users are drawn among users with at least ``max(reveal) + min_held_out``
    interactions, so every k reveals exactly k and leaves at least ``min_held_out``.

    Raises:
        InvalidOptionError: a fraction outside (0, 1), a k < 1, or too few eligible users.
    """
    if not 0.0 < new_user_fraction < 1.0:
        raise InvalidOptionError(f"new_user_fraction must be in (0, 1), got {new_user_fraction}")
    ks = sorted(set(int(k) for k in reveal))
    if not ks or ks[0] < 1:
        raise InvalidOptionError(f"reveal must be positive counts, got {list(reveal)}")
    by_user: dict[str, list[Interaction]] = {}
    for interaction in interactions:
        by_user.setdefault(interaction.user_id, []).append(interaction)
    users = list(by_user)
    n_new = max(1, round(new_user_fraction * len(users)))
    eligible = [u for u in users if len(by_user[u]) >= ks[-1] + min_held_out]
    if len(eligible) < n_new or n_new >= len(users):
        raise InvalidOptionError(
            f"{len(eligible)} of {len(users)} users have {ks[-1] + min_held_out}+ interactions: "
            f"too few to hold out {n_new} new users"
        )
    rng = np.random.default_rng(seed)
    chosen = {eligible[i] for i in rng.choice(len(eligible), size=n_new, replace=False)}
    new_users = [u for u in users if u in chosen]
    return UserSplit(
        train=[x for x in interactions if x.user_id not in chosen],
        train_users=[u for u in users if u not in chosen],
        new_users=new_users,
        revealed={k: [x for u in new_users for x in by_user[u][:k]] for k in ks},
        held_out={k: [x for u in new_users for x in by_user[u][k:]] for k in ks},
    )
