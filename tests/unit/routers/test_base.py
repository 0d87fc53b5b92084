"""BaseRouter (routers/base.py): the Runnable interface, fitting errors, and saving and
loading without pickle (tampered and damaged files included)."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from langchain_core.embeddings import Embeddings
from langchain_core.messages import AIMessage, HumanMessage, SystemMessage
from langchain_core.prompts import ChatPromptTemplate
from safetensors.numpy import load_file

from langchain_llmrouter import (
    BaseRouter,
    CandidatePool,
    ConfigError,
    NotFittedError,
    RouterLoadError,
    RoutingDataset,
    RoutingDecision,
    UnknownRouterError,
    create_router,
    load_router,
)
from langchain_llmrouter.routers.knn import KNNRouter

CHEAPEST = "gemma-2-9b-it"  # the cheapest of the 9 RouterDC candidates ($0.10 / $0.10)


def _dumps(decisions: list[RoutingDecision]) -> list[dict[str, Any]]:
    return [d.model_dump() for d in decisions]


BUILTIN = ["knnrouter", "largest_llm", "oracle", "randomrouter", "smallest_llm"]
"""The foundation's routers, tested in this module (the others: tests/unit/routers/)."""


def test_runnable_batch_equals_route_batch(
    short_knn: BaseRouter, short_held: RoutingDataset
) -> None:
    queries = short_held.queries[:8]
    assert _dumps(short_knn.batch(queries)) == _dumps(short_knn.route_batch(queries))
    assert short_knn.batch([]) == []


def test_runnable_batch_with_per_input_configs(
    short_knn: BaseRouter, short_held: RoutingDataset
) -> None:
    queries = short_held.queries[:4]
    weights = [0.0, 1000.0, 0.0, 1000.0]
    configs: list[Any] = [{"configurable": {"cost_weight": w}} for w in weights]
    decisions = short_knn.batch(queries, configs)
    assert [d.cost_weight for d in decisions] == weights
    for query, weight, decision in zip(queries, weights, decisions, strict=True):
        # Each config group is embedded in its own pass, so compare up to float noise.
        alone = short_knn.route(query, cost_weight=weight)
        assert decision.model == alone.model
        assert decision.scores == pytest.approx(alone.scores, abs=1e-5)
    assert decisions[1].model == decisions[3].model == CHEAPEST


async def test_runnable_abatch_and_ainvoke(
    short_knn: BaseRouter, short_held: RoutingDataset
) -> None:
    queries = short_held.queries[:3]
    expected = _dumps(short_knn.route_batch(queries))
    assert _dumps(await short_knn.abatch(queries)) == expected
    assert (await short_knn.ainvoke(queries[0])).model_dump() == short_knn.route(
        queries[0]
    ).model_dump()


@pytest.fixture(scope="module")
def _expensive_query(short_knn: BaseRouter, short_held: RoutingDataset) -> str:
    """A held-out query whose best predicted candidate is not the cheapest one."""
    return next(q for q in short_held.queries[:20] if short_knn.route(q).model != CHEAPEST)


def _as_prompt_value(query: str) -> Any:
    return ChatPromptTemplate.from_messages([("system", "Be brief."), ("human", "{q}")]).invoke(
        {"q": query}
    )


@pytest.mark.parametrize(
    "wrap",
    [
        lambda q: q,
        lambda q: [HumanMessage(q)],
        lambda q: [SystemMessage("sys"), HumanMessage("earlier"), AIMessage("ok"), HumanMessage(q)],
        lambda q: [SystemMessage("sys"), HumanMessage(q), AIMessage("an answer")],
        lambda q: {"query": q, "other": 1},
        _as_prompt_value,
    ],
    ids=["str", "messages", "history", "ends-with-ai", "dict", "prompt-value"],
)
def test_invoke_accepts_inputs(
    short_knn: BaseRouter, _expensive_query: str, wrap: Callable[[str], Any]
) -> None:
    assert (
        short_knn.invoke(wrap(_expensive_query)).model_dump()
        == short_knn.route(_expensive_query).model_dump()
    )


@pytest.mark.parametrize(
    ("value", "error"),
    [({"prompt": "x"}, TypeError), (42, TypeError), ([], ValueError)],
)
def test_invoke_rejects_bad_inputs(
    short_knn: BaseRouter, value: Any, error: type[Exception]
) -> None:
    with pytest.raises(error):
        short_knn.invoke(value)


def test_invoke_configurable_cost_weight(short_knn: BaseRouter, _expensive_query: str) -> None:
    plain = short_knn.invoke(_expensive_query)
    thrifty = short_knn.invoke(_expensive_query, {"configurable": {"cost_weight": 1000.0}})
    assert plain.cost_weight == 0.0 and thrifty.cost_weight == 1000.0
    assert plain.model != CHEAPEST
    assert thrifty.model == CHEAPEST
    assert thrifty.est_cost < plain.est_cost
    assert thrifty.scores == plain.scores
    budgeted = short_knn.invoke(_expensive_query, {"configurable": {"budget": thrifty.est_cost}})
    assert budgeted.budget == thrifty.est_cost
    assert budgeted.est_cost <= thrifty.est_cost


@pytest.mark.parametrize("name", BUILTIN)
def test_routing_before_fit_raises(name: str) -> None:
    router = create_router(name)
    assert not router.is_fitted
    with pytest.raises(NotFittedError, match=name):
        router.route("hello")
    with pytest.raises(NotFittedError):
        router.save("/nonexistent/never-written")
    hint = "fit(dataset)" if router.trainable else "fit_candidates(pool)"
    with pytest.raises(NotFittedError, match=re.escape(hint)):
        router.predict_quality(["hello"])


def test_fit_errors(
    short_fit: RoutingDataset, short_fit_emb: np.ndarray, example_pool: CandidatePool
) -> None:
    with pytest.raises(TypeError, match="fit\\(dataset\\)"):
        create_router("knnrouter").fit_candidates(example_pool)
    with pytest.raises(ValueError, match="empty"):
        create_router("knnrouter").fit(short_fit.head(0))
    with pytest.raises(ValueError, match="10 rows for 400 queries"):
        create_router("knnrouter").fit(short_fit, query_embeddings=short_fit_emb[:10])


def _fitted(name: str, data: RoutingDataset, emb: np.ndarray, pool: CandidatePool) -> BaseRouter:
    if name == "knnrouter":
        return create_router(name, k=7, cost_weight=0.5).fit(data, query_embeddings=emb)
    if name == "oracle":
        return create_router(name, budget=2e-4).fit(data)
    if name == "randomrouter":
        return create_router(name, seed=3).fit_candidates(pool)
    return create_router(name).fit_candidates(pool)


@pytest.mark.parametrize("name", BUILTIN)
def test_save_load_round_trip(
    name: str,
    tmp_path: Path,
    example_pool: CandidatePool,
    short_fit: RoutingDataset,
    short_fit_emb: np.ndarray,
) -> None:
    router = _fitted(name, short_fit, short_fit_emb, example_pool)
    directory = router.save(tmp_path / "saved")
    assert directory == tmp_path / "saved"
    # No pickle: exactly a JSON document and a safetensors file.
    assert sorted(p.name for p in directory.iterdir()) == ["arrays.safetensors", "router.json"]
    document = json.loads((directory / "router.json").read_text(encoding="utf-8"))
    assert document["router"] == name
    assert document["format"] == "langchain-llmrouter/router"
    assert all(
        isinstance(a, np.ndarray) for a in load_file(directory / "arrays.safetensors").values()
    )

    queries, emb = short_fit.queries[:40], short_fit_emb[:40]
    expected = _dumps(router.route_batch(queries, query_embeddings=emb))
    for loaded in (load_router(directory), load_router(name, directory)):
        assert type(loaded) is type(router)
        assert loaded.get_params() == router.get_params()
        assert loaded.candidates_ == router.candidates_
        assert _dumps(loaded.route_batch(queries, query_embeddings=emb)) == expected
        np.testing.assert_array_equal(
            loaded.predict_quality(queries, query_embeddings=emb),
            router.predict_quality(queries, query_embeddings=emb),
        )


@pytest.fixture
def _saved_knn(tmp_path: Path, short_knn: BaseRouter) -> Path:
    return short_knn.save(tmp_path / "knn")


def test_load_as_another_router_fails(_saved_knn: Path) -> None:
    with pytest.raises(RouterLoadError, match="knnrouter") as info:
        load_router("smallest_llm", _saved_knn)
    assert "smallest_llm" in str(info.value)
    assert isinstance(KNNRouter.load(_saved_knn), KNNRouter)


def _tamper(directory: Path, change: str | Callable[[dict[str, Any]], object]) -> None:
    """Replace router.json by ``change`` (raw text) or edit its document in place."""
    path = directory / "router.json"
    if isinstance(change, str):
        path.write_text(change, encoding="utf-8")
        return
    document = json.loads(path.read_text(encoding="utf-8"))
    change(document)
    path.write_text(json.dumps(document), encoding="utf-8")


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ('{"format": "langchain-llmrouter/router",\n  "version": }', "line 2"),
        ("[]", "not a langchain-llmrouter router file"),
        (lambda d: d.update(format="sklearn-pickle"), "not a langchain-llmrouter router file"),
        (lambda d: d.pop("format"), "not a langchain-llmrouter router file"),
        (lambda d: d.update(version=99), "newer version"),
        (lambda d: d["candidates"].append("extra-model"), "do not match"),
        (lambda d: d.update(embeddings="openai:text-embedding-3-small"), "embeddings="),
    ],
    ids=["bad-json", "list", "format", "no-format", "version", "candidates", "embedder"],
)
def test_tampered_router_json(
    _saved_knn: Path, change: str | Callable[[dict[str, Any]], object], message: str
) -> None:
    _tamper(_saved_knn, change)
    with pytest.raises(RouterLoadError, match=message):
        load_router(_saved_knn)


def test_tampered_params_name_the_file_and_field(_saved_knn: Path) -> None:
    _tamper(_saved_knn, lambda d: d["params"].update(k=0))
    with pytest.raises(ConfigError) as info:
        load_router(_saved_knn)
    assert info.value.field == "hparam.k"
    assert info.value.path == str(_saved_knn / "router.json")


def test_tampered_router_name(_saved_knn: Path) -> None:
    _tamper(_saved_knn, lambda d: d.update(router="nope"))
    with pytest.raises(UnknownRouterError, match="'nope'"):
        load_router(_saved_knn)


@pytest.mark.parametrize("key", ["candidates", "router"])
def test_router_json_missing_keys(_saved_knn: Path, key: str) -> None:
    _tamper(_saved_knn, lambda d: d.pop(key))
    with pytest.raises(RouterLoadError):
        load_router(_saved_knn)


@pytest.mark.parametrize("damage", ["missing", "garbage"])
def test_damaged_arrays(_saved_knn: Path, damage: str) -> None:
    arrays = _saved_knn / "arrays.safetensors"
    if damage == "missing":
        arrays.unlink()
    else:
        arrays.write_bytes(b"\x80\x04not a safetensors file")
    with pytest.raises(RouterLoadError, match=r"arrays\.safetensors"):
        load_router(_saved_knn)


def test_load_from_a_directory_without_a_router(tmp_path: Path) -> None:
    with pytest.raises(RouterLoadError, match=r"no router\.json"):
        load_router(tmp_path)


class FakeEmbeddings(Embeddings):
    """A deterministic 8-d embedder with a name (stands in for a user's custom model)."""

    name = "fake-8d"

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        return [[b / 255 for b in hashlib.sha256(t.encode()).digest()[:8]] for t in texts]

    def embed_query(self, text: str) -> list[float]:
        return self.embed_documents([text])[0]


def test_custom_embedder_must_be_given_to_load(tmp_path: Path, short_fit: RoutingDataset) -> None:
    data = short_fit.head(30)
    router = create_router("knnrouter", k=3, embeddings=FakeEmbeddings()).fit(data)
    assert router.train_x_.shape == (30, 8)
    directory = router.save(tmp_path / "custom")
    assert json.loads((directory / "router.json").read_text())["embeddings"] == "fake-8d"
    with pytest.raises(RouterLoadError, match="fake-8d"):
        load_router(directory)
    loaded = load_router(directory, embeddings=FakeEmbeddings())
    assert _dumps(loaded.route_batch(data.queries[:5])) == _dumps(
        router.route_batch(data.queries[:5])
    )
