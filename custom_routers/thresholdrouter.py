"""The custom-router example: a trained difficulty estimator with a threshold.

This file is a *plugin*, not part of the installed package: `llmrouter` finds it
because it sits in ``./custom_routers/`` (``~/.llmrouter/plugins/`` and the paths
in ``$LLMROUTER_PLUGINS`` work the same way), and the ``@register_router``
decorator makes ``thresholdrouter`` a router name like the built-in ones::

    llmrouter list-routers          # shows it under "plugin routers"
    llmrouter train --router thresholdrouter --config configs/train/thresholdrouter.yaml

How it routes: a small MLP over the query embedding estimates the *difficulty*
d(q), the probability that the strong candidate answers better than the cheap
one. Queries with d(q) above ``threshold`` go to the strong candidate, the rest
to the cheap one. To fit the package's shared cost policy, the router reports
an expected quality for both candidates whose difference is zero exactly at the
threshold::

    quality(cheap)  = mean quality of the cheap candidate on the training data
    quality(strong) = quality(cheap) + (d(q) - threshold) * mean |quality gap|

so at ``cost_weight`` 0 the rule is exactly "d(q) > threshold", and a positive
``cost_weight`` raises the effective threshold by the price difference.

Unlike the example in the LLMRouter repository, it embeds queries itself (the
bundled MiniLM), learns from the per-query scores of both candidates rather than
from a "best model" label, and saves its weights as safetensors.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Self

import numpy as np
from pydantic import Field

from langchain_llmrouter import BaseRouter, register_router
from langchain_llmrouter.errors import UnknownCandidateError
from langchain_llmrouter.routers.base import RouterParams

if TYPE_CHECKING:
    from langchain_core.embeddings import Embeddings

    from langchain_llmrouter.data import RoutingDataset


class ThresholdParams(RouterParams):
    threshold: float = Field(default=0.5, ge=0.0, le=1.0)
    """Difficulty above which a query goes to the strong candidate."""
    small_model: str | None = None
    """The cheap candidate (default: the cheapest one per call)."""
    large_model: str | None = None
    """The strong candidate (default: the best single candidate on the training data)."""
    hidden_dim: int = Field(default=128, ge=2)
    """Width of the estimator's first hidden layer (the second is half as wide)."""
    dropout: float = Field(default=0.1, ge=0.0, lt=1.0)
    """Dropout during training."""
    lr: float = Field(default=1e-3, gt=0.0)
    """Adam learning rate."""
    epochs: int = Field(default=30, ge=1)
    """Passes over the training queries."""
    batch_size: int = Field(default=64, ge=1)
    """Queries per gradient step."""
    random_state: int = 0
    """Seed for weight initialisation and shuffling."""


@register_router()
class ThresholdRouter(BaseRouter):
    """Difficulty estimator + threshold: hard queries to the strong candidate, the rest to the cheap one."""

    name = "thresholdrouter"
    Params = ThresholdParams
    uses_embeddings = True

    def __init__(
        self,
        *,
        threshold: float = 0.5,
        small_model: str | None = None,
        large_model: str | None = None,
        hidden_dim: int = 128,
        dropout: float = 0.1,
        lr: float = 1e-3,
        epochs: int = 30,
        batch_size: int = 64,
        random_state: int = 0,
        cost_weight: float = 0.0,
        budget: float | None = None,
        embeddings: Embeddings | None = None,
    ) -> None:
        super().__init__(cost_weight=cost_weight, budget=budget, embeddings=embeddings)
        self.threshold = threshold
        self.small_model = small_model
        self.large_model = large_model
        self.hidden_dim = hidden_dim
        self.dropout = dropout
        self.lr = lr
        self.epochs = epochs
        self.batch_size = batch_size
        self.random_state = random_state

    # --- fitting --------------------------------------------------------------------------

    def fit(self, dataset: RoutingDataset, *, query_embeddings: np.ndarray | None = None) -> Self:
        """Learn the difficulty estimator; the router then knows only the two candidates."""
        self.validate_params(self.get_params())
        small, large = self._pair(dataset)
        return super().fit(
            dataset.select_candidates([small, large]), query_embeddings=query_embeddings
        )

    def _pair(self, dataset: RoutingDataset) -> tuple[str, str]:
        for name in (self.small_model, self.large_model):
            if name is not None and name not in dataset.candidates:
                raise UnknownCandidateError(name, dataset.candidates, context=self.name)
        large = self.large_model or dataset.best_single()
        if self.small_model is not None:
            small = self.small_model
        else:
            # The cheapest candidate per call (a 100-token prompt and the usual answer length).
            info = {c.name: c for c in dataset.candidate_info()}
            small = min(
                (c for c in dataset.candidates if c != large),
                key=lambda c: (100 * info[c].input_price + 200 * info[c].output_price, c),
            )
        if small == large:
            raise ValueError(f"{self.name}: small_model and large_model are both {small!r}")
        return small, large

    def _network(self, dim: int) -> Any:
        import torch

        hidden = self.hidden_dim
        return torch.nn.Sequential(
            torch.nn.Linear(dim, hidden),
            torch.nn.ReLU(),
            torch.nn.Dropout(self.dropout),
            torch.nn.Linear(hidden, hidden // 2),
            torch.nn.ReLU(),
            torch.nn.Linear(hidden // 2, 1),
        )

    def _fit(self, dataset: RoutingDataset | None, query_embeddings: np.ndarray | None) -> None:
        import torch

        assert dataset is not None and query_embeddings is not None
        small, large = dataset.performance[:, 0], dataset.performance[:, 1]
        known = ~(np.isnan(small) | np.isnan(large))
        if not known.any():
            raise ValueError(f"{self.name}: no query has scores for both candidates")
        x = torch.tensor(np.asarray(query_embeddings)[known], dtype=torch.float32)
        # Hard = the strong candidate does strictly better than the cheap one.
        y = torch.tensor((large[known] > small[known]).astype(np.float32))

        generator = torch.Generator().manual_seed(self.random_state)
        torch.manual_seed(self.random_state)
        net = self._network(x.shape[1])
        optimiser = torch.optim.Adam(net.parameters(), lr=self.lr)
        loss_fn = torch.nn.BCEWithLogitsLoss()
        net.train()
        for _ in range(self.epochs):
            order = torch.randperm(len(x), generator=generator)
            for start in range(0, len(x), self.batch_size):
                batch = order[start : start + self.batch_size]
                optimiser.zero_grad()
                loss = loss_fn(net(x[batch]).squeeze(-1), y[batch])
                loss.backward()
                optimiser.step()
        net.eval()
        self._net = net
        self.small_quality_ = float(np.mean(small[known]))
        self.gap_scale_ = float(np.mean(np.abs(large[known] - small[known]))) or 1.0

    # --- routing --------------------------------------------------------------------------

    def difficulty(
        self, queries: list[str], *, query_embeddings: np.ndarray | None = None
    ) -> np.ndarray:
        """Estimated probability that the strong candidate answers better, per query."""
        import torch

        self._check_fitted()
        if query_embeddings is None:
            query_embeddings = self.embed_queries(queries)
        with torch.no_grad():
            logits = self._net(torch.tensor(np.asarray(query_embeddings), dtype=torch.float32))
        return torch.sigmoid(logits.squeeze(-1)).double().numpy()

    def _predict_quality(
        self, queries: list[str], query_embeddings: np.ndarray | None
    ) -> np.ndarray:
        d = self.difficulty(queries, query_embeddings=query_embeddings)
        cheap = np.full(len(d), self.small_quality_)
        strong = cheap + (d - self.threshold) * self.gap_scale_
        return np.stack([cheap, strong], axis=1)

    def _reason(
        self, chosen: str, scores: dict[str, float], weight: float, budget: float | None
    ) -> str:
        small, large = self.candidates_
        d = (scores[large] - scores[small]) / self.gap_scale_ + self.threshold
        side = "above" if chosen == large else "at or below"
        return (
            f"{self.name}: difficulty {d:.3f} is {side} the threshold {self.threshold:g}"
            f"{f' (cost_weight {weight:g})' if weight else ''}: {chosen}"
        )

    # --- persistence ----------------------------------------------------------------------

    def _get_state(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        arrays = {f"net.{k}": v.detach().numpy() for k, v in self._net.state_dict().items()}
        meta = {"small_quality": self.small_quality_, "gap_scale": self.gap_scale_}
        return meta, arrays

    def _set_state(self, meta: dict[str, Any], arrays: dict[str, np.ndarray]) -> None:
        import torch

        weights = {k.removeprefix("net."): torch.from_numpy(v.copy()) for k, v in arrays.items()}
        net = self._network(int(weights["0.weight"].shape[1]))
        net.load_state_dict(weights)
        net.eval()
        self._net = net
        self.small_quality_ = float(meta["small_quality"])
        self.gap_scale_ = float(meta["gap_scale"])
