"""The static featuriser: distilled from the bundled MiniLM, run with numpy, no torch to route."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from langchain_llmrouter import (
    CandidatePool,
    RouterLoadError,
    RoutingDataset,
    create_router,
    load_router,
)
from langchain_llmrouter.config import load_config
from langchain_llmrouter.embeddings import MiniLMEmbeddings
from langchain_llmrouter.static_embeddings import STATIC_NAME, StaticEmbeddings


@pytest.fixture(scope="module")
def static() -> StaticEmbeddings:
    """The featuriser, its table built once into the session's cache."""
    embeddings = StaticEmbeddings()
    embeddings.embed_array(["warm up"])
    return embeddings


def test_vectors_are_unit_length_and_deterministic(static: StaticEmbeddings) -> None:
    texts = ["What is 2 + 2?", "Write a haiku about autumn.", ""]
    first = static.embed_array(texts)
    assert first.shape == (3, 384) and first.dtype == np.float32
    assert np.allclose(np.linalg.norm(first[:2], axis=1), 1.0, atol=1e-5)
    assert not first[2].any()  # no tokens, no direction
    again = StaticEmbeddings().embed_array(texts)  # a second instance reads the same table
    assert np.array_equal(first, again)


def test_similar_questions_are_nearer_than_unrelated_ones(static: StaticEmbeddings) -> None:
    a, b, c = static.embed_array(
        [
            "Write a Python function that sorts a list.",
            "Implement a function in Python to sort an array of numbers.",
            "Who painted the Mona Lisa?",
        ]
    )
    assert a @ b > a @ c + 0.1


def test_the_table_is_stored_as_safetensors_with_its_tokenizer(
    static: StaticEmbeddings, llmrouter_cache: Path
) -> None:
    directory = llmrouter_cache / "static" / STATIC_NAME
    assert sorted(p.name for p in directory.iterdir()) == [
        "meta.json",
        "table.safetensors",
        "tokenizer.json",
    ]
    meta = json.loads((directory / "meta.json").read_text())
    assert (meta["vocab_size"], meta["dims"]) == (30522, 384)


def test_odd_text_is_embedded(static: StaticEmbeddings) -> None:
    vectors = static.embed_array(["lone surrogate \ud800 here", "emoji 🦜 " * 400])
    assert np.isfinite(vectors).all()


def test_a_router_keeps_its_featuriser(
    static: StaticEmbeddings, small_train: RoutingDataset, tmp_path: Path
) -> None:
    router = create_router("knnrouter", k=10, embeddings=static).fit(small_train)
    router.save(tmp_path / "knn")
    assert json.loads((tmp_path / "knn" / "router.json").read_text())["embeddings"] == STATIC_NAME
    loaded = load_router(tmp_path / "knn")  # the package rebuilds the featuriser itself
    assert isinstance(loaded.embeddings, StaticEmbeddings)
    query = "How many apples does Tom have now?"
    assert loaded.route(query) == router.route(query)
    with pytest.raises(RouterLoadError, match="trained with embeddings 'static-minilm-l6-v2'"):
        load_router(tmp_path / "knn", embeddings=MiniLMEmbeddings())


def test_a_minilm_router_refuses_the_static_featuriser(
    small_train: RoutingDataset, tmp_path: Path
) -> None:
    create_router("knnrouter", k=10).fit(small_train).save(tmp_path / "knn")
    with pytest.raises(RouterLoadError, match="not 'static-minilm-l6-v2'"):
        load_router(tmp_path / "knn", embeddings=StaticEmbeddings())


def test_config_selects_the_static_featuriser(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("embedding:\n  model: static-minilm-l6-v2\n")
    assert isinstance(load_config(path).build_embeddings(), StaticEmbeddings)


def test_a_fresh_process_routes_without_torch(
    static: StaticEmbeddings, small_train: RoutingDataset, tmp_path: Path
) -> None:
    create_router("knnrouter", k=10, embeddings=static).fit(small_train).save(tmp_path / "knn")
    script = textwrap.dedent(
        f"""
        import json, sys
        from langchain_llmrouter import load_router
        router = load_router({str(tmp_path / "knn")!r})
        decision = router.route("What is the capital of France?")
        heavy = [m for m in ("torch", "sentence_transformers", "sklearn", "transformers")
                 if m in sys.modules]
        print(json.dumps({{"model": decision.model, "heavy": heavy}}))
        """
    )
    proc = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=False
    )
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["heavy"] == []
    assert result["model"] in small_train.candidates


def test_bench_rows_compare_the_featurisers_side_by_side(
    static: StaticEmbeddings, small_train: RoutingDataset
) -> None:
    from langchain_llmrouter.evaluation.bench import run_benchmark

    train, test = small_train.subset(list(range(150))), small_train.subset(list(range(150, 200)))
    result = run_benchmark(
        train,
        test,
        {
            "knnrouter": {"k": 5},
            "knnrouter-static": {"router": "knnrouter", "k": 5, "embedding": STATIC_NAME},
        },
    )
    rows = {r.name: r for r in result.splits[0].reports}
    assert set(rows) >= {"knnrouter", "knnrouter-static"}
    # Each row routed on its own vectors: the two featurisers do not agree on every query.
    minilm = create_router("knnrouter", k=5).fit(train)
    fast = create_router("knnrouter", k=5, embeddings=static).fit(train)
    picks = [(minilm.route(q).model, fast.route(q).model) for q in test.queries]
    assert any(a != b for a, b in picks)
    with pytest.raises(ValueError, match=r"routers\.bad\.embedding must be one of"):
        run_benchmark(train, test, {"bad": {"router": "knnrouter", "embedding": "word2vec"}})


def _hf_ids(static: StaticEmbeddings, texts: list[str]) -> list[list[int]]:
    tokenizer = static._load()[1].tokenizer
    return [e.ids for e in tokenizer.encode_batch(texts, add_special_tokens=False)]


def test_the_word_cache_gives_the_tokenizers_own_ids_on_every_example_query(
    static: StaticEmbeddings, shared_data: Path
) -> None:
    pool = CandidatePool.from_json(shared_data / "default_llm.json")
    queries = [
        query
        for name in ("routerdc_train.json", "routerdc_test.json")
        for query in RoutingDataset.from_file(shared_data / name, candidates=pool).queries
    ]
    pieces = static._load()[1]
    assert pieces.enabled
    assert sum(q.isascii() for q in queries) > 5000  # the cached path is what is compared
    assert pieces.encode(queries) == _hf_ids(static, queries)


def test_the_word_cache_matches_the_tokenizer_on_odd_ascii(static: StaticEmbeddings) -> None:
    rng = np.random.default_rng(7)
    alphabet = list(
        "abcXYZ019 \t\n\r\x00\x07\x0b\x0c\x1c\x1f\x7f.,;:!?'\"()[]{}<>/\\|@#$%^&*-_=+~`"
    )
    texts = ["".join(rng.choice(alphabet, size=int(rng.integers(0, 80)))) for _ in range(300)]
    texts += ["x" * 150, "[CLS] [SEP] [UNK] [PAD] [MASK]", "word " * 400, "Ünïcode ½ 東京 text"]
    assert static._load()[1].encode(texts) == _hf_ids(static, texts)


def test_the_word_cache_starts_over_past_its_limit(
    static: StaticEmbeddings, monkeypatch: pytest.MonkeyPatch
) -> None:
    from langchain_llmrouter import static_embeddings

    pieces = static._load()[1]
    seeded = len(pieces._seed)
    monkeypatch.setattr(static_embeddings, "_WORD_CACHE_LIMIT", seeded + 5)
    texts = [f"zqx{i}vw" for i in range(8)]
    assert pieces.encode(texts) == _hf_ids(static, texts)
    assert len(pieces._words) <= seeded + 8
    assert pieces.encode(["hello zqx1vw"]) == _hf_ids(static, ["hello zqx1vw"])


def test_a_tokenizer_other_than_bert_uncased_is_used_whole(static: StaticEmbeddings) -> None:
    from tokenizers import Tokenizer, normalizers

    from langchain_llmrouter.static_embeddings import _WordPieces

    tokenizer = Tokenizer.from_str(static._load()[1].tokenizer.to_str())
    tokenizer.normalizer = normalizers.BertNormalizer(lowercase=False)
    pieces = _WordPieces(tokenizer)
    assert not pieces.enabled
    cased = ["Paris Is In France"]
    assert pieces.encode(cased) == [
        e.ids for e in tokenizer.encode_batch(cased, add_special_tokens=False)
    ]
