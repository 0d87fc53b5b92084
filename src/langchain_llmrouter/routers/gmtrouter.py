"""GMTRouter: personalised routing with a heterogeneous graph transformer over each user's history.

The method of GMTRouter (arXiv 2511.08590): a user's rated interactions form a graph of user,
session, query, response and LLM nodes; HGT message passing gives the user a state, and a
preference head scores each candidate; training is pairwise on same-question answers (ties
skipped). Here a population head scores (query, LLM) first (the cold-start score); response
nodes carry the user's residual from it, HGT layers mix them, and they are pooled, shrunk by a
learned prior count, onto the user's private LLM copies (and the user): a per-LLM taste. The
score is the population logit plus taste · key(query, LLM), so an empty history is exactly the
population. Inductive: a state is a forward pass over the user's own ego-graph, so new users
and new feedback need no retraining. Departures: ``docs/routers/gmtrouter.md``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from pydantic import Field, field_validator

from langchain_llmrouter.errors import RouterLoadError
from langchain_llmrouter.personal.router import PersonalRouter, PersonalRouterParams, UserHistory
from langchain_llmrouter.routers._gmt_net import (
    EDGE_TYPES,
    NODE_TYPES,
    RELATIONS,
    Edge,
    EgoGraphs,
    GMTNet,
)
from langchain_llmrouter.routers._torch import torch_threads

__all__ = ["EDGE_TYPES", "NODE_TYPES", "GMTRouter", "GMTRouterParams"]

if TYPE_CHECKING:
    from langchain_core.embeddings import Embeddings

    from langchain_llmrouter.personal.interactions import Interaction


class GMTRouterParams(PersonalRouterParams):
    hidden_dim: int = Field(default=32, ge=4, le=1024)
    """Width of node states and of the population head."""
    taste_dim: int = Field(default=4, ge=1, le=256)
    """Width of a user's taste vector per LLM (the state is (1 + n_candidates) of them)."""
    n_layers: int = Field(default=2, ge=1, le=6)
    """HGT message-passing layers."""
    heads: int = Field(default=4, ge=1, le=16)
    """Attention heads of the HGT layers (divides hidden_dim)."""
    prior_count: float = Field(default=2.0, gt=0.0)
    """Initial prior count of the shrinkage (taste = sum / (count + prior); learned)."""
    dropout: float = Field(default=0.1, ge=0.0, lt=1.0)
    """Dropout on node states while training."""
    query_dropout: float = Field(default=0.9, ge=0.0, lt=1.0)
    """Dropout on the query embedding entering the population head."""
    lr: float = Field(default=3e-3, gt=0.0, le=1.0)
    """AdamW learning rate."""
    weight_decay: float = Field(default=1e-2, ge=0.0)
    """AdamW weight decay."""
    epochs: int = Field(default=300, ge=1)
    """Training steps (each one forward pass over a batch of users' ego-graphs)."""
    users_per_step: int = Field(default=64, ge=1)
    """Users whose ego-graphs are batched into one step."""
    hidden_share: tuple[float, float] = (0.2, 0.9)
    """Range of the share of a user's sessions hidden (used as targets) per step."""
    pointwise_weight: float = Field(default=0.3, ge=0.0)
    """Weight of the pointwise rating loss added to the pairwise (Bradley-Terry) loss."""
    random_state: int = 0
    """Seed of the weights and of the hidden sessions."""

    @field_validator("hidden_share")
    @classmethod
    def _check_share(cls, value: tuple[float, float]) -> tuple[float, float]:
        if not 0.0 < value[0] <= value[1] <= 1.0:
            raise ValueError("hidden_share must be (low, high) with 0 < low <= high <= 1")
        return value


class GMTRouter(PersonalRouter):
    """Scores candidates by a population head plus the user's shrunk per-LLM taste, computed
    by an HGT over their own history."""

    name = "gmtrouter"
    Params = GMTRouterParams

    def __init__(
        self,
        *,
        hidden_dim: int = 32,
        taste_dim: int = 4,
        n_layers: int = 2,
        heads: int = 4,
        prior_count: float = 2.0,
        dropout: float = 0.1,
        query_dropout: float = 0.9,
        lr: float = 3e-3,
        weight_decay: float = 1e-2,
        epochs: int = 300,
        users_per_step: int = 64,
        hidden_share: tuple[float, float] = (0.2, 0.9),
        pointwise_weight: float = 0.3,
        random_state: int = 0,
        max_history: int = 256,
        cost_weight: float = 0.0,
        budget: float | None = None,
        embeddings: Embeddings | None = None,
    ) -> None:
        super().__init__(
            max_history=max_history, cost_weight=cost_weight, budget=budget, embeddings=embeddings
        )
        self.hidden_dim = hidden_dim
        self.taste_dim = taste_dim
        self.n_layers = n_layers
        self.heads = heads
        self.prior_count = prior_count
        self.dropout = dropout
        self.query_dropout = query_dropout
        self.lr = lr
        self.weight_decay = weight_decay
        self.epochs = epochs
        self.users_per_step = users_per_step
        self.hidden_share = hidden_share
        self.pointwise_weight = pointwise_weight
        self.random_state = random_state

    # --- features and graphs --------------------------------------------------------------

    def _llm_features(self) -> torch.Tensor:
        """LLM node features: the centred unit description embedding and the log price."""
        raw = self.candidate_embeddings_
        unit = raw / np.maximum(np.linalg.norm(raw, axis=1, keepdims=True), 1e-12)
        price = np.log1p(np.nan_to_num(self.input_price_ + self.output_price_))
        features = np.concatenate([unit - self.llm_mean_, price[:, None] - self.price_mean_], 1)
        return torch.from_numpy(features.astype(np.float32))

    def _graph(
        self, histories: list[UserHistory], keep: list[np.ndarray] | None = None
    ) -> EgoGraphs:
        """Ego-graphs of ``histories`` (only the interactions ``keep`` marks), batched. Query
        and session nodes carry no content: the user state sees ratings, not topics."""
        m = len(self.candidates_)
        parts: dict[str, list[np.ndarray]] = {k: [] for k in ("q", "rating", "llm", "s", "u")}
        edge_parts: dict[Edge, list[np.ndarray]] = {e: [] for e in RELATIONS}
        n_s = n_q = n_r = 0
        for u, history in enumerate(histories):
            edge_parts[("user", "knows", "llm")].append(
                np.stack([np.full(m, u), u * m + np.arange(m)])
            )
            rows = np.arange(len(history)) if keep is None else np.flatnonzero(keep[u])
            if not len(rows):
                continue
            s_of = _codes([history.sessions[r] for r in rows])
            x = history.x[rows]
            q_key = [f"{s}\x00{hash(x[i].tobytes())}" for i, s in enumerate(s_of.tolist())]
            q_unique, q_first, q_of = np.unique(q_key, return_index=True, return_inverse=True)
            ns = int(s_of.max()) + 1
            models = history.models[rows]
            for key, value in (
                ("q", x),
                ("rating", history.ratings[rows]),
                ("llm", models),
                ("s", n_s + s_of),
                ("u", np.full(len(rows), u)),
            ):
                parts[key].append(value)
            r_ids = n_r + np.arange(len(rows))
            edge_parts[("user", "owns", "session")].append(
                np.stack([np.full(ns, u), n_s + np.arange(ns)])
            )
            sq = np.stack([n_s + s_of[q_first], n_q + np.arange(len(q_unique))])
            edge_parts[("session", "has", "query")].append(sq)
            edge_parts[("session", "holds", "response")].append(np.stack([n_s + s_of, r_ids]))
            edge_parts[("query", "answered_by", "response")].append(np.stack([n_q + q_of, r_ids]))
            edge_parts[("llm", "generates", "response")].append(np.stack([u * m + models, r_ids]))
            n_s, n_q, n_r = n_s + ns, n_q + len(q_unique), n_r + len(rows)
        edges: dict[Edge, torch.Tensor] = {}
        for (s, r, t), chunks in edge_parts.items():
            pairs = np.concatenate(chunks, 1) if chunks else np.zeros((2, 0))
            edges[(s, r, t)] = torch.from_numpy(pairs.astype(np.int64))
            edges[(t, f"rev_{r}", s)] = edges[(s, r, t)].flip(0)
        n = len(histories)
        llm = torch.from_numpy(_cat(parts["llm"], (0,), np.int64))
        features: dict[str, torch.Tensor] = {
            "user": torch.zeros(n, 0),
            "session": torch.zeros(n_s, 0),
            "query": torch.zeros(n_q, 0),
            "llm": torch.from_numpy(np.tile(np.arange(m), n)),
            "response_q": torch.from_numpy(_cat(parts["q"], (0, self.embedding_dim_), np.float32)),
            "rating": torch.from_numpy(_cat(parts["rating"], (0,), np.float32)),
            "response_llm": llm,
            "response_session": torch.from_numpy(_cat(parts["s"], (0,), np.int64)),
            "response_user": torch.from_numpy(_cat(parts["u"], (0,), np.int64)),
        }
        features["response_copy"] = features["response_user"] * m + llm
        return EgoGraphs(x=features, edges=edges, n_users=n)

    # --- training -------------------------------------------------------------------------

    def _fit_interactions(
        self, interactions: list[Interaction], histories: dict[str, UserHistory]
    ) -> None:
        users = list(histories)
        targets = [_pairs(histories[u]) for u in users]
        if not any(len(p) for p in targets):
            raise ValueError(
                f"cannot fit {self.name}: no preference pairs (every same-question pair of "
                "answers is a tie, or no question has two rated answers)"
            )
        raw = self.candidate_embeddings_
        unit = raw / np.maximum(np.linalg.norm(raw, axis=1, keepdims=True), 1e-12)
        self.llm_mean_ = unit.mean(axis=0, keepdims=True).astype(np.float32)
        self.price_mean_ = float(np.log1p(self.input_price_ + self.output_price_).mean())
        rng = np.random.default_rng(self.random_state)
        with torch.random.fork_rng(devices=[]), torch_threads(1):
            torch.manual_seed(self.random_state)
            self.net_ = self._new_net()
            self._train([histories[u] for u in users], targets, rng)
            self.net_.eval()
            self._choose_prior([histories[u] for u in users])

    def _new_net(self) -> GMTNet:
        if self.hidden_dim % self.heads:
            raise ValueError(f"hidden_dim ({self.hidden_dim}) must be a multiple of heads")
        return GMTNet(
            self.embedding_dim_,
            self.candidate_embeddings_.shape[1] + 1,
            self.hidden_dim,
            self.taste_dim,
            self.n_layers,
            self.heads,
            self.dropout,
            self.query_dropout,
            self.prior_count,
        )

    def _loss(
        self, logits: torch.Tensor, ratings: torch.Tensor, pairs: torch.Tensor
    ) -> torch.Tensor:
        """Bradley-Terry on (winner, loser) rows plus the weighted pointwise rating loss."""
        bce = torch.nn.functional.binary_cross_entropy_with_logits
        diff = logits[pairs[:, 0]] - logits[pairs[:, 1]]
        loss = bce(diff, torch.ones_like(diff))
        if self.pointwise_weight:
            loss = loss + self.pointwise_weight * bce(logits, ratings)
        return loss

    def _train(
        self, histories: list[UserHistory], pairs: list[np.ndarray], rng: np.random.Generator
    ) -> None:
        optimizer = torch.optim.AdamW(
            self.net_.parameters(), lr=self.lr, weight_decay=self.weight_decay
        )
        net, llm_x = self.net_, self._llm_features()
        session_codes = [_codes(h.sessions) for h in histories]
        offsets = np.cumsum([0, *(len(h) for h in histories)])
        all_x = torch.from_numpy(np.concatenate([h.x for h in histories]))
        all_models = torch.from_numpy(np.concatenate([h.models for h in histories]))
        all_ratings = torch.from_numpy(np.concatenate([h.ratings for h in histories]))
        all_pairs = torch.from_numpy(
            np.concatenate([p + o for p, o in zip(pairs, offsets[:-1], strict=True)])
        )
        active = [u for u, p in enumerate(pairs) if len(p)]
        low, high = self.hidden_share
        net.train()
        self.loss_ = float("nan")
        for _ in range(self.epochs):
            batch = rng.permutation(active)[: self.users_per_step].tolist()
            keep: list[np.ndarray] = []
            rows: list[np.ndarray] = []
            win_lose: list[np.ndarray] = []
            n_rows = 0
            for u in batch:
                codes = session_codes[u]
                hidden = rng.random(int(codes.max()) + 1) < rng.uniform(low, high)
                hidden[codes[pairs[u][rng.integers(len(pairs[u])), 0]]] = True  # >= 1 pair
                target = hidden[codes]
                keep.append(~target)
                local = np.full(len(codes), -1)
                local[target] = n_rows + np.arange(int(target.sum()))
                n_rows += int(target.sum())
                win_lose.append(local[pairs[u][target[pairs[u][:, 0]]]])
                rows.append(offsets[u] + np.flatnonzero(target))
            llm_h = net.llm_states(llm_x)
            # The population head learns from every rating; the taste from the hidden ones.
            population = net.population(net.query(all_x), llm_h[all_models])
            loss = self._loss(population, all_ratings, all_pairs)
            states = net.user_states(self._graph([histories[u] for u in batch], keep), llm_h)
            r = torch.from_numpy(np.concatenate(rows))
            owner = torch.from_numpy(np.repeat(np.arange(len(batch)), [len(x) for x in rows]))
            scores = net.score(net.query(all_x[r]), llm_h, states[owner])
            own = scores.gather(1, all_models[r][:, None]).squeeze(1)
            loss = loss + self._loss(
                own, all_ratings[r], torch.from_numpy(np.concatenate(win_lose))
            )
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            self.loss_ = float(loss.detach())

    def _choose_prior(self, histories: list[UserHistory]) -> None:
        """Set the shrinkage prior count (which training barely moves) by a validation loss
        on training users: each one's last fifth of questions is scored, with the state built
        from the rest (a regular user) or from only its first k interactions for each k in
        `_REVEAL` (simulated new users), averaged; `_PRIOR_GRID` and the learned count are
        tried. Only training users are read, so new users are chosen for without looking at
        any. (The population head has seen the scored ratings in training; its query
        dropout keeps it from memorising them.)"""
        cases = [_validation_case(h) for h in histories]
        chosen = [(h, c) for h, c in zip(histories, cases, strict=True) if c is not None]
        self.prior_losses_: dict[str, float] = {}
        if not chosen:
            return
        net, rows, regimes = self.net_, _validation_rows(chosen), _validation_regimes(chosen)
        learned = float(torch.nn.functional.softplus(net.prior.detach())[0])
        with torch.no_grad(), torch_threads(1):
            llm_h = net.llm_states(self._llm_features())
            query = net.query(rows["x"], drop=False)
            best, best_count = float("inf"), learned
            for count in sorted({*_PRIOR_GRID, learned}):
                net.prior.fill_(float(np.log(np.expm1(count))))
                losses = []
                for keep in regimes:
                    states = torch.cat(
                        [
                            net.user_states(
                                self._graph([h for h, _ in chosen[s : s + 256]], keep[s : s + 256]),
                                llm_h,
                            )
                            for s in range(0, len(chosen), 256)
                        ]
                    )
                    scores = net.score(query, llm_h, states[rows["owner"]])
                    own = scores.gather(1, rows["models"][:, None]).squeeze(1)
                    losses.append(float(self._loss(own, rows["ratings"], rows["pairs"])))
                self.prior_losses_[f"{count:g}"] = float(np.mean(losses))
                if self.prior_losses_[f"{count:g}"] < best - 1e-6:
                    best, best_count = self.prior_losses_[f"{count:g}"], count
            net.prior.fill_(float(np.log(np.expm1(best_count))))

    # --- states and scores ----------------------------------------------------------------

    def _user_states(self, histories: Mapping[str, UserHistory]) -> dict[str, np.ndarray]:
        users = list(histories)
        out: dict[str, np.ndarray] = {}
        self.net_.eval()
        with torch.inference_mode(), torch_threads(1):
            llm_h = self.net_.llm_states(self._llm_features())
            for start in range(0, len(users), 256):
                chunk = users[start : start + 256]
                states = self.net_.user_states(self._graph([histories[u] for u in chunk]), llm_h)
                out.update(zip(chunk, states.numpy().astype(np.float32), strict=True))
        return out

    def _score(self, x: np.ndarray, states: np.ndarray | None) -> np.ndarray:
        self.net_.eval()
        x = np.ascontiguousarray(x, np.float32)
        u = None if states is None else torch.from_numpy(np.ascontiguousarray(states, np.float32))
        with torch.inference_mode(), torch_threads(1):
            llm_h = self.net_.llm_states(self._llm_features())
            out = []
            for s in range(0, len(x), 2048):
                qh = self.net_.query(torch.from_numpy(x[s : s + 2048]))
                out.append(
                    torch.sigmoid(
                        self.net_.score(qh, llm_h, None if u is None else u[s : s + 2048])
                    )
                )
        if not out:
            return np.zeros((0, len(self.candidates_)))
        return torch.cat(out).double().numpy()

    # --- persistence ----------------------------------------------------------------------

    def _get_model_state(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        meta = {"price_mean": self.price_mean_, "loss": self.loss_}
        arrays = {"llm_mean": self.llm_mean_}
        for key, value in self.net_.state_dict().items():
            arrays[f"net.{key}"] = value.detach().cpu().numpy()
        return meta, arrays

    def _set_model_state(self, meta: dict[str, Any], arrays: dict[str, np.ndarray]) -> None:
        self.price_mean_ = float(meta["price_mean"])
        self.loss_ = float(meta.get("loss", float("nan")))
        self.llm_mean_ = arrays["llm_mean"]
        if self.llm_mean_.shape != (1, self.candidate_embeddings_.shape[1]):
            raise RouterLoadError("the saved LLM feature mean does not match the candidates")
        with torch.random.fork_rng(devices=[]):
            self.net_ = self._new_net()
        expected = {k: tuple(v.shape) for k, v in self.net_.state_dict().items()}
        state = {k[4:]: v for k, v in arrays.items() if k.startswith("net.")}
        for key in sorted(expected.keys() | state.keys()):
            got = tuple(state[key].shape) if key in state else None
            if got != expected.get(key):
                raise RouterLoadError(
                    f"array 'model.net.{key}': shape {got} where the hyperparameters build "
                    f"{expected.get(key)}"
                )
        self.net_.load_state_dict({k: torch.from_numpy(v.copy()) for k, v in state.items()})
        self.net_.eval()


_PRIOR_GRID = (0.25, 0.5, 1.0, 2.0, 4.0, 8.0)
"""Prior counts of the shrinkage tried on validation after training (with the learned one)."""
_REVEAL = (5, 10, 20)
"""Interactions known of the simulated new users the prior count is also chosen for."""
_VALIDATION_SHARE = 0.2
"""Share of each training user's questions (their last ones) scored when choosing the prior."""


def _validation_case(history: UserHistory) -> tuple[np.ndarray, np.ndarray] | None:
    """(held mask, held pairs) of a user's last questions, or None when they hold no pair or
    leave nothing visible."""
    codes = _codes(history.sessions)
    n_sessions = int(codes.max()) + 1 if len(codes) else 0
    if n_sessions < 2:
        return None
    held = codes >= n_sessions - max(1, round(_VALIDATION_SHARE * n_sessions))
    pairs = _pairs(history)
    pairs = pairs[held[pairs[:, 0]]]
    return (held, pairs) if len(pairs) else None


def _validation_rows(
    chosen: list[tuple[UserHistory, tuple[np.ndarray, np.ndarray]]],
) -> dict[str, torch.Tensor]:
    """The held-out interactions of the validation users, stacked: query embeddings, models,
    ratings, owner (position in ``chosen``) and (winner, loser) pairs in these rows."""
    x, models, ratings, owner, pairs = [], [], [], [], []
    n_rows = 0
    for u, (history, (held, held_pairs)) in enumerate(chosen):
        index = np.flatnonzero(held)
        local = np.full(len(held), -1)
        local[index] = n_rows + np.arange(len(index))
        x.append(history.x[index])
        models.append(history.models[index])
        ratings.append(history.ratings[index])
        owner.append(np.full(len(index), u))
        pairs.append(local[held_pairs])
        n_rows += len(index)
    return {
        "x": torch.from_numpy(np.concatenate(x).astype(np.float32)),
        "models": torch.from_numpy(np.concatenate(models).astype(np.int64)),
        "ratings": torch.from_numpy(np.concatenate(ratings).astype(np.float32)),
        "owner": torch.from_numpy(np.concatenate(owner).astype(np.int64)),
        "pairs": torch.from_numpy(np.concatenate(pairs).astype(np.int64)),
    }


def _validation_regimes(
    chosen: list[tuple[UserHistory, tuple[np.ndarray, np.ndarray]]],
) -> list[list[np.ndarray]]:
    """Per regime, each validation user's visible interactions: every one not held out,
    then only the first k of those for each k in `_REVEAL`."""
    visible = [~held for _, (held, _) in chosen]
    regimes = [visible]
    for k in _REVEAL:
        regime = []
        for mask in visible:
            first = np.zeros_like(mask)
            first[np.flatnonzero(mask)[:k]] = True
            regime.append(first)
        regimes.append(regime)
    return regimes


def _codes(values: list[str]) -> np.ndarray:
    """Integer code of each value, in order of first appearance."""
    index: dict[str, int] = {}
    return np.array([index.setdefault(v, len(index)) for v in values], dtype=np.int64)


def _pairs(history: UserHistory) -> np.ndarray:
    """(winner, loser) rows of every same-session, same-query pair with different ratings."""
    groups: dict[tuple[str, bytes], list[int]] = {}
    for k, session in enumerate(history.sessions):
        groups.setdefault((session, history.x[k].tobytes()), []).append(k)
    out = []
    for members in groups.values():
        for i, a in enumerate(members):
            for b in members[i + 1 :]:
                ra, rb = history.ratings[a], history.ratings[b]
                if ra != rb:
                    out.append((a, b) if ra > rb else (b, a))
    return np.array(out, dtype=np.int64).reshape(-1, 2)


def _cat(parts: list[np.ndarray], empty: tuple[int, ...], dtype: type) -> np.ndarray:
    return np.concatenate(parts).astype(dtype) if parts else np.zeros(empty, dtype=dtype)
