"""Unit tests of the routers: registry, kNN, baselines, the cost policy, Runnable use, saving."""

from __future__ import annotations

import hashlib
import json
import re
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pytest
from langchain_core.embeddings import Embeddings
from langchain_core.messages import AIMessage, HumanMessage, SystemMessage
from langchain_core.prompts import ChatPromptTemplate
from pydantic import ValidationError
from safetensors.numpy import load_file

from langchain_llmrouter import (
    APIKeys,
    BaseRouter,
    CandidatePool,
    ConfigError,
    LLMCandidate,
    LLMRouterError,
    NotFittedError,
    RouterLoadError,
    RoutingDataset,
    RoutingDecision,
    UnknownRouterError,
    available_routers,
    create_router,
    get_router_class,
    load_router,
    register_router,
)
from langchain_llmrouter.routers import choose, rank_candidates, registry
from langchain_llmrouter.routers.knn import KNNRouter

DATA_DIR = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "llmrouter_example"

BUILTIN = ["knnrouter", "largest_llm", "oracle", "randomrouter", "smallest_llm"]
"""The foundation's routers, tested in this module (the others: tests/unit/routers/)."""
ALL_BUILTIN = [
    "automix",
    "causallm_router",
    "elorouter",
    "graphrouter",
    "hybrid_llm",
    "knnmultiroundrouter",
    "knnrouter",
    "largest_llm",
    "llmmultiroundrouter",
    "mfrouter",
    "mlprouter",
    "oracle",
    "randomrouter",
    "router_r1",
    "routerdc",
    "smallest_llm",
    "svmrouter",
]
N_FIT, N_HELD = 400, 200
MAX_CHARS = 200  # short queries embed fast on a CPU (and match conftest's small_train)
CHEAPEST = "gemma-2-9b-it"  # the cheapest of the 9 RouterDC candidates ($0.10 / $0.10)


# --- shared fixtures -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def _pool() -> CandidatePool:
    return CandidatePool.from_json(DATA_DIR / "default_llm.json", api_keys=APIKeys())


@pytest.fixture(scope="module")
def _short(_pool: CandidatePool) -> RoutingDataset:
    """The first N_FIT + N_HELD RouterDC training queries of at most MAX_CHARS characters."""
    full = RoutingDataset.from_file(DATA_DIR / "routerdc_train.json", candidates=_pool)
    short = [i for i, q in enumerate(full.queries) if len(q) <= MAX_CHARS]
    return full.subset(short[: N_FIT + N_HELD])


@pytest.fixture(scope="module")
def _embedded(llmrouter_cache: Path, _short: RoutingDataset) -> np.ndarray:
    return _short.embed()


# The file is ordered by task, so the held-out queries are drawn at random, not sliced.
_ORDER = np.random.default_rng(0).permutation(N_FIT + N_HELD)
_FIT_ROWS, _HELD_ROWS = np.sort(_ORDER[:N_FIT]), np.sort(_ORDER[N_FIT:])


@pytest.fixture(scope="module")
def _fit_part(_short: RoutingDataset) -> RoutingDataset:
    return _short.subset(_FIT_ROWS)


@pytest.fixture(scope="module")
def _held(_short: RoutingDataset) -> RoutingDataset:
    return _short.subset(_HELD_ROWS)


@pytest.fixture(scope="module")
def _fit_emb(_embedded: np.ndarray) -> np.ndarray:
    return _embedded[_FIT_ROWS]


@pytest.fixture(scope="module")
def _held_emb(_embedded: np.ndarray) -> np.ndarray:
    return _embedded[_HELD_ROWS]


@pytest.fixture(scope="module")
def _knn(_fit_part: RoutingDataset, _fit_emb: np.ndarray) -> BaseRouter:
    """A kNN router fitted on the first N_FIT short queries; do not mutate it."""
    return create_router("knnrouter", k=10).fit(_fit_part, query_embeddings=_fit_emb)


def _chosen_quality(data: RoutingDataset, decisions: list[RoutingDecision]) -> np.ndarray:
    cols = [data.candidates.index(d.model) for d in decisions]
    return data.performance[np.arange(len(data)), cols]


def _dumps(decisions: list[RoutingDecision]) -> list[dict[str, Any]]:
    return [d.model_dump() for d in decisions]


class FakeEmbeddings(Embeddings):
    """A deterministic 8-d embedder with a name (stands in for a user's custom model)."""

    name = "fake-8d"

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        return [[b / 255 for b in hashlib.sha256(t.encode()).digest()[:8]] for t in texts]

    def embed_query(self, text: str) -> list[float]:
        return self.embed_documents([text])[0]


# --- registry ------------------------------------------------------------------------------


def test_builtin_routers_are_available() -> None:
    assert registry.builtin_routers() == ALL_BUILTIN
    assert set(ALL_BUILTIN) <= set(available_routers())
    assert available_routers() == sorted(available_routers())


@pytest.mark.parametrize("name", [*ALL_BUILTIN, "KNNRouter", "Smallest_LLM"])
def test_get_router_class(name: str) -> None:
    cls = get_router_class(name)
    assert issubclass(cls, BaseRouter)
    assert cls.name == name.lower()


def test_unknown_router_lists_valid_names() -> None:
    with pytest.raises(UnknownRouterError) as info:
        create_router("svm_router")
    message = str(info.value)
    assert "'svm_router'" in message
    assert all(name in message for name in ALL_BUILTIN)
    assert info.value.valid == available_routers()
    assert isinstance(info.value, KeyError)


@pytest.fixture
def _isolated_plugins(monkeypatch: pytest.MonkeyPatch) -> None:
    """Let a test register routers without leaking them into other tests."""
    monkeypatch.setattr(registry, "_PLUGINS", dict(registry._PLUGINS))


class _LastRouter(BaseRouter):
    """Always predicts the last candidate best (a minimal plugin)."""

    name: ClassVar[str] = "last_test"
    trainable: ClassVar[bool] = False

    def __init__(self, *, cost_weight: float = 0.0, budget: float | None = None) -> None:
        super().__init__(cost_weight=cost_weight, budget=budget)

    def _fit(self, dataset: RoutingDataset | None, query_embeddings: np.ndarray | None) -> None:
        pass

    def _predict_quality(
        self, queries: list[str], query_embeddings: np.ndarray | None
    ) -> np.ndarray:
        scores = np.zeros((len(queries), len(self.candidates_)))
        scores[:, -1] = 1.0
        return scores


@pytest.mark.usefixtures("_isolated_plugins")
def test_register_router_adds_a_custom_router(tmp_path: Path) -> None:
    assert "last_test" not in available_routers()
    assert register_router()(_LastRouter) is _LastRouter
    register_router("Last_Alias")(_LastRouter)
    assert {"last_test", "last_alias"} <= set(available_routers())
    assert {"last_alias", "last_test"} <= set(registry.plugin_routers())
    assert get_router_class("LAST_ALIAS") is _LastRouter

    pool = CandidatePool([LLMCandidate(name="x", model="x"), LLMCandidate(name="y", model="y")])
    router = create_router("last_test", cost_weight=0.0).fit_candidates(pool)
    assert isinstance(router, _LastRouter)
    assert router.route("hi").model == "y"
    with pytest.raises(ConfigError, match=r"hparam\.k"):
        create_router("last_test", k=3)
    loaded = load_router(router.save(tmp_path / "last"))
    assert isinstance(loaded, _LastRouter)
    assert loaded.route("hi").model == "y"


@pytest.mark.usefixtures("_isolated_plugins")
def test_plugin_may_override_a_builtin() -> None:
    register_router("oracle")(_LastRouter)
    assert get_router_class("oracle") is _LastRouter
    assert available_routers().count("oracle") == 1


# --- kNN quality and shapes ----------------------------------------------------------------


def test_knn_beats_random(
    _knn: BaseRouter, _fit_part: RoutingDataset, _held: RoutingDataset, _held_emb: np.ndarray
) -> None:
    knn_quality = _chosen_quality(
        _held, _knn.route_batch(_held.queries, query_embeddings=_held_emb)
    )
    random = create_router("randomrouter", seed=1).fit(_fit_part)
    random_quality = _chosen_quality(_held, random.route_batch(_held.queries))
    assert knn_quality.mean() > random_quality.mean() + 0.05
    # Sanity: random sits near the mean of the candidates, the oracle far above both.
    assert random_quality.mean() == pytest.approx(_held.performance.mean(), abs=0.06)
    assert knn_quality.mean() < _held.performance.max(axis=1).mean()


def test_knn_prediction_shapes(
    _knn: BaseRouter, _held: RoutingDataset, _held_emb: np.ndarray
) -> None:
    predicted = _knn.predict_quality(_held.queries, query_embeddings=_held_emb)
    assert predicted.shape == (N_HELD, 9)
    assert ((predicted >= 0) & (predicted <= 1)).all()
    assert _knn.candidates_ == _held.candidates
    costs = _knn.estimate_costs(_held.queries)
    assert costs.shape == (N_HELD, 9)
    np.testing.assert_allclose(costs, _held.cost, rtol=1e-12)


def test_knn_k1_reproduces_a_training_row(_fit_part: RoutingDataset, _fit_emb: np.ndarray) -> None:
    router = create_router("knnrouter", k=1, weights="uniform").fit(
        _fit_part, query_embeddings=_fit_emb
    )
    predicted = router.predict_quality(_fit_part.queries[:5], query_embeddings=_fit_emb[:5])
    np.testing.assert_allclose(predicted, _fit_part.performance[:5], atol=1e-6)


def test_knn_decision_fields(
    _knn: BaseRouter, _held: RoutingDataset, _held_emb: np.ndarray
) -> None:
    decision = _knn.route(_held.queries[0], query_embeddings=_held_emb[:1])
    assert decision.router == "knnrouter"
    assert set(decision.scores) == set(decision.costs) == set(_held.candidates)
    assert sorted(decision.ranking) == sorted(_held.candidates)
    assert decision.ranking[0] == decision.model
    assert decision.scores[decision.model] == max(decision.scores.values())
    assert decision.est_cost == decision.costs[decision.model]
    assert decision.model in decision.reason
    assert decision.to_metadata()["model"] == decision.model
    with pytest.raises(ValidationError):
        decision.model = "other"  # type: ignore[misc]


def test_route_batch_equals_route(
    _knn: BaseRouter, _held: RoutingDataset, _held_emb: np.ndarray
) -> None:
    queries, emb = _held.queries[:25], _held_emb[:25]
    batch = _knn.route_batch(queries, query_embeddings=emb, cost_weight=0.3)
    single = [
        _knn.route(q, query_embeddings=emb[i : i + 1], cost_weight=0.3)
        for i, q in enumerate(queries)
    ]
    for together, alone in zip(batch, single, strict=True):
        # The neighbour search's float32 arithmetic depends on the batch: scores agree to ~1e-7.
        assert together.scores == pytest.approx(alone.scores, abs=1e-5)
        assert together.model_dump(exclude={"scores"}) == alone.model_dump(exclude={"scores"})
    assert _knn.route_batch([]) == []


# --- Runnable interface (live embeddings) --------------------------------------------------


def test_runnable_batch_equals_route_batch(_knn: BaseRouter, _held: RoutingDataset) -> None:
    queries = _held.queries[:8]
    assert _dumps(_knn.batch(queries)) == _dumps(_knn.route_batch(queries))
    assert _knn.batch([]) == []


def test_runnable_batch_with_per_input_configs(_knn: BaseRouter, _held: RoutingDataset) -> None:
    queries = _held.queries[:4]
    weights = [0.0, 1000.0, 0.0, 1000.0]
    configs: list[Any] = [{"configurable": {"cost_weight": w}} for w in weights]
    decisions = _knn.batch(queries, configs)
    assert [d.cost_weight for d in decisions] == weights
    for query, weight, decision in zip(queries, weights, decisions, strict=True):
        # Each config group is embedded in its own pass, so compare up to float noise.
        alone = _knn.route(query, cost_weight=weight)
        assert decision.model == alone.model
        assert decision.scores == pytest.approx(alone.scores, abs=1e-5)
    assert decisions[1].model == decisions[3].model == CHEAPEST


async def test_runnable_abatch_and_ainvoke(_knn: BaseRouter, _held: RoutingDataset) -> None:
    queries = _held.queries[:3]
    expected = _dumps(_knn.route_batch(queries))
    assert _dumps(await _knn.abatch(queries)) == expected
    assert (await _knn.ainvoke(queries[0])).model_dump() == _knn.route(queries[0]).model_dump()


@pytest.fixture(scope="module")
def _expensive_query(_knn: BaseRouter, _held: RoutingDataset) -> str:
    """A held-out query whose best predicted candidate is not the cheapest one."""
    return next(q for q in _held.queries[:20] if _knn.route(q).model != CHEAPEST)


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
    _knn: BaseRouter, _expensive_query: str, wrap: Callable[[str], Any]
) -> None:
    assert (
        _knn.invoke(wrap(_expensive_query)).model_dump()
        == _knn.route(_expensive_query).model_dump()
    )


@pytest.mark.parametrize(
    ("value", "error"),
    [({"prompt": "x"}, TypeError), (42, TypeError), ([], ValueError)],
)
def test_invoke_rejects_bad_inputs(_knn: BaseRouter, value: Any, error: type[Exception]) -> None:
    with pytest.raises(error):
        _knn.invoke(value)


def test_invoke_configurable_cost_weight(_knn: BaseRouter, _expensive_query: str) -> None:
    plain = _knn.invoke(_expensive_query)
    thrifty = _knn.invoke(_expensive_query, {"configurable": {"cost_weight": 1000.0}})
    assert plain.cost_weight == 0.0 and thrifty.cost_weight == 1000.0
    assert plain.model != CHEAPEST
    assert thrifty.model == CHEAPEST
    assert thrifty.est_cost < plain.est_cost
    assert thrifty.scores == plain.scores
    budgeted = _knn.invoke(_expensive_query, {"configurable": {"budget": thrifty.est_cost}})
    assert budgeted.budget == thrifty.est_cost
    assert budgeted.est_cost <= thrifty.est_cost


# --- the cost policy through a router ------------------------------------------------------


def test_higher_cost_weight_never_costs_more(
    _knn: BaseRouter, _held: RoutingDataset, _held_emb: np.ndarray
) -> None:
    costs = []
    for weight in (0.0, 0.1, 1.0, 10.0):
        decisions = _knn.route_batch(_held.queries, cost_weight=weight, query_embeddings=_held_emb)
        assert {d.cost_weight for d in decisions} == {weight}
        costs.append(np.array([d.est_cost for d in decisions]))
    for cheaper, dearer in zip(costs[1:], costs[:-1], strict=True):
        assert (cheaper <= dearer).all()
    means = [c.mean() for c in costs]
    assert means == sorted(means, reverse=True)
    assert means[-1] < means[0]


def test_router_level_cost_weight_is_the_default(
    _fit_part: RoutingDataset, _fit_emb: np.ndarray, _held: RoutingDataset, _held_emb: np.ndarray
) -> None:
    router = create_router("knnrouter", k=10, cost_weight=10.0)
    router.fit(_fit_part, query_embeddings=_fit_emb)
    own = router.route_batch(_held.queries[:30], query_embeddings=_held_emb[:30])
    override = router.route_batch(
        _held.queries[:30], query_embeddings=_held_emb[:30], cost_weight=0
    )
    assert {d.cost_weight for d in own} == {10.0}
    assert sum(d.est_cost for d in own) < sum(d.est_cost for d in override)


def test_budget_is_kept_when_affordable(
    _knn: BaseRouter, _held: RoutingDataset, _held_emb: np.ndarray
) -> None:
    budget = 1e-4  # fits the 7-9B candidates for short queries, never the 49B+ ones
    free = _knn.route_batch(_held.queries, query_embeddings=_held_emb)
    assert any(d.est_cost > budget for d in free)
    # A 10,000-token prompt that no candidate can answer within the budget.
    queries = [*_held.queries, "x" * 40_000]
    emb = np.vstack([_held_emb, _held_emb[:1]])
    decisions = _knn.route_batch(queries, budget=budget, query_embeddings=emb)
    assert decisions[-1].model == CHEAPEST and decisions[-1].est_cost > budget
    for decision in decisions:
        assert decision.budget == budget
        affordable = {m: c for m, c in decision.costs.items() if c <= budget}
        if affordable:
            assert decision.est_cost <= budget
            # The best predicted candidate within the budget.
            best = max(affordable, key=lambda m: decision.scores[m])
            assert decision.scores[decision.model] == decision.scores[best]
        else:
            assert decision.est_cost == min(decision.costs.values())


# --- saving and loading --------------------------------------------------------------------


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
    _pool: CandidatePool,
    _fit_part: RoutingDataset,
    _fit_emb: np.ndarray,
) -> None:
    router = _fitted(name, _fit_part, _fit_emb, _pool)
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

    queries, emb = _fit_part.queries[:40], _fit_emb[:40]
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
def _saved_knn(tmp_path: Path, _knn: BaseRouter) -> Path:
    return _knn.save(tmp_path / "knn")


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


def test_custom_embedder_must_be_given_to_load(tmp_path: Path, _fit_part: RoutingDataset) -> None:
    data = _fit_part.head(30)
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


# --- hyperparameters and fitting errors ----------------------------------------------------

BAD_KNN_PARAMS = [
    ({"k": 0}, "hparam.k"),
    ({"k": "many"}, "hparam.k"),
    ({"metric": "manhattan"}, "hparam.metric"),
    ({"weights": "gaussian"}, "hparam.weights"),
    ({"cost_weight": -1.0}, "hparam.cost_weight"),
    ({"budget": 0.0}, "hparam.budget"),
]


@pytest.mark.parametrize(("params", "field"), [*BAD_KNN_PARAMS, ({"foo": 1}, "hparam.foo")])
def test_create_router_rejects_bad_params(params: dict[str, Any], field: str) -> None:
    with pytest.raises(ConfigError) as info:
        create_router("knnrouter", **params)
    assert info.value.field == field
    assert field in str(info.value)


@pytest.mark.parametrize(("params", "field"), BAD_KNN_PARAMS)
def test_fit_rejects_bad_params(
    params: dict[str, Any], field: str, _fit_part: RoutingDataset, _fit_emb: np.ndarray
) -> None:
    router = KNNRouter(**params)  # scikit-learn style: __init__ only stores
    with pytest.raises(ConfigError) as info:
        router.fit(_fit_part, query_embeddings=_fit_emb)
    assert info.value.field == field
    assert not router.is_fitted


def test_set_params(_fit_part: RoutingDataset) -> None:
    router = KNNRouter()
    assert router.set_params(k=3, metric="l2") is router
    assert router.get_params() == {
        "k": 3,
        "weights": "distance",
        "metric": "l2",
        "cost_weight": 0.0,
        "budget": None,
    }
    with pytest.raises(ConfigError) as info:
        router.set_params(foo=1)
    assert info.value.field == "foo"
    assert "k, weights, metric" in str(info.value)


@pytest.mark.parametrize("name", ["smallest_llm", "largest_llm", "randomrouter"])
def test_baselines_take_no_cost_params(name: str) -> None:
    with pytest.raises(ConfigError, match=r"hparam\.cost_weight"):
        create_router(name, cost_weight=1.0)


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


def test_fit_errors(_fit_part: RoutingDataset, _fit_emb: np.ndarray, _pool: CandidatePool) -> None:
    with pytest.raises(TypeError, match="fit\\(dataset\\)"):
        create_router("knnrouter").fit_candidates(_pool)
    with pytest.raises(ValueError, match="empty"):
        create_router("knnrouter").fit(_fit_part.head(0))
    with pytest.raises(ValueError, match="10 rows for 400 queries"):
        create_router("knnrouter").fit(_fit_part, query_embeddings=_fit_emb[:10])


def test_query_embedding_dimension_mismatch(_knn: BaseRouter) -> None:
    with pytest.raises(ValueError, match="dimension 8"):
        _knn.route("q", query_embeddings=np.zeros((1, 8), dtype=np.float32))


# --- baselines -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "expected"),
    [("smallest_llm", "qwen2.5-7b-instruct"), ("largest_llm", "mixtral-8x22b-instruct-v0.1")],
)
def test_size_baselines_on_the_shared_pool(_pool: CandidatePool, name: str, expected: str) -> None:
    router = create_router(name).fit_candidates(_pool)
    decisions = router.route_batch(["short", "a much longer question " * 20])
    assert {d.model for d in decisions} == {expected}
    sizes = [c.size_billions for c in _pool]
    chosen = _pool[expected].size_billions
    assert chosen == (min(sizes) if name == "smallest_llm" else max(sizes))
    assert decisions[0].scores[expected] == 1.0
    assert sum(decisions[0].scores.values()) == 1.0
    # Fixed baselines ignore the cost policy.
    for kwargs in ({"cost_weight": 1000.0}, {"budget": 1e-9}):
        decision = router.route("short", **kwargs)
        assert decision.model == expected
        assert (decision.cost_weight, decision.budget) == (0.0, None)
    assert router.invoke("x", {"configurable": {"cost_weight": 50}}).model == expected


@pytest.mark.parametrize(
    ("name", "expected"),
    [("smallest_llm", "llama3-chatqa-1.5-8b"), ("largest_llm", "llama3-chatqa-1.5-70b")],
)
def test_size_baselines_fitted_on_data(_fit_part: RoutingDataset, name: str, expected: str) -> None:
    # Two 8B candidates at the same price: the smallest is the first of them in column order.
    data = _fit_part.select_candidates(
        ["llama3-chatqa-1.5-8b", "llama-3.1-8b-instruct", "gemma-2-9b-it", "llama3-chatqa-1.5-70b"]
    )
    assert create_router(name).fit(data).route("q").model == expected


def _candidate(name: str, size: str | None, price: float) -> LLMCandidate:
    return LLMCandidate(name=name, model=name, size=size, input_price=price, output_price=price)


@pytest.mark.parametrize(
    ("candidates", "smallest", "largest"),
    [
        (
            [
                _candidate("dear-7b", "7B", 0.5),
                _candidate("cheap-7b", "7B", 0.1),
                _candidate("cheap-70b", "70B", 1.0),
                _candidate("dear-70b", "70B", 2.0),
                _candidate("unknown", None, 0.01),
            ],
            "cheap-7b",
            "dear-70b",
        ),
        (
            [
                _candidate("mid", None, 0.5),
                _candidate("low", None, 0.1),
                _candidate("high", None, 3),
            ],
            "low",
            "high",
        ),
        (
            [_candidate("first", "7B", 0.2), _candidate("second", "7B", 0.2)],
            "first",
            "first",
        ),
    ],
    ids=["ties-by-price", "no-sizes-use-price", "full-tie-list-order"],
)
def test_size_baselines_tie_breaks(
    candidates: list[LLMCandidate], smallest: str, largest: str
) -> None:
    assert create_router("smallest_llm").fit_candidates(candidates).route("q").model == smallest
    assert create_router("largest_llm").fit_candidates(candidates).route("q").model == largest


def test_random_router_is_reproducible_per_query(_pool: CandidatePool) -> None:
    queries = [f"question number {i}" for i in range(60)]
    first = create_router("randomrouter", seed=1).fit_candidates(_pool)
    second = create_router("randomrouter", seed=1).fit_candidates(_pool)
    picks = [d.model for d in first.route_batch(queries)]
    assert [d.model for d in second.route_batch(queries)] == picks
    assert [d.model for d in first.route_batch(queries[::-1])] == picks[::-1]
    assert [first.route(q).model for q in queries[:5]] == picks[:5]
    assert [d.model for d in first.route_batch(queries, cost_weight=1000.0)] == picks
    other = create_router("randomrouter", seed=2).fit_candidates(_pool)
    assert [d.model for d in other.route_batch(queries)] != picks


def test_random_router_is_roughly_uniform(_pool: CandidatePool) -> None:
    router = create_router("randomrouter", seed=1).fit_candidates(_pool)
    counts = Counter(d.model for d in router.route_batch([f"q{i}" for i in range(1400)]))
    assert set(counts) == set(_pool.names)
    # 100 expected per candidate; the standard deviation is about 9.6.
    assert all(55 <= n <= 145 for n in counts.values()), counts


def test_unseeded_random_router_varies(_pool: CandidatePool) -> None:
    router = create_router("randomrouter").fit_candidates(_pool)
    queries = ["same question"] * 50
    assert len({d.model for d in router.route_batch(queries)}) > 1


def test_oracle_picks_the_true_best(_fit_part: RoutingDataset) -> None:
    oracle = create_router("oracle").fit(_fit_part)
    decisions = oracle.route_batch(_fit_part.queries)
    quality = _chosen_quality(_fit_part, decisions)
    np.testing.assert_array_equal(quality, _fit_part.performance.max(axis=1))
    # Among equally good candidates the cheapest is chosen.
    for i, decision in enumerate(decisions):
        best = _fit_part.performance[i] == _fit_part.performance[i].max()
        assert decision.est_cost == pytest.approx(_fit_part.cost[i][best].min())
    assert quality.mean() > _fit_part.performance.mean(axis=0).max() + 0.1


def test_oracle_rejects_unseen_queries(_fit_part: RoutingDataset, _pool: CandidatePool) -> None:
    oracle = create_router("oracle").fit(_fit_part.head(10))
    with pytest.raises(LLMRouterError, match="oracle only routes queries"):
        oracle.route_batch([_fit_part.queries[0], "never seen before"])
    with pytest.raises(TypeError):
        create_router("oracle").fit_candidates(_pool)


def test_oracle_never_picks_a_missing_score() -> None:
    data = RoutingDataset(
        queries=["q"],
        candidates=["a", "b"],
        performance=np.array([[np.nan, 0.0]]),
        cost=np.array([[0.0, 1.0]]),
    )
    assert create_router("oracle").fit(data).route("q").model == "b"


# --- the policy functions ------------------------------------------------------------------


def _rank(predicted: list[float], cost: list[float], weight: float = 0.0, **kw: Any) -> list[int]:
    return rank_candidates(np.array([predicted]), np.array([cost]), weight, **kw)[0].tolist()


@pytest.mark.parametrize(
    ("predicted", "cost", "weight", "kwargs", "expected"),
    [
        ([0.2, 0.9, 0.5], [1, 1, 1], 0.0, {}, [1, 2, 0]),
        ([0.5, 0.5, 0.5], [3, 1, 2], 0.0, {}, [1, 2, 0]),  # ties: cheaper wins
        ([0.5, 0.5, 0.5], [1, 1, 1], 0.0, {}, [0, 1, 2]),  # then the earlier
        ([0.9, 0.8], [1e-3, 1e-4], 0.05, {}, [0, 1]),  # 0.85 > 0.795
        ([0.9, 0.8], [1e-3, 1e-4], 0.2, {}, [1, 0]),  # 0.7 < 0.78
        ([0.9, 0.5, 0.1], [3, 2, 1], 0.0, {"budget": 2.5}, [1, 2, 0]),
        ([0.9, 0.5, 0.1], [3, 2, 1], 0.0, {"budget": 0.5}, [2, 0, 1]),  # none fits: cheapest
        (
            [0.9, 0.5, 0.1],
            [3, 2, 1],
            0.0,
            {"available": np.array([[False, True, True]])},
            [1, 2, 0],
        ),
        ([np.nan, 0.1], [1, 1], 0.0, {}, [1, 0]),  # unknown quality goes last
        ([0.5, 0.4], [np.nan, 1], 0.0, {"budget": 5.0}, [1, 0]),  # unknown cost is over budget
    ],
    ids=[
        "quality",
        "tie-cheaper",
        "tie-order",
        "weight-low",
        "weight-high",
        "budget",
        "budget-none-fits",
        "availability",
        "nan-quality",
        "nan-cost",
    ],
)
def test_rank_candidates(
    predicted: list[float],
    cost: list[float],
    weight: float,
    kwargs: dict[str, Any],
    expected: list[int],
) -> None:
    assert _rank(predicted, cost, weight, **kwargs) == expected
    chosen = choose(np.array([predicted]), np.array([cost]), weight, **kwargs)
    assert chosen.tolist() == expected[:1]


def test_rank_candidates_is_per_row() -> None:
    predicted = np.array([[0.9, 0.1], [0.1, 0.9]])
    assert choose(predicted, np.zeros((2, 2))).tolist() == [0, 1]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (([[0.5]], [[1.0]], -1.0), "cost_weight must be >= 0"),
        (([[0.5, 0.2]], [[1.0]], 0.0), "shape"),
    ],
)
def test_rank_candidates_rejects_bad_input(args: tuple[Any, ...], message: str) -> None:
    predicted, cost, weight = args
    with pytest.raises(ValueError, match=message):
        rank_candidates(np.array(predicted), np.array(cost), weight)


@pytest.mark.parametrize(
    ("predicted", "cost"),
    [([0.9, 0.1, 0.5], [1.0, 2.0, 3.0]), ([0.0, 0.1, 0.9], [0.1, 2.0, 3.0])],
    ids=["cheapest-unavailable", "only-affordable-unavailable"],
)
def test_budget_fallback_respects_availability(predicted: list[float], cost: list[float]) -> None:
    available = np.array([[False, True, True]])
    assert _rank(predicted, cost, budget=0.5, available=available)[0] == 1
