"""Fixtures shared by the per-router test modules: small, embedded slices of real data.

- `router_slice`: every trained router family is held to the shipped router contract on the
  same slice (a `~langchain_llmrouter.testing.ContractData`, used with
  ``contract_data_fixture = "router_slice"``), so their tests stay comparable.
- `short_*`: shorter queries for the modules of the foundation (base, policy, baselines, kNN),
  with a kNN router fitted on them.

The embeddings (MiniLM on a CPU) are cached on disk for the session, so each is paid once.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from langchain_llmrouter import APIKeys, BaseRouter, CandidatePool, RoutingDataset, create_router
from langchain_llmrouter.testing import ContractData

SLICE_FIT, SLICE_HELD = 400, 200
"""Training and held-out queries in `router_slice`."""

SLICE_MAX_CHARS = 300
"""Longest query in the slice (short texts embed and tokenise fast on a CPU)."""


@pytest.fixture(scope="session")
def router_slice(shared_data: Path, llmrouter_cache: Path) -> ContractData:
    """`SLICE_FIT` + `SLICE_HELD` short RouterDC training queries drawn at random over all tasks.

    The file is ordered by task, so a seeded sample (not a head) keeps every task in both parts.
    Embedded with MiniLM; ``embeddings`` is None, so the routers use the package default.
    """
    pool = CandidatePool.from_json(shared_data / "default_llm.json", api_keys=APIKeys())
    full = RoutingDataset.from_file(shared_data / "routerdc_train.json", candidates=pool)
    short = np.array([i for i, q in enumerate(full.queries) if len(q) <= SLICE_MAX_CHARS])
    rows = np.random.default_rng(0).choice(short, SLICE_FIT + SLICE_HELD, replace=False)
    fit_rows, held_rows = np.sort(rows[:SLICE_FIT]), np.sort(rows[SLICE_FIT:])
    fit, held = full.subset(fit_rows), full.subset(held_rows)
    return ContractData(fit=fit, held=held, fit_emb=fit.embed(), held_emb=held.embed(), pool=pool)


# --- the short-query slice of the foundation's routers (kNN, baselines, base, policy) -------

SHORT_FIT, SHORT_HELD = 400, 200
"""Training and held-out queries in `short_fit` / `short_held`."""
SHORT_MAX_CHARS = 200
"""Longest query kept (short queries embed fast on a CPU, and match the root `small_train`)."""

# The file is ordered by task, so the held-out queries are drawn at random, not sliced.
_ORDER = np.random.default_rng(0).permutation(SHORT_FIT + SHORT_HELD)
_FIT_ROWS, _HELD_ROWS = np.sort(_ORDER[:SHORT_FIT]), np.sort(_ORDER[SHORT_FIT:])


@pytest.fixture(scope="session")
def example_pool(shared_data: Path) -> CandidatePool:
    """The 14 example candidates (no endpoint: for prices and sizes)."""
    return CandidatePool.from_json(shared_data / "default_llm.json", api_keys=APIKeys())


@pytest.fixture(scope="session")
def short_data(shared_data: Path, example_pool: CandidatePool) -> RoutingDataset:
    """The first SHORT_FIT + SHORT_HELD RouterDC training queries of at most SHORT_MAX_CHARS
    characters."""
    full = RoutingDataset.from_file(shared_data / "routerdc_train.json", candidates=example_pool)
    short = [i for i, q in enumerate(full.queries) if len(q) <= SHORT_MAX_CHARS]
    return full.subset(short[: SHORT_FIT + SHORT_HELD])


@pytest.fixture(scope="session")
def short_emb(llmrouter_cache: Path, short_data: RoutingDataset) -> np.ndarray:
    """MiniLM embeddings of `short_data`."""
    return short_data.embed()


@pytest.fixture(scope="session")
def short_fit(short_data: RoutingDataset) -> RoutingDataset:
    """The training part of `short_data` (SHORT_FIT queries drawn at random)."""
    return short_data.subset(_FIT_ROWS)


@pytest.fixture(scope="session")
def short_held(short_data: RoutingDataset) -> RoutingDataset:
    """The held-out part of `short_data` (SHORT_HELD queries)."""
    return short_data.subset(_HELD_ROWS)


@pytest.fixture(scope="session")
def short_fit_emb(short_emb: np.ndarray) -> np.ndarray:
    return short_emb[_FIT_ROWS]


@pytest.fixture(scope="session")
def short_held_emb(short_emb: np.ndarray) -> np.ndarray:
    return short_emb[_HELD_ROWS]


@pytest.fixture(scope="session")
def short_knn(short_fit: RoutingDataset, short_fit_emb: np.ndarray) -> BaseRouter:
    """A kNN router (k=10) fitted on `short_fit`; shared by the session, so do not mutate it."""
    return create_router("knnrouter", k=10).fit(short_fit, query_embeddings=short_fit_emb)
