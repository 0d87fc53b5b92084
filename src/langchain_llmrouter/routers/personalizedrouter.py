"""PersonalizedRouter: personalised routing as link prediction on a user–task–query–LLM graph.

The method of PersonalizedRouter (Dai et al., arXiv 2511.16883): queries link to their task and
to the LLMs that answered them (edges carry the user's rating), users link to the queries they
asked, and a GNN plus a link head predicts a user's preference for an unrated query–LLM edge.
Here a user is no node with weights of its own: the user state is solved from the user's rated
edges alone (a ridge fit of their residuals against the population prediction, on learned edge
features and a per-LLM bias), so new users, new feedback and any number of users need no
retraining. Tasks are the interactions' ``task`` names, else k-means clusters. Departures from
the paper and the peer, and measured figures: ``docs/routers/personalizedrouter.md``.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from pydantic import Field

from langchain_llmrouter.errors import RouterLoadError
from langchain_llmrouter.personal.router import PersonalRouter, PersonalRouterParams, UserHistory
from langchain_llmrouter.routers._personalized_net import (
    Q2M,
    Q2T,
    T2Q,
    Edges,
    PersonalizedNet,
    draw_targets,
    preference_pairs,
)
from langchain_llmrouter.routers._torch import torch_threads

if TYPE_CHECKING:
    from langchain_core.embeddings import Embeddings

    from langchain_llmrouter.personal.interactions import Interaction

_VALIDATE_EVERY = 5
# The training graph, saved with the weights: array name -> dtype.
_GRAPH = {
    "query_x": np.float32,  # embedding of each distinct training query
    "query_task": np.int64,  # its task node
    "task_centroids": np.float32,  # task node features
    "edge_query": np.int64,  # per rated edge: its query,
    "edge_llm": np.int64,  # its LLM,
    "edge_rating": np.float32,  # and its rating in [0, 1]
    "llm_center": np.float32,  # mean unit description embedding (LLM features are centred)
    "price_mean": np.float32,  # log-price standardisation of the LLM features
    "price_scale": np.float32,
}


class PersonalizedRouterParams(PersonalRouterParams):
    hidden_dim: int = Field(default=128, ge=4, le=1024)
    """Width of the query, task and LLM node states."""
    taste_dim: int = Field(default=24, ge=1, le=256)
    """Learned edge features a user weighs (their state also holds one bias per LLM)."""
    n_layers: int = Field(default=2, ge=1, le=6)
    """Message-passing layers over the task / query / LLM graph."""
    n_tasks: int = Field(default=8, ge=1)
    """k-means clusters standing in for tasks when interactions carry no task names."""
    ridge: float = Field(default=1.0, gt=0)
    """Initial prior strength of the user-state fit (learned during training)."""
    pairwise_weight: float = Field(default=1.0, ge=0)
    """Weight of the same-question pairwise loss next to the pointwise BCE."""
    population_weight: float = Field(default=0.5, ge=0)
    """Weight of the loss of the population prediction (the cold-start scores)."""
    dropout: float = Field(default=0.2, ge=0, lt=1)
    """Dropout on node states while training."""
    lr: float = Field(default=3e-3, gt=0, le=1)
    """AdamW learning rate."""
    weight_decay: float = Field(default=1e-4, ge=0)
    """AdamW weight decay."""
    max_epochs: int = Field(default=300, ge=1)
    """Full-graph training steps (each with a fresh edge mask)."""
    patience: int = Field(default=40, ge=1)
    """Stop after this many epochs without a better validation loss."""
    validation_fraction: float = Field(default=0.1, ge=0, lt=0.5)
    """Share of each user's questions held out for early stopping (0: no stopping)."""
    random_state: int = 0
    """Seed of the clusters, the masks, the split and the weights."""


_PRIOR_STEPS = (-1.0, 0.0, 1.0, 2.0, 4.0, 8.0)
"""Offsets (in log) of the user fit's prior strengths tried on validation after training."""


class PersonalizedRouter(PersonalRouter):
    """Predicts a user's rating of each LLM on a query as a link of a user–task–query–LLM graph."""

    name = "personalizedrouter"
    Params = PersonalizedRouterParams

    def __init__(
        self,
        *,
        hidden_dim: int = 128,
        taste_dim: int = 24,
        n_layers: int = 2,
        n_tasks: int = 8,
        ridge: float = 1.0,
        pairwise_weight: float = 1.0,
        population_weight: float = 0.5,
        dropout: float = 0.2,
        lr: float = 3e-3,
        weight_decay: float = 1e-4,
        max_epochs: int = 300,
        patience: int = 40,
        validation_fraction: float = 0.1,
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
        self.n_tasks = n_tasks
        self.ridge = ridge
        self.pairwise_weight = pairwise_weight
        self.population_weight = population_weight
        self.dropout = dropout
        self.lr = lr
        self.weight_decay = weight_decay
        self.max_epochs = max_epochs
        self.patience = patience
        self.validation_fraction = validation_fraction
        self.random_state = random_state

    # --- graph ----------------------------------------------------------------------------

    def _llm_features(self) -> np.ndarray:
        """LLM node features: centred unit description embeddings and standardised log prices."""
        raw = self.candidate_embeddings_.astype(np.float64)
        unit = raw / np.maximum(np.linalg.norm(raw, axis=1, keepdims=True), 1e-12)
        price = np.nan_to_num(np.log1p(np.stack([self.input_price_, self.output_price_], 1)))
        g = self.graph_
        if "llm_center" not in g:
            g["llm_center"] = unit.mean(axis=0).astype(np.float32)
            g["price_mean"] = price.mean(axis=0).astype(np.float32)
            g["price_scale"] = np.maximum(price.std(axis=0), 1e-6).astype(np.float32)
        scaled = (price - g["price_mean"]) / g["price_scale"]
        return np.concatenate([unit - g["llm_center"], scaled], axis=1).astype(np.float32)

    def _nearest_task(self, x: np.ndarray) -> np.ndarray:
        c = self.graph_["task_centroids"]
        unit_c = c / np.maximum(np.linalg.norm(c, axis=1, keepdims=True), 1e-12)
        unit_x = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
        return np.argmax(unit_x @ unit_c.T, axis=1).astype(np.int64)

    def _task_centroids(self, names: list[str | None], qx: np.ndarray, rows: np.ndarray) -> Any:
        """Task nodes: the interactions' task names (centroid of their queries), else k-means.

        Every query, in training as at inference, links to its nearest task centroid, so a
        new query (whose task is unknown) sits in the graph as a training query does.
        """
        if all(t is not None for t in names):
            self.task_labels_ = sorted({str(t) for t in names})
            index = {t: k for k, t in enumerate(self.task_labels_)}
            label = np.zeros(len(qx), dtype=np.int64)
            label[rows] = [index[str(t)] for t in names]
            centroids = np.zeros((len(self.task_labels_), qx.shape[1]))
            np.add.at(centroids, label, qx)
            self.task_source_ = "interactions"
            return centroids / np.maximum(np.bincount(label, minlength=len(centroids)), 1)[:, None]
        from sklearn.cluster import KMeans

        k = min(self.n_tasks, len(np.unique(qx, axis=0)))
        kmeans = KMeans(n_clusters=k, n_init=1, random_state=self.random_state)
        self.task_labels_ = [f"cluster_{i}" for i in range(k)]
        self.task_source_ = "kmeans"
        return kmeans.fit(qx.astype(np.float64)).cluster_centers_

    def _relations(self, visible: np.ndarray) -> tuple[Edges, Edges]:
        """Message edges with the ratings of the ``visible`` training edges only."""
        g = self.graph_
        qt = torch.from_numpy(np.stack([np.arange(len(g["query_x"])), g["query_task"]]))
        qm = np.stack([g["edge_query"][visible], g["edge_llm"][visible]])
        rating = g["edge_rating"][visible]
        attr = np.stack([rating - 0.5, np.ones_like(rating)], axis=1).astype(np.float32)
        edges = {Q2T: qt, T2Q: qt.flip(0), Q2M: torch.from_numpy(qm)}
        return edges, {Q2M: torch.from_numpy(attr)}

    def _inputs(self) -> dict[str, torch.Tensor]:
        names = {"query": "query_x", "task": "task_centroids"}
        inputs = {t: torch.from_numpy(self.graph_[k]) for t, k in names.items()}
        return {**inputs, "llm": torch.from_numpy(self._llm_features())}

    # --- training -------------------------------------------------------------------------

    def _fit_interactions(
        self, interactions: list[Interaction], histories: dict[str, UserHistory]
    ) -> None:
        # Edges in the order of `histories` (user by user), queries deduplicated by text.
        per_user: dict[str, list[int]] = {}
        for k, interaction in enumerate(interactions):
            per_user.setdefault(interaction.user_id, []).append(k)
        ordered = [interactions[k] for u in histories for k in per_user[u]]
        texts = np.array([i.query for i in ordered], dtype=object)
        _, first, rows = np.unique(texts, return_index=True, return_inverse=True)
        x = np.concatenate([histories[u].x for u in histories])
        self.graph_: dict[str, np.ndarray] = {"query_x": x[first].astype(np.float32)}
        centroids = self._task_centroids([i.task for i in ordered], self.graph_["query_x"], rows)
        self.graph_.update(
            task_centroids=centroids.astype(np.float32),
            edge_query=rows.astype(np.int64),
            edge_llm=np.concatenate([histories[u].models for u in histories]),
            edge_rating=np.concatenate([histories[u].ratings for u in histories]),
        )
        self.graph_["query_task"] = self._nearest_task(self.graph_["query_x"])
        self._llm_features()  # fixes the LLM features' centring and price scaling
        user = np.concatenate([np.full(len(h), k) for k, h in enumerate(histories.values())])
        sessions = [f"{u}\x00{s}" for u in histories for s in histories[u].sessions]
        _, session = np.unique(np.array(sessions, dtype=object), return_inverse=True)
        self._context: list[dict[str, torch.Tensor]] | None = None
        with torch.random.fork_rng(devices=[]), torch_threads(1):
            torch.manual_seed(self.random_state)
            self.net_ = self._new_net()
            with torch.no_grad():
                self.net_.log_ridge.fill_(float(np.log(self.ridge)))
            self._train(np.random.default_rng(self.random_state), user, session.astype(np.int64))
        self.net_.eval()

    def _new_net(self) -> PersonalizedNet:
        query_dim, llm_dim = self.graph_["query_x"].shape[1], len(self.graph_["llm_center"]) + 2
        return PersonalizedNet(
            query_dim, llm_dim, self.hidden_dim, self.taste_dim, self.n_layers, self.dropout
        )

    def _train(self, rng: np.random.Generator, user: np.ndarray, session: np.ndarray) -> None:
        n_users, n_sessions = int(user.max()) + 1, int(session.max()) + 1
        session_user = np.zeros(n_sessions, dtype=np.int64)
        session_user[session] = user
        held = np.zeros(n_sessions, dtype=bool)
        if self.validation_fraction > 0:
            held = rng.random(n_sessions) < self.validation_fraction
            # Keep at least one training question per user.
            for u in np.unique(session_user[held]):
                mine = np.flatnonzero(session_user == u)
                if held[mine].all():
                    held[mine[rng.integers(len(mine))]] = False
        edges = {
            "user": torch.from_numpy(user),
            "n_users": n_users,
            "rating": torch.from_numpy(self.graph_["edge_rating"].astype(np.float32)),
            "pairs": torch.from_numpy(preference_pairs(session, self.graph_["edge_rating"])),
        }
        inputs = self._inputs()
        optimizer = torch.optim.AdamW(
            self.net_.parameters(), lr=self.lr, weight_decay=self.weight_decay
        )
        best, best_state, stale = float("inf"), copy.deepcopy(self.net_.state_dict()), 0
        self.epochs_trained_ = 0
        for _ in range(self.max_epochs):
            target = draw_targets(rng, session_user, held, n_users)
            self.net_.train()
            loss = self._loss(inputs, edges, ~target[session] & ~held[session], target[session])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            self.epochs_trained_ += 1
            if not held.any() or self.epochs_trained_ % _VALIDATE_EVERY:
                continue
            self.net_.eval()
            with torch.no_grad():
                val = float(self._loss(inputs, edges, ~held[session], held[session]))
            if val < best - 1e-5:
                best, best_state, stale = val, copy.deepcopy(self.net_.state_dict()), 0
            else:
                stale += _VALIDATE_EVERY
                if stale >= self.patience:
                    break
        if held.any():
            self.net_.load_state_dict(best_state)
            best = self._choose_priors(inputs, edges, ~held[session], held[session], best)
        self.validation_loss_ = best if held.any() else None

    def _choose_priors(
        self,
        inputs: dict[str, torch.Tensor],
        edges: dict[str, Any],
        visible: np.ndarray,
        held: np.ndarray,
        best: float,
    ) -> float:
        """Set the two prior strengths of the user fit by the validation loss over a grid
        (training barely moves them before early stopping). The strongest priors shrink users
        almost to the population, so where personalising does not help on held-out questions,
        the grid falls back towards the population. The graph's outputs do not depend on the
        priors, so they are computed once."""
        self.net_.eval()
        start = self.net_.log_ridge.detach().clone()
        chosen = start
        with torch.no_grad():
            pop, phi = self._edge_outputs(inputs, visible)
            for taste in _PRIOR_STEPS:
                for bias in _PRIOR_STEPS:
                    self.net_.log_ridge.copy_(start + torch.tensor([taste, bias]))
                    val = float(self._loss_of(pop, phi, edges, visible, held))
                    if val < best - 1e-6:
                        best, chosen = val, self.net_.log_ridge.detach().clone()
            self.net_.log_ridge.copy_(chosen)
        return best

    def _edge_outputs(
        self, inputs: dict[str, torch.Tensor], visible: np.ndarray
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(population logit, user features) of every training edge, with the ratings of the
        ``visible`` edges only in message passing."""
        h = self.net_.context(inputs, *self._relations(visible))[-1]
        eq, em = (torch.from_numpy(self.graph_[k]) for k in ("edge_query", "edge_llm"))
        return self.net_.link(h["query"][eq], h["llm"][em], em, len(self.candidates_))

    def _personal_logits(
        self, pop: torch.Tensor, phi: torch.Tensor, edges: dict[str, Any], seen: np.ndarray
    ) -> torch.Tensor:
        """Every training edge's logit for its user, their state fitted on ``seen`` edges."""
        vis, rating = torch.from_numpy(seen), edges["rating"]
        residual = rating[vis] - torch.sigmoid(pop[vis]).detach()
        states = self.net_.user_states(phi[vis], residual, edges["user"][vis], edges["n_users"])
        return pop + self.net_.gain * (phi * states[edges["user"]]).sum(-1)

    def _loss(
        self,
        inputs: dict[str, torch.Tensor],
        edges: dict[str, Any],
        visible: np.ndarray,
        target: np.ndarray,
    ) -> torch.Tensor:
        """Loss on the ``target`` edges, their ratings hidden from message passing and from
        the user states (which see the ``visible`` edges only)."""
        pop, phi = self._edge_outputs(inputs, visible)
        return self._loss_of(pop, phi, edges, visible, target)

    def _loss_of(
        self,
        pop: torch.Tensor,
        phi: torch.Tensor,
        edges: dict[str, Any],
        seen: np.ndarray,
        target: np.ndarray,
    ) -> torch.Tensor:
        """Loss on the ``target`` edges of user states fitted on the ``seen`` edges."""
        tgt, rating = torch.from_numpy(target), edges["rating"]
        logit = self._personal_logits(pop, phi, edges, seen)
        bce = torch.nn.functional.binary_cross_entropy_with_logits
        loss = bce(logit[tgt], rating[tgt]) + self.population_weight * bce(pop[tgt], rating[tgt])
        pairs = edges["pairs"][tgt[edges["pairs"][:, 0]]]
        if self.pairwise_weight > 0 and len(pairs):
            soft = torch.nn.functional.softplus
            win, lose = pairs[:, 0], pairs[:, 1]
            pair_loss = soft(logit[lose] - logit[win]).mean()
            pair_loss = pair_loss + self.population_weight * soft(pop[lose] - pop[win]).mean()
            loss = loss + self.pairwise_weight * pair_loss
        return loss

    # --- inference ------------------------------------------------------------------------

    def _graph_context(self) -> list[dict[str, torch.Tensor]]:
        """Node states over the whole training graph, every rating visible (cached)."""
        if self._context is None:
            edges, attr = self._relations(np.ones(len(self.graph_["edge_rating"]), dtype=bool))
            with torch.inference_mode(), torch_threads(1):
                self._context = self.net_.context(self._inputs(), edges, attr)
        return self._context

    def _query_states(self, x: np.ndarray) -> torch.Tensor:
        xt = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))
        task = torch.from_numpy(self._nearest_task(x))
        return self.net_.attached(self._graph_context(), xt, task)

    def _user_states(self, histories: Mapping[str, UserHistory]) -> dict[str, np.ndarray]:
        users = list(histories)
        if not users:
            return {}
        hm = self._graph_context()[-1]["llm"]
        x = np.concatenate([histories[u].x for u in users]).astype(np.float32)
        models = torch.from_numpy(np.concatenate([histories[u].models for u in users]))
        rating = torch.from_numpy(np.concatenate([histories[u].ratings for u in users]))
        owner = np.concatenate([np.full(len(histories[u]), k) for k, u in enumerate(users)])
        owner = owner.astype(np.int64)
        with torch.inference_mode(), torch_threads(1):
            pop, phi = self.net_.link(self._query_states(x), hm[models], models, len(hm))
            residual = rating.float() - torch.sigmoid(pop)
            states = self.net_.user_states(phi, residual, torch.from_numpy(owner), len(users))
        return {u: states[k].numpy().astype(np.float32) for k, u in enumerate(users)}

    def _score(self, x: np.ndarray, states: np.ndarray | None) -> np.ndarray:
        dim = self.graph_["query_x"].shape[1]
        if len(x) and x.shape[1] != dim:
            raise ValueError(
                f"query embeddings have dimension {x.shape[1]}; the router was trained on {dim}"
            )
        hm = self._graph_context()[-1]["llm"]
        n, m = len(x), hm.shape[0]
        with torch.inference_mode(), torch_threads(1):
            hq = self._query_states(x)
            llm = torch.arange(m).expand(n, m)
            pop, phi = self.net_.link(hq[:, None].expand(n, m, -1), hm.expand(n, m, -1), llm, m)
            if states is not None:
                s = torch.from_numpy(np.asarray(states, dtype=np.float32))
                pop = pop + self.net_.gain * (phi * s[:, None, :]).sum(-1)
            return torch.sigmoid(pop).double().numpy()

    def _candidates_added(self, n_new: int) -> None:
        # New LLM nodes enter the graph with no edges: their states come from their
        # description embeddings and prices (a prior); user states are recomputed (their
        # per-LLM biases gain a zero-evidence entry per new candidate).
        self._context = None

    # --- persistence ----------------------------------------------------------------------

    def _get_model_state(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        meta = {
            "task_labels": self.task_labels_,
            "task_source": self.task_source_,
            "epochs_trained": self.epochs_trained_,
            "validation_loss": self.validation_loss_,
        }
        arrays = {f"graph.{k}": self.graph_[k].astype(t) for k, t in _GRAPH.items()}
        for key, value in self.net_.state_dict().items():
            arrays[f"net.{key}"] = value.detach().cpu().numpy()
        return meta, arrays

    def _set_model_state(self, meta: dict[str, Any], arrays: dict[str, np.ndarray]) -> None:
        try:
            self.task_labels_ = [str(t) for t in meta["task_labels"]]
            self.task_source_ = str(meta["task_source"])
            self.epochs_trained_ = int(meta["epochs_trained"])
            self.validation_loss_ = meta.get("validation_loss")
            self.graph_ = {k: arrays[f"graph.{k}"].astype(t) for k, t in _GRAPH.items()}
        except KeyError as exc:
            raise RouterLoadError(f"the saved router lacks {exc.args[0]!r}") from None
        g = self.graph_
        n_q, n_e = len(g["query_x"]), len(g["edge_query"])
        if (
            len(g["query_task"]) != n_q
            or len(g["edge_llm"]) != n_e
            or len(g["edge_rating"]) != n_e
            or (n_e and not 0 <= g["edge_query"].min() <= g["edge_query"].max() < n_q)
            or (n_e and not 0 <= g["edge_llm"].max() < len(self.candidates_))
            or (n_q and g["query_task"].max() >= len(g["task_centroids"]))
            or g["task_centroids"].shape[1:] != g["query_x"].shape[1:]
            or g["llm_center"].shape != (self.candidate_embeddings_.shape[1],)
        ):
            raise RouterLoadError("the saved graph arrays do not match one another")
        self._context = None
        with torch.random.fork_rng(devices=[]):
            self.net_ = self._new_net()
        expected = {k: tuple(v.shape) for k, v in self.net_.state_dict().items()}
        weights = {k[4:]: v for k, v in arrays.items() if k.startswith("net.")}
        for key in sorted(expected.keys() | weights.keys()):
            got = tuple(weights[key].shape) if key in weights else None
            if got != expected.get(key):
                raise RouterLoadError(
                    f"array 'model.net.{key}': shape {got}, but the hyperparameters build "
                    f"{expected.get(key)}"
                )
        self.net_.load_state_dict({k: torch.from_numpy(v.copy()) for k, v in weights.items()})
        self.net_.eval()
