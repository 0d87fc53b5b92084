"""GMTRouter's network: the ego-graph schema, the HGT layers, the shrunk taste pooling.

`GMTNet` is the model of `langchain_llmrouter.routers.gmtrouter`: a population head scoring
(query, LLM), HGT message passing over a batch of users' ego-graphs (`EgoGraphs`), and each
user's taste pooled per LLM and shrunk by a prior count. Imported by the router only (torch
and torch-geometric are optional).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from langchain_llmrouter._optional import import_optional

Edge = tuple[str, str, str]
NODE_TYPES = ["user", "session", "query", "response", "llm"]
"""Node types of an ego-graph (each user has their own copy of every LLM node)."""
RELATIONS = [
    ("user", "owns", "session"),
    ("session", "has", "query"),
    ("session", "holds", "response"),
    ("query", "answered_by", "response"),
    ("llm", "generates", "response"),
    ("user", "knows", "llm"),
]
EDGE_TYPES: list[Edge] = [
    *RELATIONS,
    *((d, f"rev_{r}", s) for s, r, d in RELATIONS),
]
"""Every relation and its reverse (messages flow both ways)."""
RESPONSE_DIM = 5  # [rating, residual, both centred on their session, 1]


@dataclass
class EgoGraphs:
    """A batch of ego-graphs, ready for the network."""

    x: dict[str, torch.Tensor]
    edges: dict[Edge, torch.Tensor]
    n_users: int


class GMTNet(torch.nn.Module):
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
        self.response_in = nn.Linear(RESPONSE_DIM + hidden, hidden)
        metadata = (NODE_TYPES, EDGE_TYPES)
        self.convs = nn.ModuleList(
            pyg_nn.HGTConv(hidden, hidden, metadata, heads=heads) for _ in range(n_layers)
        )
        self.norms = nn.ModuleList(
            nn.ModuleDict({t: nn.LayerNorm(hidden) for t in NODE_TYPES}) for _ in range(n_layers)
        )
        self.dropout = nn.Dropout(dropout)
        self.taste_out = nn.Linear(hidden + RESPONSE_DIM, taste)
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

    def user_states(self, graph: EgoGraphs, llm_h: torch.Tensor) -> torch.Tensor:
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
