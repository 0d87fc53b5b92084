"""The vector-index contract (routers/vector_index.py) and the nearest-neighbour routers on it:
FAISS kinds agree with exact search, save/load without pickle, damaged files are refused,
labelled queries are appended online, and knnrouter / elorouter route alike through HNSW."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from langchain_llmrouter import ConfigError, RouterLoadError, RoutingDataset, create_router
from langchain_llmrouter.routers.registry import load_router
from langchain_llmrouter.routers.vector_index import INDEX_FILE, VectorIndex

pytest.importorskip("faiss", reason="the faiss extra is not installed")

KINDS = ["exact", "flat", "hnsw", "ivf"]
FAISS_MAGIC = {"flat": (b"IxFI",), "hnsw": (b"IHNf",), "ivf": (b"IwFl", b"IwF2")}
"""The first bytes FAISS writes for each kind's index class (its own format, not pickle)."""


def _clustered(n: int, dim: int = 32, clusters: int = 20, seed: int = 0) -> np.ndarray:
    """Points around ``clusters`` random centres: structure an approximate index can use."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((clusters, dim))
    x = centres[rng.integers(0, clusters, n)] + 0.3 * rng.standard_normal((n, dim))
    return x.astype(np.float32)


def _recall(found: np.ndarray, truth: np.ndarray) -> float:
    hits = sum(len(np.intersect1d(a, b)) for a, b in zip(found, truth, strict=True))
    return hits / truth.size


@pytest.fixture(scope="module")
def points() -> tuple[np.ndarray, np.ndarray]:
    data = _clustered(2_300)
    return data[:2_000], data[2_000:]


@pytest.mark.parametrize("metric", ["cosine", "l2"])
def test_exact_search_is_the_full_sort(points: tuple[np.ndarray, np.ndarray], metric: str) -> None:
    stored, queries = points
    dist, ids = VectorIndex("exact", metric).build(stored).search(queries, 10)  # type: ignore[arg-type]
    if metric == "cosine":
        unit = stored / np.linalg.norm(stored, axis=1, keepdims=True)
        full = 1 - (queries / np.linalg.norm(queries, axis=1, keepdims=True)) @ unit.T
    else:
        full = np.linalg.norm(queries[:, None, :] - stored[None], axis=2)
    expected = np.sort(full, axis=1)[:, :10]
    assert np.allclose(dist, expected, atol=1e-4)
    assert (np.diff(dist, axis=1) >= 0).all()  # nearest first
    assert np.allclose(np.take_along_axis(full, ids, axis=1), dist, atol=1e-4)


@pytest.mark.parametrize("metric", ["cosine", "l2"])
def test_flat_finds_the_exact_neighbours(
    points: tuple[np.ndarray, np.ndarray], metric: str
) -> None:
    stored, queries = points
    d_exact, i_exact = VectorIndex("exact", metric).build(stored).search(queries, 20)  # type: ignore[arg-type]
    d_flat, i_flat = VectorIndex("flat", metric).build(stored).search(queries, 20)  # type: ignore[arg-type]
    assert _recall(i_flat, i_exact) == 1.0
    assert np.allclose(d_flat, d_exact, atol=1e-4)


@pytest.mark.parametrize(
    ("kind", "options"),
    [("hnsw", {}), ("hnsw", {"code": "sq8"}), ("ivf", {}), ("ivf", {"code": "sq8"})],
)
@pytest.mark.parametrize("metric", ["cosine", "l2"])
def test_approximate_kinds_have_high_recall(
    points: tuple[np.ndarray, np.ndarray], kind: str, options: dict, metric: str
) -> None:
    stored, queries = points
    _, truth = VectorIndex("exact", metric).build(stored).search(queries, 20)  # type: ignore[arg-type]
    _, found = VectorIndex(kind, metric, **options).build(stored).search(queries, 20)  # type: ignore[arg-type]
    assert _recall(found, truth) >= 0.9


def test_a_few_probed_lists_lose_recall(points: tuple[np.ndarray, np.ndarray]) -> None:
    """nprobe is a real knob: one list of many finds fewer true neighbours than all lists."""
    stored, queries = points
    _, truth = VectorIndex("exact").build(stored).search(queries, 20)
    one = VectorIndex("ivf", nlist=40, nprobe=1).build(stored).search(queries, 20)[1]
    every = VectorIndex("ivf", nlist=40, nprobe=40).build(stored).search(queries, 20)[1]
    assert _recall(one, truth) < 0.9 <= _recall(every, truth)
    assert _recall(every, truth) == 1.0


@pytest.mark.parametrize("kind", KINDS)
def test_added_vectors_are_found(points: tuple[np.ndarray, np.ndarray], kind: str) -> None:
    stored, queries = points
    index = VectorIndex(kind).build(stored[:1_500])
    index.add(stored[1_500:])
    assert index.ntotal == 2_000
    dist, ids = index.search(stored[1_500:1_600], 1)  # each added vector finds itself
    assert (ids[:, 0] == np.arange(1_500, 1_600)).mean() >= 0.98
    assert np.allclose(dist[:, 0], 0.0, atol=1e-3) or kind == "ivf"
    _, truth = VectorIndex("exact").build(stored).search(queries, 20)
    assert _recall(index.search(queries, 20)[1], truth) >= (
        1.0 if kind in ("exact", "flat") else 0.9
    )


@pytest.mark.parametrize("kind", ["flat", "hnsw", "ivf"])
def test_saved_index_round_trips_in_faiss_format(
    points: tuple[np.ndarray, np.ndarray], kind: str, tmp_path: Path
) -> None:
    stored, queries = points
    index = VectorIndex(kind).build(stored)
    record = index.save(tmp_path)
    raw = (tmp_path / INDEX_FILE).read_bytes()
    assert raw[:4] in FAISS_MAGIC[kind] and b"pickle" not in raw[:64]
    assert not raw.startswith(b"\x80")  # a pickle stream starts with the PROTO opcode
    loaded = VectorIndex.load(tmp_path, record)
    assert loaded.ntotal == 2_000
    before, after = index.search(queries, 10), loaded.search(queries, 10)
    assert np.array_equal(before[1], after[1]) and np.allclose(before[0], after[0])


def test_damaged_or_missing_index_files_are_refused(
    points: tuple[np.ndarray, np.ndarray], tmp_path: Path
) -> None:
    record = VectorIndex("hnsw").build(points[0]).save(tmp_path)
    path = tmp_path / INDEX_FILE
    raw = bytearray(path.read_bytes())
    raw[len(raw) // 2] ^= 0xFF  # same size, one byte flipped
    path.write_bytes(bytes(raw))
    with pytest.raises(RouterLoadError, match="SHA-256"):
        VectorIndex.load(tmp_path, record)
    path.write_bytes(bytes(raw[:100]))
    with pytest.raises(RouterLoadError, match=r"100 bytes where router\.json records"):
        VectorIndex.load(tmp_path, record)
    path.unlink()
    with pytest.raises(RouterLoadError, match=INDEX_FILE):
        VectorIndex.load(tmp_path, record)
    with pytest.raises(RouterLoadError, match="not a saved FAISS index"):
        VectorIndex.load(tmp_path, {**record, "file": "../elsewhere.faiss"})


def test_unknown_kinds_and_codes_are_named() -> None:
    with pytest.raises(ValueError, match="valid: auto, exact, flat, hnsw, ivf"):
        VectorIndex("annoy")
    with pytest.raises(ValueError, match="does not apply to a hnsw index"):
        VectorIndex("hnsw", code="pq8")
    with pytest.raises(ValueError, match="does not apply to a exact index"):
        VectorIndex("exact", code="sq8")
    with pytest.raises(ConfigError, match=r"hparam\.index"):
        create_router("knnrouter", index="annoy").validate_params({"index": "annoy"})
    with pytest.raises(ConfigError, match="index_code"):
        create_router("knnrouter").validate_params({"index_code": "zip"})


def test_auto_is_exact_for_a_small_store(points: tuple[np.ndarray, np.ndarray]) -> None:
    assert VectorIndex("auto").build(points[0]).kind_ == "exact"


def test_a_missing_faiss_names_the_extra(
    points: tuple[np.ndarray, np.ndarray], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "faiss", None)
    with pytest.raises(ImportError, match=r"langchain-llmrouter\[faiss\]"):
        VectorIndex("hnsw").build(points[0])
    VectorIndex("exact").build(points[0])  # exact needs no FAISS


def test_importing_the_routers_does_not_import_faiss() -> None:
    code = (
        "import sys, langchain_llmrouter, langchain_llmrouter.routers.knn, "
        "langchain_llmrouter.routers.elo\n"
        "print('faiss' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


# --- the routers ----------------------------------------------------------------------------


def _predict(router, data: RoutingDataset, emb: np.ndarray) -> np.ndarray:  # type: ignore[no-untyped-def]
    return router.predict_quality(data.queries, query_embeddings=emb)


@pytest.mark.parametrize("name", ["knnrouter", "elorouter"])
def test_routers_through_hnsw_predict_like_exact(
    name: str,
    short_fit: RoutingDataset,
    short_fit_emb: np.ndarray,
    short_held: RoutingDataset,
    short_held_emb: np.ndarray,
    tmp_path: Path,
) -> None:
    params = {"k": 20}
    exact = create_router(name, **params).fit(short_fit, query_embeddings=short_fit_emb)
    hnsw = create_router(name, index="hnsw", **params).fit(
        short_fit, query_embeddings=short_fit_emb
    )
    expected = _predict(exact, short_held, short_held_emb)
    predicted = _predict(hnsw, short_held, short_held_emb)
    assert np.abs(predicted - expected).mean() < 0.01
    chosen = predicted.argmax(axis=1) == expected.argmax(axis=1)
    assert chosen.mean() >= 0.95
    hnsw.save(tmp_path / name)
    assert sorted(p.name for p in (tmp_path / name).iterdir()) == [
        "arrays.safetensors",
        INDEX_FILE,
        "router.json",
    ]
    loaded = load_router(tmp_path / name)
    assert np.allclose(_predict(loaded, short_held, short_held_emb), predicted)


@pytest.mark.parametrize("kind", KINDS)
def test_knn_add_examples_without_refit(
    kind: str,
    short_fit: RoutingDataset,
    short_fit_emb: np.ndarray,
    short_held: RoutingDataset,
    short_held_emb: np.ndarray,
    tmp_path: Path,
) -> None:
    """Appending the held-out half to a router fitted on the first half ~ fitting on both."""
    half = len(short_fit) // 2
    first = short_fit.subset(np.arange(half))
    router = create_router("knnrouter", k=10, index=kind, ivf_nprobe=64)
    router.fit(first, query_embeddings=short_fit_emb[:half])
    before = _predict(router, short_held, short_held_emb)
    router.add_examples(short_fit_emb[half:], short_fit.performance[half:])
    assert router.index_.ntotal == len(short_fit) == len(router.train_y_)
    whole = create_router("knnrouter", k=10, index="exact")
    whole.fit(short_fit, query_embeddings=short_fit_emb)
    expected, after = (
        _predict(whole, short_held, short_held_emb),
        _predict(router, short_held, short_held_emb),
    )
    gap = np.abs(after - expected).mean()
    assert gap < (1e-5 if kind in ("exact", "flat") else 0.02)
    assert gap < np.abs(before - expected).mean()  # the added queries changed the answers
    router.save(tmp_path / "knn")
    assert (tmp_path / "knn" / INDEX_FILE).exists() == (kind != "exact")
    loaded = load_router(tmp_path / "knn")
    assert np.allclose(_predict(loaded, short_held, short_held_emb), after, atol=1e-6)


def test_add_examples_checks_its_input(short_knn) -> None:  # type: ignore[no-untyped-def]
    dim = short_knn.index_.dim_
    with pytest.raises(ValueError, match="9 candidates"):
        short_knn.add_examples(np.zeros((2, dim)), np.zeros((2, 3)))
    with pytest.raises(ValueError, match="shape"):
        short_knn.add_examples(np.zeros((2, dim)), np.zeros((3, 9)))


def test_elo_add_examples_grows_the_store(
    short_fit: RoutingDataset, short_fit_emb: np.ndarray, tmp_path: Path
) -> None:
    half = len(short_fit) // 2
    elo = create_router("elorouter", k=20, index="flat")
    elo.fit(short_fit.subset(np.arange(half)), query_embeddings=short_fit_emb[:half])
    elo.add_examples(short_fit_emb[half:], short_fit.performance[half:])
    assert elo.index_.ntotal == len(short_fit) == len(elo.train_y_)
    elo.save(tmp_path / "elo")
    assert load_router(tmp_path / "elo").index_.ntotal == len(short_fit)


def test_a_router_with_a_tampered_index_file_is_refused(
    short_fit: RoutingDataset, short_fit_emb: np.ndarray, tmp_path: Path
) -> None:
    router = create_router("knnrouter", k=10, index="ivf").fit(
        short_fit, query_embeddings=short_fit_emb
    )
    router.save(tmp_path / "knn")
    other = create_router("knnrouter", k=10, index="ivf").fit(
        short_fit.subset(np.arange(100)), query_embeddings=short_fit_emb[:100]
    )
    other.save(tmp_path / "other")
    (tmp_path / "knn" / INDEX_FILE).write_bytes((tmp_path / "other" / INDEX_FILE).read_bytes())
    with pytest.raises(RouterLoadError, match=str(tmp_path / "knn")):
        load_router(tmp_path / "knn")
    (tmp_path / "knn" / INDEX_FILE).unlink()
    with pytest.raises(RouterLoadError, match=r"router\.json lists it"):
        load_router(tmp_path / "knn")


def test_the_knn_multiround_router_searches_through_the_index(
    short_fit: RoutingDataset, short_fit_emb: np.ndarray, tmp_path: Path
) -> None:
    router = create_router("knnmultiroundrouter", k=10, index="hnsw")
    router.fit(short_fit, query_embeddings=short_fit_emb)
    assert router.index_.kind_ == "hnsw"  # type: ignore[union-attr]
    router.save(tmp_path / "multi")
    loaded = load_router(tmp_path / "multi")
    assert loaded.name == "knnmultiroundrouter" and loaded.index_.kind_ == "hnsw"  # type: ignore[union-attr]
    assert (tmp_path / "multi" / INDEX_FILE).exists()
