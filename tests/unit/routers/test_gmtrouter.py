"""GMTRouter: planted preferences, pairs without ties, inductive users, cold start, new
candidates, saving, and fitting on routing data (tiny planted data, seconds each)."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest
import torch

from langchain_llmrouter import LLMCandidate, RoutingDataset, StaticEmbeddings, create_router
from langchain_llmrouter.personal.interactions import Interaction
from langchain_llmrouter.personal.router import POPULATION_USER
from langchain_llmrouter.routers.gmtrouter import GMTRouter, _pairs
from langchain_llmrouter.routers.registry import load_router
from langchain_llmrouter.testing import check_params_match_init

FAST = {"hidden_dim": 16, "heads": 2, "epochs": 80, "lr": 1e-2, "dropout": 0.0}
TOPICS = ["algebra", "poetry", "chemistry", "history", "python code", "geography"]
CANDIDATES = [
    LLMCandidate(name="A", model="A", description="A small fast model for chat."),
    LLMCandidate(name="B", model="B", description="B a large careful reasoning model."),
    LLMCandidate(name="C", model="C", description="C a mid-sized general model."),
]
EMBEDDINGS = StaticEmbeddings()


def _query(k: int) -> str:
    return f"question {k} about {TOPICS[k % len(TOPICS)]}: explain item {k * 7 % 13}"


def _user(user: str, likes: str, start: int, n: int) -> list[Interaction]:
    """``n`` questions, each answered by A, B and C; ``likes`` gets 5, the others 1 and 3."""
    out = []
    for k in range(start, start + n):
        for model in ("A", "B", "C"):
            rating = 5.0 if model == likes else (3.0 if model == "C" else 1.0)
            out.append(
                Interaction(
                    user_id=user, model=model, question_id=f"q{k}", query=_query(k), rating=rating
                )
            )
    return out


def _planted() -> list[Interaction]:
    """Four users who like A and four who like B, on disjoint questions."""
    data: list[Interaction] = []
    for u in range(8):
        data += _user(f"u{u}", "A" if u < 4 else "B", start=12 * u, n=12)
    return data


@pytest.fixture(scope="module")
def fitted() -> GMTRouter:
    return GMTRouter(embeddings=EMBEDDINGS, **FAST).fit(_planted(), candidates=CANDIDATES)


def _copy(router: GMTRouter, tmp_path: Path) -> GMTRouter:
    """A private copy of the shared fitted router (through save and load)."""
    loaded = load_router(router.save(tmp_path / "copy"), embeddings=EMBEDDINGS)
    assert isinstance(loaded, GMTRouter)
    return loaded


def _margin(router: GMTRouter, user: str | None, queries: list[str]) -> float:
    """Mean predicted preference of A minus B on ``queries``."""
    scores = router.predict_quality(queries, user_id=user)
    return float(np.mean(scores[:, 0] - scores[:, 1]))


NEW_QUERIES = [_query(k) for k in range(200, 212)]


def test_registered_and_params_match_init() -> None:
    assert isinstance(create_router("gmtrouter"), GMTRouter)
    check_params_match_init("gmtrouter")


def test_planted_preferences_are_recovered(fitted: GMTRouter) -> None:
    a_fans = [_margin(fitted, f"u{u}", NEW_QUERIES) for u in range(4)]
    b_fans = [_margin(fitted, f"u{u}", NEW_QUERIES) for u in range(4, 8)]
    population = _margin(fitted, None, NEW_QUERIES)
    assert min(a_fans) > 0 > max(b_fans)
    assert max(b_fans) < population < min(a_fans)
    for u in range(8):
        decision = fitted.route(NEW_QUERIES[0], user_id=f"u{u}")
        assert decision.personalised and decision.model == ("A" if u < 4 else "B")


def test_training_pairs_skip_ties() -> None:
    ties = [
        Interaction(user_id="u", model=m, question_id=f"q{k}", query=_query(k), rating=3.0)
        for k in range(5)
        for m in ("A", "B")
    ]
    router = GMTRouter(embeddings=EMBEDDINGS, **FAST)
    with pytest.raises(ValueError, match="no preference pairs"):
        router.fit(ties, candidates=CANDIDATES)
    # One question with a winner among ties: only its pair is a training pair.
    mixed = [*ties, ties[0].model_copy(update={"model": "C", "rating": 5.0})]
    history = router._histories(mixed, np.zeros((len(mixed), 2), np.float32), limit=None)
    assert _pairs(history["u"]).tolist() == [[10, 0], [10, 1]]


def test_new_user_is_inductive(fitted: GMTRouter, tmp_path: Path) -> None:
    router = _copy(fitted, tmp_path)
    weights = {k: v.clone() for k, v in router.net_.state_dict().items()}
    assert not router.has_user("newbie")
    start = time.perf_counter()
    state = router.observe("newbie", _user("newbie", "B", start=300, n=4))
    assert time.perf_counter() - start < 1.0
    assert router.has_user("newbie") and state.shape == ((1 + 3) * router.taste_dim,)
    assert _margin(router, "newbie", NEW_QUERIES) < _margin(router, None, NEW_QUERIES)
    for key, value in router.net_.state_dict().items():
        assert torch.equal(value, weights[key]), key
    # A new user's state is their history's, computed alone: a training user's is reproduced.
    again = router._user_states({"u0": router.history("u0")})["u0"]
    np.testing.assert_allclose(again, router.user_states_["u0"], atol=1e-5)


def test_unknown_user_gets_the_population_decision(fitted: GMTRouter) -> None:
    for query in NEW_QUERIES[:3]:
        cold = fitted.route(query, user_id="never-seen")
        assert cold.personalised is False
        assert cold.model == fitted.route(query).model
        assert cold.scores == fitted.route(query).scores


def test_new_candidate_gets_finite_scores(fitted: GMTRouter, tmp_path: Path) -> None:
    router = _copy(fitted, tmp_path)
    router.add_candidates([LLMCandidate(name="D", model="D", description="D a new model.")])
    for user in ("u0", "u5", None):
        scores = router.predict_quality(NEW_QUERIES, user_id=user)
        assert scores.shape == (len(NEW_QUERIES), 4)
        assert np.isfinite(scores).all() and ((scores >= 0) & (scores <= 1)).all()
    router.observe("dfan", _user("dfan", "A", start=400, n=2))  # its states still compute


def test_save_load_round_trip(fitted: GMTRouter, tmp_path: Path) -> None:
    router = _copy(fitted, tmp_path)
    router.observe("newbie", _user("newbie", "B", start=300, n=3))
    router.save(tmp_path / "saved")
    assert not [p for p in tmp_path.rglob("*") if p.suffix in {".pkl", ".pickle", ".pt"}]
    loaded = load_router(tmp_path / "saved", embeddings=EMBEDDINGS)
    assert isinstance(loaded, GMTRouter)
    for user in ("u0", "u6", "newbie", None, "never-seen"):
        np.testing.assert_array_equal(
            loaded.predict_quality(NEW_QUERIES, user_id=user),
            router.predict_quality(NEW_QUERIES, user_id=user),
        )
    # Observing after loading works as before saving.
    more = _user("newbie", "B", start=320, n=2)
    np.testing.assert_allclose(loaded.observe("newbie", more), router.observe("newbie", more))


def test_mismatched_saved_weights_are_refused(fitted: GMTRouter, tmp_path: Path) -> None:
    from langchain_llmrouter.errors import RouterLoadError

    router = _copy(fitted, tmp_path)
    _, arrays = router._get_model_state()
    meta, _ = router._get_model_state()
    key = next(k for k in arrays if k.startswith("net."))
    arrays[key] = np.zeros((1, 1), np.float32)
    with pytest.raises(RouterLoadError, match="shape"):
        router._set_model_state(meta, arrays)


def test_fits_on_a_routing_dataset() -> None:
    queries = [_query(k) for k in range(30)]
    topic = np.array([k % len(TOPICS) for k in range(30)])
    performance = np.stack([topic < 3, topic >= 3, np.full(30, 0.5)], 1).astype(float)
    dataset = RoutingDataset(
        queries=queries,
        candidates=["A", "B", "C"],
        performance=performance,
        cost=np.full((30, 3), 1e-4),
        candidate_specs={c.name: c for c in CANDIDATES},
    )
    router = GMTRouter(embeddings=EMBEDDINGS, **FAST).fit(dataset, candidates=CANDIDATES)
    assert router.known_users == [POPULATION_USER]
    scores = router.predict_quality(queries[:6], user_id=POPULATION_USER)
    assert scores.shape == (6, 3) and np.isfinite(scores).all()
    assert np.isfinite(router.predict_quality(queries[:6])).all()
