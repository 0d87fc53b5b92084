"""Reference routers: smallest, largest, random, and the (evaluation-only) oracle."""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING, Any

import numpy as np

from langchain_llmrouter.errors import LLMRouterError
from langchain_llmrouter.routers.base import BaseRouter, RouterParams

if TYPE_CHECKING:
    from langchain_llmrouter.data import RoutingDataset


class _FixedChoiceRouter(BaseRouter):
    """Always the same candidate, chosen from the candidates' sizes (or prices)."""

    trainable = False
    cost_aware = False
    _largest: bool = False

    def __init__(self) -> None:
        super().__init__()

    def _fit(self, dataset: RoutingDataset | None, query_embeddings: np.ndarray | None) -> None:
        sizes = self.sizes_
        price = self.input_price_ + self.output_price_
        # No sizes known at all: the price stands in for the size.
        key = price if np.isnan(sizes).all() else sizes
        valid = np.flatnonzero(~np.isnan(key))
        # Among equal sizes prefer the cheaper (smallest) / dearer (largest), then list order.
        if self._largest:
            order = sorted(valid, key=lambda j: (-key[j], -price[j], j))
        else:
            order = sorted(valid, key=lambda j: (key[j], price[j], j))
        self.choice_ = int(order[0])

    def _predict_quality(
        self, queries: list[str], query_embeddings: np.ndarray | None
    ) -> np.ndarray:
        predicted = np.zeros((len(queries), len(self.candidates_)))
        predicted[:, self.choice_] = 1.0
        return predicted

    def _get_state(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        return {"choice": self.choice_}, {}

    def _set_state(self, meta: dict[str, Any], arrays: dict[str, np.ndarray]) -> None:
        self.choice_ = int(meta["choice"])

    def _reason(
        self, chosen: str, scores: dict[str, float], weight: float, budget: float | None
    ) -> str:
        return f"{self.name}: always {chosen}"


class SmallestLLMRouter(_FixedChoiceRouter):
    """Always the candidate with the fewest parameters (ties: the cheaper)."""

    name = "smallest_llm"


class LargestLLMRouter(_FixedChoiceRouter):
    """Always the candidate with the most parameters (ties: the dearer)."""

    name = "largest_llm"
    _largest = True


class RandomRouterParams(RouterParams):
    seed: int | None = None
    """Seed; with a seed the choice for a given query text is reproducible."""


class RandomRouter(BaseRouter):
    """A uniformly random candidate per query; the floor any router must beat."""

    name = "randomrouter"
    Params = RandomRouterParams
    trainable = False
    cost_aware = False

    def __init__(self, *, seed: int | None = None) -> None:
        super().__init__()
        self.seed = seed

    def _fit(self, dataset: RoutingDataset | None, query_embeddings: np.ndarray | None) -> None:
        self._rng = np.random.default_rng(self.seed)

    def _predict_quality(
        self, queries: list[str], query_embeddings: np.ndarray | None
    ) -> np.ndarray:
        m = len(self.candidates_)
        if self.seed is None:
            return self._rng.random((len(queries), m))
        # Seeded: hash each query so the same text always gets the same candidate.
        rows = []
        for q in queries:
            digest = hashlib.sha256(f"{self.seed}:{q}".encode("utf-8", "surrogatepass")).digest()
            rows.append(np.random.default_rng(int.from_bytes(digest[:8], "little")).random(m))
        return np.array(rows).reshape(len(queries), m)

    def _set_state(self, meta: dict[str, Any], arrays: dict[str, np.ndarray]) -> None:
        self._rng = np.random.default_rng(self.seed)

    def _reason(
        self, chosen: str, scores: dict[str, float], weight: float, budget: float | None
    ) -> str:
        return f"randomrouter: picked {chosen} at random"


class OracleParams(RouterParams):
    pass


class OracleRouter(BaseRouter):
    """Routes with the TRUE scores of the data it was fitted on: an upper bound for evaluation.

    It can only route queries it has seen; any other query raises an error.
    """

    name = "oracle"
    Params = OracleParams

    def __init__(self, *, cost_weight: float = 0.0, budget: float | None = None) -> None:
        super().__init__(cost_weight=cost_weight, budget=budget)

    def _fit(self, dataset: RoutingDataset | None, query_embeddings: np.ndarray | None) -> None:
        assert dataset is not None
        self.queries_ = {q: i for i, q in enumerate(dataset.queries)}
        # Missing scores can never be the oracle's pick.
        self.performance_ = np.nan_to_num(dataset.performance, nan=-1.0)

    def _predict_quality(
        self, queries: list[str], query_embeddings: np.ndarray | None
    ) -> np.ndarray:
        unknown = [q for q in queries if q not in self.queries_]
        if unknown:
            raise LLMRouterError(
                f"the oracle only routes queries whose true scores it was fitted on; "
                f"{len(unknown)} unknown, e.g. {unknown[0][:80]!r}"
            )
        return self.performance_[[self.queries_[q] for q in queries]]

    def _get_state(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        return {"queries": list(self.queries_)}, {"performance": self.performance_}

    def _set_state(self, meta: dict[str, Any], arrays: dict[str, np.ndarray]) -> None:
        self.queries_ = {q: i for i, q in enumerate(meta["queries"])}
        self.performance_ = arrays["performance"]
