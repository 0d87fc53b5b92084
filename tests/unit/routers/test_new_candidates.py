"""Adding a candidate to a fitted router from a few answers (routers/new_candidates.py)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from langchain_llmrouter import BaseRouter, LLMCandidate, RouterLoadError, create_router
from langchain_llmrouter.routers.base import RoutingDecision
from langchain_llmrouter.testing import ContractData, make_contract_data

NEW = LLMCandidate(name="newcomer", model="newcomer", input_price=0.1, output_price=0.2)


@pytest.fixture(scope="module")
def data() -> ContractData:
    return make_contract_data(n_fit=300, n_held=150, seed=3)


def _knn(data: ContractData) -> BaseRouter:
    router = create_router("knnrouter", k=20, embeddings=data.embeddings)
    assert isinstance(router, BaseRouter)
    return router.fit(data.fit, query_embeddings=data.fit_emb)


def _planted(data: ContractData, source: str, n: int = 50) -> tuple[list[str], np.ndarray]:
    """Scores of a candidate right exactly where ``source`` is right, on ``n`` queries."""
    rows = np.random.default_rng(0).choice(len(data.fit), n, replace=False)
    column = data.fit.performance[rows, data.fit.candidates.index(source)]
    return [data.fit.queries[i] for i in rows], column


def _added(data: ContractData, source: str) -> BaseRouter:
    router = _knn(data)
    queries, scores = _planted(data, source)
    rows = [data.fit.queries.index(q) for q in queries]
    return router.add_candidate(NEW, (queries, scores), query_embeddings=data.fit_emb[rows])


def test_planted_candidate_tracks_its_source(data: ContractData) -> None:
    source = data.fit.candidates[2]
    router = _added(data, source)
    assert router.candidates_[-1] == "newcomer"
    predicted = router.predict_quality(data.held.queries, query_embeddings=data.held_emb)
    assert predicted.shape == (len(data.held), len(data.fit.candidates) + 1)
    own = predicted[:, router.candidates_.index(source)]
    others = [c for c in data.fit.candidates if c != source]
    corr = np.corrcoef(predicted[:, -1], own)[0, 1]
    assert corr > 0.8
    assert all(
        corr > np.corrcoef(predicted[:, -1], predicted[:, router.candidates_.index(c)])[0, 1]
        for c in others
    )
    costs = router.estimate_costs(data.held.queries[:3])
    assert costs.shape == (3, len(router.candidates_)) and (costs[:, -1] > 0).all()


def test_decisions_include_it_where_it_is_best(data: ContractData) -> None:
    router = _knn(data)
    queries, _ = _planted(data, data.fit.candidates[0])
    rows = [data.fit.queries.index(q) for q in queries]
    router.add_candidate(NEW, (queries, np.ones(len(queries))), query_embeddings=data.fit_emb[rows])
    decisions: list[RoutingDecision] = router.route_batch(
        data.held.queries[:20], query_embeddings=data.held_emb[:20]
    )
    assert all(d.model == "newcomer" and "newcomer" in d.scores for d in decisions)
    assert all(d.ranking[0] == "newcomer" for d in decisions)


def test_save_load_round_trip(data: ContractData, tmp_path: Path) -> None:
    router = _added(data, data.fit.candidates[1])
    router.save(tmp_path / "r")
    document = json.loads((tmp_path / "r" / "router.json").read_text())
    assert document["candidates"][-1] == "newcomer" and document["new_candidates"]["n_base"] == 5
    loaded = type(router).load(tmp_path / "r", embeddings=data.embeddings)
    assert loaded.candidates_ == router.candidates_
    np.testing.assert_array_equal(loaded.input_price_, router.input_price_)
    before = router.predict_quality(data.held.queries, query_embeddings=data.held_emb)
    after = loaded.predict_quality(data.held.queries, query_embeddings=data.held_emb)
    np.testing.assert_array_equal(before, after)
    # the arrays are under the digest: a changed map is refused
    document["new_candidates"]["n_base"] = 4
    (tmp_path / "r" / "router.json").write_text(json.dumps(document))
    with pytest.raises(RouterLoadError):
        type(router).load(tmp_path / "r", embeddings=data.embeddings)


def test_refusals(data: ContractData) -> None:
    router = _knn(data)
    queries, scores = _planted(data, data.fit.candidates[0])
    existing = LLMCandidate(name=data.fit.candidates[0], model="x")
    with pytest.raises(ValueError, match="already a candidate"):
        router.add_candidate(existing, (queries, scores))
    with pytest.raises(ValueError, match="no finite score"):
        router.add_candidate(NEW, (queries, np.full(len(queries), np.nan)))
    with pytest.raises(ValueError, match="scores of shape"):
        router.add_candidate(NEW, (queries, scores[:3]))
    unfitted = create_router("knnrouter", k=20, embeddings=data.embeddings)
    assert isinstance(unfitted, BaseRouter)
    with pytest.raises(Exception, match="not fitted"):
        unfitted.add_candidate(NEW, (queries, scores))
    assert router.candidates_ == data.fit.candidates  # nothing changed


@pytest.mark.parametrize("kind", ["personalised", "graph"])
def test_refuses_personalised_and_graph_routers(data: ContractData, kind: str) -> None:
    from langchain_llmrouter.personal.router import PersonalRouter

    router = _knn(data)
    bases = (type(router), PersonalRouter) if kind == "personalised" else (type(router),)
    router.__class__ = type("GraphRouter" if kind == "graph" else "Fake", bases, {})
    with pytest.raises(TypeError, match="does not apply"):
        router.add_candidate(NEW, _planted(data, data.fit.candidates[0]))


def test_more_than_fifty_answers_are_accepted(data: ContractData) -> None:
    router = _knn(data)
    queries, scores = _planted(data, data.fit.candidates[3], n=120)
    rows = [data.fit.queries.index(q) for q in queries]
    router.add_candidate(NEW, (queries, scores), query_embeddings=data.fit_emb[rows])
    assert router.new_candidates_.maps[0].n_answers == 120
