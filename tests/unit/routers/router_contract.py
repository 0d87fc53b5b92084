"""The behaviour every trainable single-round router must show, as a reusable test class.

A router's test module subclasses `RouterContract`, names the router and gives
hyperparameters that train in seconds on the shared slice::

    class TestSVMRouter(RouterContract):
        router_name = "svmrouter"
        fast_params = {"C": 1.0}
        bad_params = [({"C": -1}, "hparam.C")]

and adds tests of what is particular to the family.
"""

from __future__ import annotations

import itertools
import json
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pytest
from langchain_core.messages import HumanMessage
from safetensors.numpy import load_file

from langchain_llmrouter import (
    BaseRouter,
    ConfigError,
    NotFittedError,
    RouterChatModel,
    RoutingDataset,
    create_router,
    load_router,
)
from langchain_llmrouter.testing import FakeOpenAIServer

PICKLE_MAGIC = (b"\x80\x02", b"\x80\x03", b"\x80\x04", b"\x80\x05")
ZIP_MAGIC = b"PK\x03\x04"  # torch.save writes a zip holding a pickle


def chosen_quality(data: RoutingDataset, models: list[str]) -> np.ndarray:
    """The true quality of the candidate chosen for each query."""
    cols = [data.candidates.index(m) for m in models]
    return np.nan_to_num(data.performance[np.arange(len(data)), cols])


def fit_router(name: str, params: dict[str, Any], slice_: Any) -> BaseRouter:
    """A router of ``name`` fitted on the shared slice's training part."""
    router = create_router(name, **params)
    emb = slice_.fit_emb if router.uses_embeddings else None
    return router.fit(slice_.fit, query_embeddings=emb)


class RouterContract:
    """Contract tests for one router; subclasses set the class attributes below."""

    router_name: ClassVar[str]
    """Registry name of the router under test."""
    fast_params: ClassVar[dict[str, Any]] = {}
    """Hyperparameters that train in seconds on the slice."""
    bad_params: ClassVar[list[tuple[dict[str, Any], str]]] = []
    """(hyperparameters, the field the error must name) pairs that must be rejected."""
    min_margin_over_random: ClassVar[float] = 0.03
    """How far above the random router's held-out quality the router must be."""

    @pytest.fixture(scope="class")
    @classmethod
    def fitted(cls, router_slice: Any) -> BaseRouter:
        """The router fitted once per test class on the slice; do not mutate it."""
        return fit_router(cls.router_name, cls.fast_params, router_slice)

    @staticmethod
    def _emb(router: BaseRouter, emb: np.ndarray) -> np.ndarray | None:
        return emb if router.uses_embeddings else None

    def test_beats_random_on_held_out_queries(self, fitted: BaseRouter, router_slice: Any) -> None:
        held = router_slice.held
        decisions = fitted.route_batch(
            held.queries, query_embeddings=self._emb(fitted, router_slice.held_emb)
        )
        quality = chosen_quality(held, [d.model for d in decisions]).mean()
        random = create_router("randomrouter", seed=0).fit_candidates(held.candidate_info())
        random_models = [d.model for d in random.route_batch(held.queries)]
        random_quality = chosen_quality(held, random_models).mean()
        # The expected quality of a uniform choice, too, so a lucky seed cannot hide a failure.
        uniform = float(np.nanmean(np.nan_to_num(held.performance)))
        assert quality > max(random_quality, uniform) + self.min_margin_over_random, (
            f"{self.router_name}: held-out quality {quality:.3f}, "
            f"random {random_quality:.3f}, uniform {uniform:.3f}"
        )

    def test_predictions_cover_every_candidate(self, fitted: BaseRouter, router_slice: Any) -> None:
        held = router_slice.held
        predicted = fitted.predict_quality(
            held.queries[:20], query_embeddings=self._emb(fitted, router_slice.held_emb[:20])
        )
        assert predicted.shape == (20, len(held.candidates))
        assert np.isfinite(predicted).all()
        assert fitted.candidates_ == held.candidates

    def test_save_load_gives_identical_decisions(
        self, fitted: BaseRouter, router_slice: Any, tmp_path: Path
    ) -> None:
        directory = fitted.save(tmp_path / self.router_name)
        document = json.loads((directory / "router.json").read_text(encoding="utf-8"))
        assert document["router"] == self.router_name
        for path in directory.rglob("*"):
            if not path.is_file():
                continue
            if path.suffix == ".safetensors":
                load_file(path)  # parses as safetensors: tensors and a JSON header only
            elif path.suffix == ".json":
                json.loads(path.read_text(encoding="utf-8"))
            else:
                head = path.read_bytes()[:4]
                assert not head.startswith(PICKLE_MAGIC), f"{path} is a pickle"
                assert head != ZIP_MAGIC, f"{path} is a torch.save zip (pickle inside)"

        queries = router_slice.held.queries[:60]
        emb = self._emb(fitted, router_slice.held_emb[:60])
        for loaded in (load_router(directory), load_router(self.router_name, directory)):
            assert type(loaded) is type(fitted)
            assert loaded.get_params() == fitted.get_params()
            np.testing.assert_array_equal(
                loaded.predict_quality(queries, query_embeddings=emb),
                fitted.predict_quality(queries, query_embeddings=emb),
            )
            for weight in (0.0, 1.0):
                expected = fitted.route_batch(queries, cost_weight=weight, query_embeddings=emb)
                got = loaded.route_batch(queries, cost_weight=weight, query_embeddings=emb)
                assert [d.model_dump() for d in got] == [d.model_dump() for d in expected]

    def test_higher_cost_weight_never_raises_the_average_cost(
        self, fitted: BaseRouter, router_slice: Any
    ) -> None:
        held = router_slice.held
        emb = self._emb(fitted, router_slice.held_emb)
        means = []
        for weight in (0.0, 0.03, 0.3, 3.0, 30.0):
            decisions = fitted.route_batch(held.queries, cost_weight=weight, query_embeddings=emb)
            means.append(float(np.mean([d.est_cost for d in decisions])))
        assert all(b <= a for a, b in itertools.pairwise(means)), means
        assert means[-1] < means[0], f"{self.router_name}: cost_weight changed nothing: {means}"

    def test_bad_hyperparameters_name_the_field(self) -> None:
        assert self.bad_params, "list at least one bad hyperparameter"
        for params, field in self.bad_params:
            with pytest.raises(ConfigError) as info:
                create_router(self.router_name, **params)
            assert field in str(info.value), (params, str(info.value))

    def test_unknown_hyperparameter_lists_the_valid_ones(self) -> None:
        with pytest.raises(ConfigError, match="valid:") as info:
            create_router(self.router_name, no_such_knob=1)
        assert "hparam.no_such_knob" in str(info.value)

    def test_routing_before_fit_raises(self) -> None:
        with pytest.raises(NotFittedError):
            create_router(self.router_name, **self.fast_params).route("What is 2 + 2?")

    def test_usable_inside_router_chat_model(
        self, fitted: BaseRouter, candidate_pool: Any, served: FakeOpenAIServer
    ) -> None:
        query = "What is the capital of France?"
        model = RouterChatModel(router=fitted, candidates=candidate_pool())
        reply = model.invoke([HumanMessage(query)])
        routing = reply.response_metadata["routing"]
        assert routing["router"] == self.router_name
        assert routing["model"] == fitted.route(query).model
        served_model = model.candidates[routing["model"]].model
        assert reply.text.startswith(f"[{served_model}]")
