"""Matrix-factorisation router: a bilinear score between a candidate embedding and the query.

RouteLLM's bilinear form ``s(m, q) = w^T (normalize(v_m) * (W x_q)) + b_m``, trained in
PyTorch on a pointwise loss against the scores plus a pairwise Bradley–Terry loss, so
``sigmoid(s)`` is an expected quality; prediction runs in numpy, so routing needs no torch.
The method, where it departs from LLMRouter's ``mfrouter``, and its benchmark figures:
``docs/routers/mf.md``.
"""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING, Any

import numpy as np
from pydantic import Field

from langchain_llmrouter.routers._torch import torch_threads
from langchain_llmrouter.routers.base import BaseRouter, RouterParams

if TYPE_CHECKING:
    from langchain_core.embeddings import Embeddings

    from langchain_llmrouter.data import RoutingDataset

_PREFIX = "mf."
"""Prefix of the learned weights in ``arrays.safetensors``."""


class MFParams(RouterParams):
    latent_dim: int = Field(default=128, ge=1)
    """Size of the candidate embeddings and of the query projection."""
    pair_weight: float = Field(default=0.2, ge=0, lt=1)
    """Weight of the pairwise (Bradley–Terry) loss; the pointwise loss gets 1 - pair_weight."""
    lr: float = Field(default=1e-3, gt=0)
    """Adam learning rate."""
    weight_decay: float = Field(default=1e-5, ge=0)
    """Adam L2 weight decay."""
    noise_alpha: float = Field(default=0.0, ge=0)
    """Std of Gaussian noise added to the projected query in training (RouteLLM's augmentation)."""
    batch_size: int = Field(default=128, ge=1)
    """Queries per optimisation step."""
    max_epochs: int = Field(default=200, ge=1)
    """Upper bound on training epochs."""
    patience: int = Field(default=10, ge=1)
    """Epochs without a better validation loss before stopping."""
    val_fraction: float = Field(default=0.1, gt=0, lt=1)
    """Share of training queries held out for early stopping."""
    random_state: int = 0
    """Seed of the initialisation, the validation split and the shuffling."""


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return np.exp(-np.logaddexp(0.0, -x))


def preference_mask(performance: np.ndarray) -> np.ndarray:
    """``mask[n, i, j]`` is True where candidate i scored strictly higher than j on query n.

    Missing (NaN) scores and ties give no pair.
    """
    p = np.asarray(performance, dtype=np.float64)
    with np.errstate(invalid="ignore"):
        return p[:, :, None] > p[:, None, :]


def mf_losses(scores: Any, target: Any, known: Any, prefer: Any) -> tuple[Any, Any]:
    """(pointwise, pairwise) mean losses of a batch of scores.

    Args:
        scores: (batch, m) logits ``s(m, q)``.
        target: (batch, m) scores in [0, 1] (any value where not ``known``).
        known: (batch, m) 0/1, where a score exists.
        prefer: (batch, m, m) 0/1, i strictly better than j.
    """
    from torch.nn import functional

    bce = functional.binary_cross_entropy_with_logits(scores, target, reduction="none")
    pointwise = (bce * known).sum() / known.sum().clamp(min=1)
    diff = scores[:, :, None] - scores[:, None, :]
    pairwise = (functional.softplus(-diff) * prefer).sum() / prefer.sum().clamp(min=1)
    return pointwise, pairwise


class _Adam:
    """Adam with L2 weight decay (as ``torch.optim.Adam``), written out because importing
    ``torch.optim`` pulls in ``torch._dynamo``, which costs seconds per process."""

    def __init__(
        self,
        params: list[Any],
        *,
        lr: float,
        weight_decay: float,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
    ) -> None:
        import torch

        self.params = params
        self.lr, self.weight_decay, self.betas, self.eps = lr, weight_decay, betas, eps
        self.first = [torch.zeros_like(p) for p in params]
        self.second = [torch.zeros_like(p) for p in params]
        self.steps = 0

    def step(self) -> None:
        """Apply one update from the parameters' gradients, then clear them."""
        import torch

        self.steps += 1
        b1, b2 = self.betas
        fix1, fix2 = 1 - b1**self.steps, 1 - b2**self.steps
        with torch.no_grad():
            for p, m, v in zip(self.params, self.first, self.second, strict=True):
                if p.grad is None:
                    continue
                grad = p.grad + self.weight_decay * p if self.weight_decay else p.grad
                m.mul_(b1).add_(grad, alpha=1 - b1)
                v.mul_(b2).addcmul_(grad, grad, value=1 - b2)
                p.sub_(self.lr * (m / fix1) / ((v / fix2).sqrt() + self.eps))
                p.grad = None


class MFRouter(BaseRouter):
    """Bilinear matrix factorisation (RouteLLM style) trained on scores and pairwise preferences."""

    name = "mfrouter"
    Params = MFParams
    uses_embeddings = True

    def __init__(
        self,
        *,
        latent_dim: int = 128,
        pair_weight: float = 0.2,
        lr: float = 1e-3,
        weight_decay: float = 1e-5,
        noise_alpha: float = 0.0,
        batch_size: int = 128,
        max_epochs: int = 200,
        patience: int = 10,
        val_fraction: float = 0.1,
        random_state: int = 0,
        cost_weight: float = 0.0,
        budget: float | None = None,
        embeddings: Embeddings | None = None,
    ) -> None:
        super().__init__(cost_weight=cost_weight, budget=budget, embeddings=embeddings)
        self.latent_dim = latent_dim
        self.pair_weight = pair_weight
        self.lr = lr
        self.weight_decay = weight_decay
        self.noise_alpha = noise_alpha
        self.batch_size = batch_size
        self.max_epochs = max_epochs
        self.patience = patience
        self.val_fraction = val_fraction
        self.random_state = random_state

    # --- fitting --------------------------------------------------------------------------

    def _split(self, n: int) -> tuple[np.ndarray, np.ndarray]:
        """(train rows, validation rows); tiny data validates on the training rows."""
        order = np.random.default_rng(self.random_state).permutation(n)
        n_val = round(self.val_fraction * n)
        if n_val < 1 or n - n_val < 1:
            return np.sort(order), np.sort(order)
        return np.sort(order[n_val:]), np.sort(order[:n_val])

    def _fit(self, dataset: RoutingDataset | None, query_embeddings: np.ndarray | None) -> None:
        assert dataset is not None and query_embeddings is not None

        with torch_threads(1):
            self._train(dataset, np.asarray(query_embeddings, dtype=np.float64))

    def _train(self, dataset: RoutingDataset, x: np.ndarray) -> None:
        """Adam with early stopping on a validation split of the queries."""
        import torch

        self.input_mean_ = x.mean(axis=0)
        centred = x - self.input_mean_
        self.input_scale_ = float(max(centred.std(), 1e-12))
        inputs = (centred / self.input_scale_).astype(np.float32)

        performance = np.asarray(dataset.performance, dtype=np.float64)
        known = ~np.isnan(performance)
        target = np.clip(np.nan_to_num(performance), 0.0, 1.0).astype(np.float32)
        prefer = preference_mask(performance)
        train_rows, val_rows = self._split(len(x))

        gen = torch.Generator().manual_seed(self.random_state)
        n_models, text_dim, dim = performance.shape[1], inputs.shape[1], self.latent_dim
        # Initialise as nn.Linear / nn.Embedding would, but from the private generator.
        params = {
            "item_embedding": torch.randn(n_models, dim, generator=gen),
            "text_proj": (torch.rand(dim, text_dim, generator=gen) * 2 - 1) / text_dim**0.5,
            "classifier": (torch.rand(dim, generator=gen) * 2 - 1) / dim**0.5,
            "bias": torch.tensor(self._initial_bias(target, known), dtype=torch.float32),
        }
        for value in params.values():
            value.requires_grad_(True)
        optimiser = _Adam(list(params.values()), lr=self.lr, weight_decay=self.weight_decay)

        def tensors(rows: np.ndarray) -> tuple[Any, ...]:
            return (
                torch.from_numpy(inputs[rows]),
                torch.from_numpy(target[rows]),
                torch.from_numpy(known[rows].astype(np.float32)),
                torch.from_numpy(prefer[rows].astype(np.float32)),
            )

        train_t, val_t = tensors(train_rows), tensors(val_rows)

        def loss_of(batch: tuple[Any, ...], noise: bool) -> Any:
            xb, yb, kb, pb = batch
            logits = self._torch_scores(params, xb, gen if noise else None)
            pointwise, pairwise = mf_losses(logits, yb, kb, pb)
            return (1 - self.pair_weight) * pointwise + self.pair_weight * pairwise

        best_loss, best_epoch, stale = np.inf, 0, 0
        best = {k: v.detach().clone() for k, v in params.items()}
        n_train = len(train_rows)
        for epoch in range(1, self.max_epochs + 1):
            order = torch.randperm(n_train, generator=gen)
            for start in range(0, n_train, self.batch_size):
                index = order[start : start + self.batch_size]
                loss = loss_of(tuple(t[index] for t in train_t), noise=self.noise_alpha > 0)
                loss.backward()
                optimiser.step()
            with torch.no_grad():
                val_loss = float(loss_of(val_t, noise=False))
            if val_loss < best_loss - 1e-6:
                best_loss, best_epoch, stale = val_loss, epoch, 0
                best = {k: v.detach().clone() for k, v in params.items()}
            else:
                stale += 1
                if stale >= self.patience:
                    break
        self.weights_ = {k: v.numpy().astype(np.float32) for k, v in best.items()}
        self.best_epoch_ = best_epoch
        self.val_loss_ = best_loss
        self.epochs_run_ = epoch

    @staticmethod
    def _initial_bias(target: np.ndarray, known: np.ndarray) -> np.ndarray:
        """Logit of each candidate's mean score (so training starts at the global means)."""
        counts = known.sum(axis=0)
        mean = np.where(counts > 0, (target * known).sum(axis=0) / np.maximum(counts, 1), 0.5)
        mean = np.clip(mean, 1e-3, 1 - 1e-3)
        return np.log(mean / (1 - mean)).astype(np.float32)

    def _torch_scores(self, params: dict[str, Any], x: Any, gen: Any) -> Any:
        """Logits (batch, m) in torch; ``gen`` given: add the training noise."""
        import torch

        projected = x @ params["text_proj"].T
        if gen is not None:
            projected = projected + self.noise_alpha * torch.randn(projected.shape, generator=gen)
        items = torch.nn.functional.normalize(params["item_embedding"], dim=1)
        return projected @ (items * params["classifier"]).T + params["bias"]

    # --- prediction -----------------------------------------------------------------------

    def scores(self, query_embeddings: np.ndarray) -> np.ndarray:
        """Logits ``s(m, q)``, shape (n, n_candidates), computed in numpy from the weights."""
        self._check_fitted()
        x = np.asarray(query_embeddings, dtype=np.float64)
        proj = self.weights_["text_proj"].astype(np.float64)
        if x.ndim != 2 or x.shape[1] != proj.shape[1]:
            raise ValueError(
                f"query embeddings have shape {x.shape} but the router was trained on "
                f"dimension {proj.shape[1]}"
            )
        items = self.weights_["item_embedding"].astype(np.float64)
        items = items / np.maximum(np.linalg.norm(items, axis=1, keepdims=True), 1e-12)
        head = items * self.weights_["classifier"].astype(np.float64)
        projected = ((x - self.input_mean_) / self.input_scale_) @ proj.T
        return projected @ head.T + self.weights_["bias"].astype(np.float64)

    def _predict_quality(
        self, queries: list[str], query_embeddings: np.ndarray | None
    ) -> np.ndarray:
        assert query_embeddings is not None
        return _sigmoid(self.scores(query_embeddings))

    # --- persistence ----------------------------------------------------------------------

    def _get_state(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        meta = {
            "input_scale": self.input_scale_,
            "best_epoch": self.best_epoch_,
            "epochs_run": self.epochs_run_,
            "val_loss": self.val_loss_,
        }
        arrays = {_PREFIX + k: v for k, v in self.weights_.items()}
        arrays["input_mean"] = self.input_mean_
        return meta, arrays

    def _set_state(self, meta: dict[str, Any], arrays: dict[str, np.ndarray]) -> None:
        self.input_scale_ = float(meta["input_scale"])
        self.best_epoch_ = int(meta.get("best_epoch", 0))
        self.epochs_run_ = int(meta.get("epochs_run", 0))
        self.val_loss_ = float(meta.get("val_loss", np.nan))
        self.input_mean_ = arrays["input_mean"]
        self.weights_ = {k[len(_PREFIX) :]: v for k, v in arrays.items() if k.startswith(_PREFIX)}
        for key in ("item_embedding", "text_proj", "classifier", "bias"):
            if key not in self.weights_:
                raise KeyError(_PREFIX + key)


_FILLED: dict[str, np.ndarray] = {}
"""`fill_unknown_scores`'s last results by a digest of their inputs (a few: one per CV fold)."""
_FILLED_KEEP = 8


def fill_unknown_scores(dataset: RoutingDataset, query_embeddings: np.ndarray) -> np.ndarray:
    """The dataset's score matrix with each unknown (NaN) score replaced by the prediction of a
    matrix factorisation (`MFRouter`, default hyperparameters) fitted on the known scores.

    Known scores are kept as they are, and a candidate with no known score at all stays
    unknown. A full matrix is returned as it is, with no fit. The result is cached on a digest
    of the inputs, so a CV search that refits a kNN router per fold and setting fits the
    factorisation once per fold.
    """
    performance = np.asarray(dataset.performance, dtype=np.float64)
    unknown = np.isnan(performance)
    fillable = unknown & ~unknown.all(axis=0)
    if not fillable.any():
        return performance
    x = np.ascontiguousarray(query_embeddings, dtype=np.float32)
    digest = hashlib.sha256(performance.tobytes() + x.tobytes()).hexdigest()
    key = f"{performance.shape}:{x.shape}:{digest}"
    if key not in _FILLED:
        factorisation = MFRouter().fit(dataset, query_embeddings=x)
        order = [factorisation.candidates_.index(c) for c in dataset.candidates]
        predicted = factorisation.predict_quality(dataset.queries, query_embeddings=x)
        if len(_FILLED) >= _FILLED_KEEP:
            _FILLED.pop(next(iter(_FILLED)))
        _FILLED[key] = np.where(fillable, predicted[:, order], performance)
    return _FILLED[key].copy()
