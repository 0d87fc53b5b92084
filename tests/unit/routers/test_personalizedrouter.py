"""PersonalizedRouter: the router contract, planted preferences, inductive users, persistence."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from langchain_llmrouter import LLMCandidate
from langchain_llmrouter.personal.interactions import Interaction
from langchain_llmrouter.personal.router import UserHistory
from langchain_llmrouter.routers.personalizedrouter import PersonalizedRouter
from langchain_llmrouter.routers.registry import load_router
from langchain_llmrouter.testing import HashingEmbeddings, RouterContractTests

# HashingEmbeddings, not StaticEmbeddings: the test session's fresh cache would rebuild the
# static model (about a minute on a busy CPU); the router is tuned with StaticEmbeddings.
EMBED = HashingEmbeddings(64)

FAST: dict[str, Any] = {"hidden_dim": 16, "taste_dim": 8, "max_epochs": 80, "lr": 1e-2}

TOPICS = ["algebra", "poetry", "chemistry", "history", "football", "cooking"]
CANDIDATES = [
    LLMCandidate(name="alpha", model="alpha", description="A careful maths and science model."),
    LLMCandidate(name="beta", model="beta", description="A creative writing and chat model."),
    LLMCandidate(name="gamma", model="gamma", description="A small fast general model."),
]


class TestPersonalizedRouterContract(RouterContractTests):
    """The shipped router contract, fitting on a `RoutingDataset` (one population user)."""

    router_class = PersonalizedRouter
    fast_params = FAST
    bad_params = [
        ({"hidden_dim": 0}, "hparam.hidden_dim"),
        ({"taste_dim": 0}, "hparam.taste_dim"),
        ({"ridge": 0}, "hparam.ridge"),
        ({"validation_fraction": 0.7}, "hparam.validation_fraction"),
    ]


def _interactions(
    users: list[str], favourite: dict[str, str], *, per_user: int = 12, seed: int = 0
) -> list[Interaction]:
    """Each user rates all three candidates on ``per_user`` questions: their favourite 5,
    the others 1–2 (a planted, query-independent taste)."""
    rng = np.random.default_rng(seed)
    out = []
    for user in users:
        for k in range(per_user):
            topic = TOPICS[int(rng.integers(len(TOPICS)))]
            query = f"{topic} question number {int(rng.integers(10_000))}"
            for candidate in CANDIDATES:
                rating = 5.0 if candidate.name == favourite[user] else float(rng.integers(1, 3))
                out.append(
                    Interaction(
                        user_id=user,
                        model=candidate.name,
                        question_id=f"{user}-{k}",
                        query=query,
                        rating=rating,
                        task=topic,
                    )
                )
    return out


GROUP_A = [f"a{i}" for i in range(8)]
GROUP_B = [f"b{i}" for i in range(8)]
TASTE = {**dict.fromkeys(GROUP_A, "alpha"), **dict.fromkeys(GROUP_B, "beta")}
PROBES = ["algebra question about primes", "poetry question about sonnets"]


@pytest.fixture(scope="module")
def planted() -> PersonalizedRouter:
    router = PersonalizedRouter(embeddings=EMBED, **FAST, validation_fraction=0.0)
    return router.fit(_interactions(GROUP_A + GROUP_B, TASTE), candidates=CANDIDATES)


def _favourite(router: PersonalizedRouter, user: str | None) -> list[str]:
    return [d.model for d in router.route_batch(PROBES, user_id=user)]


def test_planted_groups_route_to_their_favourite(planted: PersonalizedRouter) -> None:
    for user in GROUP_A:
        assert _favourite(planted, user) == ["alpha", "alpha"]
    for user in GROUP_B:
        assert _favourite(planted, user) == ["beta", "beta"]
    # The population lies between the groups: both favourites above the disliked gamma.
    pop = planted.predict_quality(PROBES)
    assert (pop[:, :2].min(axis=1) > pop[:, 2]).all()
    a = planted.predict_quality(PROBES, user_id="a0")
    b = planted.predict_quality(PROBES, user_id="b0")
    assert (a[:, 0] > pop[:, 0]).all() and (b[:, 1] > pop[:, 1]).all()
    assert planted.task_source_ == "interactions"
    assert planted.route(PROBES[0], user_id="a0").personalised is True


def test_cold_start_gives_the_population_decision(planted: PersonalizedRouter) -> None:
    for user in ("nobody", None):
        decision = planted.route(PROBES[0], user_id=user)
        assert decision.personalised is False
        assert decision.model == planted.route(PROBES[0]).model
    np.testing.assert_array_equal(
        planted.predict_quality(PROBES, user_id="nobody"), planted.predict_quality(PROBES)
    )


def test_new_users_are_inductive(tmp_path: Path) -> None:
    router = PersonalizedRouter(embeddings=EMBED, **FAST, validation_fraction=0.0)
    router.fit(_interactions(GROUP_A + GROUP_B, TASTE), candidates=CANDIDATES)
    weights = {k: v.clone() for k, v in router.net_.state_dict().items()}
    before = router.predict_quality(PROBES)
    # No fixed user count: any number of unseen users, each from their own ratings alone.
    newcomers = {f"new{i}": ("beta" if i % 2 else "alpha") for i in range(20)}
    for user, favourite in newcomers.items():
        revealed = _interactions([user], {user: favourite}, per_user=4, seed=7)
        router.observe(user, revealed)
        scores = router.predict_quality(PROBES, user_id=user)
        column = ["alpha", "beta"].index(favourite)
        assert (scores[:, column] > before[:, column]).all(), user
        assert _favourite(router, user) == [favourite, favourite]
    for key, value in router.net_.state_dict().items():
        assert value.equal(weights[key]), key
    assert len(router.known_users) == len(GROUP_A) + len(GROUP_B) + len(newcomers)
    # Save / load keeps the users observed after fitting.
    loaded: Any = load_router(router.save(tmp_path / "r"), embeddings=EMBED)
    assert set(loaded.known_users) == set(router.known_users)
    np.testing.assert_array_equal(
        loaded.predict_quality(PROBES, user_id="new3"),
        router.predict_quality(PROBES, user_id="new3"),
    )


def test_a_user_state_takes_milliseconds(planted: PersonalizedRouter) -> None:
    import time

    x = np.random.default_rng(0).normal(size=(60, planted.embedding_dim_)).astype(np.float32)
    history = UserHistory(
        models=np.arange(60) % 3,
        ratings=np.linspace(0, 1, 60, dtype=np.float32),
        sessions=[str(k // 3) for k in range(60)],
        x=x,
    )
    planted._user_states({"solo": history})
    start = time.perf_counter()
    for _ in range(10):
        state = planted._user_states({"solo": history})["solo"]
    assert (time.perf_counter() - start) / 10 < 0.05
    # Weights on the learned taste features, then one bias per candidate.
    assert state.shape == (FAST["taste_dim"] + 3,) and np.isfinite(state).all()


def test_new_candidate_gets_a_finite_prior(planted: PersonalizedRouter, tmp_path: Path) -> None:
    router: Any = load_router(planted.save(tmp_path / "r"), embeddings=EMBED)
    router.add_candidates(
        [LLMCandidate(name="delta", model="delta", description="A large reasoning model.")]
    )
    for user in (None, "a0", "b1"):
        scores = router.predict_quality(PROBES, user_id=user)
        assert scores.shape == (2, 4) and np.isfinite(scores).all()
        assert ((scores > 0) & (scores < 1)).all()


def test_save_load_round_trip(planted: PersonalizedRouter, tmp_path: Path) -> None:
    saved = planted.save(tmp_path / "router")
    for path in saved.rglob("*"):
        assert path.suffix in {".json", ".safetensors"}, path
    loaded: Any = load_router(saved, embeddings=EMBED)
    assert type(loaded) is PersonalizedRouter
    assert loaded.get_params() == planted.get_params()
    for user in (None, "a3", "b5"):
        np.testing.assert_array_equal(
            loaded.predict_quality(PROBES, user_id=user),
            planted.predict_quality(PROBES, user_id=user),
        )


def test_tasks_fall_back_to_kmeans_without_names() -> None:
    data = [x.model_copy(update={"task": None}) for x in _interactions(GROUP_A, TASTE)]
    router = PersonalizedRouter(embeddings=EMBED, **FAST, n_tasks=3)
    router.fit(data, candidates=CANDIDATES)
    assert router.task_source_ == "kmeans" and len(router.task_labels_) == 3
