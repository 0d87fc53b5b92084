"""PersonalizedRouter's network: a GNN over task / query / LLM nodes, a link head, the user fit.

`PersonalizedNet` is the model of `langchain_llmrouter.routers.personalizedrouter`: query,
task and LLM node states from heterogeneous message passing, a link trunk giving each
query–LLM pair a population logit and user features, and the closed-form (ridge) user state
fitted on a user's rated edges. `preference_pairs` and `draw_targets` build its training
signal. Imported by the router only (torch and torch-geometric are optional).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from langchain_llmrouter._optional import import_optional

Edges = dict[tuple[str, str, str], torch.Tensor]

# Message directions of the GNN over the shared graph (users are handled by the ridge update).
Q2T = ("query", "belongs_to", "task")
T2Q = ("task", "contains", "query")
Q2M = ("query", "rated", "llm")


class PersonalizedNet(torch.nn.Module):
    """GNN over task / query / LLM nodes, a link trunk, and the user-state (ridge) update."""

    def __init__(
        self, query_dim: int, llm_dim: int, hidden: int, taste: int, layers: int, dropout: float
    ) -> None:
        super().__init__()
        pyg_nn = import_optional("torch_geometric.nn", extra="graph", feature="personalizedrouter")
        nn = torch.nn
        self.encode = nn.ModuleDict(
            {
                "query": nn.Linear(query_dim, hidden),
                "task": nn.Linear(query_dim, hidden),
                "llm": nn.Linear(llm_dim, hidden),
            }
        )

        def mlp() -> torch.nn.Module:
            return nn.Sequential(nn.Linear(hidden, hidden), nn.ReLU(), nn.Linear(hidden, hidden))

        # Query states never read ratings (a new query has none); LLM states gather the
        # visible ratings of the queries they answered (GINE: which query, rated how).
        self.convs = nn.ModuleList(
            pyg_nn.HeteroConv(
                {
                    Q2T: pyg_nn.SAGEConv(hidden, hidden, aggr="mean"),
                    T2Q: pyg_nn.SAGEConv(hidden, hidden, aggr="mean"),
                    Q2M: pyg_nn.GINEConv(mlp(), edge_dim=2, aggr="mean"),
                },
                aggr="sum",
            )
            for _ in range(layers)
        )
        self.norms = nn.ModuleList(
            nn.ModuleDict({t: nn.LayerNorm(hidden) for t in ("query", "task", "llm")})
            for _ in range(layers)
        )
        self.dropout = nn.Dropout(dropout)
        self.trunk = nn.Sequential(nn.Linear(3 * hidden, hidden), nn.ReLU())
        self.population = nn.Linear(hidden, 1)
        self.taste = nn.Linear(hidden, taste)
        # Prior strengths of the user fit: taste-feature weights, per-LLM biases.
        self.log_ridge = nn.Parameter(torch.zeros(2))
        self.gain = nn.Parameter(torch.full((1,), 4.0))

    def _layer(self, i: int, h: dict[str, torch.Tensor], edges: Edges, attr: Edges) -> Any:
        out = self.convs[i](h, edges, attr)
        norm: torch.nn.ModuleDict = self.norms[i]  # type: ignore[assignment]
        return {
            t: norm[t](h[t] + self.dropout(torch.relu(out[t]))) if t in out else h[t] for t in h
        }

    def context(
        self, x: dict[str, torch.Tensor], edges: Edges, attr: Edges
    ) -> list[dict[str, torch.Tensor]]:
        """Node states entering each layer and leaving the last one (all three types)."""
        states = [{t: self.encode[t](v) for t, v in x.items()}]
        for i in range(len(self.convs)):
            states.append(self._layer(i, states[-1], edges, attr))
        return states

    def attached(
        self, context: list[dict[str, torch.Tensor]], x: torch.Tensor, task: torch.Tensor
    ) -> torch.Tensor:
        """Final states of new queries ``x`` linked to their ``task`` (they send nothing)."""
        hq = self.encode["query"](x)
        t2q = torch.stack([task, torch.arange(len(x))])
        for i in range(len(self.convs)):
            hq = self._layer(i, {"query": hq, "task": context[i]["task"]}, {T2Q: t2q}, {})["query"]
        return hq

    def link(
        self, hq: torch.Tensor, hm: torch.Tensor, llm: torch.Tensor, n_llms: int
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(population logit, user features) of query–LLM pairs (matching rows; ``llm`` the
        candidate indices): the learned taste features, then a one-hot of the LLM."""
        z = self.dropout(self.trunk(torch.cat([hq, hm, hq * hm], dim=-1)))
        one_hot = torch.nn.functional.one_hot(llm, n_llms).to(z.dtype)
        return self.population(z).squeeze(-1), torch.cat([self.taste(z), one_hot], -1)

    def user_states(
        self, phi: torch.Tensor, residual: torch.Tensor, user: torch.Tensor, n_users: int
    ) -> torch.Tensor:
        """Each user's state: the ridge fit of their rating residuals (rating minus the
        population prediction) on the user features of their rated edges, a sum aggregation
        of edge messages, then a solve), with a prior of its own on the per-LLM biases."""
        d, n_taste = phi.shape[1], self.taste.out_features
        gram = torch.zeros(n_users, d * d).index_add_(
            0, user, (phi[:, :, None] * phi[:, None, :]).reshape(len(phi), d * d)
        )
        moment = torch.zeros(n_users, d).index_add_(0, user, phi * residual[:, None])
        ridge = torch.exp(self.log_ridge)
        prior = torch.cat([ridge[0].expand(n_taste), ridge[1].expand(d - n_taste)])
        return torch.linalg.solve(gram.reshape(n_users, d, d) + torch.diag(prior), moment)


def preference_pairs(session: np.ndarray, rating: np.ndarray) -> np.ndarray:
    """(winner, loser) edge indices of every same-question pair with different ratings."""
    order = np.argsort(session, kind="stable")
    bounds = np.flatnonzero(np.diff(session[order])) + 1
    out = []
    for group in np.split(order, bounds):
        for a_pos, a in enumerate(group):
            for b in group[a_pos + 1 :]:
                if rating[a] != rating[b]:
                    out.append((a, b) if rating[a] > rating[b] else (b, a))
    return np.array(out, dtype=np.int64).reshape(-1, 2)


def draw_targets(
    rng: np.random.Generator, session_user: np.ndarray, held: np.ndarray, n_users: int
) -> np.ndarray:
    """Per question, whether it is a target this step: each user keeps a uniformly drawn
    number (0 .. all but one) of their training questions visible, the rest are targets, so
    the model learns from contexts as small as a new user's and as large as a regular's."""
    n = len(session_user)
    order = rng.permutation(n)
    order = order[np.argsort(session_user[order], kind="stable")]
    order = order[~held[order]]
    counts = np.bincount(session_user[order], minlength=n_users)
    keep = np.floor(rng.random(n_users) * counts).astype(np.int64)
    starts = np.cumsum(counts) - counts
    rank = np.arange(len(order)) - starts[session_user[order]]
    target = np.zeros(n, dtype=bool)
    target[order] = rank >= keep[session_user[order]]
    return target
