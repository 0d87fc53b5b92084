"""MLP router: a small PyTorch network that predicts every candidate's quality at once.

ReLU hidden layers over the query features (MiniLM, optionally with TF-IDF) end in one sigmoid
per candidate, trained with masked binary cross-entropy against the scores and early stopping;
prediction is a numpy forward pass, so loading needs no torch. Where it departs from
LLMRouter's ``mlprouter``, and its benchmark figures: ``docs/routers/mlp.md``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

import numpy as np
from pydantic import Field, field_validator

from langchain_llmrouter.routers._torch import torch_threads
from langchain_llmrouter.routers.base import BaseRouter, RouterParams
from langchain_llmrouter.routers.features import QueryFeaturizer

if TYPE_CHECKING:
    from langchain_core.embeddings import Embeddings

    from langchain_llmrouter.data import RoutingDataset


class MLPParams(RouterParams):
    hidden_sizes: list[int] = Field(default_factory=lambda: [256])
    """Widths of the hidden layers (an empty list gives a linear model)."""
    dropout: float = Field(default=0.5, ge=0.0, lt=1.0)
    """Dropout after each hidden layer while training."""
    lr: float = Field(default=3e-4, gt=0.0)
    """Adam learning rate."""
    weight_decay: float = Field(default=1e-2, ge=0.0)
    """Adam (L2) weight decay."""
    batch_size: int = Field(default=64, ge=1)
    """Queries per optimisation step."""
    max_epochs: int = Field(default=200, ge=1)
    """Upper bound on passes over the training queries."""
    patience: int = Field(default=10, ge=1)
    """Epochs without a better validation loss before stopping (the best epoch is kept)."""
    validation_fraction: float = Field(default=0.1, gt=0.0, lt=1.0)
    """Share of the training queries held out for early stopping."""
    n_ensemble: int = Field(default=1, ge=1, le=32)
    """Networks averaged (each with its own seed and validation split)."""
    features: Literal["embedding", "embedding+tfidf"] = "embedding+tfidf"
    """Query features: the MiniLM embedding, or the embedding plus TF-IDF word 1-2-grams."""
    random_state: int = 0
    """Seed for initialisation, shuffling and the validation split."""

    @field_validator("hidden_sizes")
    @classmethod
    def _positive_widths(cls, value: list[int]) -> list[int]:
        if any(width < 1 for width in value):
            raise ValueError(f"every hidden size must be >= 1, got {value}")
        return value


class MLPRouter(BaseRouter):
    """Predicts every candidate's quality with one multi-output MLP over query features."""

    name = "mlprouter"
    Params = MLPParams
    uses_embeddings = True

    def __init__(
        self,
        *,
        hidden_sizes: list[int] | None = None,
        dropout: float = 0.5,
        lr: float = 3e-4,
        weight_decay: float = 1e-2,
        batch_size: int = 64,
        max_epochs: int = 200,
        patience: int = 10,
        validation_fraction: float = 0.1,
        n_ensemble: int = 1,
        features: Literal["embedding", "embedding+tfidf"] = "embedding+tfidf",
        random_state: int = 0,
        cost_weight: float = 0.0,
        budget: float | None = None,
        embeddings: Embeddings | None = None,
    ) -> None:
        super().__init__(cost_weight=cost_weight, budget=budget, embeddings=embeddings)
        self.hidden_sizes = [256] if hidden_sizes is None else hidden_sizes
        self.dropout = dropout
        self.lr = lr
        self.weight_decay = weight_decay
        self.batch_size = batch_size
        self.max_epochs = max_epochs
        self.patience = patience
        self.validation_fraction = validation_fraction
        self.n_ensemble = n_ensemble
        self.features = features
        self.random_state = random_state

    # --- fitting --------------------------------------------------------------------------

    def _fit(self, dataset: RoutingDataset | None, query_embeddings: np.ndarray | None) -> None:
        assert dataset is not None and query_embeddings is not None
        self.featurizer_ = QueryFeaturizer(tfidf=self.features == "embedding+tfidf")
        x = self.featurizer_.fit_transform(dataset.queries, query_embeddings)
        y = np.asarray(dataset.performance, dtype=np.float32)
        if len(x) < 2:
            raise ValueError("mlprouter needs at least 2 training queries (one for validation)")
        self.mean_ = x.mean(axis=0)
        self.scale_ = np.maximum(x.std(axis=0), 1e-6).astype(np.float32)
        x = (x - self.mean_) / self.scale_
        with torch_threads(1):
            self.members_ = [
                self._train_member(x, y, self.random_state + 1000 * i)
                for i in range(self.n_ensemble)
            ]
        self.epochs_ = [int(m["_epochs"]) for m in self.members_]
        for member in self.members_:
            member.pop("_epochs")

    def _train_member(self, x: np.ndarray, y: np.ndarray, seed: int) -> dict[str, np.ndarray]:
        """Train one network; return its weights as numpy arrays (plus ``_epochs``)."""
        import torch

        torch.manual_seed(seed)
        rng = np.random.default_rng(seed)
        order = rng.permutation(len(x))
        n_val = min(len(x) - 1, max(1, round(self.validation_fraction * len(x))))
        val, fit = order[:n_val], order[n_val:]

        known = ~np.isnan(y)
        target = torch.from_numpy(np.nan_to_num(y, nan=0.0))
        mask = torch.from_numpy(known.astype(np.float32))
        inputs = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))
        net = _build_network(torch, x.shape[1], self.hidden_sizes, y.shape[1], self.dropout)
        optimiser = torch.optim.Adam(net.parameters(), lr=self.lr, weight_decay=self.weight_decay)
        loss_fn = torch.nn.BCEWithLogitsLoss(reduction="none")

        def masked_loss(rows: Any) -> Any:
            per_cell = loss_fn(net(inputs[rows]), target[rows]) * mask[rows]
            return per_cell.sum() / mask[rows].sum().clamp(min=1.0)

        val_rows = torch.from_numpy(val)
        best_loss, best_state, best_epoch, stale = float("inf"), None, 0, 0
        for epoch in range(1, self.max_epochs + 1):
            net.train()
            shuffled = fit[rng.permutation(len(fit))]
            for start in range(0, len(fit), self.batch_size):
                rows = torch.from_numpy(shuffled[start : start + self.batch_size])
                optimiser.zero_grad()
                masked_loss(rows).backward()
                optimiser.step()
            net.eval()
            with torch.no_grad():
                val_loss = float(masked_loss(val_rows))
            if val_loss < best_loss - 1e-6:
                best_loss, best_epoch, stale = val_loss, epoch, 0
                best_state = {k: v.detach().clone() for k, v in net.state_dict().items()}
            else:
                stale += 1
                if stale >= self.patience:
                    break
        assert best_state is not None
        weights = {k: v.numpy().astype(np.float32) for k, v in best_state.items()}
        weights["_epochs"] = np.array(best_epoch)
        return weights

    # --- prediction -----------------------------------------------------------------------

    def _predict_quality(
        self, queries: list[str], query_embeddings: np.ndarray | None
    ) -> np.ndarray:
        assert query_embeddings is not None
        x = (self.featurizer_.transform(queries, query_embeddings) - self.mean_) / self.scale_
        total = np.zeros((len(x), len(self.candidates_)), dtype=np.float64)
        for member in self.members_:
            total += _forward(member, x, len(self.hidden_sizes))
        return total / len(self.members_)

    # --- persistence ----------------------------------------------------------------------

    def _get_state(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        meta, arrays = self.featurizer_.get_state()
        arrays = {f"features.{k}": v for k, v in arrays.items()}
        arrays["input_mean"], arrays["input_scale"] = self.mean_, self.scale_
        for i, member in enumerate(self.members_):
            arrays.update({f"member{i}.{k}": v for k, v in member.items()})
        return {"features": meta, "epochs": self.epochs_}, arrays

    def _set_state(self, meta: dict[str, Any], arrays: dict[str, np.ndarray]) -> None:
        self.featurizer_ = QueryFeaturizer.from_state(
            meta["features"],
            {
                k.removeprefix("features."): v
                for k, v in arrays.items()
                if k.startswith("features.")
            },
        )
        self.mean_, self.scale_ = arrays["input_mean"], arrays["input_scale"]
        self.epochs_ = [int(e) for e in meta["epochs"]]
        self.members_ = []
        for i in range(self.n_ensemble):
            prefix = f"member{i}."
            member = {k.removeprefix(prefix): v for k, v in arrays.items() if k.startswith(prefix)}
            if not member:
                raise KeyError(f"{prefix}*")
            self.members_.append(member)


def _build_network(torch: Any, n_in: int, hidden: list[int], n_out: int, dropout: float) -> Any:
    """``Linear -> ReLU -> Dropout`` per hidden width, then a ``Linear`` to the logits."""
    nn = torch.nn
    layers: list[Any] = []
    width = n_in
    for size in hidden:
        layers += [nn.Linear(width, size), nn.ReLU(), nn.Dropout(dropout)]
        width = size
    layers.append(nn.Linear(width, n_out))
    return nn.Sequential(*layers)


def _forward(weights: dict[str, np.ndarray], x: np.ndarray, n_hidden: int) -> np.ndarray:
    """The network's sigmoid outputs in numpy (eval mode: dropout is the identity).

    Keys follow `_build_network`'s ``nn.Sequential`` numbering: hidden layer ``i`` is
    module ``3 * i`` and the output layer is module ``3 * n_hidden``.
    """
    h = np.asarray(x, dtype=np.float32)
    for i in range(n_hidden):
        h = np.maximum(h @ weights[f"{3 * i}.weight"].T + weights[f"{3 * i}.bias"], 0.0)
    logits = h @ weights[f"{3 * n_hidden}.weight"].T + weights[f"{3 * n_hidden}.bias"]
    return np.exp(-np.logaddexp(0.0, -logits.astype(np.float64)))  # overflow-free sigmoid
