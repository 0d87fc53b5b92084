"""The personalised router contract: a `BaseRouter` whose scores depend on who asks.

A personalised family learns from rated interactions (`Interaction`) and implements three
methods: `PersonalRouter._fit_interactions` (train the shared model), `_user_states` (a
user's state from their history alone, so new users and new feedback need no retraining)
and `_score` (each candidate's predicted preference for queries, given user states, or for
the population when the user is unknown). Histories, online updates (`observe`), cold start,
new candidates (`add_candidates`) and saving live here once.
"""

from __future__ import annotations

import threading
from abc import abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Self

import numpy as np
from pydantic import Field

from langchain_llmrouter.candidates import CandidatePool, LLMCandidate
from langchain_llmrouter.errors import InvalidOptionError, RouterLoadError
from langchain_llmrouter.personal.interactions import Interaction, question_id_of
from langchain_llmrouter.routers.base import BaseRouter, RouterParams

if TYPE_CHECKING:
    from langchain_core.embeddings import Embeddings

    from langchain_llmrouter.data import RoutingDataset

POPULATION_USER = "population"
"""The user id given to a `RoutingDataset`'s scores when a personalised router is fitted on one."""


class PersonalRouterParams(RouterParams):
    max_history: int = Field(default=256, ge=1, le=100_000)
    """Most recent interactions kept per user (older ones stop shaping the user's state)."""


@dataclass
class UserHistory:
    """One user's rated interactions, in the arrays the families read.

    Attributes:
        models: Candidate index of each interaction (into ``router.candidates_``).
        ratings: Each rating scaled to [0, 1] (rating / 5).
        sessions: Session key of each interaction (the question id; same-question answers
            share one).
        x: Query embeddings, shape (n, dim), float32.
    """

    models: np.ndarray
    ratings: np.ndarray
    sessions: list[str]
    x: np.ndarray

    def __len__(self) -> int:
        return len(self.models)

    @classmethod
    def empty(cls, dim: int) -> UserHistory:
        return cls(
            models=np.zeros(0, dtype=np.int64),
            ratings=np.zeros(0, dtype=np.float32),
            sessions=[],
            x=np.zeros((0, dim), dtype=np.float32),
        )

    def extended(self, other: UserHistory, limit: int) -> UserHistory:
        """This history with ``other`` appended, keeping the last ``limit`` interactions."""
        return UserHistory(
            models=np.concatenate([self.models, other.models])[-limit:],
            ratings=np.concatenate([self.ratings, other.ratings])[-limit:],
            sessions=[*self.sessions, *other.sessions][-limit:],
            x=np.concatenate([self.x, other.x])[-limit:],
        )


def as_interactions(data: Sequence[Interaction] | RoutingDataset) -> list[Interaction]:
    """Interactions as given, or a `RoutingDataset`'s known scores as one population user's
    ratings (rating = 5 × score), so every router can be fitted on routing data."""
    if isinstance(data, Sequence) and (not data or isinstance(data[0], Interaction)):
        return list(data)
    dataset: Any = data
    out = []
    for i, query in enumerate(dataset.queries):
        task = dataset.task_names[i]
        qid = question_id_of(query, task)
        for j, name in enumerate(dataset.candidates):
            score = float(dataset.performance[i, j])
            if np.isfinite(score):
                out.append(
                    Interaction(
                        user_id=POPULATION_USER,
                        model=name,
                        question_id=qid,
                        query=query,
                        rating=5.0 * min(max(score, 0.0), 1.0),
                        task=task,
                    )
                )
    return out


class PersonalRouter(BaseRouter):
    """A router that learns each user's preferences from their rated interactions.

    Route with ``user_id`` (``router.route(q, user_id="u1")``, ``invoke(..., user_id=)``, or
    ``configurable={"user_id": ...}``): a known user gets scores from their state, an unknown
    one (or none) the population's (cold start, never an error). `observe` adds new ratings
    to a user's history and recomputes their state at once, without retraining.

    Subclasses implement `_fit_interactions`, `_user_states` and `_score`, plus
    `_get_model_state` / `_set_model_state` for their learned weights.
    """

    personal: ClassVar[bool] = True
    """Marks the personalised contract (routers whose scores depend on ``user_id``)."""
    uses_embeddings: ClassVar[bool] = True
    Params: ClassVar[type[RouterParams]] = PersonalRouterParams

    def __init__(
        self,
        *,
        max_history: int = 256,
        cost_weight: float = 0.0,
        budget: float | None = None,
        embeddings: Embeddings | None = None,
    ) -> None:
        super().__init__(cost_weight=cost_weight, budget=budget, embeddings=embeddings)
        self.max_history = max_history

    # --- what a family implements ---------------------------------------------------------

    @abstractmethod
    def _fit_interactions(
        self, interactions: list[Interaction], histories: dict[str, UserHistory]
    ) -> None:
        """Train the shared model. ``histories`` holds every user's interactions (in the
        order given) as arrays; ``self.candidate_embeddings_`` the candidates' description
        embeddings."""

    @abstractmethod
    def _user_states(self, histories: Mapping[str, UserHistory]) -> dict[str, np.ndarray]:
        """Each user's state vector from their history alone (no training)."""

    @abstractmethod
    def _score(self, x: np.ndarray, states: np.ndarray | None) -> np.ndarray:
        """Predicted preference in [0, 1], shape (len(x), n_candidates), for query embeddings
        ``x`` and one user state per row (``states``), or the population's when None."""

    def _get_model_state(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        return {}, {}

    def _set_model_state(self, meta: dict[str, Any], arrays: dict[str, np.ndarray]) -> None:
        return None

    def _candidates_added(self, n_new: int) -> None:
        """Hook: ``n_new`` candidates were appended (their description embeddings are the last
        rows of ``candidate_embeddings_``); the default does nothing."""
        return None

    # --- fitting --------------------------------------------------------------------------

    def fit(
        self,
        data: Sequence[Interaction] | RoutingDataset,
        *,
        candidates: CandidatePool | Sequence[LLMCandidate] | None = None,
        query_embeddings: np.ndarray | None = None,
        tune: bool = False,
        tune_budget_s: float | None = None,
        tune_space: dict[str, list[Any]] | None = None,
        tune_folds: int = 5,
        tune_seed: int = 0,
    ) -> Self:
        """Learn from rated interactions (or a `RoutingDataset`'s scores, as one user).

        Args:
            data: Interactions (`read_gmt_jsonl`, `simulate_users`, the feedback store).
            candidates: The candidates, for prices and descriptions (default: the
                dataset's, or bare names from the interactions at zero price).
            query_embeddings: Embeddings of each interaction's query, in order (default: the
                interactions' own where every one has one, else computed).
            tune: Hyperparameter search is for single-round routers: True is an error here
                (the other ``tune_*`` arguments, the base signature's, are then unused).
            tune_budget_s: Unused (see ``tune``).
            tune_space: Unused (see ``tune``).
            tune_folds: Unused (see ``tune``).
            tune_seed: Unused (see ``tune``).
        """
        if tune:
            raise InvalidOptionError(
                f"{self.name} does not tune its hyperparameters in fit (tune=True is for "
                "single-round routers); set them on the router instead"
            )
        self.validate_params(self.get_params())
        interactions = as_interactions(data)
        if not interactions:
            raise ValueError(f"cannot fit {self.name} on no interactions")
        specs = self._candidate_specs(data, interactions, candidates)
        self._set_candidates(specs, None)
        self.candidate_embeddings_ = self._embed_candidates(specs)
        if query_embeddings is not None and hasattr(data, "queries"):
            # Routing data's embeddings have one row per query: give each rating its query's.
            given = np.asarray(query_embeddings)
            if len(given) == len(data.queries) != len(interactions):
                row = {q: i for i, q in reversed(list(enumerate(data.queries)))}
                query_embeddings = given[[row[x.query] for x in interactions]]
        x = self._interaction_embeddings(interactions, query_embeddings)
        self.embedding_dim_ = int(x.shape[1])
        histories = self._histories(interactions, x, limit=None)
        self._lock = threading.RLock()
        self._fit_interactions(interactions, histories)
        self.histories_ = {u: self._trimmed(h) for u, h in histories.items()}
        self.user_states_ = self._user_states(self.histories_)
        self.feedback_through_ = 0
        self.fitted_ = True
        return self

    def _fit(self, dataset: RoutingDataset | None, query_embeddings: np.ndarray | None) -> None:
        # `fit` above takes interactions and never calls this; routing data goes through
        # `as_interactions` there.
        raise NotImplementedError("personalised routers learn in _fit_interactions")

    def _candidate_specs(
        self,
        data: Any,
        interactions: list[Interaction],
        candidates: CandidatePool | Sequence[LLMCandidate] | None,
    ) -> list[LLMCandidate]:
        if candidates is not None:
            specs = list(candidates)
        elif hasattr(data, "candidate_info"):
            specs = data.candidate_info()
        else:
            names = sorted({i.model for i in interactions})
            specs = [LLMCandidate(name=n, model=n) for n in names]
        known = {s.name for s in specs}
        unknown = sorted({i.model for i in interactions} - known)
        if unknown:
            raise ValueError(
                f"interactions name candidates not in the pool: {', '.join(unknown[:10])}; "
                f"pool: {', '.join(sorted(known))}"
            )
        return specs

    def _embed_candidates(self, specs: Sequence[LLMCandidate]) -> np.ndarray:
        texts = [s.description or s.name for s in specs]
        return np.asarray(self.embed_queries(texts), dtype=np.float32)

    def _interaction_embeddings(
        self, interactions: list[Interaction], given: np.ndarray | None
    ) -> np.ndarray:
        if given is not None:
            x = np.asarray(given, dtype=np.float32)
            if x.ndim != 2 or len(x) != len(interactions):
                raise ValueError(
                    f"query_embeddings has shape {x.shape}; expected one row per interaction "
                    f"({len(interactions)})"
                )
            return x
        own = [i.embedding for i in interactions]
        if all(e is not None for e in own) and len({len(e) for e in own if e}) == 1:
            return np.asarray(own, dtype=np.float32)
        from langchain_llmrouter.embeddings import embed_texts

        unique = sorted({i.query for i in interactions})
        vectors = embed_texts(unique, self.embeddings)
        row = {q: k for k, q in enumerate(unique)}
        return np.asarray(vectors[[row[i.query] for i in interactions]], dtype=np.float32)

    def _histories(
        self, interactions: Sequence[Interaction], x: np.ndarray, *, limit: int | None
    ) -> dict[str, UserHistory]:
        index = {name: j for j, name in enumerate(self.candidates_)}
        rows: dict[str, list[int]] = {}
        for k, interaction in enumerate(interactions):
            rows.setdefault(interaction.user_id, []).append(k)
        out = {}
        for user, ks in rows.items():
            history = UserHistory(
                models=np.array([index[interactions[k].model] for k in ks], dtype=np.int64),
                ratings=np.array([interactions[k].rating / 5.0 for k in ks], dtype=np.float32),
                sessions=[interactions[k].question_id for k in ks],
                x=np.asarray(x[ks], dtype=np.float32),
            )
            out[user] = history if limit is None else self._trimmed(history)
        return out

    def _trimmed(self, history: UserHistory) -> UserHistory:
        return UserHistory.empty(self.embedding_dim_).extended(history, self.max_history)

    # --- users ----------------------------------------------------------------------------

    @property
    def known_users(self) -> list[str]:
        """Users with a state (from training or `observe`)."""
        self._check_fitted()
        return list(self.user_states_)

    def has_user(self, user_id: str | None) -> bool:
        """Whether ``user_id`` has a state (False for None)."""
        return user_id is not None and user_id in self.user_states_

    def observe(
        self,
        user_id: str,
        interactions: Sequence[Interaction],
        *,
        query_embeddings: np.ndarray | None = None,
    ) -> np.ndarray:
        """Add rated interactions to a user's history and recompute their state now.

        This is the online update: no weights change, so it costs one state computation.
        A user not seen before starts from these interactions (an inductive new user).

        Returns:
            The user's new state vector.
        """
        self._check_fitted()
        interactions = list(interactions)
        for interaction in interactions:
            if interaction.user_id != user_id:
                raise ValueError(
                    f"interaction of user {interaction.user_id!r} given for {user_id!r}"
                )
            if interaction.model not in self.candidates_:
                raise ValueError(
                    f"unknown candidate {interaction.model!r}; known: {', '.join(self.candidates_)}"
                )
        if query_embeddings is None:
            query_embeddings = self.embed_queries([i.query for i in interactions])
        new = self._histories(interactions, np.asarray(query_embeddings), limit=None)
        with self._lock:
            old = self.histories_.get(user_id, UserHistory.empty(self.embedding_dim_))
            history = old.extended(new[user_id], self.max_history) if interactions else old
            state = self._user_states({user_id: history})[user_id]
            self.histories_[user_id] = history
            self.user_states_[user_id] = state
        return state

    def forget(self, user_id: str) -> bool:
        """Drop a user's history and state (they get the population's choices again);
        returns whether the router knew them. Stored feedback is the store's to delete."""
        self._check_fitted()
        with self._lock:
            known = self.histories_.pop(user_id, None) is not None
            return self.user_states_.pop(user_id, None) is not None or known

    def history(self, user_id: str) -> UserHistory:
        """The interactions that shape a user's state (empty for an unknown user)."""
        self._check_fitted()
        return self.histories_.get(user_id, UserHistory.empty(self.embedding_dim_))

    # --- candidates -----------------------------------------------------------------------

    def add_candidates(self, candidates: Sequence[LLMCandidate]) -> Self:
        """Add candidates with no interactions yet: their prior comes from their description
        embedding (so describe them). Known names are refused."""
        self._check_fitted()
        new = [c for c in candidates]
        clash = sorted({c.name for c in new} & set(self.candidates_))
        if clash:
            raise ValueError(f"already candidates: {', '.join(clash)}")
        if not new:
            return self
        with self._lock:
            self.candidates_ = [*self.candidates_, *(c.name for c in new)]
            self.input_price_ = np.concatenate([self.input_price_, [c.input_price for c in new]])
            self.output_price_ = np.concatenate([self.output_price_, [c.output_price for c in new]])
            sizes = [np.nan if c.size_billions is None else c.size_billions for c in new]
            self.sizes_ = np.concatenate([self.sizes_, sizes])
            self.output_tokens_ = np.concatenate(
                [self.output_tokens_, np.full(len(new), self.output_tokens_[0])]
            )
            self.candidate_embeddings_ = np.concatenate(
                [self.candidate_embeddings_, self._embed_candidates(new)]
            )
            self._candidates_added(len(new))
            # A state may depend on the candidates (its width, or their features): recompute.
            self.user_states_ = self._user_states(self.histories_)
        return self

    # --- scoring --------------------------------------------------------------------------

    def _predict_quality(
        self, queries: list[str], query_embeddings: np.ndarray | None
    ) -> np.ndarray:
        assert query_embeddings is not None
        return self._score(np.asarray(query_embeddings, dtype=np.float32), None)

    def predict_quality(
        self,
        queries: Sequence[str],
        *,
        query_embeddings: np.ndarray | None = None,
        user_id: str | None = None,
    ) -> np.ndarray:
        """Predicted preference of every candidate for each query, shape (n, n_candidates):
        ``user_id``'s where the router knows the user, else the population's."""
        self._check_fitted()
        queries = list(queries)
        if query_embeddings is None:
            query_embeddings = self.embed_queries(queries)
        x = np.asarray(query_embeddings, dtype=np.float32)
        state = self.user_states_.get(user_id) if user_id is not None else None
        if state is None:
            return np.asarray(self._score(x, None), dtype=np.float64)
        states = np.repeat(state[None, :], len(x), axis=0)
        return np.asarray(self._score(x, states), dtype=np.float64)

    def _quality_for(
        self, texts: list[str], query_embeddings: np.ndarray | None, user_id: str | None
    ) -> np.ndarray:
        return self.predict_quality(texts, query_embeddings=query_embeddings, user_id=user_id)

    def _is_personalised(self, user_id: str | None) -> bool:
        return self.has_user(user_id)

    # --- persistence ----------------------------------------------------------------------

    def _get_state(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        meta, arrays = self._get_model_state()
        users = list(self.histories_)
        lengths = np.array([len(self.histories_[u]) for u in users], dtype=np.int64)
        dim = self.embedding_dim_
        state_users = list(self.user_states_)
        states = (
            np.stack([self.user_states_[u] for u in state_users]).astype(np.float32)
            if state_users
            else np.zeros((0, 0), dtype=np.float32)
        )
        out: dict[str, np.ndarray] = {
            "personal.candidate_embeddings": self.candidate_embeddings_.astype(np.float32),
            "personal.history_lengths": lengths,
            "personal.history_models": _concat([self.histories_[u].models for u in users], 0),
            "personal.history_ratings": _concat([self.histories_[u].ratings for u in users], 0),
            "personal.history_x": _concat([self.histories_[u].x for u in users], dim),
            "personal.user_states": states,
            **{f"model.{k}": v for k, v in arrays.items()},
        }
        document: dict[str, Any] = {
            "model": meta,
            "embedding_dim": dim,
            "history_users": users,
            "history_sessions": [s for u in users for s in self.histories_[u].sessions],
            "state_users": state_users,
            "feedback_through": int(getattr(self, "feedback_through_", 0)),
        }
        return document, out

    def _set_state(self, meta: dict[str, Any], arrays: dict[str, np.ndarray]) -> None:
        dim = int(meta["embedding_dim"])
        users = [str(u) for u in meta["history_users"]]
        lengths = arrays["personal.history_lengths"]
        sessions = [str(s) for s in meta["history_sessions"]]
        total = int(lengths.sum()) if len(lengths) else 0
        n = len(self.candidates_)
        if (
            len(lengths) != len(users)
            or len(sessions) != total
            or arrays["personal.history_x"].shape != (total, dim)
            or len(arrays["personal.history_models"]) != total
            or len(arrays["personal.history_ratings"]) != total
            or arrays["personal.candidate_embeddings"].shape[0] != n
        ):
            raise RouterLoadError("the saved histories do not match their users and candidates")
        models = arrays["personal.history_models"]
        if total and (models.min() < 0 or models.max() >= n):
            raise RouterLoadError("a saved history names a candidate out of range")
        self.embedding_dim_ = dim
        self.candidate_embeddings_ = arrays.pop("personal.candidate_embeddings")
        ends = np.cumsum(lengths)
        starts = ends - lengths
        self.histories_ = {
            u: UserHistory(
                models=models[s:e],
                ratings=arrays["personal.history_ratings"][s:e],
                sessions=sessions[s:e],
                x=arrays["personal.history_x"][s:e],
            )
            for u, s, e in zip(users, starts.tolist(), ends.tolist(), strict=True)
        }
        state_users = [str(u) for u in meta["state_users"]]
        states = arrays["personal.user_states"]
        if len(states) != len(state_users):
            raise RouterLoadError("the saved user states do not match their users")
        self.user_states_ = {u: states[k] for k, u in enumerate(state_users)}
        self.feedback_through_ = int(meta.get("feedback_through", 0))
        for key in [k for k in arrays if k.startswith("personal.")]:
            arrays.pop(key)
        self._lock = threading.RLock()
        self._set_model_state(
            meta.get("model", {}),
            {k.removeprefix("model."): v for k, v in arrays.items() if k.startswith("model.")},
        )


def _concat(parts: list[np.ndarray], dim: int) -> np.ndarray:
    if parts:
        return np.concatenate(parts)
    return np.zeros((0, dim), dtype=np.float32) if dim else np.zeros(0, dtype=np.float32)
