"""A tiny personalised router for tests of the contract and of feedback (not a method).

`Favourite` scores each candidate by the user's mean rating of it, shrunk towards the
population's mean with ``prior`` pseudo-ratings; it ignores the query. Two planted groups
(`planted`) prefer opposite candidates, so who asks decides the route.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from langchain_llmrouter import LLMCandidate
from langchain_llmrouter.personal import Interaction
from langchain_llmrouter.personal.router import PersonalRouter, UserHistory

CANDIDATES = [
    LLMCandidate(name="small", model="m-small", input_price=0.1, output_price=0.2),
    LLMCandidate(name="big", model="m-big", input_price=10.0, output_price=30.0),
]


class Favourite(PersonalRouter):
    """Per-user mean rating of each candidate, shrunk towards the population's."""

    name = "favourite"

    def __init__(
        self,
        *,
        prior: float = 2.0,
        max_history: int = 256,
        cost_weight: float = 0.0,
        budget: float | None = None,
        embeddings: Any = None,
    ) -> None:
        super().__init__(
            max_history=max_history, cost_weight=cost_weight, budget=budget, embeddings=embeddings
        )
        self.prior = prior

    def _means(self, history: UserHistory) -> tuple[np.ndarray, np.ndarray]:
        m = len(self.candidates_)
        total, count = np.zeros(m), np.zeros(m)
        np.add.at(total, history.models, history.ratings)
        np.add.at(count, history.models, 1.0)
        return total, count

    def _fit_interactions(
        self, interactions: list[Interaction], histories: dict[str, UserHistory]
    ) -> None:
        total, count = np.zeros(len(self.candidates_)), np.zeros(len(self.candidates_))
        for history in histories.values():
            t, c = self._means(history)
            total, count = total + t, count + c
        self.population_ = np.where(count > 0, total / np.maximum(count, 1), 0.5)

    def _user_states(self, histories: Mapping[str, UserHistory]) -> dict[str, np.ndarray]:
        out = {}
        for user, history in histories.items():
            total, count = self._means(history)
            prior = self.population_[: len(total)]
            out[user] = ((total + self.prior * prior) / (count + self.prior)).astype(np.float32)
        return out

    def _score(self, x: np.ndarray, states: np.ndarray | None) -> np.ndarray:
        if states is None:
            return np.repeat(self.population_[None, :], len(x), axis=0)
        return np.asarray(states, dtype=np.float64)

    def _candidates_added(self, n_new: int) -> None:
        self.population_ = np.concatenate([self.population_, np.full(n_new, 0.5)])

    def _get_model_state(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        return {}, {"population": self.population_}

    def _set_model_state(self, meta: dict[str, Any], arrays: dict[str, np.ndarray]) -> None:
        self.population_ = arrays["population"]


def planted(n_per_group: int = 3, answers: int = 6) -> list[Interaction]:
    """Users ``likes-small-*`` rate small 5 and big 1; ``likes-big-*`` the reverse; the big
    fans are one more, so the population leans to big."""
    out = []
    for group, favourite, count in (
        ("small", "small", n_per_group),
        ("big", "big", n_per_group + 1),
    ):
        for u in range(count):
            for q in range(answers):
                for name in ("small", "big"):
                    out.append(
                        Interaction(
                            user_id=f"likes-{group}-{u}",
                            model=name,
                            question_id=f"q{q}",
                            query=f"question number {q}",
                            rating=5.0 if name == favourite else 1.0,
                        )
                    )
    return out
