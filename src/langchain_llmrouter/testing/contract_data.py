"""The data of the router contract: a small synthetic routing set, built in memory.

`make_contract_data` draws topic-shaped queries and 0/1 scores for five priced candidates with
different strengths, and embeds the queries with `HashingEmbeddings`, a deterministic
bag-of-words embedder; so a router's tests need no files, downloads or model weights.
`ContractData` holds such a set; build one from your own data to run the contract on it.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
from langchain_core.embeddings import Embeddings

if TYPE_CHECKING:
    from langchain_llmrouter.candidates import CandidatePool
    from langchain_llmrouter.data import RoutingDataset

__all__ = ["ContractData", "HashingEmbeddings", "make_contract_data"]


class HashingEmbeddings(Embeddings):
    """A deterministic bag-of-words embedder for tests: no model, no download, no torch.

    Each lower-cased word maps to a fixed pseudo-random vector (seeded by a hash of the word);
    a text embeds as the unit-normalised sum of its words' vectors, so texts that share words
    embed close together.

    Args:
        dim: Embedding dimension.
    """

    def __init__(self, dim: int = 64) -> None:
        if dim < 2:
            raise ValueError(f"dim must be at least 2, got {dim}")
        self.dim = dim
        self._words: dict[str, np.ndarray] = {}

    @property
    def name(self) -> str:
        """The embedder's name, as saved routers record it."""
        return f"hashing-bow-{self.dim}d"

    def _word(self, word: str) -> np.ndarray:
        vector = self._words.get(word)
        if vector is None:
            seed = int.from_bytes(hashlib.sha256(word.encode()).digest()[:8], "little")
            vector = np.random.default_rng(seed).standard_normal(self.dim)
            self._words[word] = vector
        return vector

    def embed_array(self, texts: Sequence[str]) -> np.ndarray:
        """Embed texts as a float32 array of shape (len(texts), dim)."""
        out = np.zeros((len(texts), self.dim), dtype=np.float64)
        for i, text in enumerate(texts):
            for word in re.findall(r"\w+", text.lower()):
                out[i] += self._word(word)
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        return (out / np.where(norms > 0, norms, 1.0)).astype(np.float32)

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        return self.embed_array(texts).tolist()

    def embed_query(self, text: str) -> list[float]:
        return self.embed_array([text])[0].tolist()


@dataclass(frozen=True)
class ContractData:
    """The routing data the contract trains and tests a router on."""

    fit: RoutingDataset
    """Training queries."""
    held: RoutingDataset
    """Held-out queries, with the same candidates."""
    fit_emb: np.ndarray
    """Embeddings of ``fit.queries`` (from ``embeddings``)."""
    held_emb: np.ndarray
    """Embeddings of ``held.queries``."""
    pool: CandidatePool
    """The candidates (prices, sizes, model ids); the chat-model check serves them locally."""
    embeddings: Embeddings | None = None
    """The embedder the routers are built with; None for the package default (MiniLM)."""


# (name, size, input price, output price in dollars per million tokens)
_CANDIDATES = [
    ("swift-1b", "1B", 0.05, 0.10),
    ("math-7b", "7B", 0.20, 0.20),
    ("code-13b", "13B", 0.40, 0.60),
    ("writer-34b", "34B", 0.80, 1.20),
    ("sage-70b", "70B", 3.00, 4.00),
]
# topic -> (its words, P(answer right) per candidate in _CANDIDATES order)
_TOPICS: dict[str, tuple[str, list[float]]] = {
    "arithmetic": (
        "sum multiply divide fraction percent integer remainder digits average product "
        "subtract equation",
        [0.30, 0.90, 0.50, 0.35, 0.80],
    ),
    "geography": (
        "river capital mountain continent border ocean desert island country climate "
        "latitude population",
        [0.55, 0.30, 0.30, 0.60, 0.85],
    ),
    "poetry": (
        "poem rhyme sonnet stanza metaphor verse haiku ballad lyric imagery meter elegy",
        [0.35, 0.15, 0.20, 0.90, 0.70],
    ),
    "code": (
        "python function loop recursion list dictionary exception class compile bug "
        "variable algorithm",
        [0.20, 0.40, 0.90, 0.35, 0.75],
    ),
    "chemistry": (
        "molecule atom reaction acid bond electron catalyst oxidation isotope solution "
        "element compound",
        [0.25, 0.45, 0.40, 0.45, 0.90],
    ),
    "small talk": (
        "hello weekend weather coffee movie friend holiday music garden dinner hobby morning",
        [0.85, 0.60, 0.55, 0.80, 0.90],
    ),
}
_OPENERS = [
    "Explain",
    "Tell me about",
    "What do you know about",
    "Give a short answer on",
    "Help me with",
    "Describe",
]


def make_contract_data(
    *,
    n_fit: int = 300,
    n_held: int = 150,
    seed: int = 0,
    embeddings: Embeddings | None = None,
) -> ContractData:
    """A synthetic routing set with structure a router can learn, built in memory.

    Six topics of queries and five candidates priced from $0.05 to $4 per million tokens:
    each topic has a specialist that answers it best, the dearest candidate is good at
    everything, and the scores are 0/1 draws from those per-topic rates. Costs follow the
    package's rule (prompt length / 4 tokens in, 200 out).

    Args:
        n_fit: Training queries.
        n_held: Held-out queries.
        seed: Seed of the queries and the scores.
        embeddings: The embedder (default: `HashingEmbeddings`).
    """
    from langchain_llmrouter.candidates import (
        DEFAULT_OUTPUT_TOKENS,
        APIKeys,
        CandidatePool,
        LLMCandidate,
        estimate_input_tokens,
    )
    from langchain_llmrouter.data import RoutingDataset

    rng = np.random.default_rng(seed)
    candidates = [
        LLMCandidate(
            name=name,
            model=f"contract/{name}",
            size=size,
            input_price=price_in,
            output_price=price_out,
            feature=f"{name}: a synthetic candidate of the router contract",
        )
        for name, size, price_in, price_out in _CANDIDATES
    ]
    topics = list(_TOPICS)
    seen: set[str] = set()
    queries: list[str] = []
    task_names: list[str | None] = []
    while len(queries) < n_fit + n_held:
        topic = topics[int(rng.integers(len(topics)))]
        words = _TOPICS[topic][0].split()
        picked = rng.choice(words, size=3, replace=False)
        opener = _OPENERS[int(rng.integers(len(_OPENERS)))]
        query = f"{opener} the {picked[0]} and the {picked[1]}, then the {picked[2]}?"
        if query not in seen:
            seen.add(query)
            queries.append(query)
            task_names.append(topic)
    rates = np.array([_TOPICS[str(t)][1] for t in task_names])
    performance = (rng.random(rates.shape) < rates).astype(np.float64)
    tokens_in = np.array([estimate_input_tokens(q) for q in queries], dtype=np.float64)
    prices_in = np.array([c.input_price for c in candidates])
    prices_out = np.array([c.output_price for c in candidates])
    cost = (np.outer(tokens_in, prices_in) + DEFAULT_OUTPUT_TOKENS * prices_out) / 1e6
    full = RoutingDataset(
        queries=queries,
        candidates=[c.name for c in candidates],
        performance=performance,
        cost=cost,
        task_names=task_names,
        source="langchain_llmrouter.testing (synthetic)",
        candidate_specs={c.name: c for c in candidates},
    )
    fit, held = full.subset(np.arange(n_fit)), full.subset(np.arange(n_fit, n_fit + n_held))
    embedder = HashingEmbeddings() if embeddings is None else embeddings
    return ContractData(
        fit=fit,
        held=held,
        fit_emb=_embed(embedder, fit.queries),
        held_emb=_embed(embedder, held.queries),
        pool=CandidatePool(candidates, api_keys=APIKeys(), source="router contract"),
        embeddings=embedder,
    )


def _embed(embeddings: Embeddings, texts: Sequence[str]) -> np.ndarray:
    array_fn = getattr(embeddings, "embed_array", None)
    if callable(array_fn):
        return np.asarray(array_fn(list(texts)), dtype=np.float32)
    return np.asarray(embeddings.embed_documents(list(texts)), dtype=np.float32)
