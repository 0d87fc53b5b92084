"""The router contract as a pytest base class: subclass it in your tests, one class per router.

A test module subclasses `RouterContractTests`, names the router and gives hyperparameters
that train in seconds::

    from langchain_llmrouter.testing import RouterContractTests


    class TestMyRouter(RouterContractTests):
        router_name = "myrouter"  # or: router_class = MyRouter
        fast_params = {"alpha": 0.1}
        bad_params = [({"alpha": 0}, "hparam.alpha")]

and adds tests of what is particular to the router. Every test calls one check of
`langchain_llmrouter.testing.router_checks`; a rule the router breaks by design is overridden
in the subclass (or marked ``xfail``), never skipped silently.

This module imports pytest; ``import langchain_llmrouter.testing`` does not.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import pytest

from langchain_llmrouter.routers.base import BaseRouter
from langchain_llmrouter.testing.openai_server import FakeOpenAIServer
from langchain_llmrouter.testing.router_checks import (
    ContractData,
    check_bad_params_name_the_field,
    check_beats_random,
    check_cost_weight_never_raises_the_average_cost,
    check_params_match_init,
    check_predictions_cover_every_candidate,
    check_registered,
    check_routing_before_fit_raises,
    check_save_load_gives_identical_decisions,
    check_unknown_param_lists_the_valid_ones,
    check_usable_inside_router_chat_model,
    fit_router,
    make_contract_data,
)

__all__ = ["RouterContractTests"]


class RouterContractTests:
    """Contract tests for one single-round router; subclasses set the class attributes below.

    Fixtures (class-scoped, so the router is fitted once per class): ``contract_data`` (a
    `ContractData`), ``fitted`` (the router fitted on it; do not mutate it) and
    ``contract_server`` (a local `FakeOpenAIServer` for the chat-model test).
    """

    router_class: ClassVar[type[BaseRouter] | None] = None
    """The router class under test (registered with ``@register_router()``)."""
    router_name: ClassVar[str | None] = None
    """Or its registry name (for a plugin file that discovery imports, use the name)."""
    fast_params: ClassVar[dict[str, Any]] = {}
    """Hyperparameters that train in seconds on the contract data."""
    bad_params: ClassVar[list[tuple[dict[str, Any], str]]] = []
    """(hyperparameters, the field the error must name) pairs that must be rejected."""
    min_margin_over_random: ClassVar[float] = 0.03
    """How far above the random router's held-out quality the router must be."""
    contract_data_fixture: ClassVar[str | None] = None
    """The name of a fixture that returns the `ContractData` to use instead of
    `make_contract_data()` (say, a session fixture with a slice of your own data)."""

    @classmethod
    def router(cls) -> type[BaseRouter] | str:
        """The router under test: `router_class`, else `router_name`."""
        if cls.router_class is not None:
            return cls.router_class
        if cls.router_name is None:
            raise TypeError(f"{cls.__name__}: set router_class or router_name")
        return cls.router_name

    @pytest.fixture(scope="class")
    @classmethod
    def contract_data(cls, request: pytest.FixtureRequest) -> ContractData:
        """The routing data of the contract (see `contract_data_fixture`)."""
        if cls.contract_data_fixture is not None:
            data = request.getfixturevalue(cls.contract_data_fixture)
            assert isinstance(data, ContractData), type(data)
            return data
        return make_contract_data()

    @pytest.fixture(scope="class")
    @classmethod
    def fitted(cls, contract_data: ContractData) -> BaseRouter:
        """The router fitted once per test class on the contract data; do not mutate it."""
        return fit_router(cls.router(), cls.fast_params, contract_data)

    @pytest.fixture(scope="class")
    @classmethod
    def contract_server(cls) -> Iterator[FakeOpenAIServer]:
        """A local OpenAI-compatible server that answers for every candidate."""
        with FakeOpenAIServer() as server:
            yield server

    def test_registered_under_its_name(self) -> None:
        check_registered(self.router())

    def test_params_defaults_match_init(self) -> None:
        check_params_match_init(self.router())

    def test_beats_random_on_held_out_queries(
        self, fitted: BaseRouter, contract_data: ContractData
    ) -> None:
        check_beats_random(fitted, contract_data, self.min_margin_over_random)

    def test_predictions_cover_every_candidate(
        self, fitted: BaseRouter, contract_data: ContractData
    ) -> None:
        check_predictions_cover_every_candidate(fitted, contract_data)

    def test_save_load_gives_identical_decisions(
        self, fitted: BaseRouter, contract_data: ContractData, tmp_path: Path
    ) -> None:
        check_save_load_gives_identical_decisions(fitted, contract_data, tmp_path)

    def test_higher_cost_weight_never_raises_the_average_cost(
        self, fitted: BaseRouter, contract_data: ContractData
    ) -> None:
        check_cost_weight_never_raises_the_average_cost(fitted, contract_data)

    def test_bad_hyperparameters_name_the_field(self) -> None:
        check_bad_params_name_the_field(self.router(), self.bad_params)

    def test_unknown_hyperparameter_lists_the_valid_ones(self) -> None:
        check_unknown_param_lists_the_valid_ones(self.router())

    def test_routing_before_fit_raises(self, contract_data: ContractData) -> None:
        check_routing_before_fit_raises(self.router(), self.fast_params, contract_data)

    def test_usable_inside_router_chat_model(
        self, fitted: BaseRouter, contract_data: ContractData, contract_server: FakeOpenAIServer
    ) -> None:
        check_usable_inside_router_chat_model(fitted, contract_data, contract_server.base_url)
