"""GMTRouter's shrinkage prior, chosen on training users with simulated new users.

The validation split (each training user's last questions scored; their state built from the
rest, or from only their first k interactions), the choice of the prior count over the grid,
and a planted taste recovered by a new user from 10 revealed interactions.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from langchain_llmrouter import LLMCandidate, StaticEmbeddings
from langchain_llmrouter.personal import Interaction
from langchain_llmrouter.personal.router import UserHistory
from langchain_llmrouter.routers.gmtrouter import (
    _PRIOR_GRID,
    _REVEAL,
    GMTRouter,
    _validation_case,
    _validation_regimes,
)

FAST = {"hidden_dim": 16, "heads": 2, "epochs": 80, "lr": 1e-2, "dropout": 0.0}
CANDIDATES = [
    LLMCandidate(name="A", model="A", description="A small fast model for chat."),
    LLMCandidate(name="B", model="B", description="B a large careful reasoning model."),
    LLMCandidate(name="C", model="C", description="C a mid-sized general model."),
]
TOPICS = ["algebra", "poetry", "chemistry", "history", "python code", "geography"]


def _query(k: int) -> str:
    return f"question {k} about {TOPICS[k % len(TOPICS)]}: explain item {k * 7 % 13}"


def _user(user: str, likes: str, start: int, n: int) -> list[Interaction]:
    """``n`` questions answered by A, B and C; ``likes`` gets 5, C 3, the other 1."""
    return [
        Interaction(
            user_id=user,
            model=model,
            question_id=f"q{k}",
            query=_query(k),
            rating=5.0 if model == likes else (3.0 if model == "C" else 1.0),
        )
        for k in range(start, start + n)
        for model in ("A", "B", "C")
    ]


def _history(n_questions: int, ratings: tuple[float, ...] = (1.0, 0.6, 0.2)) -> UserHistory:
    m = len(ratings)
    return UserHistory(
        models=np.tile(np.arange(m), n_questions),
        ratings=np.tile(np.array(ratings, dtype=np.float32), n_questions),
        sessions=[f"q{k}" for k in range(n_questions) for _ in range(m)],
        x=np.repeat(np.eye(n_questions, 4, dtype=np.float32), m, axis=0),
    )


def test_the_last_fifth_of_questions_is_scored_and_new_users_see_their_first_k() -> None:
    history = _history(10)  # 10 questions x 3 answers
    case = _validation_case(history)
    assert case is not None
    held, pairs = case
    assert held.tolist() == [False] * 24 + [True] * 6  # the last 2 questions
    assert len(pairs) == 2 * 3 and held[pairs].all()
    assert (history.ratings[pairs[:, 0]] > history.ratings[pairs[:, 1]]).all()
    regimes = _validation_regimes([(history, case)])
    assert len(regimes) == 1 + len(_REVEAL)
    assert regimes[0][0].tolist() == (~held).tolist()  # a regular: everything not scored
    for k, regime in zip(_REVEAL, regimes[1:], strict=True):
        (visible,) = regime
        assert visible.sum() == min(k, 24) and visible[: min(k, 24)].all()
        assert not (visible & held).any()


def test_users_with_one_question_or_only_ties_are_not_scored() -> None:
    assert _validation_case(_history(1)) is None
    assert _validation_case(_history(6, ratings=(0.6, 0.6, 0.6))) is None


@pytest.fixture(scope="module")
def fitted() -> GMTRouter:
    data: list[Interaction] = []
    for u in range(8):
        data += _user(f"u{u}", "A" if u < 4 else "B", start=15 * u, n=15)
    return GMTRouter(embeddings=StaticEmbeddings(), **FAST).fit(data, candidates=CANDIDATES)


def test_the_prior_count_is_the_grids_best_on_training_users(fitted: GMTRouter) -> None:
    losses = fitted.prior_losses_
    assert {f"{c:g}" for c in _PRIOR_GRID} <= set(losses)
    assert all(np.isfinite(v) for v in losses.values())
    chosen = float(torch.nn.functional.softplus(fitted.net_.prior.detach())[0])
    best = min(losses, key=lambda c: losses[c])
    assert chosen == pytest.approx(float(best), rel=1e-4)


def test_a_planted_taste_is_recovered_from_ten_interactions(fitted: GMTRouter) -> None:
    queries = [_query(k) for k in range(500, 510)]
    # 10 revealed interactions: 3 questions answered by A, B and C, and one more by B and A.
    history = _user("new-b", "B", start=400, n=4)[:10]
    fitted.observe("new-b", history)
    scores = fitted.predict_quality(queries, user_id="new-b")
    population = fitted.predict_quality(queries)
    assert (scores[:, 1] > scores[:, 0]).all()  # prefers B over A on unseen queries
    assert np.mean(scores[:, 1] - scores[:, 0]) > np.mean(population[:, 1] - population[:, 0])
    assert fitted.route(queries[0], user_id="new-b").model == "B"
    fitted.forget("new-b")
