"""GraphRouter: predict query–candidate edge quality with a heterogeneous GNN.

The method of GraphRouter (Feng et al., arXiv 2410.03834): routing is edge prediction on a
graph of task, query and candidate nodes, whose query–candidate edges carry quality and cost;
a new query is attached with hidden-quality edges and the predicted qualities are read off.
Tasks are KMeans clusters of the queries when the data has no task names, and candidate nodes
carry the real description embeddings. Where it departs from the paper and from LLMRouter's
peer, and its benchmark figures: ``docs/routers/graphrouter.md``.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import torch
from pydantic import Field

from langchain_llmrouter._optional import import_optional
from langchain_llmrouter.routers._torch import torch_threads
from langchain_llmrouter.routers.base import BaseRouter, RouterParams

if TYPE_CHECKING:
    from collections.abc import Sequence

    from langchain_core.embeddings import Embeddings

    from langchain_llmrouter.candidates import LLMCandidate
    from langchain_llmrouter.data import RoutingDataset

QUERY_TASK = ("query", "belongs_to", "task")
"""Edge type of the stored graph: each query to its task."""
QUERY_CANDIDATE = ("query", "answered_by", "candidate")
"""Edge type of the stored graph: each query to every candidate (attrs: quality, cost)."""

# Message directions used by the GNN (derived from the two stored edge types).
_Q2T = ("query", "informs", "task")
_T2Q = ("task", "contains", "query")
_Q2C = ("query", "rates", "candidate")
_C2Q = ("candidate", "serves", "query")
_EDGE_DIM = 3  # [quality if visible else 0, visible flag, normalised cost]
_COST_CLIP = 4.0
_VALIDATE_EVERY = 5  # epochs between validation passes (a pass costs about a training step)


class GraphRouterParams(RouterParams):
    hidden_dim: int = Field(default=64, ge=4, le=1024)
    """Width of the node states and of the edge head."""
    n_layers: int = Field(default=2, ge=1, le=6)
    """Message-passing layers."""
    mask_rate: float = Field(default=0.3, gt=0, lt=1)
    """Share of training queries (or edges, see ``mask_unit``) whose quality is hidden per step."""
    mask_unit: Literal["query", "edge"] = "query"
    """Hide whole queries (as a new query looks at inference) or single edges (the peer's way)."""
    dropout: float = Field(default=0.1, ge=0, lt=1)
    """Dropout on node states during training."""
    lr: float = Field(default=3e-3, gt=0, le=1)
    """AdamW learning rate."""
    weight_decay: float = Field(default=1e-4, ge=0)
    """AdamW weight decay."""
    max_epochs: int = Field(default=300, ge=1)
    """Training steps (one full-graph step per epoch)."""
    patience: int = Field(default=30, ge=1)
    """Stop after this many epochs without a better validation loss."""
    n_tasks: int = Field(default=14, ge=1)
    """KMeans clusters standing in for tasks when the data has no task names."""
    validation_fraction: float = Field(default=0.1, ge=0, lt=0.5)
    """Share of queries held out for early stopping (0: train ``max_epochs``, no stopping)."""
    random_state: int = 0
    """Seed of the split, the clusters, the masks and the weights."""


@dataclass
class _Relations:
    """Message-passing inputs for one forward pass (torch tensors)."""

    x: dict[str, torch.Tensor]
    edge_index: dict[tuple[str, str, str], torch.Tensor]
    edge_attr: dict[tuple[str, str, str], torch.Tensor]
    head_query: torch.Tensor
    head_candidate: torch.Tensor
    head_cost: torch.Tensor


class _GraphNet(torch.nn.Module):
    """Heterogeneous GNN over task / query / candidate nodes with an edge-quality head."""

    def __init__(
        self, query_dim: int, candidate_dim: int, hidden: int, n_layers: int, dropout: float
    ) -> None:
        super().__init__()
        pyg_nn = import_optional("torch_geometric.nn", extra="graph", feature="graphrouter")
        nn = torch.nn
        self.encode = nn.ModuleDict(
            {
                "query": nn.Linear(query_dim, hidden),
                "task": nn.Linear(query_dim, hidden),
                "candidate": nn.Linear(candidate_dim, hidden),
            }
        )

        def mlp() -> torch.nn.Module:
            return nn.Sequential(nn.Linear(hidden, hidden), nn.ReLU(), nn.Linear(hidden, hidden))

        # GINE messages relu(h_src + W·edge_attr) let a query's state depend on *which*
        # candidate scored what (an additive message would only keep the mean quality).
        self.convs = nn.ModuleList(
            pyg_nn.HeteroConv(
                {
                    _C2Q: pyg_nn.GINEConv(mlp(), edge_dim=_EDGE_DIM, aggr="mean"),
                    _Q2C: pyg_nn.GINEConv(mlp(), edge_dim=_EDGE_DIM, aggr="mean"),
                    _Q2T: pyg_nn.SAGEConv(hidden, hidden, aggr="mean"),
                    _T2Q: pyg_nn.SAGEConv(hidden, hidden, aggr="mean"),
                },
                aggr="sum",
            )
            for _ in range(n_layers)
        )
        self.norms = nn.ModuleList(
            nn.ModuleDict({t: nn.LayerNorm(hidden) for t in ("query", "task", "candidate")})
            for _ in range(n_layers)
        )
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Sequential(
            nn.Linear(3 * hidden + 1, hidden), nn.ReLU(), nn.Linear(hidden, 1)
        )

    def _layer(
        self,
        i: int,
        h: dict[str, torch.Tensor],
        edge_index: dict[tuple[str, str, str], torch.Tensor],
        edge_attr: dict[tuple[str, str, str], torch.Tensor],
    ) -> dict[str, torch.Tensor]:
        """Layer ``i``: updated states of the node types that receive messages."""
        out = self.convs[i](h, edge_index, edge_attr)
        norm: torch.nn.ModuleDict = self.norms[i]  # type: ignore[assignment]
        return {t: norm[t](h[t] + self.dropout(torch.relu(o))) for t, o in out.items()}

    def _score(self, hq: torch.Tensor, hc: torch.Tensor, rel: _Relations) -> torch.Tensor:
        hq, hc = hq[rel.head_query], hc[rel.head_candidate]
        features = torch.cat([hq, hc, hq * hc, rel.head_cost[:, None]], dim=1)
        return self.head(features).squeeze(1)

    def forward(self, rel: _Relations) -> torch.Tensor:
        """Logits of the quality of the edges named by ``rel.head_*``."""
        h = {t: self.encode[t](x) for t, x in rel.x.items()}
        for i in range(len(self.convs)):
            h = self._layer(i, h, rel.edge_index, rel.edge_attr)
        return self._score(h["query"], h["candidate"], rel)

    def context(self, rel: _Relations) -> list[dict[str, torch.Tensor]]:
        """Task and candidate states entering each layer and leaving the last one.

        They depend on the training queries only (new queries send no messages), so they
        are computed once and reused for every batch of new queries.
        """
        h = {t: self.encode[t](x) for t, x in rel.x.items()}
        states = [{t: h[t] for t in ("task", "candidate")}]
        for i in range(len(self.convs)):
            h = self._layer(i, h, rel.edge_index, rel.edge_attr)
            states.append({t: h[t] for t in ("task", "candidate")})
        return states

    def attached(self, context: list[dict[str, torch.Tensor]], rel: _Relations) -> torch.Tensor:
        """`forward` for new queries only (``rel`` holds just them), given `context`."""
        hq = self.encode["query"](rel.x["query"])
        for i in range(len(self.convs)):
            hq = self._layer(i, {"query": hq, **context[i]}, rel.edge_index, rel.edge_attr)["query"]
        return self._score(hq, context[-1]["candidate"], rel)


class GraphRouter(BaseRouter):
    """Predicts each candidate's quality as a hidden edge of a task–query–candidate graph."""

    name = "graphrouter"
    Params = GraphRouterParams
    uses_embeddings = True

    def __init__(
        self,
        *,
        hidden_dim: int = 64,
        n_layers: int = 2,
        mask_rate: float = 0.3,
        mask_unit: Literal["query", "edge"] = "query",
        dropout: float = 0.1,
        lr: float = 3e-3,
        weight_decay: float = 1e-4,
        max_epochs: int = 300,
        patience: int = 30,
        n_tasks: int = 14,
        validation_fraction: float = 0.1,
        random_state: int = 0,
        cost_weight: float = 0.0,
        budget: float | None = None,
        embeddings: Embeddings | None = None,
    ) -> None:
        super().__init__(cost_weight=cost_weight, budget=budget, embeddings=embeddings)
        self.hidden_dim = hidden_dim
        self.n_layers = n_layers
        self.mask_rate = mask_rate
        self.mask_unit = mask_unit
        self.dropout = dropout
        self.lr = lr
        self.weight_decay = weight_decay
        self.max_epochs = max_epochs
        self.patience = patience
        self.n_tasks = n_tasks
        self.validation_fraction = validation_fraction
        self.random_state = random_state

    # --- graph construction ---------------------------------------------------------------

    def _candidate_features(self, candidates: Sequence[LLMCandidate]) -> tuple[np.ndarray, str]:
        """Candidate node features: their stored embeddings, else embedded descriptions."""
        stored = [c.embedding for c in candidates]
        if all(e is not None for e in stored) and len({len(e) for e in stored if e}) == 1:
            raw, source = np.asarray(stored, dtype=np.float32), "embedding"
        else:
            from langchain_llmrouter.embeddings import embed_texts

            texts = [c.description.strip() or c.name for c in candidates]
            raw, source = embed_texts(texts, self.embeddings), "description"
        # Description embeddings of LLMs are all alike; centring keeps what tells them apart.
        unit = raw / np.maximum(np.linalg.norm(raw, axis=1, keepdims=True), 1e-12)
        return (unit - unit.mean(axis=0, keepdims=True)).astype(np.float32), source

    def _tasks(self, dataset: RoutingDataset, x: np.ndarray) -> tuple[np.ndarray, list[str], str]:
        """(task index per query, task labels, source): named tasks, else KMeans clusters."""
        names = dataset.task_names
        if names and all(t is not None for t in names):
            labels = sorted({str(t) for t in names})
            index = {t: i for i, t in enumerate(labels)}
            return np.array([index[str(t)] for t in names]), labels, "dataset"
        from sklearn.cluster import KMeans

        k = min(self.n_tasks, len(np.unique(x, axis=0)))
        kmeans = KMeans(n_clusters=k, n_init=1, random_state=self.random_state)
        kmeans.fit(x.astype(np.float64))  # float64: sklearn upcasts float32 in slow chunks
        assign = kmeans.labels_.astype(np.int64)
        used = np.unique(assign)  # KMeans may leave a cluster empty on duplicate points
        assign = np.searchsorted(used, assign)
        return assign, [f"cluster_{i}" for i in range(len(used))], "kmeans"

    def _build_graph(
        self,
        query_x: np.ndarray,
        task_of_query: np.ndarray,
        candidate_x: np.ndarray,
        quality: np.ndarray,
        cost: np.ndarray,
    ) -> None:
        """Store the training graph as a `HeteroData` (``graph_``) and derived arrays."""
        pyg_data = import_optional("torch_geometric.data", extra="graph", feature="graphrouter")
        n, m = quality.shape
        n_tasks = int(task_of_query.max()) + 1
        task_x = np.zeros((n_tasks, query_x.shape[1]), dtype=np.float32)
        np.add.at(task_x, task_of_query, query_x)
        task_x /= np.maximum(np.bincount(task_of_query, minlength=n_tasks), 1)[:, None]
        self.task_centroids_ = task_x
        graph = pyg_data.HeteroData()
        graph["query"].x = torch.from_numpy(np.ascontiguousarray(query_x, dtype=np.float32))
        graph["task"].x = torch.from_numpy(task_x)
        graph["candidate"].x = torch.from_numpy(np.ascontiguousarray(candidate_x))
        graph[QUERY_TASK].edge_index = torch.from_numpy(
            np.stack([np.arange(n), task_of_query]).astype(np.int64)
        )
        q_idx, c_idx = np.divmod(np.arange(n * m), m)
        graph[QUERY_CANDIDATE].edge_index = torch.from_numpy(np.stack([q_idx, c_idx]))
        graph[QUERY_CANDIDATE].edge_attr = torch.from_numpy(
            np.stack([np.nan_to_num(quality).ravel(), cost.ravel()], axis=1).astype(np.float32)
        )
        graph[QUERY_CANDIDATE].known = torch.from_numpy(~np.isnan(quality).ravel())
        self.graph_ = graph
        self._quality = np.nan_to_num(quality).astype(np.float32)
        self._known = ~np.isnan(quality)
        self._cost = cost.astype(np.float32)
        self._task_of_query = task_of_query.astype(np.int64)
        self._context: list[dict[str, torch.Tensor]] | None = None

    def _nearest_task(self, x: np.ndarray) -> np.ndarray:
        """Index of the nearest task centroid (cosine) for each row of ``x``."""
        c = self.task_centroids_
        unit_c = c / np.maximum(np.linalg.norm(c, axis=1, keepdims=True), 1e-12)
        unit_x = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
        return np.argmax(unit_x @ unit_c.T, axis=1).astype(np.int64)

    def _relations(
        self,
        base: np.ndarray,
        visible: np.ndarray,
        sends_to_task: np.ndarray,
        new_x: np.ndarray | None = None,
        new_cost: np.ndarray | None = None,
        head_rows: np.ndarray | None = None,
    ) -> _Relations:
        """Message graph over training queries ``base`` plus optional new (hidden) queries.

        Args:
            base: Indices of the stored training queries taking part.
            visible: (len(base), m) whether each of their edges shows its quality.
            sends_to_task: (len(base),) whether each sends messages to its task.
            new_x: Embeddings of new queries (all their edges hidden, they send nothing).
            new_cost: Their normalised costs, (len(new_x), m).
            head_rows: Query rows (in the combined numbering) whose edges the head scores;
                default: the new queries.
        """
        m = self._quality.shape[1]
        x_q = self.graph_["query"].x[torch.from_numpy(base)]
        tasks, cost = self._task_of_query[base], self._cost[base]
        vis = visible
        quality = self._quality[base]
        if new_x is not None and new_cost is not None and len(new_x):
            x_q = torch.cat([x_q, torch.from_numpy(np.asarray(new_x, dtype=np.float32))])
            tasks = np.concatenate([tasks, self._nearest_task(new_x)])
            cost = np.concatenate([cost, new_cost.astype(np.float32)])
            vis = np.concatenate([visible, np.zeros((len(new_x), m), dtype=bool)])
            quality = np.concatenate([quality, np.zeros((len(new_x), m), dtype=np.float32)])
            sends_to_task = np.concatenate([sends_to_task, np.zeros(len(new_x), dtype=bool)])
        n = len(tasks)
        q_idx, c_idx = np.divmod(np.arange(n * m), m)
        flat_vis = vis.ravel()
        attr = np.stack([quality.ravel() * flat_vis, flat_vis, cost.ravel()], axis=1)
        attr_t = torch.from_numpy(attr.astype(np.float32))
        vis_t = torch.from_numpy(flat_vis)
        qc = torch.from_numpy(np.stack([q_idx, c_idx]))
        qt = torch.from_numpy(np.stack([np.arange(n), tasks]).astype(np.int64))
        rows = np.arange(len(base), n) if head_rows is None else head_rows
        return _Relations(
            x={
                "query": x_q,
                "task": self.graph_["task"].x,
                "candidate": self.graph_["candidate"].x,
            },
            edge_index={
                _C2Q: qc.flip(0),
                _Q2C: qc[:, vis_t],
                _T2Q: qt.flip(0),
                _Q2T: qt[:, torch.from_numpy(sends_to_task)],
            },
            edge_attr={_C2Q: attr_t, _Q2C: attr_t[vis_t]},
            head_query=torch.from_numpy(np.repeat(rows, m)),
            head_candidate=torch.from_numpy(np.tile(np.arange(m), len(rows))),
            head_cost=torch.from_numpy(cost[rows].ravel()),
        )

    # --- training -------------------------------------------------------------------------

    def _fit(self, dataset: RoutingDataset | None, query_embeddings: np.ndarray | None) -> None:
        assert dataset is not None and query_embeddings is not None
        x = np.asarray(query_embeddings, dtype=np.float32)
        candidate_x, self.candidate_features_ = self._candidate_features(dataset.candidate_info())
        task_of_query, self.task_labels_, self.task_source_ = self._tasks(dataset, x)
        finite = dataset.cost[np.isfinite(dataset.cost)]
        self.cost_scale_ = float(finite.max()) if finite.size and finite.max() > 0 else 1.0
        cost = np.clip(np.nan_to_num(dataset.cost / self.cost_scale_), 0.0, _COST_CLIP)
        quality = np.clip(np.asarray(dataset.performance, dtype=np.float64), 0.0, 1.0)
        self._build_graph(x, task_of_query, candidate_x, quality, cost)
        with torch.random.fork_rng(devices=[]), torch_threads(1):
            torch.manual_seed(self.random_state)
            self.net_ = _GraphNet(
                x.shape[1], candidate_x.shape[1], self.hidden_dim, self.n_layers, self.dropout
            )
            self._train(np.random.default_rng(self.random_state))
        self.net_.eval()

    def _train(self, rng: np.random.Generator) -> None:
        n, m = self._quality.shape
        n_val = round(self.validation_fraction * n)
        if self.validation_fraction > 0 and n_val == 0 and n >= 2:
            n_val = 1
        order = rng.permutation(n)
        val, train = np.sort(order[:n_val]), np.sort(order[n_val:])
        known = torch.from_numpy(self._known)
        target = torch.from_numpy(self._quality)
        val_rel = None
        if n_val:
            # Validation queries are attached exactly as new queries are at inference.
            val_rel = self._relations(
                train,
                self._known[train],
                np.ones(len(train), dtype=bool),
                self.graph_["query"].x[torch.from_numpy(val)].numpy(),
                self._cost[val],
            )
            val_known, val_target = known[val].ravel(), target[val].ravel()
        optimizer = torch.optim.AdamW(
            self.net_.parameters(), lr=self.lr, weight_decay=self.weight_decay
        )
        loss_fn = torch.nn.functional.binary_cross_entropy_with_logits
        best, best_state, stale = float("inf"), copy.deepcopy(self.net_.state_dict()), 0
        self.epochs_trained_ = 0
        for _ in range(self.max_epochs):
            hidden = self._draw_mask(rng, len(train), m)
            visible = self._known[train] & ~hidden
            sends = np.asarray(~hidden.all(axis=1))
            rel = self._relations(train, visible, sends, head_rows=np.arange(len(train)))
            supervised = torch.from_numpy((hidden & self._known[train]).ravel())
            self.net_.train()
            logits = self.net_(rel)
            loss = loss_fn(logits[supervised], target[train].ravel()[supervised])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            self.epochs_trained_ += 1
            if val_rel is None or self.epochs_trained_ % _VALIDATE_EVERY:
                continue
            self.net_.eval()
            with torch.no_grad():
                val_logits = self.net_(val_rel)
                val_loss = float(loss_fn(val_logits[val_known], val_target[val_known]))
            if val_loss < best - 1e-5:
                best, best_state, stale = val_loss, copy.deepcopy(self.net_.state_dict()), 0
            else:
                stale += _VALIDATE_EVERY
                if stale >= self.patience:
                    break
        if val_rel is not None:
            self.net_.load_state_dict(best_state)
        self.validation_loss_ = best if val_rel is not None else None

    def _draw_mask(self, rng: np.random.Generator, n: int, m: int) -> np.ndarray:
        """(n, m) True where a training edge's quality is hidden this step (never empty)."""
        if self.mask_unit == "query":
            rows = rng.random(n) < self.mask_rate
            rows[rng.integers(n)] = True
            return np.repeat(rows[:, None], m, axis=1)
        hidden = rng.random((n, m)) < self.mask_rate
        hidden.flat[rng.integers(n * m)] = True
        return hidden

    # --- inference ------------------------------------------------------------------------

    def _predict_quality(
        self, queries: list[str], query_embeddings: np.ndarray | None
    ) -> np.ndarray:
        assert query_embeddings is not None
        x = np.asarray(query_embeddings, dtype=np.float32)
        expected = self.graph_["query"].x.shape[1]
        if x.ndim != 2 or x.shape[1] != expected:
            raise ValueError(
                f"query embeddings have shape {x.shape} but the router was trained on dimension {expected}"
            )
        cost = np.clip(self.estimate_costs(queries) / self.cost_scale_, 0.0, _COST_CLIP)
        m = len(self.candidates_)
        q_idx, c_idx = np.divmod(np.arange(len(x) * m), m)
        task = self._nearest_task(x)
        attr = np.stack([np.zeros(len(q_idx)), np.zeros(len(q_idx)), cost.ravel()], axis=1)
        rel = _Relations(
            x={"query": torch.from_numpy(x)},
            edge_index={
                _C2Q: torch.from_numpy(np.stack([c_idx, q_idx])),
                _T2Q: torch.from_numpy(np.stack([task, np.arange(len(x))])),
            },
            edge_attr={_C2Q: torch.from_numpy(attr.astype(np.float32))},
            head_query=torch.from_numpy(q_idx),
            head_candidate=torch.from_numpy(c_idx),
            head_cost=torch.from_numpy(cost.ravel().astype(np.float32)),
        )
        self.net_.eval()
        with torch.inference_mode(), torch_threads(1):
            logits = self.net_.attached(self._training_context(), rel)
        return torch.sigmoid(logits).double().numpy().reshape(len(x), m)

    def _training_context(self) -> list[dict[str, torch.Tensor]]:
        """Task / candidate states over the stored graph (cached; inference mode only)."""
        if self._context is None:
            n = self._quality.shape[0]
            rel = self._relations(np.arange(n), self._known, np.ones(n, dtype=bool))
            self._context = self.net_.context(rel)
        return self._context

    # --- persistence ----------------------------------------------------------------------

    def _get_state(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        meta = {
            "task_labels": self.task_labels_,
            "task_source": self.task_source_,
            "candidate_features": self.candidate_features_,
            "cost_scale": self.cost_scale_,
            "epochs_trained": self.epochs_trained_,
            "validation_loss": self.validation_loss_,
        }
        quality = np.where(self._known, self._quality, np.nan).astype(np.float32)
        arrays = {
            "graph.query_x": self.graph_["query"].x.numpy(),
            "graph.candidate_x": self.graph_["candidate"].x.numpy(),
            "graph.query_task": self._task_of_query,
            "graph.quality": quality,
            "graph.cost": self._cost,
        }
        for key, value in self.net_.state_dict().items():
            arrays[f"net.{key}"] = value.detach().cpu().numpy()
        return meta, arrays

    def _set_state(self, meta: dict[str, Any], arrays: dict[str, np.ndarray]) -> None:
        self.task_labels_ = list(meta["task_labels"])
        self.task_source_ = str(meta["task_source"])
        self.candidate_features_ = str(meta["candidate_features"])
        self.cost_scale_ = float(meta["cost_scale"])
        self.epochs_trained_ = int(meta["epochs_trained"])
        self.validation_loss_ = meta.get("validation_loss")
        query_x, candidate_x = arrays["graph.query_x"], arrays["graph.candidate_x"]
        self._build_graph(
            query_x,
            arrays["graph.query_task"].astype(np.int64),
            candidate_x,
            arrays["graph.quality"].astype(np.float64),
            arrays["graph.cost"],
        )
        with torch.random.fork_rng(devices=[]):
            self.net_ = _GraphNet(
                query_x.shape[1],
                candidate_x.shape[1],
                self.hidden_dim,
                self.n_layers,
                self.dropout,
            )
        state = {k[4:]: torch.from_numpy(v.copy()) for k, v in arrays.items() if k[:4] == "net."}
        self.net_.load_state_dict(state)
        self.net_.eval()
