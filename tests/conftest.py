"""Shared pytest fixtures: a private embedding cache, the example data, a local OpenAI server,
candidate pools pointed at it, and a small fitted kNN router.

Everything here is offline and fast: the server is an in-process
:class:`~langchain_llmrouter.testing.FakeOpenAIServer`, the router is fitted on the first
few hundred training queries, and embeddings are cached in a per-session temporary directory.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from langchain_llmrouter import APIKeys, BaseRouter, CandidatePool, RoutingDataset, create_router
from langchain_llmrouter.testing import FakeOpenAIServer, ModelBehavior

# No hub here: `datasets`/`huggingface_hub` would retry a missing dataset for ~25 s. Set before
# either is imported (they read these at import time); subprocesses inherit them.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "llmrouter_example"
"""The LLMRouter example data, next to (not inside) the repository."""

SMALL_TRAIN_SIZE = 200
"""Training queries in `small_train`: enough for a meaningful kNN, embedded in seconds."""

SMALL_TRAIN_MAX_CHARS = 200
"""Longest query kept in `small_train`: MiniLM on a CPU takes ~0.1 s for a 256-token text,
so the long logic puzzles at the head of the file alone would take half a minute."""

PoolFactory = Callable[..., CandidatePool]


@pytest.fixture(scope="session", autouse=True)
def llmrouter_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Point ``LLMROUTER_CACHE_DIR`` at a fresh session directory (restored afterwards).

    Autouse, so it is set before any test embeds anything and the user's
    ``~/.cache`` is never read or written.
    """
    path = tmp_path_factory.mktemp("llmrouter_cache")
    previous = os.environ.get("LLMROUTER_CACHE_DIR")
    os.environ["LLMROUTER_CACHE_DIR"] = str(path)
    try:
        yield path
    finally:
        if previous is None:
            os.environ.pop("LLMROUTER_CACHE_DIR", None)
        else:
            os.environ["LLMROUTER_CACHE_DIR"] = previous


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The directory of the LLMRouter example data (candidates JSON, routing data).

    Fails (never skips) with a clear message when the data is not there.
    """
    required = ("default_llm.json", "routerdc_train.json")
    missing = [name for name in required if not (SHARED_DATA / name).is_file()]
    if missing:
        pytest.fail(
            f"the example data is missing: {', '.join(missing)} not found in {SHARED_DATA} "
            "(the tests expect /work/shared/data/llmrouter_example next to the repository)",
            pytrace=False,
        )
    return SHARED_DATA


@pytest.fixture(scope="session")
def openai_server() -> Iterator[FakeOpenAIServer]:
    """One local OpenAI-compatible server for the whole session (every model id answers).

    Tests that change a model's behavior or read the call log should use `served` instead,
    which cleans up after each test.
    """
    with FakeOpenAIServer() as server:
        yield server


@pytest.fixture
def served(openai_server: FakeOpenAIServer) -> Iterator[FakeOpenAIServer]:
    """The session server with an empty call log; behaviors set in the test are undone after."""
    openai_server.reset()
    yield openai_server
    # The session server is started with no configured models, so every configured one
    # was set by a test: put them all back to the default behavior.
    for name in openai_server.model_names:
        openai_server.set_behavior(name, ModelBehavior())
    openai_server.reset()


@pytest.fixture(scope="session")
def candidate_pool(shared_data: Path, openai_server: FakeOpenAIServer) -> PoolFactory:
    """Factory for fresh pools of the 14 example candidates, served by `openai_server`.

    Call it as ``candidate_pool(api_endpoint=..., api_keys="k1,k2", **chat_model_kwargs)``.
    ``api_endpoint`` defaults to the local server, ``api_keys`` to none (``API_KEYS`` in the
    environment is never read), and ``max_retries`` to 0 so a failed call fails at once.
    Each call builds a new pool, so chat models and key rotation are not shared between tests.
    """

    def make(
        *,
        api_endpoint: str | None = openai_server.base_url,
        api_keys: str | None = None,
        **chat_model_kwargs: Any,
    ) -> CandidatePool:
        return CandidatePool.from_json(
            shared_data / "default_llm.json",
            api_endpoint=api_endpoint,
            api_keys=APIKeys.parse(api_keys),
            chat_model_kwargs={"max_retries": 0, **chat_model_kwargs},
        )

    return make


@pytest.fixture(scope="session")
def small_train(shared_data: Path, candidate_pool: PoolFactory) -> RoutingDataset:
    """The first `SMALL_TRAIN_SIZE` RouterDC training queries of at most `SMALL_TRAIN_MAX_CHARS`
    characters (maths word problems, word sorting, trivia; 9 candidates, prices from the pool).
    """
    full = RoutingDataset.from_file(
        shared_data / "routerdc_train.json", candidates=candidate_pool()
    )
    short = [i for i, q in enumerate(full.queries) if len(q) <= SMALL_TRAIN_MAX_CHARS]
    return full.subset(short[:SMALL_TRAIN_SIZE])


@pytest.fixture(scope="session")
def knn_router(small_train: RoutingDataset) -> BaseRouter:
    """A ``knnrouter`` (k=10) fitted on `small_train`; shared by the session, so do not mutate it.

    Pass ``cost_weight``/``budget`` per call instead of setting them on the router.
    """
    return create_router("knnrouter", k=10).fit(small_train)
