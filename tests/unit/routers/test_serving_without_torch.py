"""The serving path with no torch: a saved router on the static featuriser loads and routes
in a fresh process that imports neither torch, sentence-transformers, transformers nor
scikit-learn, and decides exactly as the router that was fitted in the test process.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from langchain_llmrouter import RoutingDataset, create_router
from langchain_llmrouter.routers.features import QueryFeaturizer
from langchain_llmrouter.static_embeddings import StaticEmbeddings

HEAVY = ("torch", "sentence_transformers", "transformers", "sklearn")
"""Modules a serving process must not import."""

QUERIES = [
    "What is 17 * 23?",
    "Sort these words alphabetically: pear apple fig",
    "Who wrote the novel Middlemarch?",
    "Write a short poem about the sea.",
]

CASES: dict[str, tuple[str, dict[str, Any]]] = {
    "knnrouter": ("knnrouter", {"k": 10}),
    "elorouter-global": ("elorouter", {"variant": "global"}),
    "elorouter-similarity": ("elorouter", {"variant": "similarity", "k": 20}),
    "mfrouter": ("mfrouter", {"latent_dim": 16, "max_epochs": 5, "patience": 2}),
    "svmrouter-rbf-tfidf": ("svmrouter", {"features": "embedding+tfidf"}),
    "svmrouter-linear-isotonic": ("svmrouter", {"kernel": "linear", "calibration": "isotonic"}),
    # The MLP's default features include TF-IDF, which must not need scikit-learn to serve.
    "mlprouter": ("mlprouter", {"hidden_sizes": [16], "max_epochs": 5, "patience": 2}),
    "hybrid_llm": ("hybrid_llm", {"hidden_sizes": [16], "epochs": 2}),
}

# Runs in a fresh interpreter: load, route, then report what got imported.
SERVE = textwrap.dedent(
    """
    import json, sys
    from langchain_llmrouter import load_router
    router = load_router(sys.argv[1])
    decisions = [router.route(q) for q in json.loads(sys.argv[2])]
    print(json.dumps({
        "heavy": sorted(m for m in json.loads(sys.argv[3]) if m in sys.modules),
        "embeddings": type(router.embeddings).__name__,
        "decisions": [d.model_dump() for d in decisions],
    }))
    """
)


@pytest.fixture(scope="module")
def static() -> StaticEmbeddings:
    """The static featuriser, its table built once into the session's cache."""
    embeddings = StaticEmbeddings()
    embeddings.embed_array(["warm up"])
    return embeddings


@pytest.mark.parametrize("case", list(CASES))
def test_saved_router_serves_without_torch(
    case: str, small_train: RoutingDataset, static: StaticEmbeddings, tmp_path: Path
) -> None:
    name, params = CASES[case]
    router = create_router(name, embeddings=static, **params).fit(small_train)
    router.save(tmp_path / "router")
    expected = [router.route(q) for q in QUERIES]

    # A working directory without plugins: only the package itself may import anything.
    args = [str(tmp_path / "router"), json.dumps(QUERIES), json.dumps(HEAVY)]
    done = subprocess.run(
        [sys.executable, "-c", SERVE, *args],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["heavy"] == []
    assert report["embeddings"] == "StaticEmbeddings"
    for want, got in zip(expected, report["decisions"], strict=True):
        assert got["model"] == want.model
        assert got["scores"].keys() == want.scores.keys()
        for candidate, score in want.scores.items():
            assert got["scores"][candidate] == pytest.approx(score, abs=1e-6)


def test_mlp_numpy_forward_matches_torch(
    small_train: RoutingDataset, static: StaticEmbeddings
) -> None:
    """What a loaded MLP router computes in numpy is what its torch networks compute."""
    torch = pytest.importorskip("torch")
    from langchain_llmrouter.routers.mlp import MLPRouter, _build_network

    hidden = [32, 16]
    router = MLPRouter(hidden_sizes=hidden, max_epochs=5, n_ensemble=2, embeddings=static).fit(
        small_train
    )
    queries = QUERIES + small_train.queries[:20]
    x = static.embed_array(queries)
    features = (router.featurizer_.transform(queries, x) - router.mean_) / router.scale_
    outputs = []
    for member in router.members_:
        net = _build_network(torch, features.shape[1], hidden, len(router.candidates_), 0.5)
        net.load_state_dict({k: torch.from_numpy(v) for k, v in member.items()})
        net.eval()
        with torch.no_grad():
            outputs.append(torch.sigmoid(net(torch.from_numpy(features))).numpy())
    got = router.predict_quality(queries, query_embeddings=x)
    np.testing.assert_allclose(got, np.mean(outputs, axis=0), atol=1e-5)


def test_tfidf_transform_matches_scikit_learn(small_train: RoutingDataset) -> None:
    """The numpy TF-IDF equals the fitted `TfidfVectorizer` term for term."""
    pytest.importorskip("sklearn")
    featurizer = QueryFeaturizer(tfidf=True)
    queries = small_train.queries
    featurizer.fit_transform(queries[:150], np.zeros((150, 1), dtype=np.float32))
    texts = [*queries[150:], "", "The the THE of of", "Café naïve: it's 3.14 — x y", "ÄÖÜ straße"]
    # Refit the same vectoriser here to get scikit-learn's own transform of unseen texts.
    from sklearn.feature_extraction import text as sklearn_text

    from langchain_llmrouter.routers.features import TFIDF_OPTIONS

    vectorizer = sklearn_text.TfidfVectorizer(**TFIDF_OPTIONS, dtype=np.float32)
    vectorizer.fit(queries[:150])
    assert list(vectorizer.get_feature_names_out()) == featurizer.vocabulary_
    want = vectorizer.transform(texts).tocsr()
    want.sort_indices()
    rows = featurizer.tfidf_rows(texts)
    for i, (ids, values) in enumerate(rows):
        start, stop = want.indptr[i], want.indptr[i + 1]
        np.testing.assert_array_equal(ids, want.indices[start:stop])
        np.testing.assert_allclose(values, want.data[start:stop], rtol=1e-6, atol=1e-7)
    projected = featurizer.transform(texts, np.zeros((len(texts), 1), dtype=np.float32))[:, 1:]
    np.testing.assert_allclose(projected, want @ featurizer.projection_, atol=1e-6)
