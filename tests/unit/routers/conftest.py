"""Fixtures shared by the per-router test modules: one small, embedded slice of real data.

Every router family is trained on the same slice so their tests stay comparable and the
embedding cost (MiniLM on a CPU) is paid once per session.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from langchain_llmrouter import APIKeys, CandidatePool, RoutingDataset

SLICE_FIT, SLICE_HELD = 400, 200
"""Training and held-out queries in `router_slice`."""

SLICE_MAX_CHARS = 300
"""Longest query in the slice (short texts embed and tokenise fast on a CPU)."""


@dataclass(frozen=True)
class RouterSlice:
    """A training part and a held-out part of ``routerdc_train.json``, with embeddings."""

    fit: RoutingDataset
    held: RoutingDataset
    fit_emb: np.ndarray
    held_emb: np.ndarray
    pool: CandidatePool


@pytest.fixture(scope="session")
def router_slice(shared_data: Path, llmrouter_cache: Path) -> RouterSlice:
    """`SLICE_FIT` + `SLICE_HELD` short RouterDC training queries drawn at random over all tasks.

    The file is ordered by task, so a seeded sample (not a head) keeps every task in both parts.
    """
    pool = CandidatePool.from_json(shared_data / "default_llm.json", api_keys=APIKeys())
    full = RoutingDataset.from_file(shared_data / "routerdc_train.json", candidates=pool)
    short = np.array([i for i, q in enumerate(full.queries) if len(q) <= SLICE_MAX_CHARS])
    rows = np.random.default_rng(0).choice(short, SLICE_FIT + SLICE_HELD, replace=False)
    fit_rows, held_rows = np.sort(rows[:SLICE_FIT]), np.sort(rows[SLICE_FIT:])
    fit, held = full.subset(fit_rows), full.subset(held_rows)
    return RouterSlice(fit=fit, held=held, fit_emb=fit.embed(), held_emb=held.embed(), pool=pool)
