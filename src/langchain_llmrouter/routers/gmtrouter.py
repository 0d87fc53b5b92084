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
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from pydantic import Field, field_validator

from langchain_llmrouter._optional import import_optional
from langchain_llmrouter.errors import RouterLoadError
from langchain_llmrouter.personal.router import PersonalRouter, PersonalRouterParams, UserHistory
from langchain_llmrouter.routers._torch import torch_threads

if TYPE_CHECKING:
    from langchain_core.embeddings import Embeddings

    from langchain_llmrouter.personal.interactions import Interaction

Edge = tuple[str, str, str]
NODE_TYPES = ["user", "session", "query", "response", "llm"]
"""Node types of an ego-graph (each user has their own copy of every LLM node)."""
_RELATIONS = [
    ("user", "owns", "session"),
    ("session", "has", "query"),
    ("session", "holds", "response"),
    ("query", "answered_by", "response"),
    ("llm", "generates", "response"),
    ("user", "knows", "llm"),
]
EDGE_TYPES: list[Edge] = [
    *_RELATIONS,
    *((d, f"rev_{r}", s) for s, r, d in _RELATIONS),
]
"""Every relation and its reverse (messages flow both ways)."""
_RESPONSE_DIM = 5  # [rating, residual, both centred on their session, 1]


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


@dataclass
class _Graph:
    """A batch of ego-graphs, ready for the network."""

    x: dict[str, torch.Tensor]
    edges: dict[Edge, torch.Tensor]
    n_users: int


class _GMTNet(torch.nn.Module):
    """Population head, HGT layers over the ego-graphs, shrunk taste pooling, taste keys."""

    def __init__(
        self,
        query_dim: int,
        llm_dim: int,
        hidden: int,
        taste: int,
        n_layers: int,
        heads: int,
        dropout: float,
        query_dropout: float,
        prior: float,
    ) -> None:
        super().__init__()
        pyg_nn = import_optional("torch_geometric.nn", extra="graph", feature="gmtrouter")
        nn = torch.nn
        self.taste, self.query_dropout = taste, query_dropout
        self.llm_in = nn.Sequential(
            nn.Linear(llm_dim, hidden), nn.ReLU(), nn.Linear(hidden, hidden)
        )
        self.q_in = nn.Linear(query_dim, hidden)
        self.pop = nn.Sequential(nn.Linear(3 * hidden, hidden), nn.ReLU(), nn.Linear(hidden, 1))
        self.start = nn.ParameterDict(
            {t: nn.Parameter(0.1 * torch.randn(1, hidden)) for t in ("user", "session", "query")}
        )
        self.response_in = nn.Linear(_RESPONSE_DIM + hidden, hidden)
        metadata = (NODE_TYPES, EDGE_TYPES)
        self.convs = nn.ModuleList(
            pyg_nn.HGTConv(hidden, hidden, metadata, heads=heads) for _ in range(n_layers)
        )
        self.norms = nn.ModuleList(
            nn.ModuleDict({t: nn.LayerNorm(hidden) for t in NODE_TYPES}) for _ in range(n_layers)
        )
        self.dropout = nn.Dropout(dropout)
        self.taste_out = nn.Linear(hidden + _RESPONSE_DIM, taste)
        self.prior = nn.Parameter(torch.full((1,), float(np.log(np.expm1(prior)))))
        self.key = nn.Linear(hidden, 2 * taste)

    def llm_states(self, llm_x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.llm_in(llm_x)
        return out

    def query(self, q: torch.Tensor, drop: bool = True) -> torch.Tensor:
        q = torch.nn.functional.dropout(q, self.query_dropout, self.training and drop)
        out: torch.Tensor = self.q_in(q)
        return out

    def population(self, qh: torch.Tensor, llm: torch.Tensor) -> torch.Tensor:
        """Population logits for query states ``qh`` and LLM states of the same shape."""
        out: torch.Tensor = self.pop(torch.cat([qh, llm, qh * llm], -1)).squeeze(-1)
        return out

    def user_states(self, graph: _Graph, llm_h: torch.Tensor) -> torch.Tensor:
        """Each user's shrunk taste, (n_users, (1 + m) * taste): user first, then per LLM."""
        x, n = graph.x, graph.n_users
        m, resp_llm = len(llm_h), x["response_llm"]
        with torch.no_grad():
            expected = torch.sigmoid(
                self.population(self.query(x["response_q"], False), llm_h[resp_llm])
            )
        rating = x["rating"]
        residual = rating - expected
        session = x["response_session"]
        n_s = len(x["session"])
        count_s = torch.zeros(n_s).index_add_(0, session, torch.ones_like(rating)).clamp(min=1)
        both = torch.stack([rating, residual], 1)
        mean_s = torch.zeros(n_s, 2).index_add_(0, session, both) / count_s[:, None]
        feats = torch.cat([both, both - mean_s[session], torch.ones_like(rating)[:, None]], 1)
        h = {t: self.start[t].expand(len(x[t]), -1) for t in ("user", "session", "query")}
        h["llm"] = llm_h[x["llm"]]
        h["response"] = self.response_in(torch.cat([feats, llm_h[resp_llm]], 1))
        for conv, norm in zip(self.convs, self.norms, strict=True):
            out = conv(h, graph.edges)
            layer_norm: torch.nn.ModuleDict = norm  # type: ignore[assignment]
            h = {t: layer_norm[t](h[t] + self.dropout(out[t])) for t in NODE_TYPES}
        phi = self.taste_out(torch.cat([h["response"], feats], 1))
        prior = torch.nn.functional.softplus(self.prior)
        pooled = []
        for index, size in ((x["response_user"], n), (x["response_copy"], n * m)):
            total = torch.zeros(size, self.taste).index_add_(0, index, phi)
            count = torch.zeros(size).index_add_(0, index, torch.ones_like(rating))
            pooled.append((total / (count + prior)[:, None]).view(n, -1, self.taste))
        return torch.cat(pooled, 1).reshape(n, -1)

    def score(
        self, qh: torch.Tensor, llm: torch.Tensor, states: torch.Tensor | None
    ) -> torch.Tensor:
        """Logits for query states ``qh`` (n, h), all LLM states ``llm`` (m, h) and user
        states (n, (1 + m) * taste), or the population's when ``states`` is None: (n, m)."""
        n, m, t = len(qh), len(llm), self.taste
        qh, llm = torch.broadcast_tensors(qh[:, None, :], llm[None, :, :])
        logits = self.population(qh, llm)
        if states is None:
            return logits
        taste = states.view(n, m + 1, t)
        key = self.key(llm)
        personal = (taste[:, 1:] * key[..., :t]).sum(-1) + (taste[:, :1] * key[..., t:]).sum(-1)
        return logits.detach() + personal


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

    def _graph(self, histories: list[UserHistory], keep: list[np.ndarray] | None = None) -> _Graph:
        """Ego-graphs of ``histories`` (only the interactions ``keep`` marks), batched. Query
        and session nodes carry no content: the user state sees ratings, not topics."""
        m = len(self.candidates_)
        parts: dict[str, list[np.ndarray]] = {k: [] for k in ("q", "rating", "llm", "s", "u")}
        edge_parts: dict[Edge, list[np.ndarray]] = {e: [] for e in _RELATIONS}
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
        return _Graph(x=features, edges=edges, n_users=n)

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

    def _new_net(self) -> _GMTNet:
        if self.hidden_dim % self.heads:
            raise ValueError(f"hidden_dim ({self.hidden_dim}) must be a multiple of heads")
        return _GMTNet(
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
