"""GraphRouter: the router contract plus the graph it builds, trains on and extends."""

from __future__ import annotations

import importlib
import sys
from typing import Any

import numpy as np
import pytest
import torch

from langchain_llmrouter import LLMCandidate, RoutingDataset, create_router
from langchain_llmrouter._optional import MissingDependencyError
from langchain_llmrouter.routers.graphrouter import QUERY_CANDIDATE, QUERY_TASK, GraphRouter
from langchain_llmrouter.testing import RouterContractTests

FAST = {"hidden_dim": 16, "max_epochs": 60, "patience": 20, "n_tasks": 5, "lr": 1e-2}


class TestGraphRouterContract(RouterContractTests):
    router_name = "graphrouter"
    contract_data_fixture = "router_slice"
    fast_params = FAST
    bad_params = [
        ({"hidden_dim": 0}, "hparam.hidden_dim"),
        ({"mask_rate": 1.0}, "hparam.mask_rate"),
        ({"mask_unit": "node"}, "hparam.mask_unit"),
        ({"validation_fraction": 0.7}, "hparam.validation_fraction"),
    ]

    def test_graph_holds_every_query_candidate_and_task(
        self, fitted: GraphRouter, router_slice: Any
    ) -> None:
        data = router_slice.fit
        n, m = data.performance.shape
        graph = fitted.graph_
        assert fitted.task_source_ == "kmeans"  # RouterDC data has no task names
        assert graph["query"].num_nodes == n and graph["candidate"].num_nodes == m
        assert graph["task"].num_nodes == len(fitted.task_labels_) == FAST["n_tasks"]
        torch.testing.assert_close(graph["query"].x, torch.from_numpy(router_slice.fit_emb))
        # Each query belongs to exactly one task; each task has members.
        q2t = graph[QUERY_TASK].edge_index
        assert q2t.shape == (2, n)
        assert torch.equal(q2t[0], torch.arange(n))
        assert set(q2t[1].tolist()) == set(range(FAST["n_tasks"]))
        # A complete query x candidate edge set with quality and normalised cost.
        qc = graph[QUERY_CANDIDATE]
        assert qc.edge_index.shape == (2, n * m)
        attr = qc.edge_attr.numpy()
        np.testing.assert_allclose(attr[:, 0], np.nan_to_num(data.performance).ravel(), atol=1e-6)
        np.testing.assert_allclose(
            attr[:, 1], (data.cost / fitted.cost_scale_).ravel(), rtol=1e-5, atol=1e-7
        )
        assert attr[:, 1].max() == pytest.approx(1.0)
        assert torch.equal(qc.known, torch.from_numpy(~np.isnan(data.performance).ravel()))

    def test_candidates_without_embeddings_use_their_embedded_descriptions(
        self, fitted: GraphRouter, router_slice: Any
    ) -> None:
        # default_llm.json has descriptions but no embeddings: MiniLM (384-d) embeds them.
        assert fitted.candidate_features_ == "description"
        x = fitted.graph_["candidate"].x
        assert x.shape == (len(router_slice.fit.candidates), router_slice.fit_emb.shape[1])
        assert torch.linalg.matrix_rank(x) == x.shape[0] - 1  # centred, else all distinct

    def test_new_queries_leave_the_training_graph_unchanged(
        self, fitted: GraphRouter, router_slice: Any
    ) -> None:
        held, emb = router_slice.held, router_slice.held_emb
        before = {
            key: value.clone()
            for store in fitted.graph_.stores
            for key, value in store.items()
            if isinstance(value, torch.Tensor)
        }
        batch = fitted.predict_quality(held.queries[:30], query_embeddings=emb[:30])
        assert ((batch > 0) & (batch < 1)).all()
        after = {
            key: value
            for store in fitted.graph_.stores
            for key, value in store.items()
            if isinstance(value, torch.Tensor)
        }
        assert before.keys() == after.keys()
        for key, value in before.items():
            assert torch.equal(value, after[key]), key
        # New queries send no messages, so a query's prediction does not depend on its batch.
        alone = fitted.predict_quality(held.queries[3:4], query_embeddings=emb[3:4])
        np.testing.assert_allclose(alone[0], batch[3], rtol=1e-5, atol=1e-6)
        assert not np.allclose(batch[0], batch[1:]), "every query got the same prediction"
        # The cached fast path equals one full pass over training graph + attached queries.
        n = fitted.graph_["query"].num_nodes
        cost = fitted.estimate_costs(held.queries[:30]) / fitted.cost_scale_
        rel = fitted._relations(np.arange(n), fitted._known, np.ones(n, dtype=bool), emb[:30], cost)
        with torch.no_grad():
            full = torch.sigmoid(fitted.net_(rel)).numpy().reshape(batch.shape)
        np.testing.assert_allclose(full, batch, rtol=1e-5, atol=1e-6)


def _planted(n_per_task: int = 40, dim: int = 12, seed: int = 0) -> tuple[RoutingDataset, Any]:
    """Two tasks in embedding space; candidate ``a`` solves task 0, ``b`` task 1, ``c`` neither."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(2, dim)) * 3
    task = np.repeat([0, 1], n_per_task)
    x = (centres[task] + rng.normal(size=(len(task), dim))).astype(np.float32)
    performance = np.full((len(task), 3), 0.1)
    performance[task == 0, 0] = 0.9
    performance[task == 1, 1] = 0.9
    performance[::7, 2] = np.nan  # some scores missing
    specs = {
        name: LLMCandidate(name=name, input_price=1.0, output_price=1.0, embedding=list(vec))
        for name, vec in zip("abc", rng.normal(size=(3, 6)), strict=True)
    }
    data = RoutingDataset(
        queries=[f"question {i} of task {t}" for i, t in enumerate(task)],
        candidates=list("abc"),
        performance=performance,
        cost=np.full((len(task), 3), 1e-4),
        task_names=[f"task{t}" for t in task],
        candidate_specs=specs,
    )
    return data, (x, centres)


def test_recovers_a_planted_task_to_candidate_structure() -> None:
    data, (x, centres) = _planted()
    router = GraphRouter(**FAST).fit(data, query_embeddings=x)
    assert router.task_source_ == "dataset" and router.task_labels_ == ["task0", "task1"]
    # Candidate features are the candidates' own (6-d) embeddings, centred and unit-scaled.
    assert router.candidate_features_ == "embedding"
    raw = np.array([c.embedding for c in data.candidate_info()], dtype=np.float32)
    unit = raw / np.linalg.norm(raw, axis=1, keepdims=True)
    np.testing.assert_allclose(
        router.graph_["candidate"].x.numpy(), unit - unit.mean(axis=0), atol=1e-6
    )
    assert not router.graph_[QUERY_CANDIDATE].known.all()
    rng = np.random.default_rng(1)
    new_task = np.array([0, 1] * 10)
    new_x = (centres[new_task] + rng.normal(size=(len(new_task), x.shape[1]))).astype(np.float32)
    predicted = router.predict_quality(["new"] * len(new_task), query_embeddings=new_x)
    assert np.isfinite(predicted).all()
    np.testing.assert_array_equal(predicted.argmax(axis=1), new_task)
    right = predicted[np.arange(len(new_task)), new_task]
    assert right.mean() > 0.7 and predicted[:, 2].mean() < 0.3  # calibrated to quality


def test_single_candidate_and_edge_masking() -> None:
    data, (x, _) = _planted(n_per_task=15)
    one = data.select_candidates(["a"])
    router = GraphRouter(**{**FAST, "max_epochs": 10, "mask_unit": "edge"}).fit(
        one, query_embeddings=x
    )
    predicted = router.predict_quality(one.queries[:4], query_embeddings=x[:4])
    assert predicted.shape == (4, 1) and np.isfinite(predicted).all()
    # One candidate: its centred feature is zero, and the edges alone carry the signal.
    assert router.candidate_features_ == "embedding"
    assert not router.graph_["candidate"].x.any()


def test_same_seed_same_router_and_validation_stops_early() -> None:
    data, (x, _) = _planted(n_per_task=20)
    params = {**FAST, "max_epochs": 400, "patience": 10}
    first = GraphRouter(**params).fit(data, query_embeddings=x)
    second = GraphRouter(**params).fit(data, query_embeddings=x)
    assert first.epochs_trained_ < 400
    np.testing.assert_array_equal(
        first.predict_quality(data.queries, query_embeddings=x),
        second.predict_quality(data.queries, query_embeddings=x),
    )


def test_missing_torch_geometric_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in [m for m in sys.modules if m.split(".")[0] == "torch_geometric"]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "torch_geometric", None)  # import now raises ImportError
    monkeypatch.delitem(sys.modules, "langchain_llmrouter.routers.graphrouter")
    module = importlib.import_module("langchain_llmrouter.routers.graphrouter")  # still imports
    router = create_router("graphrouter", **FAST)  # configuring needs no torch_geometric
    data, (x, _) = _planted(n_per_task=5)
    with pytest.raises(MissingDependencyError, match=r"langchain-llmrouter\[graph\]") as info:
        router.fit(data, query_embeddings=x)
    assert "graphrouter" in str(info.value) and "torch_geometric" in str(info.value)
    assert isinstance(router, module.GraphRouter)
