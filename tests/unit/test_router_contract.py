"""The shipped router contract (langchain_llmrouter.testing): its data, its checks, and that it
catches routers that break it. The built-in routers run it in tests/unit/routers/."""

from __future__ import annotations

import json
import subprocess
import sys
from typing import ClassVar

import numpy as np
import pytest
from pydantic import Field

from langchain_llmrouter import BaseRouter, RoutingDataset
from langchain_llmrouter.routers import registry
from langchain_llmrouter.routers.base import RouterParams
from langchain_llmrouter.testing import (
    ContractData,
    HashingEmbeddings,
    RouterContractTests,
    check_params_match_init,
    check_router,
    make_contract_data,
)
from langchain_llmrouter.testing.router_checks import CHECKS


@pytest.fixture(scope="module")
def data() -> ContractData:
    return make_contract_data()


def test_importing_the_testing_package_stays_light() -> None:
    code = (
        "import json, sys\n"
        "import langchain_llmrouter.testing as testing\n"
        "light = sorted(m for m in ('pytest', 'numpy', 'langchain_core') if m in sys.modules)\n"
        "testing.check_router, testing.make_contract_data\n"
        "checks = 'pytest' in sys.modules\n"
        "testing.RouterContractTests\n"
        "print(json.dumps([light, checks, 'pytest' in sys.modules]))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True
    )
    light, checks_import_pytest, class_imports_pytest = json.loads(result.stdout.splitlines()[-1])
    assert light == []
    assert not checks_import_pytest
    assert class_imports_pytest


def test_contract_data_is_synthetic_deterministic_and_learnable(data: ContractData) -> None:
    again = make_contract_data()
    assert again.fit.queries == data.fit.queries
    np.testing.assert_array_equal(again.fit.performance, data.fit.performance)
    np.testing.assert_array_equal(again.held_emb, data.held_emb)
    assert make_contract_data(seed=1).fit.queries != data.fit.queries
    assert (len(data.fit), len(data.held)) == (300, 150)
    assert data.fit.candidates == data.held.candidates == data.pool.names
    assert len(set(data.fit.queries) | set(data.held.queries)) == 450
    assert data.fit_emb.shape == (300, 64) and data.fit_emb.dtype == np.float32
    assert isinstance(data.embeddings, HashingEmbeddings)
    # Every topic has a best candidate well above the mean of a uniform choice.
    topics = sorted({t for t in data.fit.task_names if t is not None})
    assert len(topics) == 6
    best = [
        data.fit.performance[[t == topic for t in data.fit.task_names]].mean(axis=0).max()
        for topic in topics
    ]
    assert min(best) > data.fit.performance.mean() + 0.2
    # Dearer candidates cost more per call; costs follow the package's rule.
    prices = [c.input_price + c.output_price for c in data.pool]
    assert np.argsort(data.fit.cost.mean(axis=0)).tolist() == np.argsort(prices).tolist()


def test_hashing_embeddings_put_texts_that_share_words_close() -> None:
    embeddings = HashingEmbeddings(dim=32)
    a, b, c = embeddings.embed_array(
        ["river mountain ocean", "desert, river and mountain", "python loop recursion"]
    )
    assert np.linalg.norm(a) == pytest.approx(1.0, abs=1e-6)
    assert a @ b > a @ c + 0.3
    assert embeddings.embed_query("River, mountain!") == HashingEmbeddings(32).embed_query(
        "river mountain"
    )
    assert embeddings.name == "hashing-bow-32d"
    assert embeddings.embed_documents([""]) == [[0.0] * 32]


def test_check_router_passes_a_builtin_router_on_the_synthetic_data(data: ContractData) -> None:
    check_router("knnrouter", params={"k": 10}, bad_params=[({"k": 0}, "hparam.k")], data=data)


def test_check_router_rejects_unknown_check_names() -> None:
    with pytest.raises(ValueError, match="check_beats_random"):
        check_router("knnrouter", skip=["check_beats_randomly"])


# --- routers that break the contract --------------------------------------------------------


class _Params(RouterParams):
    depth: int = Field(default=3, ge=1)
    """A knob."""
    widths: list[int] = Field(default_factory=lambda: [8])
    """A list-valued knob."""


class _Broken(BaseRouter):
    """Predicts the second candidate best and the first next, whatever the query (so it
    never beats random on the contract data, but a cost weight moves it to the cheapest)."""

    name: ClassVar[str] = "broken_contract_test"
    Params = _Params

    def __init__(
        self,
        *,
        depth: int = 3,
        widths: list[int] | None = None,
        cost_weight: float = 0.0,
        budget: float | None = None,
    ) -> None:
        super().__init__(cost_weight=cost_weight, budget=budget)
        self.depth = depth
        self.widths = [8] if widths is None else widths

    def _fit(self, dataset: RoutingDataset | None, query_embeddings: np.ndarray | None) -> None:
        pass

    def _predict_quality(
        self, queries: list[str], query_embeddings: np.ndarray | None
    ) -> np.ndarray:
        scores = np.zeros((len(queries), len(self.candidates_)))
        scores[:, :2] = [0.9, 1.0]
        return scores


def test_params_check_accepts_a_none_default_the_init_replaces() -> None:
    check_params_match_init(_Broken)


class _DifferentDefault(_Broken):
    def __init__(self, *, depth: int = 4, widths: list[int] | None = None) -> None:
        super().__init__(depth=depth, widths=widths)


class _NoneKept(_Broken):
    def __init__(self, *, depth: int = 3, widths: list[int] | None = None) -> None:
        super().__init__(depth=depth)
        self.widths = widths  # type: ignore[assignment]


class _NotInParams(_Broken):
    def __init__(self, *, depth: int = 3, widths: list[int] | None = None, extra: int = 0) -> None:
        super().__init__(depth=depth, widths=widths)
        self.extra = extra


class _NoDefault(_Broken):
    def __init__(self, *, depth: int, widths: list[int] | None = None) -> None:
        super().__init__(depth=depth, widths=widths)


@pytest.mark.parametrize(
    ("router", "message"),
    [
        (_DifferentDefault, "'depth': Params default 3, __init__ default 4"),
        (_NoneKept, "'widths': Params default [8], _NoneKept() stores None"),
        (_NotInParams, "'extra' is an __init__ argument but not a field of Params"),
        (_NoDefault, "'depth' has no default in __init__"),
    ],
    ids=["different-default", "none-kept", "not-in-params", "no-default"],
)
def test_params_check_names_each_disagreement(router: type[BaseRouter], message: str) -> None:
    with pytest.raises(AssertionError, match="broken_contract_test: Params and __init__ disagree"):
        check_params_match_init(router)
    with pytest.raises(AssertionError) as info:
        check_params_match_init(router)
    assert message in str(info.value)


def test_check_router_names_the_failing_check(
    data: ContractData, monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(AssertionError, match=r"fails check_registered: .*register_router"):
        check_router(_Broken, bad_params=[({"depth": 0}, "hparam.depth")], data=data)
    monkeypatch.setitem(registry._PLUGINS, _Broken.name, _Broken)
    with pytest.raises(AssertionError, match="fails check_beats_random: broken_contract_test"):
        check_router(_Broken, bad_params=[({"depth": 0}, "hparam.depth")], data=data)
    with pytest.raises(AssertionError, match="fails check_bad_params_name_the_field: list at"):
        check_router(_Broken, data=data)
    with pytest.raises(AssertionError, match="fails check_bad_params_name_the_field"):
        check_router(_Broken, bad_params=[({"depth": 2}, "hparam.depth")], data=data)
    # The rules it keeps pass when the one it breaks is skipped.
    check_router(
        _Broken,
        bad_params=[({"depth": 0}, "hparam.depth")],
        data=data,
        skip=[name for name in CHECKS if name == "check_beats_random"],
    )


def test_the_pytest_class_runs_one_test_per_check() -> None:
    tests = sorted(name for name in dir(RouterContractTests) if name.startswith("test_"))
    assert len(tests) == len(CHECKS)
    with pytest.raises(TypeError, match="router_class or router_name"):
        RouterContractTests.router()


def test_every_exported_name_resolves() -> None:
    import langchain_llmrouter.testing as testing

    for name in testing.__all__:
        assert getattr(testing, name) is not None
    with pytest.raises(AttributeError, match="no attribute 'Nope'"):
        _ = testing.Nope
