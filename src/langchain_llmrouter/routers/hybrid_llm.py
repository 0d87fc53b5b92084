"""Hybrid LLM router (Ding et al., ICLR 2024, arXiv 2404.14618), generalised to N candidates.

A small network on the query embedding predicts, per candidate, the probability that its
answer is within a tolerance of a reference candidate's (deterministic, probabilistic or
transformed labels). The rule is the cheapest candidate whose probability reaches
``threshold``, else the reference; `_predict_quality` turns it into qualities the shared cost
policy reproduces at ``cost_weight`` 0. The method, where it departs from the paper and the
LLMRouter peer, and its benchmark figures: ``docs/routers/hybrid_llm.md``.
"""

from __future__ import annotations

import itertools
from typing import TYPE_CHECKING, Annotated, Any, Literal

import numpy as np
from pydantic import Field

from langchain_llmrouter.errors import ConfigError
from langchain_llmrouter.routers._torch import torch_threads
from langchain_llmrouter.routers.base import BaseRouter, RouterParams

if TYPE_CHECKING:
    from langchain_core.embeddings import Embeddings

    from langchain_llmrouter.data import RoutingDataset

LabelMode = Literal["deterministic", "probabilistic", "transformed"]

TIE_STEP = 1e-9
"""Score step that orders equally cheap qualifying candidates (far below any real gap)."""
MIN_SHORTFALL = 1e-3
"""Floor of a candidate's typical shortfall, so a non-qualifying candidate always scores lower."""


# --- labels ----------------------------------------------------------------------------------


def balanced_tolerance(gap: np.ndarray) -> float:
    """The tolerance ``t*`` that makes ``1[gap >= -t]`` most balanced (the paper's r_trans).

    Candidates are 0 and every ``-gap`` of a negative gap (where a label flips); the one
    maximising ``p (1 - p)``, ``p`` the share of positive labels, wins; ties go to the
    smallest ``t``.
    """
    gap = np.asarray(gap, dtype=np.float64)
    gap = gap[~np.isnan(gap)]
    if gap.size == 0:
        return 0.0
    options = np.unique(np.concatenate(([0.0], -gap[gap < 0])))
    share = (gap[None, :] >= -options[:, None]).mean(axis=1)
    balance = share * (1.0 - share)
    return float(options[int(np.argmax(balance))])


def make_labels(
    gap: np.ndarray, mode: LabelMode, tolerance: float = 0.0, tau: float = 0.1
) -> tuple[np.ndarray, float]:
    """Training labels from quality gaps ``g = q_candidate - q_reference``.

    Args:
        gap: Quality gaps (NaN stays NaN).
        mode: ``deterministic``, ``probabilistic`` or ``transformed`` (see the module doc).
        tolerance: ``t`` for the first two modes.
        tau: Temperature of the probabilistic soft label.

    Returns:
        (labels in [0, 1], the tolerance used).
    """
    gap = np.asarray(gap, dtype=np.float64)
    if mode == "probabilistic":
        with np.errstate(over="ignore"):
            return 1.0 / (1.0 + np.exp(-(gap + tolerance) / tau)), tolerance
    t = balanced_tolerance(gap) if mode == "transformed" else tolerance
    # A 1e-12 slack keeps 0.8 - 0.9 >= -0.1 true despite rounding.
    labels = np.where(np.isnan(gap), np.nan, (gap >= -t - 1e-12).astype(np.float64))
    return labels, t


# --- the routing rule and its quality scores ------------------------------------------------


def _tie_ranks(proba: np.ndarray, cost: np.ndarray, eligible: np.ndarray, ref: int) -> np.ndarray:
    """Per (query, candidate): how many equally cheap eligible candidates rank before it.

    The order among equally cheap ones is: higher ``proba``, the reference, lower index.
    """
    m = proba.shape[1]
    index = np.arange(m)
    not_ref = (index != ref).astype(np.int8)
    same_cost = cost[:, :, None] == cost[:, None, :]  # [n, j, k]
    p_j, p_k = proba[:, :, None], proba[:, None, :]
    r_j, r_k = not_ref[:, None], not_ref[None, :]
    k_first = (p_k > p_j) | (
        (p_k == p_j) & ((r_k < r_j) | ((r_k == r_j) & (index[None, :] < index[:, None])))
    )
    return (same_cost & eligible[:, None, :] & k_first).sum(axis=2)


def hybrid_quality(
    proba: np.ndarray,
    cost: np.ndarray,
    threshold: float,
    ref: int,
    ref_quality: float,
    shortfall: np.ndarray,
) -> np.ndarray:
    """Quality scores whose cost-weight-0 argmax is the cheapest good-enough candidate.

    Args:
        proba: (n, m) ``P(candidate within tolerance of the reference)``; the reference
            column is ignored (taken as 1).
        cost: (n, m) dollars per call (only the order within a row matters).
        threshold: The routing threshold.
        ref: Column of the reference.
        ref_quality: The reference's estimated quality.
        shortfall: (m,) typical quality shortfall of each candidate when not good enough.

    Returns:
        (n, m) scores on the quality scale (see the module doc).
    """
    proba = np.array(proba, dtype=np.float64)
    proba[:, ref] = 1.0
    eligible = proba >= threshold
    eligible[:, ref] = True
    below = np.nextafter(ref_quality, -np.inf)
    penalty = np.maximum(shortfall, MIN_SHORTFALL)[None, :] * np.maximum(threshold - proba, 0.0)
    scores = np.minimum(ref_quality - penalty, below)
    ranks = _tie_ranks(proba, np.asarray(cost, dtype=np.float64), eligible, ref)
    return np.where(eligible, ref_quality - TIE_STEP * ranks, scores)


def cheapest_good_enough(
    proba: np.ndarray, cost: np.ndarray, threshold: float, ref: int
) -> np.ndarray:
    """The paper's rule, written directly: per query, the cheapest candidate with
    ``proba >= threshold`` (the reference always qualifies; among equally cheap ones the
    highest ``proba``, then the reference, then the lower index).

    Returns:
        (n,) chosen candidate indices.
    """
    proba = np.array(proba, dtype=np.float64)
    cost = np.asarray(cost, dtype=np.float64)
    proba[:, ref] = 1.0
    chosen = np.empty(len(proba), dtype=np.intp)
    for i in range(len(proba)):
        ok = [j for j in range(proba.shape[1]) if j == ref or proba[i, j] >= threshold]
        chosen[i] = min(ok, key=lambda j: (cost[i, j], -proba[i, j], j != ref, j))
    return chosen


# --- the router --------------------------------------------------------------------------


class HybridLLMParams(RouterParams):
    reference: str = "best"
    """The large model: ``best`` (highest mean training quality), ``largest`` (by size), or a name."""
    label_mode: LabelMode = "probabilistic"
    """Label construction: ``deterministic``, ``probabilistic`` or ``transformed`` (paper)."""
    tolerance: float = Field(default=0.0, ge=0.0, le=1.0)
    """Quality gap t accepted below the reference (deterministic and probabilistic modes)."""
    tau: float = Field(default=0.1, gt=0.0)
    """Temperature of the probabilistic soft label sigmoid((gap + t) / tau)."""
    threshold: float = Field(default=0.52, ge=0.0)
    """Route to the cheapest candidate with P(good enough) >= threshold (> 1: always the reference)."""
    large_share: float | None = Field(default=None, ge=0.0, le=1.0)
    """If set, fit picks the threshold sending this share of training queries to the reference."""
    hidden_sizes: list[Annotated[int, Field(ge=1)]] = Field(default_factory=lambda: [128])
    """Hidden layer widths of the MLP ([] for a logistic regression per candidate)."""
    epochs: int = Field(default=10, ge=1, le=10_000)
    """Passes over the training data."""
    learning_rate: float = Field(default=1e-3, gt=0.0, le=1.0)
    """AdamW learning rate."""
    weight_decay: float = Field(default=1e-2, ge=0.0)
    """AdamW weight decay."""
    batch_size: int = Field(default=128, ge=1)
    """Mini-batch size."""
    random_state: int = 0
    """Seed for the weight initialisation and the batch order."""


class HybridLLMRouter(BaseRouter):
    """Sends a query to the cheapest candidate likely to be within a tolerance of a reference."""

    name = "hybrid_llm"
    Params = HybridLLMParams
    uses_embeddings = True

    def __init__(
        self,
        *,
        reference: str = "best",
        label_mode: LabelMode = "probabilistic",
        tolerance: float = 0.0,
        tau: float = 0.1,
        threshold: float = 0.52,
        large_share: float | None = None,
        hidden_sizes: list[int] | None = None,
        epochs: int = 10,
        learning_rate: float = 1e-3,
        weight_decay: float = 1e-2,
        batch_size: int = 128,
        random_state: int = 0,
        cost_weight: float = 0.0,
        budget: float | None = None,
        embeddings: Embeddings | None = None,
    ) -> None:
        super().__init__(cost_weight=cost_weight, budget=budget, embeddings=embeddings)
        self.reference = reference
        self.label_mode = label_mode
        self.tolerance = tolerance
        self.tau = tau
        self.threshold = threshold
        self.large_share = large_share
        self.hidden_sizes = [128] if hidden_sizes is None else hidden_sizes
        self.epochs = epochs
        self.learning_rate = learning_rate
        self.weight_decay = weight_decay
        self.batch_size = batch_size
        self.random_state = random_state

    # --- fitting ---------------------------------------------------------------------------

    def _pick_reference(self, dataset: RoutingDataset) -> int:
        names = self.candidates_
        if self.reference == "best":
            return names.index(dataset.best_single())
        if self.reference == "largest":
            sizes = self.sizes_
            price = self.input_price_ + self.output_price_
            if np.isnan(sizes).all():
                raise ConfigError(
                    "reference 'largest' needs candidate sizes, and none is known; "
                    "name the reference or use 'best'",
                    field="hparam.reference",
                )
            valid = np.flatnonzero(~np.isnan(sizes))
            return int(min(valid, key=lambda j: (-sizes[j], -price[j], j)))
        if self.reference not in names:
            raise ConfigError(
                f"reference {self.reference!r} is not a candidate; valid: best, largest, "
                + ", ".join(names),
                field="hparam.reference",
            )
        return names.index(self.reference)

    def _fit(self, dataset: RoutingDataset | None, query_embeddings: np.ndarray | None) -> None:
        assert dataset is not None and query_embeddings is not None
        perf = np.asarray(dataset.performance, dtype=np.float64)
        ref = self._pick_reference(dataset)
        m = perf.shape[1]
        gap = perf - perf[:, [ref]]  # NaN where either score is missing
        labels = np.full_like(gap, np.nan)
        tolerances = np.zeros(m)
        shortfall = np.full(m, MIN_SHORTFALL)
        for j in range(m):
            if j == ref:
                continue
            labels[:, j], tolerances[j] = make_labels(
                gap[:, j], self.label_mode, self.tolerance, self.tau
            )
            short = -gap[:, j][gap[:, j] < -tolerances[j] - 1e-12]
            if short.size:
                shortfall[j] = max(float(short.mean()), MIN_SHORTFALL)
        ref_scores = perf[:, ref][~np.isnan(perf[:, ref])]
        self.reference_ = ref
        self.reference_quality_ = float(ref_scores.mean()) if ref_scores.size else 0.0
        self.tolerances_ = tolerances
        self.shortfall_ = shortfall
        self.outputs_ = [j for j in range(m) if j != ref]
        x = np.asarray(query_embeddings, dtype=np.float32)
        self.layers_ = self._train(x, labels[:, self.outputs_]) if self.outputs_ else []
        self.threshold_ = float(self.threshold)
        if self.large_share is not None:
            self.threshold_ = self.threshold_for_share(
                self.large_share, dataset.queries, query_embeddings=x
            )

    def _train(self, x: np.ndarray, y: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
        """Fit the multi-output MLP with a masked cross-entropy; returns numpy (W, b) layers."""
        import torch
        from torch import nn

        known = ~np.isnan(y)
        counts = known.sum(axis=0)
        prior = np.where(counts > 0, np.nansum(y, axis=0) / np.maximum(counts, 1), 0.0)
        prior = np.clip(prior, 1e-3, 1 - 1e-3)
        with torch_threads(1), torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.random_state)
            sizes = [x.shape[1], *self.hidden_sizes]
            modules: list[nn.Module] = []
            for a, b in itertools.pairwise(sizes):
                modules += [nn.Linear(a, b), nn.ReLU()]
            last = nn.Linear(sizes[-1], y.shape[1])
            with torch.no_grad():
                last.bias.copy_(torch.from_numpy(np.log(prior / (1 - prior))).float())
            net = nn.Sequential(*modules, last)
            xt, mt = torch.from_numpy(x), torch.from_numpy(known).float()
            yt = torch.from_numpy(np.nan_to_num(y)).float()
            optim = torch.optim.AdamW(
                net.parameters(), lr=self.learning_rate, weight_decay=self.weight_decay
            )
            loss_fn = nn.BCEWithLogitsLoss(reduction="none")
            gen = torch.Generator().manual_seed(self.random_state)
            for _ in range(self.epochs):
                order = torch.randperm(len(x), generator=gen)
                for start in range(0, len(x), self.batch_size):
                    idx = order[start : start + self.batch_size]
                    w = mt[idx]
                    loss = (loss_fn(net(xt[idx]), yt[idx]) * w).sum() / w.sum().clamp(min=1)
                    optim.zero_grad()
                    loss.backward()
                    optim.step()
        return [
            (m.weight.detach().numpy().copy(), m.bias.detach().numpy().copy())
            for m in net
            if isinstance(m, nn.Linear)
        ]

    # --- prediction --------------------------------------------------------------------------

    def _proba(self, query_embeddings: np.ndarray) -> np.ndarray:
        x = np.asarray(query_embeddings, dtype=np.float64)
        m = len(self.candidates_)
        proba = np.ones((len(x), m))
        if not self.outputs_:
            return proba
        in_dim = self.layers_[0][0].shape[1]
        if x.shape[1] != in_dim:
            raise ValueError(
                f"query embeddings have dimension {x.shape[1]} but the router was trained on {in_dim}"
            )
        h = x
        for k, (w, b) in enumerate(self.layers_):
            h = h @ w.T.astype(np.float64) + b.astype(np.float64)
            if k < len(self.layers_) - 1:
                h = np.maximum(h, 0.0)
        proba[:, self.outputs_] = 0.5 * (1.0 + np.tanh(0.5 * h))  # a sigmoid that cannot overflow
        return proba

    def predict_proba(
        self, queries: list[str], *, query_embeddings: np.ndarray | None = None
    ) -> np.ndarray:
        """``P(candidate within tolerance of the reference)``, shape (n, n_candidates).

        The reference's column is 1.
        """
        self._check_fitted()
        if query_embeddings is None:
            query_embeddings = self.embed_queries(queries)
        return self._proba(query_embeddings)

    @property
    def effective_threshold(self) -> float:
        """The threshold routing uses: calibrated at fit if ``large_share`` is set, else ``threshold``."""
        return self.threshold_ if self.large_share is not None else float(self.threshold)

    def threshold_for_share(
        self,
        share: float,
        queries: list[str],
        *,
        query_embeddings: np.ndarray | None = None,
    ) -> float:
        """The threshold that sends ``share`` of ``queries`` to the reference (at cost_weight 0).

        A query goes to the reference iff no candidate cheaper than it has
        ``p >= threshold``, i.e. iff ``z = max(p of the cheaper candidates) < threshold``;
        the threshold is the ``round(share * n)``-th smallest ``z`` (just above the
        largest for ``share`` 1). RouteLLM calibrates the same way on a sample of traffic.
        """
        if not 0.0 <= share <= 1.0:
            raise ValueError(f"share must be in [0, 1], got {share}")
        if query_embeddings is None:
            query_embeddings = self.embed_queries(queries)
        proba = self._proba(query_embeddings)
        cost = self._estimate_costs(list(queries))
        cheaper = cost < cost[:, [self.reference_]]
        z = np.sort(np.where(cheaper, proba, -np.inf).max(axis=1))
        k = round(share * len(z))
        if k >= len(z):
            return float(np.nextafter(max(z[-1], 1.0), np.inf))
        return float(max(z[k], 0.0))

    def _predict_quality(
        self, queries: list[str], query_embeddings: np.ndarray | None
    ) -> np.ndarray:
        assert query_embeddings is not None
        return hybrid_quality(
            self._proba(query_embeddings),
            self._estimate_costs(queries),
            self.effective_threshold,
            self.reference_,
            self.reference_quality_,
            self.shortfall_,
        )

    def _reason(
        self, chosen: str, scores: dict[str, float], weight: float, budget: float | None
    ) -> str:
        ref = self.candidates_[self.reference_]
        threshold = f"{self.effective_threshold:.3g}"
        if weight or budget is not None:
            return super()._reason(chosen, scores, weight, budget) + f" (reference {ref})"
        if chosen == ref:
            return (
                f"{self.name}: {ref}, the reference: no cheaper candidate is within tolerance "
                f"of it with probability >= {threshold}"
            )
        return (
            f"{self.name}: {chosen}, the cheapest candidate within tolerance of {ref} "
            f"with probability >= {threshold}"
        )

    # --- persistence -------------------------------------------------------------------------

    def _get_state(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        meta = {
            "reference": self.reference_,
            "reference_quality": self.reference_quality_,
            "outputs": self.outputs_,
            "threshold": self.threshold_,
            "n_layers": len(self.layers_),
        }
        arrays = {"tolerances": self.tolerances_, "shortfall": self.shortfall_}
        for k, (w, b) in enumerate(self.layers_):
            arrays[f"mlp.{k}.weight"] = w
            arrays[f"mlp.{k}.bias"] = b
        return meta, arrays

    def _set_state(self, meta: dict[str, Any], arrays: dict[str, np.ndarray]) -> None:
        self.reference_ = int(meta["reference"])
        self.reference_quality_ = float(meta["reference_quality"])
        self.outputs_ = [int(j) for j in meta["outputs"]]
        self.threshold_ = float(meta["threshold"])
        self.tolerances_ = arrays["tolerances"]
        self.shortfall_ = arrays["shortfall"]
        self.layers_ = [
            (arrays[f"mlp.{k}.weight"], arrays[f"mlp.{k}.bias"]) for k in range(meta["n_layers"])
        ]
