"""Unit tests of the embedders: the bundled MiniLM (offline) and the on-disk embedding cache."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from langchain_core.embeddings import Embeddings

from langchain_llmrouter import CachedEmbeddings, MiniLMEmbeddings
from langchain_llmrouter.embeddings import (
    DEFAULT_EMBEDDING_MODEL,
    default_cache_dir,
    embed_texts,
    embedding_name,
)


@pytest.fixture(scope="module", autouse=True)
def _offline_hub() -> Iterator[None]:
    """Forbid Hugging Face Hub downloads: the bundled model must load offline."""
    previous = os.environ.get("HF_HUB_OFFLINE")
    os.environ["HF_HUB_OFFLINE"] = "1"
    yield
    if previous is None:
        os.environ.pop("HF_HUB_OFFLINE", None)
    else:
        os.environ["HF_HUB_OFFLINE"] = previous


class CountingEmbeddings(Embeddings):
    """A deterministic fake embedder that records every text it computes."""

    def __init__(self, dim: int = 8) -> None:
        self.dim = dim
        self.computed: list[str] = []
        self.calls = 0

    def _vector(self, text: str) -> list[float]:
        digest = hashlib.sha256(text.encode()).digest()
        return [b / 255.0 for b in digest[: self.dim]]

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        self.calls += 1
        self.computed.extend(texts)
        return [self._vector(t) for t in texts]

    def embed_query(self, text: str) -> list[float]:
        return self.embed_documents([text])[0]


class NamedEmbeddings(CountingEmbeddings):
    """A fake embedder that names itself, as the cache's default namespace."""

    name = "named-fake"


# --- MiniLM --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def _minilm() -> MiniLMEmbeddings:
    return MiniLMEmbeddings()


def test_minilm_is_lazy_and_named() -> None:
    embedder = MiniLMEmbeddings()
    assert embedder._model is None
    assert embedder.name == DEFAULT_EMBEDDING_MODEL == "all-MiniLM-L6-v2"
    assert MiniLMEmbeddings(model_path="/models/x").name == "local:/models/x"
    assert embedding_name(embedder) == "all-MiniLM-L6-v2"


def test_minilm_unit_vectors(_minilm: MiniLMEmbeddings) -> None:
    texts = ["What is the capital of France?", "Sort these words: pear apple fig", "x"]
    array = _minilm.embed_array(texts)
    assert array.shape == (3, 384)
    assert array.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(array, axis=1), 1.0, atol=1e-5)
    documents = _minilm.embed_documents(texts)
    assert len(documents) == 3 and all(len(v) == 384 for v in documents)
    np.testing.assert_allclose(documents, array, atol=1e-6)
    query = _minilm.embed_query(texts[0])
    assert isinstance(query, list) and len(query) == 384
    np.testing.assert_allclose(query, array[0], atol=1e-5)
    assert _minilm.embed_array([]).shape == (0, 384)


def test_minilm_similar_sentences_are_closer(_minilm: MiniLMEmbeddings) -> None:
    cat, kitten, tax = _minilm.embed_array(
        [
            "The cat sat on the mat.",
            "A kitten is sitting on the rug.",
            "Quarterly corporate tax filings are due in April.",
        ]
    )
    assert float(cat @ kitten) > float(cat @ tax) + 0.2


# --- the disk cache ------------------------------------------------------------------------


def test_second_call_computes_nothing(tmp_path: Path) -> None:
    fake = CountingEmbeddings()
    cached = CachedEmbeddings(fake, cache_dir=tmp_path)
    texts = ["alpha", "beta", "gamma"]
    first = cached.embed_array(texts)
    assert fake.computed == texts
    second = cached.embed_array(texts)
    assert fake.computed == texts and fake.calls == 1
    np.testing.assert_array_equal(first, second)
    np.testing.assert_allclose(first, fake.embed_documents(texts), atol=1e-7)
    assert (tmp_path / "embeddings.sqlite").is_file()


def test_only_new_texts_are_computed(tmp_path: Path) -> None:
    fake = CountingEmbeddings()
    cached = CachedEmbeddings(fake, cache_dir=tmp_path)
    cached.embed_array(["alpha", "beta"])
    fake.computed.clear()
    result = cached.embed_array(["beta", "delta", "alpha", "epsilon"])
    assert fake.computed == ["delta", "epsilon"]
    expected = CountingEmbeddings().embed_documents(["beta", "delta", "alpha", "epsilon"])
    np.testing.assert_allclose(result, expected, atol=1e-7)


def test_duplicates_in_one_call_are_computed_once(tmp_path: Path) -> None:
    fake = CountingEmbeddings()
    cached = CachedEmbeddings(fake, cache_dir=tmp_path)
    result = cached.embed_array(["a", "b", "a", "a", "b", "c"])
    assert fake.computed == ["a", "b", "c"]
    assert result.shape == (6, 8)
    np.testing.assert_array_equal(result[0], result[2])
    np.testing.assert_array_equal(result[0], result[3])
    np.testing.assert_array_equal(result[1], result[4])
    assert not np.array_equal(result[0], result[1])


def test_cache_persists_across_instances(tmp_path: Path) -> None:
    first = CountingEmbeddings()
    vectors = CachedEmbeddings(first, cache_dir=tmp_path).embed_array(["one", "two"])
    second = CountingEmbeddings()
    again = CachedEmbeddings(second, cache_dir=tmp_path).embed_array(["two", "one"])
    assert second.computed == []
    np.testing.assert_array_equal(again, vectors[::-1])


def test_namespaces_are_separate(tmp_path: Path) -> None:
    CachedEmbeddings(CountingEmbeddings(), cache_dir=tmp_path).embed_array(["one"])
    other = CountingEmbeddings()
    CachedEmbeddings(other, cache_dir=tmp_path, namespace="other-model").embed_array(["one"])
    assert other.computed == ["one"]
    named = NamedEmbeddings()
    CachedEmbeddings(named, cache_dir=tmp_path).embed_array(["one"])
    assert named.computed == ["one"]
    # The same namespace, given explicitly, hits the entries written under it.
    hit = CountingEmbeddings()
    CachedEmbeddings(hit, cache_dir=tmp_path, namespace="other-model").embed_array(["one"])
    assert hit.computed == []


def test_default_namespace() -> None:
    assert CachedEmbeddings(CountingEmbeddings()).namespace == "CountingEmbeddings"
    assert CachedEmbeddings(NamedEmbeddings()).namespace == "named-fake"
    assert CachedEmbeddings(CountingEmbeddings(), namespace="ns").namespace == "ns"


def test_cached_langchain_interface(tmp_path: Path) -> None:
    fake = CountingEmbeddings(dim=4)
    cached = CachedEmbeddings(fake, cache_dir=tmp_path)
    documents = cached.embed_documents(["p", "q"])
    assert isinstance(documents, list) and len(documents) == 2 and len(documents[0]) == 4
    assert cached.embed_query("p") == pytest.approx(documents[0])
    assert fake.computed == ["p", "q"]


def test_cache_dir_comes_from_the_environment(
    llmrouter_cache: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    assert default_cache_dir() == llmrouter_cache
    assert CachedEmbeddings(CountingEmbeddings()).cache_dir == llmrouter_cache
    monkeypatch.setenv("LLMROUTER_CACHE_DIR", str(tmp_path / "elsewhere"))
    assert CachedEmbeddings(CountingEmbeddings()).cache_dir == tmp_path / "elsewhere"
    monkeypatch.delenv("LLMROUTER_CACHE_DIR")
    assert default_cache_dir() == Path.home() / ".cache" / "langchain_llmrouter"


def test_embed_texts_with_custom_embeddings(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("LLMROUTER_CACHE_DIR", str(tmp_path))
    fake = CountingEmbeddings(dim=5)
    result = embed_texts(["u", "v", "u"], fake)
    assert result.shape == (3, 5) and result.dtype == np.float32
    assert fake.computed == ["u", "v"]
    assert (tmp_path / "embeddings.sqlite").is_file()
    np.testing.assert_array_equal(embed_texts(["v", "u"], fake), result[[1, 0]])
    assert fake.computed == ["u", "v"]
    # Without the cache every call computes.
    np.testing.assert_allclose(embed_texts(["v"], fake, cache=False), result[[1]], atol=1e-7)
    assert fake.computed == ["u", "v", "v"]


def test_embed_texts_keeps_a_given_cache(tmp_path: Path) -> None:
    fake = CountingEmbeddings()
    cached = CachedEmbeddings(fake, cache_dir=tmp_path / "mine")
    embed_texts(["w"], cached)
    assert (tmp_path / "mine" / "embeddings.sqlite").is_file()
    embed_texts(["w"], cached)
    assert fake.computed == ["w"]


def test_embed_texts_default_is_cached_minilm(llmrouter_cache: Path) -> None:
    texts = ["How many legs does a spider have?", "Translate 'bonjour' to English."]
    first = embed_texts(texts)
    assert first.shape == (2, 384)
    assert (llmrouter_cache / "embeddings.sqlite").is_file()
    np.testing.assert_array_equal(embed_texts(texts[::-1]), first[::-1])


def test_minilm_thread_count_is_set_when_the_model_loads() -> None:
    import torch

    before = torch.get_num_threads()
    try:
        embedder = MiniLMEmbeddings(num_threads=1)
        assert torch.get_num_threads() == before  # nothing happens at construction
        assert embedder.embed_array(["one thread"]).shape == (1, 384)
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)
    with pytest.raises(ValueError, match="num_threads must be >= 1"):
        MiniLMEmbeddings(num_threads=0)


def test_config_passes_the_thread_count_to_minilm(tmp_path: Path) -> None:
    from langchain_llmrouter.config import load_config

    path = tmp_path / "train.yaml"
    path.write_text("router: knnrouter\nembedding:\n  num_threads: 1\n", encoding="utf-8")
    embedder = load_config(path).build_embeddings()
    assert isinstance(embedder, MiniLMEmbeddings) and embedder.num_threads == 1
